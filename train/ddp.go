package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	randv2 "math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/skd-go/skd/boxes"
	"github.com/skd-go/skd/cocoeval"
	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/dist"
	"github.com/skd-go/skd/infer"
	"github.com/skd-go/skd/model"
)

// Data-parallel training (torch DDP / detectron2 launch semantics, over
// package dist):
//
//   - solver.ims_per_batch is the global batch; the world size must divide
//     it. Every rank computes the same global batch plan from the seed and
//     decodes its contiguous slice (data.ShardBatch) with the augmentations
//     the image gets in a one-process run, then pads it to the global
//     batch's padded shape (one small allgather per iteration), so every
//     rank runs the graph a one-process run would run on the whole batch.
//   - The samplers of the RPN and RoI heads draw from a stream keyed by
//     (seed, iteration, the image's position in the global batch), the
//     same in every world size (and in one process).
//   - The loss normalisers (sampled anchors and RoIs) are the global
//     counts divided by the world size (model.FasterRCNN.NormReduce), so
//     the average of the ranks' gradients is the one-process gradient of
//     the global batch, not an average of per-rank means.
//   - Parameters, BN statistics, momentum buffers and the training state
//     start identical: rank 0 initialises, loads --weights or resumes, and
//     broadcasts them.
//   - Gradients are averaged by allreduce in buckets of about 25 MB
//     (DDP's bucket_cap_mb), last parameters first. Each bucket's
//     allreduce starts on the world's communication goroutine as soon as
//     the backward pass has computed its last gradient, overlapped with
//     the rest of the backward pass (ddp_overlap.go); DataParallel waits
//     for them after the backward pass. The SGD step then runs
//     identically on every rank.
//   - Losses are averaged over ranks before the NaN guard, so every rank
//     takes the same decision; rank 0 writes the work dir.
//
// Failures every rank sees (bad config, a rank that cannot read its data)
// are agreed through a collective and return the same error everywhere
// (Collective reports it); a failure on one rank only, in the middle of a
// step, ends the job through MPI_Abort (cmd/kdtrain).

// BucketBytes is the gradient allreduce bucket size (DDP's default 25 MB).
const BucketBytes = 25 << 20

// DDP is a run's data-parallel state; with a one-process world every
// method is a cheap no-op besides the sampler streams.
type DDP struct {
	W       *dist.World
	perRank int
	seed    int64
	// iter and offset key the sampler streams of the current step.
	iter   int64
	offset int
	// Comm is what the last step's gradient allreduce cost; CommWait the
	// time the step spent in DataParallel after the backward pass
	// (waiting for the allreduces, unpacking, the losses' allreduce).
	Comm     CommStats
	CommWait time.Duration

	grads GradReducer
	// overlapped: this step's buckets were started during the backward
	// pass (watch); overlap: the detector reports them (GradWatch).
	overlapped, overlap bool
}

// GradReducer averages gradients over the ranks of W in buckets of about
// BucketBytes, last gradients first (DDP's order: the backward pass
// produces them first). A communication goroutine reduces bucket k while
// the caller packs bucket k+1 and unpacks bucket k-1.
type GradReducer struct {
	W *dist.World
	// BucketBytes bounds a bucket (0: the package's BucketBytes).
	BucketBytes int
	bufs        [2][]float32
	step        overlapStep // ddp_overlap.go
}

// collectiveError is an error every rank returned (agreed through a
// collective), so no rank is left waiting in a collective.
type collectiveError struct{ error }

func (e collectiveError) Unwrap() error { return e.error }

// Collective reports whether err was agreed by every rank of the world
// (it is safe to return it and finalize normally); other errors of a
// multi-rank run must abort the job.
func Collective(err error) bool {
	var ce collectiveError
	return errors.As(err, &ce)
}

// agree makes err (nil or this rank's failure) the same on every rank.
func (d *DDP) agree(err error) error {
	if d.W.Size() == 1 {
		if err != nil {
			return collectiveError{err}
		}
		return nil
	}
	if err = d.W.Agree(err); err != nil {
		return collectiveError{err}
	}
	return nil
}

