package weights

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// PthInfo describes what LoadPthInfo found in a .pth file besides the
// float tensors it returns.
type PthInfo struct {
	// Format is "zip" (torch >= 1.6 default) or "legacy" (older torch, or
	// torch.save(..., _use_new_zipfile_serialization=False)).
	Format string
	// Wrapper is "" when the file's top-level object was the state dict
	// itself, or the key ("model" or "state_dict") of the checkpoint entry
	// that held it.
	Wrapper string
	// Order lists the loaded keys in the order the file stores them.
	Order []string
	// Skipped lists integer entries that were left out
	// (BatchNorm "num_batches_tracked" counters), in file order.
	Skipped []string
	// Converted maps the keys of tensors stored as float16, bfloat16 or
	// float64 to that dtype; their values were converted to float32.
	Converted map[string]string
}

// LoadPth reads a PyTorch state dict saved with torch.save: an OrderedDict
// (or dict) of tensors, or a checkpoint dict holding one under "model" or
// "state_dict". Float32 tensors are copied as they are; float16, bfloat16 and
// float64 tensors are converted to float32; storage offsets and strides
// (transposed, permuted, sliced or expanded views) are honoured, so every
// returned Tensor is dense and row-major. Integer "num_batches_tracked"
// counters are skipped (LoadPthInfo reports them). Both the zip format of
// torch >= 1.6 and the legacy pickle format are read.
//
// Every error names the file. Unsupported input (not a file, a truncated
// archive, something that is not a pickle, a pickle that is not a state
// dict, a tensor of another dtype) gives an error, never a panic.
func LoadPth(path string) (StateDict, error) {
	sd, _, err := LoadPthInfo(path)
	return sd, err
}

// LoadPthInfo is LoadPth that also reports the file's format, the checkpoint
// wrapper, the key order and the skipped and converted entries.
func LoadPthInfo(path string) (StateDict, *PthInfo, error) {
	format, err := sniffPth(path)
	if err != nil {
		return nil, nil, err
	}
	obj, err := safeTorchLoad(path, format)
	if err != nil {
		return nil, nil, err
	}
	info := &PthInfo{Format: format, Converted: map[string]string{}}
	entries, err := stateDictEntries(path, obj, info)
	if err != nil {
		return nil, nil, err
	}
	sd := make(StateDict, len(entries))
	for _, e := range entries {
		t, ok := e.value.(*pytorch.Tensor)
		if !ok {
			return nil, nil, fmt.Errorf("weights: %s: entry %q is a %s, not a tensor: not a state dict", path, e.key, pyTypeName(e.value))
		}
		if _, dup := sd[e.key]; dup {
			return nil, nil, fmt.Errorf("weights: %s: key %q appears twice", path, e.key)
		}
		dtype := storageDType(t.Source)
		switch dtype {
		case "float32", "float16", "bfloat16", "float64":
		case "int64", "int32", "int16", "int8", "uint8":
			if strings.HasSuffix(e.key, "num_batches_tracked") {
				info.Skipped = append(info.Skipped, e.key)
				continue
			}
			return nil, nil, fmt.Errorf("weights: %s: tensor %q has unsupported dtype %s (only float32, float16, bfloat16 and float64 load)", path, e.key, dtype)
		default:
			return nil, nil, fmt.Errorf("weights: %s: tensor %q has unsupported dtype %s (only float32, float16, bfloat16 and float64 load)", path, e.key, dtype)
		}
		dense, err := denseFloat32(t)
		if err != nil {
			return nil, nil, fmt.Errorf("weights: %s: tensor %q: %v", path, e.key, err)
		}
		if dtype != "float32" {
			info.Converted[e.key] = dtype
		}
		sd[e.key] = dense
		info.Order = append(info.Order, e.key)
	}
	return sd, info, nil
}

