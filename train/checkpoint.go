package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/skd-go/skd/layers"
	"github.com/skd-go/skd/model"
	"github.com/skd-go/skd/model/weights"
)

// State is the training state saved beside the weights (state.json).
type State struct {
	// Iter is the next iteration to run (the number of iterations done).
	Iter       int64   `json:"iter"`
	Epoch      int     `json:"epoch"`
	BestAP     float64 `json:"best_ap"`
	BestIter   int64   `json:"best_iter"`
	ConfigHash string  `json:"config_hash"`
	Seed       int64   `json:"seed"`
	// SamplerRNG is the detector's PCG state (MarshalBinary).
	SamplerRNG []byte `json:"sampler_rng"`
	// ExtraRNG holds other random states by name (e.g. MGD masks).
	ExtraRNG map[string][]byte `json:"extra_rng,omitempty"`
	// LoaderIter is the loader's next global iteration.
	LoaderIter int64 `json:"loader_iter"`
	// WorldSize is the number of data-parallel ranks that trained up to
	// this checkpoint (0 in older checkpoints: one).
	WorldSize int       `json:"world_size,omitempty"`
	Saved     time.Time `json:"saved"`
	Format    int       `json:"format"`
	// SHA256 holds the hex SHA-256 of each file of the checkpoint
	// (format 2), verified by LoadCheckpoint.
	SHA256 map[string]string `json:"sha256,omitempty"`
}

// stateFormat is the state.json format written: 2 adds SHA256.
const stateFormat = 2

// Checkpoint file names inside a checkpoint directory.
const (
	ModelFile     = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
	StateFile     = "state.json"
	// LastPointer is the work-dir file naming the last complete checkpoint.
	LastPointer = "last_checkpoint"
	checkpoints = "checkpoints"
	// tmpPrefix names a checkpoint being written; oldPrefix a checkpoint
	// being replaced by the portable protocol.
	tmpPrefix = ".tmp-"
	oldPrefix = ".old-"
)

// SaveCheckpoint writes weights, momentum buffers and state into
// workDir/checkpoints/name with the protocol of docs/TRAINING.md: the
// files go to a hidden temporary directory (each fsynced, their SHA-256
// recorded in state.json, which is written last), the directory is
// fsynced and swapped into place in one atomic step (renameat2
// RENAME_EXCHANGE when the name exists already; a plain rename for a new
// name), and only then is workDir/last_checkpoint replaced (temp file,
// fsync, rename, fsync). At every instant the name, or the pointer, refers
// to a complete checkpoint; Recover finishes or rolls back what a kill
// left. Returns the checkpoint directory.
func SaveCheckpoint(workDir, name string, reg *layers.Registry, opt *SGD, st *State, updateLast bool) (string, error) {
	f := newFaultPoints(name)
	root := filepath.Join(workDir, checkpoints)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(root, tmpPrefix+name+"-")
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful swap
	f.step("mkdir temp")
	meta := map[string]string{"iter": fmt.Sprint(st.Iter), "config_hash": st.ConfigHash}
	if err := model.SaveWeights(reg, filepath.Join(tmp, ModelFile), meta); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	f.step("write+fsync " + ModelFile)
	sd := weights.StateDict{}
	if opt != nil {
		for k, v := range opt.Buffers {
			sd[k] = &weights.Tensor{Shape: []int{len(v)}, Data: v}
		}
	}
	if err := weights.SaveSafetensors(filepath.Join(tmp, OptimizerFile), sd, map[string]string{"momentum": fmt.Sprint(opt != nil)}); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	f.step("write+fsync " + OptimizerFile)
	st.Saved = time.Now().UTC()
	st.Format = stateFormat
	st.SHA256 = map[string]string{}
	for _, file := range []string{ModelFile, OptimizerFile} {
		sum, err := fileSHA256(filepath.Join(tmp, file))
		if err != nil {
			return "", fmt.Errorf("checkpoint %s: %w", name, err)
		}
		st.SHA256[file] = sum
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, StateFile), raw); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	f.step("write+fsync " + StateFile)
	if err := syncDir(tmp); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	f.step("fsync temp dir")
	final := filepath.Join(root, name)
	if err := swapInto(tmp, final, f); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if updateLast {
		if err := writeAtomicSteps(filepath.Join(workDir, LastPointer), []byte(filepath.Join(checkpoints, name)+"\n"), f); err != nil {
			return "", fmt.Errorf("checkpoint pointer: %w", err)
		}
	}
	return final, nil
}

