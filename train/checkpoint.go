package train

import (
	"encoding/json"
	"fmt"
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
}

// Checkpoint file names inside a checkpoint directory.
const (
	ModelFile     = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
	StateFile     = "state.json"
	// LastPointer is the work-dir file naming the last complete checkpoint.
	LastPointer = "last_checkpoint"
	checkpoints = "checkpoints"
)

// SaveCheckpoint writes weights, momentum buffers and state into
// workDir/checkpoints/name atomically: everything goes to a hidden temp
// directory first (each file fsynced), which is renamed into place, and
// only then is workDir/last_checkpoint replaced (temp file, fsync,
// rename). A kill at any moment leaves the previous checkpoint and pointer
// intact. Returns the checkpoint directory.
func SaveCheckpoint(workDir, name string, reg *layers.Registry, opt *SGD, st *State, updateLast bool) (string, error) {
	root := filepath.Join(workDir, checkpoints)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".tmp-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	meta := map[string]string{"iter": fmt.Sprint(st.Iter), "config_hash": st.ConfigHash}
	if err := model.SaveWeights(reg, filepath.Join(tmp, ModelFile), meta); err != nil {
		return "", fmt.Errorf("checkpoint %s: weights: %w", name, err)
	}
	sd := weights.StateDict{}
	if opt != nil {
		for k, v := range opt.Buffers {
			sd[k] = &weights.Tensor{Shape: []int{len(v)}, Data: v}
		}
	}
	if err := weights.SaveSafetensors(filepath.Join(tmp, OptimizerFile), sd, map[string]string{"momentum": fmt.Sprint(opt != nil)}); err != nil {
		return "", fmt.Errorf("checkpoint %s: optimizer: %w", name, err)
	}
	st.Saved = time.Now().UTC()
	st.Format = 1
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, StateFile), raw); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	final := filepath.Join(root, name)
	old := final + ".old"
	if _, err := os.Stat(final); err == nil {
		os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return "", fmt.Errorf("checkpoint %s: %w", name, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if err := syncDir(root); err != nil {
		return "", err
	}
	os.RemoveAll(old)
	if updateLast {
		if err := writeAtomic(filepath.Join(workDir, LastPointer), []byte(filepath.Join(checkpoints, name)+"\n")); err != nil {
			return "", fmt.Errorf("checkpoint pointer: %w", err)
		}
	}
	return final, nil
}

// ResolveCheckpoint turns what a user passes to --resume into a checkpoint
// directory: a checkpoint directory itself, or a work dir whose
// last_checkpoint names one.
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
	dir := filepath.Join(p, strings.TrimSpace(string(raw)))
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err != nil {
		return "", fmt.Errorf("resume: %s names %s, which is not a complete checkpoint: %w", filepath.Join(p, LastPointer), dir, err)
	}
	return dir, nil
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

// CleanTemp removes leftovers of checkpoints interrupted while written.
func CleanTemp(workDir string) {
	ms, _ := filepath.Glob(filepath.Join(workDir, checkpoints, ".tmp-*"))
	for _, m := range ms {
		os.RemoveAll(m)
	}
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

func writeAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
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
