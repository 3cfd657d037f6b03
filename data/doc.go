// Package data reads COCO detection datasets and turns them into padded
// float32 batches for training and evaluation. It is a leaf package: it
// imports only the standard library.
//
// # Pipeline
//
//	ds, err := data.LoadCOCO("annotations/instances_train.json", "train", data.COCOOptions{FilterEmpty: true})
//	ld, err := data.NewLoader(ds, data.LoaderConfig{
//		BatchSize: 2, Workers: 2, Seed: 1, Shuffle: true, Train: true, AspectGrouping: true,
//		StartIter: resumeIter,
//		Transform: data.TransformConfig{MinSizes: []int{640, 672, 704, 736, 768, 800}, MaxSize: 1333,
//			FlipProb: 0.5, Format: data.FormatTorchvision, SizeDivisible: 32},
//	})
//	defer ld.Close()
//	b, err := ld.Next() // b.Images is N*C*H*W float32, b.Items per-image metadata
//
// # COCO (LoadCOCO, ParseCOCO)
//
// Categories are sorted by ascending COCO id and given contiguous labels
// 1..K; label 0 is background (Dataset.LabelToCatID, Dataset.CatIDToLabel).
// Boxes are converted from xywh to x1,y1,x2,y2 and clipped to the image;
// a box that is not finite or whose width or height is <= 0 after clipping
// is dropped and counted (one slog line per file, Dataset.Stats). Crowd
// annotations are kept in ImageRecord.Annotations for evaluation but are not
// training targets (ImageRecord.Boxes/Labels), as in detectron2.
// COCOOptions.FilterEmpty removes images without any training target.
// Structural errors are returned, never skipped: malformed JSON (the error
// names file:line:column), duplicate image/annotation/category ids, an
// annotation whose image or category id is unknown, an image without a
// positive width and height.
//
// # Images (DecodeImage)
//
// JPEG and PNG, decoded to RGB float32 CHW in [0,255]. The JPEG EXIF
// orientation (APP1, tag 0x0112, parsed here) is applied like PIL's
// ImageOps.exif_transpose (detectron2's behaviour); DecodeImageRaw and
// LoaderConfig.IgnoreEXIF skip it (torchvision's CocoDetection). Gray, CMYK/YCCK (Adobe), paletted and 16-bit images
// become RGB; alpha is dropped. Errors name the file.
//
// # Transforms (TransformSample, ResizeScale, ResizeBilinear, ...)
//
// Order: optional horizontal flip, normalisation, resize, as torchvision's
// GeneralizedRCNNTransform (normalise then resize). Resize follows its rule:
// scale = min(min_size/short, max_size/long) in float32, output size
// floor(dim*scale) (detectron2 rounds instead; this package uses torchvision's
// floor). Bilinear interpolation reproduces
// torch.nn.functional.interpolate(mode='bilinear', align_corners=False);
// scripts/data_golden.py writes the golden file testdata/resize_golden.json.
// Boxes are multiplied by ScaleX = W/OrigW, ScaleY = H/OrigH (torchvision's
// resize_boxes); BatchItem.ToOriginal maps detections back. Training draws
// the min size uniformly from MinSizes; evaluation uses the last entry.
// Formats: "torchvision" (RGB/255, ImageNet mean/std) and "caffe" (BGR
// 0-255, mean 103.53/116.28/123.675, std 1).
//
// # Batches (Collate)
//
// Images are zero padded at the bottom and right to the batch's largest H and
// W rounded up to SizeDivisible (default 32), stacked as NCHW.
//
// # Loader (NewLoader)
//
// The batch plan of an epoch (which images, in which order) is computed
// from the JSON alone: a permutation seeded by Seed+epoch when Shuffle, then
// optional aspect-ratio grouping (w >= h and w < h buckets; a bucket is
// emitted when it holds BatchSize images; in training a bucket's leftovers
// carry over into the next epoch, so no batch mixes the groups; in
// evaluation each group's partial batch is kept). Without grouping the final
// partial batch of a training epoch is dropped (unless it is the only one).
// Training iterates forever; evaluation makes one pass, then io.EOF. Random choices (min size, flip) come from a generator seeded by
// (Seed, global iteration, position in the batch), so batches are identical
// whatever the number of workers, and StartIter resumes exactly without
// decoding the skipped images. Workers decode whole batches; a bounded queue
// of Prefetch batches keeps memory bounded. Images that cannot be read,
// decoded, or whose size differs from the JSON are logged and skipped
// (Loader.Skipped); a batch left empty is passed over.
package data