// sniffPth checks that path is a regular file that starts like a zip archive
// or a pickle, and that a zip archive is complete, so that common mistakes
// get a clear error before gopickle sees the file.
func sniffPth(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("weights: %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("weights: %s: not a regular file", path)
	}
	if st.Size() == 0 {
		return "", fmt.Errorf("weights: %s: empty file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("weights: %s: %w", path, err)
	}
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	f.Close()
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		r, err := zip.OpenReader(path)
		if err != nil {
			return "", fmt.Errorf("weights: %s: truncated or corrupt zip archive (%v)", path, err)
		}
		hasPickle := false
		for _, zf := range r.File {
			if zf.Name == "data.pkl" || strings.HasSuffix(zf.Name, "/data.pkl") {
				hasPickle = true
			}
			if strings.HasSuffix(zf.Name, "/constants.pkl") || zf.Name == "constants.pkl" {
				r.Close()
				return "", fmt.Errorf("weights: %s: a TorchScript archive (torch.jit.save), not a torch.save state dict", path)
			}
		}
		r.Close()
		if !hasPickle {
			return "", fmt.Errorf("weights: %s: zip archive without data.pkl: not a torch.save file", path)
		}
		return "zip", nil
	case len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		return "legacy", nil
	default:
		return "", fmt.Errorf("weights: %s: not a PyTorch file (neither a zip archive nor a pickle; starts with % x)", path, head)
	}
}

// safeTorchLoad runs the zip or legacy loader, turning errors and panics on
// malformed input into errors that name the file.
func safeTorchLoad(path, format string) (obj interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			obj = nil
			err = fmt.Errorf("weights: %s: malformed PyTorch file (the pickle reader failed: %v)", path, r)
		}
	}()
	if format == "zip" {
		obj, err = loadZip(path)
	} else {
		obj, err = loadLegacy(path)
	}
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %v", path, err)
	}
	return obj, nil
}

type pyEntry struct {
	key   string
	value interface{}
}

// dictEntries lists a Python dict or OrderedDict in order; ok is false for
// other objects.
func dictEntries(path string, obj interface{}) (entries []pyEntry, ok bool, err error) {
	switch d := obj.(type) {
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			k, isStr := e.Key.(string)
			if !isStr {
				return nil, true, fmt.Errorf("weights: %s: dict key %v is a %s, not a string: not a state dict", path, e.Key, pyTypeName(e.Key))
			}
			entries = append(entries, pyEntry{k, e.Value})
		}
		return entries, true, nil
	case *types.Dict:
		for _, e := range *d {
			k, isStr := e.Key.(string)
			if !isStr {
				return nil, true, fmt.Errorf("weights: %s: dict key %v is a %s, not a string: not a state dict", path, e.Key, pyTypeName(e.Key))
			}
			entries = append(entries, pyEntry{k, e.Value})
		}
		return entries, true, nil
	}
	return nil, false, nil
}

// stateDictEntries finds the state dict in the loaded object: the object
// itself when it is a dict of tensors, else its "model" or "state_dict" entry.
func stateDictEntries(path string, obj interface{}, info *PthInfo) ([]pyEntry, error) {
	entries, ok, err := dictEntries(path, obj)
	if err != nil {
		return nil, err
	}
	if !ok {
		if o, isObj := obj.(*pyObject); isObj {
			return nil, fmt.Errorf("weights: %s: a whole pickled model (a %s.%s object, as torch.save(model) writes), not a state dict: in Python, load it and save torch.save(model.state_dict(), %q)",
				path, o.class.module, o.class.name, path)
		}
		return nil, fmt.Errorf("weights: %s: top-level object is a %s, not a state dict (a dict of tensors)", path, pyTypeName(obj))
	}
	if allTensors(entries) {
		return entries, nil
	}
	for _, wrapper := range []string{"model", "state_dict"} {
		for _, e := range entries {
			if e.key != wrapper {
				continue
			}
			inner, ok, err := dictEntries(path, e.value)
			if err != nil {
				return nil, err
			}
			if ok {
				info.Wrapper = wrapper
				return inner, nil
			}
		}
	}
	keys := make([]string, 0, len(entries))
	for _, e := range entries {
		keys = append(keys, e.key)
		if len(keys) == 8 {
			keys = append(keys, "...")
			break
		}
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("weights: %s: the dict is empty: no tensors", path)
	}
	return nil, fmt.Errorf("weights: %s: not a state dict: the top-level dict (keys %v) holds non-tensor values and no \"model\" or \"state_dict\" dict", path, keys)
}