// swapInto moves the complete directory tmp to final. A new name is one
// rename. An existing name is exchanged atomically with tmp (renameat2
// RENAME_EXCHANGE), so final always holds a complete checkpoint, and the
// old one (now at tmp) is removed. Where the file system cannot exchange,
// final is first renamed to .old-NAME (Recover puts it back if a kill
// comes before tmp takes its place).
func swapInto(tmp, final string, f *faultPoints) error {
	root := filepath.Dir(final)
	if _, err := os.Lstat(final); os.IsNotExist(err) {
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
		f.step("rename temp to name")
		if err := syncDir(root); err != nil {
			return err
		}
		f.step("fsync checkpoints dir")
		return nil
	}
	if !f.portable {
		err := exchange(tmp, final)
		if err == nil {
			f.step("exchange temp and name")
			if err := syncDir(root); err != nil {
				return err
			}
			f.step("fsync checkpoints dir")
			if err := os.RemoveAll(tmp); err != nil {
				return err
			}
			f.step("remove old checkpoint")
			return nil
		}
		if !errors.Is(err, errNoExchange) {
			return err
		}
	}
	old := filepath.Join(root, oldPrefix+filepath.Base(final))
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(final, old); err != nil {
		return err
	}
	f.step("rename name to .old")
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	f.step("rename temp to name")
	if err := syncDir(root); err != nil {
		return err
	}
	f.step("fsync checkpoints dir")
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	f.step("remove .old")
	return nil
}

// Recover brings a work dir's checkpoints to a consistent state after a
// kill (see docs/TRAINING.md): a checkpoint caught between its two renames
// of the portable protocol (NAME missing, .old-NAME complete) is put back;
// a .old-NAME whose NAME exists, every temporary directory (never the only
// complete copy of a name: the name, or its .old-, still holds one) and a
// torn pointer temp file are removed. It never deletes the checkpoint that
// last_checkpoint names. Checkpoints written by older versions (NAME.old
// beside .tmp-NAME-*) are recovered the same way.
func Recover(workDir string) error {
	root := filepath.Join(workDir, checkpoints)
	entries, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("checkpoints: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		var name string
		switch {
		case strings.HasPrefix(n, oldPrefix):
			name = strings.TrimPrefix(n, oldPrefix)
		case strings.HasSuffix(n, ".old") && !strings.HasPrefix(n, "."): // format 1
			name = strings.TrimSuffix(n, ".old")
		default:
			continue
		}
		old, final := filepath.Join(root, n), filepath.Join(root, name)
		if complete(final) {
			if err := os.RemoveAll(old); err != nil {
				return fmt.Errorf("checkpoints: %w", err)
			}
			continue
		}
		if !complete(old) {
			continue // not ours, or damaged: leave it for the user
		}
		if err := os.RemoveAll(final); err != nil {
			return fmt.Errorf("checkpoints: %w", err)
		}
		if err := os.Rename(old, final); err != nil {
			return fmt.Errorf("checkpoints: restoring %s: %w", final, err)
		}
	}
	if len(entries) > 0 {
		if err := syncDir(root); err != nil {
			return err
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return fmt.Errorf("checkpoints: %w", err)
			}
		}
	}
	if err := os.Remove(filepath.Join(workDir, LastPointer+".tmp")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("checkpoint pointer: %w", err)
	}
	return nil
}

// CleanTemp is Recover without its error (kept for callers of the
// previous API).
func CleanTemp(workDir string) { _ = Recover(workDir) }

// complete reports whether dir looks like a finished checkpoint (its
// state.json, written last, is there and parses).
func complete(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return false
	}
	var st State
	return json.Unmarshal(raw, &st) == nil
}

