// Package weights reads and writes model weights as plain float32 tensors:
// PyTorch/torchvision `.pth` state dicts (LoadPth) and safetensors files
// (LoadSafetensors, SaveSafetensors), and checks a state dict's keys and
// shapes against what a model expects (Match).
//
// It is a leaf package: it knows nothing about graphs or layers. A model
// lists its parameters as map[string][]int (name -> shape), matches the
// loaded StateDict against it, and copies Tensor.Data into its own storage.
package weights

import (
	"fmt"
	"sort"
	"strings"
)

// Tensor is a dense, row-major (C-order) float32 tensor.
// A 0-d scalar has an empty Shape and one element.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NumElements returns the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	return numElements(t.Shape)
}

// Clone returns a deep copy of t.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{
		Shape: append([]int{}, t.Shape...),
		Data:  append([]float32{}, t.Data...),
	}
}

// check reports whether the data length agrees with the shape.
func (t *Tensor) check() error {
	if t == nil {
		return fmt.Errorf("nil tensor")
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", t.Shape)
		}
	}
	if n := t.NumElements(); n != len(t.Data) {
		return fmt.Errorf("shape %v needs %d values, has %d", t.Shape, n, len(t.Data))
	}
	return nil
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// ShapeString formats a shape as "[2 3 4]" ("[]" for a scalar).
func ShapeString(shape []int) string {
	return fmt.Sprint(shape)
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// StateDict maps parameter and buffer names (PyTorch style, dot separated,
// e.g. "layer1.0.conv1.weight") to tensors.
type StateDict map[string]*Tensor

// Keys returns the keys in sorted order (Go maps have none of their own).
func (sd StateDict) Keys() []string {
	keys := make([]string, 0, len(sd))
	for k := range sd {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SubDict returns the entries whose key starts with prefix, with the prefix
// removed: SubDict("backbone.body.") turns "backbone.body.conv1.weight" into
// "conv1.weight". Tensors are shared, not copied.
func (sd StateDict) SubDict(prefix string) StateDict {
	out := make(StateDict)
	for k, v := range sd {
		if strings.HasPrefix(k, prefix) {
			out[strings.TrimPrefix(k, prefix)] = v
		}
	}
	return out
}

// RenamePrefix returns a state dict in which every key starting with from
// starts with to instead; other keys are kept as they are. RenamePrefix("",
// "backbone.body.") maps ImageNet resnet50 keys ("conv1.weight") to the
// detector's ("backbone.body.conv1.weight"). Tensors are shared, not copied.
// It fails, naming both keys, when two source keys end up on the same name.
func (sd StateDict) RenamePrefix(from, to string) (StateDict, error) {
	out := make(StateDict, len(sd))
	origin := make(map[string]string, len(sd))
	for _, k := range sd.Keys() {
		nk := k
		if strings.HasPrefix(k, from) {
			nk = to + strings.TrimPrefix(k, from)
		}
		if prev, dup := origin[nk]; dup {
			return nil, fmt.Errorf("weights: renaming prefix %q to %q maps both %q and %q to %q", from, to, prev, k, nk)
		}
		origin[nk] = k
		out[nk] = sd[k]
	}
	return out, nil
}

// Shapes returns the shape of every entry, in the form Match expects.
func (sd StateDict) Shapes() map[string][]int {
	out := make(map[string][]int, len(sd))
	for k, v := range sd {
		out[k] = append([]int{}, v.Shape...)
	}
	return out
}
