package train

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/model"
)

// Gradient allreduce overlapped with the backward pass (torch DDP's
// reducer): the gradients are cut into buckets of about BucketBytes, the
// last parameters first (the order the backward pass makes them final).
// The detector's training programs report each bucket as soon as the
// tape has computed its last gradient (model.FasterRCNN.GradWatch,
// layers.Machine.WatchGroups); the report packs the bucket into its own
// buffer (so the arena may reuse nothing the communication reads) and
// starts its allreduce on the world's communication goroutine
// (dist.World.AllreduceSumAsync), and the tape goes on with the rest of
// the backward pass. DataParallel's AfterBackward then waits for the
// buckets in order and unpacks their means. The buckets, their contents,
// the allreduces and the unpacking are those of GradReducer.Average, so
// the result is bit-identical to the reduction after the backward pass.
//
// SKD_DDP_OVERLAP=0 turns the overlap off (every bucket reduced after
// the backward pass, GradReducer.Average); SKD_DDP_BUCKET_BYTES sets the
// bucket size (DDP's bucket_cap_mb; default 25 MB). Both must be the same
// on every rank or the ranks' collectives do not match (checked at
// start). SKD_DDP_COMM_NICE gives the communication thread a nice value
// (Linux; dist.World.EnableAsync), so that MPI's polling and the
// allreduce take the cores mostly when the compute threads leave them
// idle.

// CommStats is what one step's gradient allreduce cost.
type CommStats struct {
	// Time is the time the communication goroutine spent in the step's
	// gradient allreduces; Exposed the part of it after the backward
	// pass had ended (not hidden behind it).
	Time, Exposed time.Duration
	// Buckets is the number of buckets; Early of them started before the
	// backward pass ended.
	Buckets, Early int
}

// span is the gradients grads[lo:hi] of one bucket.
type span struct{ lo, hi int }

// bucketLimit is the bucket size in floats.
func (d *GradReducer) bucketLimit() int {
	if d.BucketBytes > 0 {
		return max(d.BucketBytes/4, 1)
	}
	return BucketBytes / 4
}

// buckets cuts gradients of the given lengths into buckets, the last
// gradients first: each bucket is closed when it reaches the limit.
func (d *GradReducer) buckets(lens []int) []span {
	limit := d.bucketLimit()
	var out []span
	hi, size := len(lens), 0
	for i := len(lens) - 1; i >= 0; i-- {
		size += lens[i]
		if size >= limit || i == 0 {
			out = append(out, span{i, hi})
			hi, size = i, 0
		}
	}
	return out
}

// Buckets returns how gradients of the given lengths are cut into
// buckets: each bucket's first and last+1 gradient index, in reduction
// order (the last gradients first).
func (d *GradReducer) Buckets(lens []int) [][2]int {
	var out [][2]int
	for _, s := range d.buckets(lens) {
		out = append(out, [2]int{s.lo, s.hi})
	}
	return out
}

// overlapStep is the state of one overlapped step.
type overlapStep struct {
	spans []span
	packs [][]float32
	reqs  []pending
}

type pending struct {
	k   int
	req *dist.Request
}

// start packs bucket k of the program's gradients and starts its
// allreduce; bucket 0 begins a step.
func (d *GradReducer) start(k int, spans []span, grad func(i int) []float32) {
	st := &d.step
	if k == 0 {
		st.spans, st.reqs = spans, st.reqs[:0]
		for len(st.packs) < len(spans) {
			st.packs = append(st.packs, nil)
		}
	}
	b := st.packs[k][:0]
	for i := spans[k].lo; i < spans[k].hi; i++ {
		b = append(b, grad(i)...)
	}
	st.packs[k] = b
	r := d.W.AllreduceSumAsync(b)
	st.reqs = append(st.reqs, pending{k: k, req: r})
}

