// Package infer runs a trained Faster R-CNN on images: it decodes and
// transforms them as the configuration says, batches them, calls
// model.FasterRCNN.Detect, maps the boxes back to the original pixels and
// turns them into COCO results (a results JSON file, or in-memory
// cocoeval detections for an evaluation).
//
//	det, rep, err := infer.LoadModel(cfg, "model.safetensors")
//	res, bad := infer.Run(det, refs, infer.Options{Transform: glue.Transform(cfg, false)}, nil)
//	err = infer.WriteResultsJSON("results.json", res, labels)
//
// EvaluateDataset does the whole COCO evaluation of a split (the trainer's
// periodic evaluation and kdeval's model mode).
package infer
