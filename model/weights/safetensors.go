package weights

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/safetensors"
	"github.com/x448/float16"
)

// view adapts an encoded tensor to safetensors.View.
type view struct {
	dtype safetensors.DType
	shape []uint64
	data  []byte
}

func (v view) DType() safetensors.DType { return v.dtype }
func (v view) Shape() []uint64          { return v.shape }
func (v view) Data() []byte             { return v.data }
func (v view) DataLen() uint64          { return uint64(len(v.data)) }

// SaveSafetensors writes sd as a safetensors file (every tensor F32) with
// the given string metadata (may be nil), using
// github.com/nlpodyssey/safetensors for the format. The write is atomic: the
// file is written to a temporary file in the same directory, synced, closed
// and renamed over path, then the directory is synced; a failure leaves any
// previous file at path untouched.
func SaveSafetensors(path string, sd StateDict, metadata map[string]string) error {
	return saveAs(path, sd, metadata, safetensors.F32, func(_ string, d []float32) ([]byte, error) {
		b := make([]byte, 4*len(d))
		for i, x := range d {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b, nil
	})
}

// saveAs writes sd with every tensor encoded by enc as dtype (atomically,
// as SaveSafetensors).
func saveAs(path string, sd StateDict, metadata map[string]string, dtype safetensors.DType, enc func(key string, d []float32) ([]byte, error)) error {
	views := make(map[string]view, len(sd))
	for k, t := range sd {
		if err := t.check(); err != nil {
			return fmt.Errorf("weights: %s: tensor %q: %v", path, k, err)
		}
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		b, err := enc(k, t.Data)
		if err != nil {
			return fmt.Errorf("weights: %s: %w", path, err)
		}
		views[k] = view{dtype: dtype, shape: shape, data: b}
	}
	return writeAtomic(path, func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20)
		if err := safetensors.SerializeToWriter(views, metadata, w); err != nil {
			return err
		}
		return w.Flush()
	})
}

// writeAtomic writes a file through a temporary file in the same directory:
// write, fsync, close, rename, fsync the directory.
func writeAtomic(path string, write func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return fmt.Errorf("weights: %s: writing: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("weights: %s: fsync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("weights: %s: close: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("weights: %s: rename: %w", path, err)
	}
	d, derr := os.Open(dir)
	if derr != nil {
		return fmt.Errorf("weights: %s: open directory for fsync: %w", path, derr)
	}
	defer d.Close()
	if derr := d.Sync(); derr != nil {
		return fmt.Errorf("weights: %s: fsync directory: %w", path, derr)
	}
	return nil
}

// LoadSafetensors reads a safetensors file: its tensors (F32 as they are;
// F16, BF16 and F64 converted to float32; other dtypes are an error) and its
// "__metadata__" strings (nil when absent). The header is validated by
// github.com/nlpodyssey/safetensors: data offsets must tile the data exactly
// and agree with dtype and shape, so truncated files and lying headers fail
// with an error naming the file.
func LoadSafetensors(path string) (sd StateDict, meta map[string]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			sd, meta = nil, nil
			err = fmt.Errorf("weights: %s: malformed safetensors file (%v)", path, r)
		}
	}()
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("weights: %s: not a regular file", path)
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	if len(buf) >= 8 {
		n := binary.LittleEndian.Uint64(buf)
		if n > uint64(len(buf)-8) {
			return nil, nil, fmt.Errorf("weights: %s: not a safetensors file or truncated: header length %d but only %d bytes follow", path, n, len(buf)-8)
		}
	}
	_, header, err := safetensors.ReadMetadata(buf)
	if err != nil {
		if want, ok := headerDataEnd(buf); ok && want > uint64(len(buf)) {
			return nil, nil, fmt.Errorf("weights: %s: invalid safetensors file: the header needs %d bytes of file, it has %d (truncated?): %v", path, want, len(buf), err)
		} else if ok && want < uint64(len(buf)) {
			return nil, nil, fmt.Errorf("weights: %s: invalid safetensors file: %d bytes follow the %d bytes its header accounts for (trailing data; not written by a safetensors writer): %v",
				path, uint64(len(buf))-want, want, err)
		}
		return nil, nil, fmt.Errorf("weights: %s: invalid safetensors file: %v", path, err)
	}
	sf, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %s: invalid safetensors file: %v", path, err)
	}
	sd = make(StateDict, sf.Len())
	for _, nv := range sf.Tensors() {
		v := nv.TensorView
		shape := make([]int, len(v.Shape()))
		for i, d := range v.Shape() {
			if d > math.MaxInt32 {
				return nil, nil, fmt.Errorf("weights: %s: tensor %q has dimension %d", path, nv.Name, d)
			}
			shape[i] = int(d)
		}
		raw := v.Data()
		var data []float32
		switch v.DType() {
		case safetensors.F32:
			data = make([]float32, len(raw)/4)
			for i := range data {
				data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case safetensors.F64:
			data = make([]float32, len(raw)/8)
			for i := range data {
				data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			}
		case safetensors.F16:
			data = make([]float32, len(raw)/2)
			for i := range data {
				data[i] = float16.Frombits(binary.LittleEndian.Uint16(raw[2*i:])).Float32() // gopickle's FloatBits16to32 misreads subnormals
			}
		case safetensors.BF16:
			data = make([]float32, len(raw)/2)
			for i := range data {
				data[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
			}
		default:
			return nil, nil, fmt.Errorf("weights: %s: tensor %q has unsupported dtype %s (only F32, F16, BF16 and F64 load)", path, nv.Name, v.DType())
		}
		t := &Tensor{Shape: shape, Data: data}
		if err := t.check(); err != nil {
			return nil, nil, fmt.Errorf("weights: %s: tensor %q: %v", path, nv.Name, err)
		}
		sd[nv.Name] = t
	}
	return sd, header.Metadata(), nil
}

// headerDataEnd returns the file size a safetensors header asks for
// (8 + header + the largest data offset), for a clearer truncation error.
func headerDataEnd(buf []byte) (uint64, bool) {
	if len(buf) < 8 {
		return 0, false
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > uint64(len(buf)-8) {
		return 0, false
	}
	var hdr map[string]json.RawMessage
	if json.Unmarshal(buf[8:8+n], &hdr) != nil {
		return 0, false
	}
	var end uint64
	for k, v := range hdr {
		if k == "__metadata__" {
			continue
		}
		var info struct {
			DataOffsets []uint64 `json:"data_offsets"`
		}
		if json.Unmarshal(v, &info) != nil || len(info.DataOffsets) != 2 {
			return 0, false
		}
		end = max(end, info.DataOffsets[1])
	}
	return 8 + n + end, true
}
