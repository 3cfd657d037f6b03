package train

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// FaultEnv is a testing hook of the checkpoint protocol (see
// docs/TRAINING.md): "NAME:K" makes the process SIGKILL itself right after
// step K (1-based: each write, fsync, rename and removal counts) of its
// first write of checkpoint NAME; ",portable" (or "portable" alone) forces
// the replacement protocol used where the file system cannot exchange
// directories. cmd/kdtrain's TestCheckpointKillAtEveryStep drives it.
const FaultEnv = "SKD_CHECKPOINT_FAULT"

var fault struct {
	once     sync.Once
	name     string
	step     int
	portable bool
	armed    bool
	used     bool
	mu       sync.Mutex
}

func loadFault() {
	for _, part := range strings.Split(os.Getenv(FaultEnv), ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
		case part == "portable":
			fault.portable = true
		default:
			i := strings.LastIndexByte(part, ':')
			k, err := strconv.Atoi(part[i+1:])
			if i <= 0 || err != nil || k < 1 {
				fmt.Fprintf(os.Stderr, "%s=%q: want NAME:K (K >= 1)[,portable]\n", FaultEnv, os.Getenv(FaultEnv))
				os.Exit(2)
			}
			fault.name, fault.step, fault.armed = part[:i], k, true
		}
	}
}

// faultPoints counts the steps of one checkpoint write; a nil one counts
// nothing.
type faultPoints struct {
	n        int
	kill     int // 0: never
	portable bool
}

func newFaultPoints(name string) *faultPoints {
	fault.once.Do(loadFault)
	f := &faultPoints{portable: fault.portable || forcePortable}
	fault.mu.Lock()
	defer fault.mu.Unlock()
	if fault.armed && !fault.used && fault.name == name {
		fault.used = true
		f.kill = fault.step
	}
	return f
}

// forcePortable makes in-process tests use the portable protocol.
var forcePortable bool

// step marks the end of one step of a checkpoint write.
func (f *faultPoints) step(what string) {
	if f == nil {
		return
	}
	f.n++
	if f.kill == f.n {
		fmt.Fprintf(os.Stderr, "%s: killing the process after step %d (%s)\n", FaultEnv, f.n, what)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Kill() // SIGKILL on Unix
		}
		select {} // the signal is on its way
	}
	if faultHook != nil {
		faultHook(f.n, what)
	}
}

// faultHook lets in-process tests stop a write after a step (they panic
// from it to leave the files as a kill would).
var faultHook func(n int, what string)

// errNoExchange: the platform cannot swap two directories atomically.
var errNoExchange = fmt.Errorf("atomic directory exchange not supported")
