// Command bench_onnx times the Go detector (model.FasterRCNN.Detect, batch
// 1) on the inputs `kdexport inputs` wrote, for scripts/bench_onnx.sh,
// which times the exported model in ONNX Runtime on the same tensors. The
// Go side normalises and pads the resized tensor (untimed) and times
// Detect; ONNX Runtime's time includes its in-graph normalisation and the
// mapping to original pixels (both negligible). With --save-seeded it only
// writes seeded weights (FasterRCNN.Init) for a config and exits.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/export"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/infer"
	"github.com/skd-go/skd/model"
)

func main() {
	cfgPath := flag.String("config", "", "model configuration")
	weights := flag.String("weights", "", "weights (safetensors or .pth)")
	inputs := flag.String("inputs", "", "directory written by `kdexport inputs`")
	iters := flag.Int("iters", 5, "timed runs per image (after one warm-up run)")
	seeded := flag.String("save-seeded", "", "write seeded weights for --config to this file and exit")
	var sets []string
	flag.Func("set", "config override key=value (repeatable)", func(s string) error { sets = append(sets, s); return nil })
	flag.Parse()
	if err := run(*cfgPath, sets, *weights, *inputs, *iters, *seeded); err != nil {
		fmt.Fprintln(os.Stderr, "bench_onnx:", err)
		os.Exit(1)
	}
}

func run(cfgPath string, sets []string, weights, inputs string, iters int, seeded string) error {
	cfg, _, err := config.LoadFile(cfgPath, sets)
	if err != nil {
		return err
	}
	if seeded != "" {
		det, err := model.New(cfg.Model)
		if err != nil {
			return err
		}
		det.Init(1)
		return model.SaveWeights(det.Reg, seeded, nil)
	}
	det, _, err := infer.LoadModel(cfg, weights)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(inputs, "manifest.json"))
	if err != nil {
		return err
	}
	var m export.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	div := cfg.Input.SizeDivisible
	if div == 0 {
		div = 32
	}
	var means []float64
	for _, im := range m.Images {
		raw, err := os.ReadFile(filepath.Join(inputs, im.Tensor))
		if err != nil {
			return err
		}
		img := &data.Image{C: 3, H: im.H, W: im.W, Pix: make([]float32, len(raw)/4)}
		for i := range img.Pix {
			img.Pix[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		if err := data.Normalize(img, cfg.Input.Format); err != nil {
			return err
		}
		batch, err := data.Collate([]*data.Sample{{Image: img, Item: data.BatchItem{H: im.H, W: im.W, OrigH: im.OrigH, OrigW: im.OrigW}}}, div)
		if err != nil {
			return err
		}
		in := glue.Input(batch)
		if _, _, err := det.Detect(in); err != nil { // warm-up: builds the program for this shape
			return err
		}
		var ts []float64
		for i := 0; i < iters; i++ {
			t := time.Now()
			if _, _, err := det.Detect(in); err != nil {
				return err
			}
			ts = append(ts, float64(time.Since(t).Microseconds())/1000)
		}
		sort.Float64s(ts)
		var sum float64
		for _, v := range ts {
			sum += v
		}
		means = append(means, sum/float64(len(ts)))
		fmt.Printf("go %s %dx%d: mean %.1f ms, best %.1f ms\n", im.FileName, im.H, im.W, sum/float64(len(ts)), ts[0])
	}
	var sum float64
	for _, v := range means {
		sum += v
	}
	fmt.Printf("go: %.1f ms per image (mean of %d runs x %d images)\n", sum/float64(len(means)), iters, len(means))
	return nil
}
