// Command bench_coco_ann loads a COCO instances file the two ways the
// project does (data.LoadCOCO for training, cocoeval.LoadGT for kdeval)
// and prints the wall time of each; run it under /usr/bin/time -v for the
// peak resident memory (scripts/bench_coco_ann.sh).
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/data"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "train" && os.Args[1] != "eval") {
		fmt.Fprintln(os.Stderr, "usage: bench_coco_ann train|eval FILE")
		os.Exit(2)
	}
	path := os.Args[2]
	start := time.Now()
	switch os.Args[1] {
	case "train":
		ds, err := data.LoadCOCO(path, "", data.COCOOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("go data.LoadCOCO: %d images, %d annotations in %.2f s\n", len(ds.Images), ds.Stats.Annotations, time.Since(start).Seconds())
		runtime.KeepAlive(ds)
	case "eval":
		gt, err := cocoeval.LoadGT(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("go cocoeval.LoadGT: %d images in %.2f s\n", gt.NumImages(), time.Since(start).Seconds())
		runtime.KeepAlive(gt)
	}
}