// newDDP checks, collectively, that every rank runs the same
// configuration (by its hash) and gradient allreduce settings, and that
// the world size divides the global batch.
func newDDP(w *dist.World, cfg *config.File, hash string) (*DDP, error) {
	if w == nil {
		w = dist.Single()
	}
	d := &DDP{W: w, seed: cfg.Train.Seed, grads: GradReducer{W: w}}
	if w.Size() > 1 {
		all, err := w.Allgather([]byte(hash))
		if err != nil {
			return nil, err
		}
		var bad []string
		for r, h := range all {
			if string(h) != string(all[0]) {
				bad = append(bad, fmt.Sprintf("rank %d has %s", r, h))
			}
		}
		if len(bad) > 0 {
			return nil, collectiveError{&config.Error{File: cfg.Path, Msg: fmt.Sprintf("the ranks run different configurations (resolved config hash: rank 0 has %s, %s); start every rank with the same config file and --set flags", all[0], strings.Join(bad, ", "))}}
		}
	}
	if err := data.CheckShard(cfg.Solver.IMSPerBatch, w.Rank(), w.Size()); err != nil {
		return nil, collectiveError{&config.Error{File: cfg.Path, Path: "solver.ims_per_batch", Msg: err.Error()}}
	}
	if w.Size() > 1 {
		if err := d.checkOverlap(); err != nil {
			return nil, err
		}
	}
	d.perRank = cfg.Solver.IMSPerBatch / w.Size()
	return d, nil
}

// Root reports whether this rank writes the work dir.
func (d *DDP) Root() bool { return d.W.IsRoot() }

// attach installs the sampler streams, the loss-normaliser reduction,
// SyncBN's statistics reduction and the gradient watch that starts the
// buckets' allreduce during the backward pass (ddp_overlap.go) on the
// detector, and returns the number of SyncBN layers.
func (d *DDP) attach(det *model.FasterRCNN) int {
	if det.RPNSample == nil {
		det.RPNSample = d.sampler(det.Cfg.RPN.BatchSizePerImg, det.Cfg.RPN.PositiveFraction, 0)
	}
	if det.RoISample == nil {
		det.RoISample = d.sampler(det.Cfg.RoI.BatchSizePerImg, det.Cfg.RoI.PositiveFraction, 1)
	}
	if d.W.Size() == 1 {
		return 0
	}
	d.setOverlap(det)
	det.NormReduce = func(counts []float32) error {
		if err := d.W.AllreduceSum(counts); err != nil {
			return err
		}
		for i := range counts {
			counts[i] /= float32(d.W.Size())
		}
		return nil
	}
	return det.Body.SetStatReducer(d.W)
}

func mix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// sampler is a balanced sampler whose random stream for image i of the
// current step depends only on the seed, the iteration and the image's
// position in the global batch.
func (d *DDP) sampler(perImage int, posFrac float64, stream uint64) func(int, []int) ([]int, []int, error) {
	s := boxes.BalancedSampler{BatchSizePerImage: perImage, PositiveFraction: posFrac}
	return func(i int, labels []int) ([]int, []int, error) {
		key := mix64(uint64(d.seed) ^ mix64(uint64(d.iter)))
		rng := randv2.New(randv2.NewPCG(key, uint64(d.offset+i)<<1|stream))
		return s.Sample(labels, rng)
	}
}

