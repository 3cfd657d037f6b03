package weights

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/nlpodyssey/safetensors"
	"github.com/x448/float16"
)

type f16View struct {
	shape []uint64
	data  []byte
}

func (v f16View) DType() safetensors.DType { return safetensors.F16 }
func (v f16View) Shape() []uint64          { return v.shape }
func (v f16View) Data() []byte             { return v.data }
func (v f16View) DataLen() uint64          { return uint64(len(v.data)) }

// SaveSafetensorsF16 writes sd like SaveSafetensors but stores every
// tensor as IEEE half precision (round to nearest even, with
// github.com/x448/float16): half the size, for weights shipped in the
// repository (LoadSafetensors reads them back as float32). A value that
// does not fit (|x| > 65504, where it would become infinite) is an error,
// not a silent overflow.
func SaveSafetensorsF16(path string, sd StateDict, metadata map[string]string) error {
	views := make(map[string]f16View, len(sd))
	for k, t := range sd {
		if err := t.check(); err != nil {
			return fmt.Errorf("weights: %s: tensor %q: %v", path, k, err)
		}
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		b := make([]byte, 2*len(t.Data))
		for i, x := range t.Data {
			if math.IsNaN(float64(x)) || math.Abs(float64(x)) > 65504 {
				return fmt.Errorf("weights: %s: tensor %q holds %v, outside float16's range", path, k, x)
			}
			binary.LittleEndian.PutUint16(b[2*i:], float16.Fromfloat32(x).Bits())
		}
		views[k] = f16View{shape: shape, data: b}
	}
	return writeAtomic(path, func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20)
		if err := safetensors.SerializeToWriter(views, metadata, w); err != nil {
			return err
		}
		return w.Flush()
	})
}