func allTensors(entries []pyEntry) bool {
	if len(entries) == 0 {
		return false
	}
	for _, e := range entries {
		if _, ok := e.value.(*pytorch.Tensor); !ok {
			return false
		}
	}
	return true
}

// pyTypeName names a gopickle value the way Python would.
func pyTypeName(v interface{}) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case *types.List:
		return "list"
	case *types.Tuple:
		return "tuple"
	case *types.Dict:
		return "dict"
	case *types.OrderedDict:
		return "OrderedDict"
	case string:
		return "str"
	case int, int64:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case *pytorch.Tensor:
		return "tensor"
	case *types.GenericClass:
		return x.Module + "." + x.Name
	case *pyClass:
		return "class " + x.module + "." + x.name
	case *pyObject:
		return x.class.module + "." + x.class.name + " object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// storageDType names the dtype of a gopickle storage.
func storageDType(s pytorch.StorageInterface) string {
	switch s.(type) {
	case *pytorch.FloatStorage:
		return "float32"
	case *pytorch.HalfStorage:
		return "float16"
	case *pytorch.BFloat16Storage:
		return "bfloat16"
	case *pytorch.DoubleStorage:
		return "float64"
	case *pytorch.LongStorage:
		return "int64"
	case *pytorch.IntStorage:
		return "int32"
	case *pytorch.ShortStorage:
		return "int16"
	case *pytorch.CharStorage:
		return "int8"
	case *pytorch.ByteStorage:
		return "uint8"
	case *pytorch.BoolStorage:
		return "bool"
	default:
		return fmt.Sprintf("%T", s)
	}
}

// denseFloat32 gathers a strided view of a float storage into a dense
// row-major float32 tensor.
func denseFloat32(t *pytorch.Tensor) (*Tensor, error) {
	var get func(i int) float32
	var n int
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		n, get = len(s.Data), func(i int) float32 { return s.Data[i] }
	case *pytorch.HalfStorage:
		n, get = len(s.Data), func(i int) float32 { return s.Data[i] }
	case *pytorch.BFloat16Storage:
		n, get = len(s.Data), func(i int) float32 { return s.Data[i] }
	case *pytorch.DoubleStorage:
		n, get = len(s.Data), func(i int) float32 { return float32(s.Data[i]) }
	default:
		return nil, fmt.Errorf("unsupported storage %s", storageDType(t.Source))
	}
	if len(t.Size) != len(t.Stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in length", t.Size, t.Stride)
	}
	if t.StorageOffset < 0 {
		return nil, fmt.Errorf("negative storage offset %d", t.StorageOffset)
	}
	numel := 1
	maxOff := t.StorageOffset
	for i, d := range t.Size {
		if d < 0 || t.Stride[i] < 0 {
			return nil, fmt.Errorf("invalid size %v / stride %v", t.Size, t.Stride)
		}
		numel *= d
		if d > 0 {
			maxOff += (d - 1) * t.Stride[i]
		}
	}
	out := &Tensor{Shape: append([]int{}, t.Size...), Data: make([]float32, numel)}
	if numel == 0 {
		return out, nil
	}
	if maxOff >= n {
		return nil, fmt.Errorf("view (offset %d, size %v, stride %v) reaches element %d of a storage of %d", t.StorageOffset, t.Size, t.Stride, maxOff, n)
	}
	// Walk the multi-index in row-major order, keeping the storage offset.
	rank := len(t.Size)
	idx := make([]int, rank)
	off := t.StorageOffset
	for i := 0; i < numel; i++ {
		out.Data[i] = get(off)
		for ax := rank - 1; ax >= 0; ax-- {
			idx[ax]++
			off += t.Stride[ax]
			if idx[ax] < t.Size[ax] {
				break
			}
			off -= idx[ax] * t.Stride[ax]
			idx[ax] = 0
		}
	}
	return out, nil
}