// ResolveCheckpoint turns what a user passes to --resume into a checkpoint
// directory: a checkpoint directory itself, or a work dir whose
// last_checkpoint names one. It only reads: for a work dir caught between
// the two renames of the portable replacement protocol (see Recover) it
// returns the complete .old- copy of the named checkpoint.
func ResolveCheckpoint(p string) (string, error) {
	if _, err := os.Stat(filepath.Join(p, StateFile)); err == nil {
		return p, nil
	}
	raw, err := os.ReadFile(filepath.Join(p, LastPointer))
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("resume: %s has no %s and is not a checkpoint directory", p, LastPointer)
		}
		return "", fmt.Errorf("resume: %w", err)
	}
	dir := strings.TrimSpace(string(raw))
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(p, dir)
	}
	if complete(dir) {
		return dir, nil
	}
	for _, alt := range []string{filepath.Join(filepath.Dir(dir), oldPrefix+filepath.Base(dir)), dir + ".old"} {
		if complete(alt) {
			return alt, nil
		}
	}
	return "", fmt.Errorf("resume: %s names %s, which is not a complete checkpoint (no readable %s)", filepath.Join(p, LastPointer), dir, StateFile)
}

// LoadCheckpoint restores weights, momentum buffers and state.
func LoadCheckpoint(dir string, reg *layers.Registry, opt *SGD) (*State, error) {
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, StateFile, err)
	}
	if err := VerifyCheckpoint(dir, &st); err != nil {
		return nil, err
	}
	if _, err := model.LoadWeights(reg, filepath.Join(dir, ModelFile), model.LoadOptions{}); err != nil {
		return nil, err
	}
	if opt != nil {
		sd, _, err := weights.LoadSafetensors(filepath.Join(dir, OptimizerFile))
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		opt.Buffers = map[string][]float32{}
		names := make([]string, 0, len(sd))
		for k := range sd {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			p := reg.Get(k)
			if p == nil {
				return nil, fmt.Errorf("checkpoint %s: momentum buffer for unknown parameter %q", dir, k)
			}
			if len(sd[k].Data) != len(p.Data()) {
				return nil, fmt.Errorf("checkpoint %s: momentum buffer %q has %d values, parameter %d", dir, k, len(sd[k].Data), len(p.Data()))
			}
			opt.Buffers[k] = sd[k].Data
		}
	}
	return &st, nil
}

func writeFileSync(p string, b []byte) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeAtomic(p string, b []byte) error { return writeAtomicSteps(p, b, nil) }

// writeAtomicSteps replaces p by b: temp file, fsync, rename, fsync of the
// directory (a fault point after each).
func writeAtomicSteps(p string, b []byte, f *faultPoints) error {
	tmp := p + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	f.step("write+fsync " + filepath.Base(tmp))
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	f.step("rename " + filepath.Base(tmp))
	if err := syncDir(filepath.Dir(p)); err != nil {
		return err
	}
	f.step("fsync " + filepath.Dir(p))
	return nil
}

// ErrCorrupt marks a checkpoint file whose SHA-256 differs from the one
// recorded when it was written.
var ErrCorrupt = errors.New("corrupt")

// VerifyCheckpoint checks the SHA-256 of each file of a checkpoint
// against the sums its state.json records (format 2; older checkpoints
// carry none and pass).
func VerifyCheckpoint(dir string, st *State) error {
	names := make([]string, 0, len(st.SHA256))
	for k := range st.SHA256 {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, file := range names {
		if strings.ContainsAny(file, `/\`) || file == ".." {
			return fmt.Errorf("checkpoint %s: %s names a file %q outside the checkpoint", dir, StateFile, file)
		}
		sum, err := fileSHA256(filepath.Join(dir, file))
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if sum != st.SHA256[file] {
			return fmt.Errorf("checkpoint %s: %s is %w: its SHA-256 is %s but %s records %s (the file changed after it was written; use another checkpoint)",
				dir, file, ErrCorrupt, sum, StateFile, st.SHA256[file])
		}
	}
	return nil
}

// VerifyWeightsFile checks a model.safetensors that sits in a checkpoint
// directory against the sum in the state.json beside it; other files pass.
func VerifyWeightsFile(p string) error {
	dir := filepath.Dir(p)
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil
	}
	var st State
	if json.Unmarshal(raw, &st) != nil {
		return nil
	}
	want, ok := st.SHA256[filepath.Base(p)]
	if !ok {
		return nil
	}
	return VerifyCheckpoint(dir, &State{SHA256: map[string]string{filepath.Base(p): want}})
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
