package infer

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/glue"
	"github.com/skd-go/skd/model"
)

// shardOut is what a rank sends to rank 0 after running its shard.
type shardOut struct {
	Results []ImageResult
	Bad     []badImage
}

type badImage struct {
	Path    string
	ImageID int64
	Msg     string
}

// evalSummary is what rank 0 sends back: the summary or the error.
type evalSummary struct {
	Stats    [12]float64
	Warnings []string
	Err      string
}

// evaluateDist is EvaluateDatasetWith over the ranks of opts.World: every
// rank loads the split (the same id order) and runs its contiguous shard
// (data.ShardBatch over the image list), rank 0 gathers the results in
// rank order (the one-process image order) and evaluates them, every rank
// gets the 12 numbers and warnings. The full Result (precision arrays,
// per-class AP) and the detections are returned on rank 0 only. Errors are
// the same on every rank.
func evaluateDist(det *model.FasterRCNN, cfg *config.File, annPath, imageDir string, opts EvalOptions) (*cocoeval.Result, []cocoeval.Detection, error) {
	w := opts.World
	gt, labels, refs, err := evalPrepare(det, cfg, annPath, imageDir, opts)
	if err = w.Agree(err); err != nil {
		return nil, nil, err
	}
	mine, _ := data.ShardBatch(indices(len(refs)), w.Rank(), w.Size())
	var out shardOut
	if len(mine) > 0 {
		part := make([]ImageRef, len(mine))
		for i, k := range mine {
			part[i] = refs[k]
		}
		res, bad := Run(det, part, Options{Transform: glue.Transform(cfg, false), BatchSize: opts.BatchSize,
			Workers: opts.Workers, Labels: &labels}, opts.Progress)
		out.Results = res
		for _, b := range bad {
			out.Bad = append(out.Bad, badImage{b.Path, b.ImageID, b.Err.Error()})
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&out); err != nil {
		return nil, nil, fmt.Errorf("evaluation: encoding rank %d's detections: %w", w.Rank(), err)
	}
	parts, err := w.Gather(buf.Bytes(), 0)
	if err != nil {
		return nil, nil, err
	}
	var res *cocoeval.Result
	var dets []cocoeval.Detection
	var sum evalSummary
	if w.IsRoot() {
		var all []ImageResult
		var bad []ImageError
		for r, p := range parts {
			var so shardOut
			if err := gob.NewDecoder(bytes.NewReader(p)).Decode(&so); err != nil {
				sum.Err = fmt.Sprintf("evaluation: decoding rank %d's detections: %v", r, err)
				break
			}
			all = append(all, so.Results...)
			for _, b := range so.Bad {
				bad = append(bad, ImageError{Path: b.Path, ImageID: b.ImageID, Err: errors.New(b.Msg)})
			}
		}
		if sum.Err == "" {
			res, dets, err = evalFinish(gt, labels, annPath, len(refs), all, bad)
			if err != nil {
				sum.Err = err.Error()
			} else {
				sum.Stats, sum.Warnings = res.Stats, res.Warnings
			}
		}
	}
	buf.Reset()
	if err := gob.NewEncoder(&buf).Encode(&sum); err != nil {
		return nil, nil, err
	}
	raw, err := w.BroadcastBytes(buf.Bytes(), 0)
	if err != nil {
		return nil, nil, err
	}
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&sum); err != nil {
		return nil, nil, fmt.Errorf("evaluation: summary from rank 0: %w", err)
	}
	if sum.Err != "" {
		return nil, nil, &dist.RankError{Rank: 0, Msg: sum.Err}
	}
	if res == nil {
		res = &cocoeval.Result{Stats: sum.Stats, Warnings: sum.Warnings}
	}
	return res, dets, nil
}

func indices(n int) []int {
	ix := make([]int, n)
	for i := range ix {
		ix[i] = i
	}
	return ix
}
