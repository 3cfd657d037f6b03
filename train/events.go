package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/skd-go/skd/tensorboard"
)

// EventWriter records a run's metrics.
type EventWriter interface {
	// Write appends rec (which holds "iter") to the metrics log and the
	// scalars, by tag, to TensorBoard at step iter.
	Write(iter int64, rec map[string]any, scalars map[string]float64)
	Close() error
}

// fileEvents writes WORK_DIR/metrics.jsonl (one JSON object per line,
// synced after each) and a TensorBoard event file, both opened on the
// first Write. A failed write is logged, not fatal.
type fileEvents struct {
	dir     string
	log     *slog.Logger
	metrics *os.File
	tb      *tensorboard.Writer
	err     error
}

func newFileEvents(dir string, log *slog.Logger) *fileEvents { return &fileEvents{dir: dir, log: log} }

func (e *fileEvents) open() error {
	if e.metrics != nil || e.err != nil {
		return e.err
	}
	if e.metrics, e.err = os.OpenFile(filepath.Join(e.dir, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); e.err != nil {
		return e.err
	}
	e.tb, e.err = tensorboard.NewWriter(e.dir)
	return e.err
}

func (e *fileEvents) Write(iter int64, rec map[string]any, scalars map[string]float64) {
	if err := e.open(); err != nil {
		e.log.Warn("metrics", "err", err)
		return
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		e.log.Warn("metrics", "err", err)
		return
	}
	e.metrics.Write(append(raw, '\n'))
	e.metrics.Sync()
	if len(scalars) > 0 {
		e.tb.Scalars(iter, scalars)
		e.tb.Flush()
	}
}

func (e *fileEvents) Close() error {
	var errs []error
	if e.tb != nil {
		errs = append(errs, e.tb.Close())
	}
	if e.metrics != nil {
		errs = append(errs, e.metrics.Close())
	}
	return errors.Join(errs...)
}

// truncateMetrics drops the lines of a metrics log p that were logged
// after iteration iter, so a resumed run's log reads as an uninterrupted
// one.
func truncateMetrics(p string, iter int64) error {
	raw, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m struct {
			Iter *int64 `json:"iter"`
		}
		line := sc.Bytes()
		if json.Unmarshal(line, &m) != nil || m.Iter == nil || *m.Iter > iter {
			continue
		}
		keep = append(append(keep, line...), '\n')
	}
	return writeAtomic(p, keep)
}

// rssMiB is the process's resident memory (VmRSS; the Go runtime's
// reservation where /proc is missing).
func rssMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%f", &kb)
				return kb / 1024
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Sys) / (1 << 20)
}
