// Package boxes holds the pure box utilities of Faster R-CNN: box area and
// pairwise IoU, the box coder, clipping and small-box removal, greedy and
// batched non-maximum suppression, the anchor generator, the proposal
// matcher and the balanced positive/negative sampler.
//
// Every function follows torchvision 0.14 (torchvision.ops.boxes and
// torchvision.models.detection._utils / anchor_utils), computed in float32
// with the same order of operations, so that results agree with torchvision
// bit for bit where torchvision itself is deterministic (NMS, anchors,
// matcher, IoU) and within a few ulps where torchvision uses vectorised
// transcendental functions (log and exp in the box coder). Golden files
// written by scripts/boxes_golden.py check this.
//
// Box layout: a set of n boxes is a flat []float32 of length 4n, box i being
// b[4i:4i+4] = x1, y1, x2, y2 in absolute pixel coordinates (torchvision's
// (x1, y1, x2, y2) convention, no "+1" in widths). Flat slices avoid one
// allocation per box and keep 10k+ boxes contiguous. Functions that receive
// box slices return an error when a length is not a multiple of 4 or two
// lengths disagree; none of them panics on bad input.
//
// The package depends on the standard library only.
package boxes
