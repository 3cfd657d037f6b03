package weights

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nlpodyssey/safetensors"
	"github.com/x448/float16"
)

// SaveSafetensorsF16 writes sd like SaveSafetensors but stores every
// tensor as IEEE half precision (round to nearest even, with
// github.com/x448/float16): half the size, for weights shipped in the
// repository (LoadSafetensors reads them back as float32). A value that
// does not fit (NaN, or |x| > 65504, where it would become infinite) is an
// error, not a silent overflow.
func SaveSafetensorsF16(path string, sd StateDict, metadata map[string]string) error {
	return saveAs(path, sd, metadata, safetensors.F16, func(k string, d []float32) ([]byte, error) {
		b := make([]byte, 2*len(d))
		for i, x := range d {
			if math.IsNaN(float64(x)) || math.Abs(float64(x)) > 65504 {
				return nil, fmt.Errorf("tensor %q holds %v, outside float16's range", k, x)
			}
			binary.LittleEndian.PutUint16(b[2*i:], float16.Fromfloat32(x).Bits())
		}
		return b, nil
	})
}
