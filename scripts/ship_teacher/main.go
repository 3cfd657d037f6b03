// Command ship_teacher turns a teacher trained by kdtrain into the small
// file the quickstart ships: its weights in half precision (safetensors
// F16, half the size; kdtrain and kdeval load it as float32) and a
// SHA-256 line beside it that scripts/quickstart_hard.sh verifies.
//
//	go run ./scripts/ship_teacher -in work_dirs/kd_study/teacher \
//	    -out assets/teachers/r34x05_hard.safetensors
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/skd-go/skd/model/weights"
	"github.com/skd-go/skd/train"
)

func main() {
	in := flag.String("in", "work_dirs/kd_study/teacher", "a kdtrain work dir, checkpoint dir or weights file")
	out := flag.String("out", "assets/teachers/r34x05_hard.safetensors", "shipped weights file (a .sha256 file is written beside it)")
	maxMB := flag.Float64("max-mb", 15, "refuse to write a file larger than this (MB)")
	flag.Parse()
	if err := run(*in, *out, *maxMB); err != nil {
		fmt.Fprintln(os.Stderr, "ship_teacher:", err)
		os.Exit(1)
	}
}

func run(in, out string, maxMB float64) error {
	src, err := train.ResolveWeights(in)
	if err != nil {
		return err
	}
	sd, meta, err := weights.LoadSafetensors(src)
	if err != nil {
		return err
	}
	if meta == nil {
		meta = map[string]string{}
	}
	meta["shipped_from"] = src
	meta["dtype"] = "F16 (from the F32 checkpoint, round to nearest even)"
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := weights.SaveSafetensorsF16(out, sd, meta); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	if mb := float64(st.Size()) / 1e6; mb > maxMB {
		os.Remove(out)
		return fmt.Errorf("%s would be %.1f MB, over -max-mb %g", out, mb, maxMB)
	}
	f, err := os.Open(out)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	line := fmt.Sprintf("%s  %s\n", hex.EncodeToString(h.Sum(nil)), filepath.Base(out))
	if err := os.WriteFile(out+".sha256", []byte(line), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %.1f MB from %s (%d tensors); %s", out, float64(st.Size())/1e6, src, len(sd), line)
	return nil
}
