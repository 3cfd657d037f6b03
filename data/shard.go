package data

import "fmt"

// Data-parallel training (package dist) splits every global batch over the
// ranks: each rank computes the same global plan (EpochPlan, from the seed)
// and decodes only its slice, with the augmentations the image would get in
// a one-process run (the per-sample random stream is keyed by the image's
// position in the global batch). LoaderConfig.Rank and WorldSize select the
// slice.

// ShardBatch returns rank's contiguous slice of a global batch of indices
// and the position of its first element in the batch: with B images and
// n ranks, rank r gets positions [r*B/n, (r+1)*B/n). A last partial batch
// of an evaluation pass (B not a multiple of n) is split as evenly as
// possible, so a rank may get one image fewer, or none.
func ShardBatch(batch []int, rank, size int) (idx []int, offset int) {
	if size <= 1 {
		return batch, 0
	}
	lo := len(batch) * rank / size
	hi := len(batch) * (rank + 1) / size
	return batch[lo:hi:hi], lo
}

// CheckShard validates a loader's rank and world size against its batch
// size: the world size must divide the global batch.
func CheckShard(batchSize, rank, size int) error {
	if size <= 1 && rank == 0 {
		return nil
	}
	if size < 1 || rank < 0 || rank >= size {
		return fmt.Errorf("loader: rank %d of %d ranks", rank, size)
	}
	if batchSize%size != 0 {
		return fmt.Errorf("the global batch of %d images is not divisible by the world size %d: use a multiple of %d images per batch (solver.ims_per_batch), or another number of ranks", batchSize, size, size)
	}
	return nil
}

// PadTo pads b to h x w (at least its own size), zero on the bottom and
// right as Collate does: ranks of one data-parallel step pad their slices to
// the shape of the whole global batch, so that every rank runs the graph
// a one-process run would run on the full batch.
func PadTo(b *Batch, h, w int) error {
	if h < b.H || w < b.W {
		return fmt.Errorf("pad: batch %dx%d does not fit in %dx%d", b.H, b.W, h, w)
	}
	if h == b.H && w == b.W {
		return nil
	}
	out := make([]float32, b.N*b.C*h*w)
	for n := 0; n < b.N; n++ {
		for ch := 0; ch < b.C; ch++ {
			for y := 0; y < b.H; y++ {
				src := b.Images[((n*b.C+ch)*b.H+y)*b.W:][:b.W]
				copy(out[((n*b.C+ch)*h+y)*w:], src)
			}
		}
	}
	b.Images, b.H, b.W = out, h, w
	return nil
}