// finish waits for the step's buckets in order and replaces grads by
// their means; backwardEnd is when the backward pass ended.
func (d *GradReducer) finish(grads [][]float32, backwardEnd time.Time) (CommStats, error) {
	st := &d.step
	defer func() { st.reqs = st.reqs[:0] }()
	var firstErr error
	for _, p := range st.reqs { // every started bucket, before its buffer can be reused
		if err := p.req.Wait(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return CommStats{}, firstErr
	}
	if len(st.reqs) != len(st.spans) || len(st.spans) == 0 || st.spans[0].hi != len(grads) {
		return CommStats{}, fmt.Errorf("data-parallel: %d of %d gradient buckets started for %d gradients", len(st.reqs), len(st.spans), len(grads))
	}
	var cs CommStats
	inv := 1 / float32(d.W.Size())
	for _, p := range st.reqs {
		s, e := p.req.Start, p.req.End
		cs.Buckets++
		cs.Time += e.Sub(s)
		if s.Before(backwardEnd) {
			cs.Early++
		}
		if e.After(backwardEnd) {
			cs.Exposed += e.Sub(later(s, backwardEnd))
		}
		b := st.packs[p.k]
		for _, g := range grads[st.spans[p.k].lo:st.spans[p.k].hi] {
			for j := range g {
				g[j] = b[j] * inv
			}
			b = b[len(g):]
		}
	}
	return cs, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// overlapConfig reads SKD_DDP_OVERLAP, SKD_DDP_BUCKET_BYTES and
// SKD_DDP_COMM_NICE.
func overlapConfig() (overlap bool, bucketBytes, nice int, err error) {
	overlap = os.Getenv("SKD_DDP_OVERLAP") != "0"
	if v := os.Getenv("SKD_DDP_BUCKET_BYTES"); v != "" {
		if bucketBytes, err = strconv.Atoi(v); err != nil || bucketBytes <= 0 {
			return false, 0, 0, fmt.Errorf("SKD_DDP_BUCKET_BYTES=%q: want a positive number of bytes", v)
		}
	}
	if v := os.Getenv("SKD_DDP_COMM_NICE"); v != "" {
		if nice, err = strconv.Atoi(v); err != nil || nice < 0 || nice > 19 {
			return false, 0, 0, fmt.Errorf("SKD_DDP_COMM_NICE=%q: want a nice value from 0 to 19", v)
		}
	}
	return overlap, bucketBytes, nice, nil
}

// watch is the detector's GradWatch in an overlapped run: the program's
// gradients in buckets, each started as soon as it is final.
func (d *DDP) watch(p *model.Program) ([][]int, func(int)) {
	lens := make([]int, len(p.Params))
	for i, prm := range p.Params {
		lens[i] = len(prm.Data())
	}
	spans := d.grads.buckets(lens)
	groups := make([][]int, len(spans))
	for k, s := range spans {
		for i := s.lo; i < s.hi; i++ {
			groups[k] = append(groups[k], i)
		}
	}
	return groups, func(k int) {
		if k == 0 {
			d.overlapped = true
		}
		d.grads.start(k, spans, p.Gradient)
	}
}

// checkOverlap reads the overlap settings and checks, collectively, that
// every rank has the same (the buckets' allreduces must match).
func (d *DDP) checkOverlap() error {
	overlap, bucketBytes, nice, err := overlapConfig()
	if err = d.W.Agree(err); err != nil {
		return collectiveError{err}
	}
	mine := fmt.Sprintf("overlap=%v bucket_bytes=%d", overlap, bucketBytes)
	all, err := d.W.Allgather([]byte(mine))
	if err != nil {
		return err
	}
	for r, a := range all {
		if string(a) != mine {
			return collectiveError{fmt.Errorf("the ranks' gradient allreduce settings differ (SKD_DDP_OVERLAP, SKD_DDP_BUCKET_BYTES): rank %d has %s, rank %d has %s", d.W.Rank(), mine, r, a)}
		}
	}
	d.grads.BucketBytes, d.overlap = bucketBytes, overlap
	if overlap {
		// the communication thread starts now, so that its failure is
		// agreed here
		if err := d.W.Agree(d.W.EnableAsync(nice)); err != nil {
			return collectiveError{err}
		}
	}
	return nil
}

// setOverlap installs the gradient watch (when the run overlaps).
func (d *DDP) setOverlap(det *model.FasterRCNN) {
	if d.overlap {
		det.GradWatch = d.watch
	}
}