// batch agrees on iteration it across ranks: every rank reports its
// batch (or its loader error); all return the same error if any failed or
// a rank's slice of this iteration was unusable, else this rank's batch
// padded to the global batch's shape.
func (d *DDP) batch(b *data.Batch, err error, it int64) (*data.Batch, error) {
	d.iter, d.offset = it, d.W.Rank()*d.perRank
	if d.W.Size() == 1 {
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	msg := make([]byte, 24)
	if err == nil {
		binary.LittleEndian.PutUint64(msg, uint64(b.Iter))
		binary.LittleEndian.PutUint64(msg[8:], uint64(b.H))
		binary.LittleEndian.PutUint64(msg[16:], uint64(b.W))
	} else {
		msg = append(msg, err.Error()...)
	}
	all, gerr := d.W.Allgather(msg)
	if gerr != nil {
		return nil, gerr
	}
	var errs []string
	h, w := 0, 0
	for r, m := range all {
		if len(m) > 24 {
			errs = append(errs, fmt.Sprintf("rank %d: %s", r, m[24:]))
			continue
		}
		if bi := int64(binary.LittleEndian.Uint64(m)); bi != it {
			errs = append(errs, fmt.Sprintf("rank %d: no usable image in its slice of iteration %d (every one unreadable; it moved on to iteration %d)", r, it, bi))
		}
		h = max(h, int(binary.LittleEndian.Uint64(m[8:])))
		w = max(w, int(binary.LittleEndian.Uint64(m[16:])))
	}
	if len(errs) > 0 {
		return nil, collectiveError{errors.New(strings.Join(errs, "; "))}
	}
	if err := data.PadTo(b, h, w); err != nil {
		return nil, err
	}
	return b, nil
}

// reduce averages, in place, the gradients over the ranks (it waits for
// the buckets the backward pass started or, without overlap, reduces every
// bucket now), then the losses. The gradients come first in both modes, so
// that comm_time includes, in both, waiting for the slowest rank to finish
// its backward pass.
func (d *DDP) reduce(losses model.Losses, grads [][]float32) (model.Losses, error) {
	d.Comm, d.CommWait = CommStats{}, 0
	n := d.W.Size()
	if n == 1 {
		return losses, nil
	}
	t0 := time.Now()
	defer func() { d.CommWait = time.Since(t0) }()
	if d.overlapped {
		d.overlapped = false
		var err error
		if d.Comm, err = d.grads.finish(grads, t0); err != nil {
			return nil, err
		}
	} else {
		if err := d.grads.Average(grads); err != nil {
			return nil, err
		}
		el := time.Since(t0)
		d.Comm = CommStats{Time: el, Exposed: el, Buckets: len(d.grads.buckets(lengths(grads)))}
	}
	keys := make([]string, 0, len(losses))
	for k := range losses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lv := make([]float64, len(keys))
	for i, k := range keys {
		lv[i] = losses[k]
	}
	if err := d.W.AllreduceSumFloat64(lv); err != nil {
		return nil, err
	}
	out := model.Losses{}
	for i, k := range keys {
		out[k] = lv[i] / float64(n)
	}
	return out, nil
}

func lengths(grads [][]float32) []int {
	lens := make([]int, len(grads))
	for i, g := range grads {
		lens[i] = len(g)
	}
	return lens
}

// same marks err, which every rank met at the same point of the same
// computation (averaged losses, identical weights), as agreed without a
// collective.
func (d *DDP) same(err error) error {
	if err == nil || d.W.Size() == 1 {
		return err
	}
	return collectiveError{err}
}

// Average replaces every gradient by its mean over the ranks.
func (d *GradReducer) Average(grads [][]float32) error {
	if d.W.Size() == 1 {
		return nil
	}
	buckets := d.buckets(lengths(grads))
	inv := 1 / float32(d.W.Size())
	pack := func(k int) []float32 {
		b := d.bufs[k%2][:0]
		for _, g := range grads[buckets[k].lo:buckets[k].hi] {
			b = append(b, g...)
		}
		d.bufs[k%2] = b
		return b
	}
	unpack := func(k int) {
		b := d.bufs[k%2]
		for _, g := range grads[buckets[k].lo:buckets[k].hi] {
			for j := range g {
				g[j] = b[j] * inv
			}
			b = b[len(g):]
		}
	}
	type job struct {
		buf []float32
		err chan error
	}
	jobs := make(chan job, 1)
	go func() {
		for j := range jobs {
			j.err <- d.W.AllreduceSum(j.buf)
		}
	}()
	defer close(jobs)
	var pending chan error
	for k := range buckets {
		e := make(chan error, 1)
		jobs <- job{pack(k), e}
		if pending != nil {
			if err := <-pending; err != nil {
				<-e
				return err
			}
			unpack(k - 1)
		}
		pending = e
	}
	if pending != nil {
		if err := <-pending; err != nil {
			return err
		}
		unpack(len(buckets) - 1)
	}
	return nil
}

// syncFromRoot broadcasts rank 0's parameters and buffers, momentum
// buffers and training state (with the random states in it) to every
// rank.
func (d *DDP) syncFromRoot(t *Trainer) error {
	if d.W.Size() == 1 {
		return nil
	}
	for _, p := range t.Det.Reg.Params() {
		if err := d.W.Broadcast(p.Data(), 0); err != nil {
			return fmt.Errorf("broadcasting %s: %w", p.Name, err)
		}
	}
	// momentum buffers: names and lengths first (only rank 0 has them
	// after a resume)
	type bufInfo struct {
		Name string
		N    int
	}
	var infos []bufInfo
	if d.Root() {
		for name, b := range t.Opt.Buffers {
			infos = append(infos, bufInfo{name, len(b)})
		}
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	}
	raw, _ := json.Marshal(struct {
		Bufs    []bufInfo
		State   State
		Resumed bool
	}{infos, t.State, t.Resumed})
	raw, err := d.W.BroadcastBytes(raw, 0)
	if err != nil {
		return err
	}
	var msg struct {
		Bufs    []bufInfo
		State   State
		Resumed bool
	}
	if err := json.Unmarshal(raw, &msg); err != nil {
		return fmt.Errorf("training state from rank 0: %w", err)
	}
	for _, bi := range msg.Bufs {
		b := t.Opt.Buffers[bi.Name]
		if len(b) != bi.N {
			b = make([]float32, bi.N)
			t.Opt.Buffers[bi.Name] = b
		}
		if err := d.W.Broadcast(b, 0); err != nil {
			return fmt.Errorf("broadcasting the momentum of %s: %w", bi.Name, err)
		}
	}
	if !d.Root() {
		t.State = msg.State
		if len(t.State.SamplerRNG) > 0 {
			if err := t.Det.PCG.UnmarshalBinary(t.State.SamplerRNG); err != nil {
				return fmt.Errorf("sampler RNG from rank 0: %w", err)
			}
		}
		if err := t.loadHookStates(t.State.ExtraRNG); err != nil {
			return fmt.Errorf("hook states from rank 0: %w", err)
		}
		t.Resumed = msg.Resumed
	}
	return nil
}

// rootDo runs f on rank 0 once every rank has reached this point (so a
// checkpoint written by f records a step every rank has finished) and
// returns its error on every rank.
func (d *DDP) rootDo(f func() error) error {
	if d.W.Size() == 1 {
		return f()
	}
	if err := d.W.Barrier(); err != nil {
		return err
	}
	var err error
	if d.Root() {
		err = f()
	}
	return d.agree(err)
}

// rootOnly runs f on rank 0 only (no collective; agree its error).
func (d *DDP) rootOnly(f func() error) error {
	if d.Root() {
		return f()
	}
	return nil
}

// rootFirst runs f on rank 0, then, after a barrier, on the other ranks
// (rank 0 generates a missing synthetic dataset before the others read
// it). Agree its error.
func (d *DDP) rootFirst(f func() error) error {
	if d.W.Size() == 1 {
		return f()
	}
	var err error
	if d.Root() {
		err = f()
	}
	if berr := d.W.Barrier(); berr != nil {
		return berr
	}
	if !d.Root() {
		err = f()
	}
	return err
}

// evalDataset evaluates det on the val split, sharded over the ranks.
// Every rank gets the summary numbers.
func (t *Trainer) evalDataset(det *model.FasterRCNN, cfg *config.File) (*cocoeval.Result, error) {
	res, _, err := infer.EvaluateDatasetWith(det, cfg, t.ValAnn, t.ValImgs, infer.EvalOptions{
		MaxImages: t.Cfg.Train.EvalMaxImages, Workers: cfg.Data.Workers, World: t.DDP.W})
	if err != nil && t.DDP.W.Size() > 1 {
		err = collectiveError{err}
	}
	return res, err
}

// noteWorldSize logs a resume in another world size than the checkpoint's
// (the global batch and the schedule are the same; only the order of the
// float sums differs) and records the current one.
func (t *Trainer) noteWorldSize(st *State) {
	was, now := max(st.WorldSize, 1), t.DDP.W.Size()
	if was != now {
		t.Log.Warn("resuming in another world size: the same global batch and schedule continue (float sums in another order)",
			"checkpoint_ranks", was, "ranks", now, "ims_per_batch", t.Cfg.Solver.IMSPerBatch)
		fmt.Fprintf(t.Out, "resuming a %d-rank checkpoint with %d ranks: same global batch (%d images) and schedule\n",
			was, now, t.Cfg.Solver.IMSPerBatch)
	}
	t.State.WorldSize = now
}
