package data

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Loader.Next after Close.
var ErrClosed = errors.New("data: loader closed")

// LoaderConfig configures a Loader.
type LoaderConfig struct {
	BatchSize int // images per batch (default 1)
	Workers   int // decoding goroutines (default 1)
	// Prefetch bounds the batches decoded ahead of Next (default 2*Workers);
	// memory in flight is at most about Prefetch+Workers+1 batches.
	Prefetch int
	Seed     int64
	// Shuffle reshuffles the images every epoch with a generator seeded by
	// Seed+epoch. Without it the dataset order is used.
	Shuffle bool
	// Train: infinite iteration over epochs, random min size and flips,
	// a last partial batch of an epoch dropped. Otherwise one finite pass,
	// last partial batch kept, then io.EOF.
	Train bool
	// AspectGrouping batches images with w >= h and w < h separately (the
	// two groups of detectron2, decided from the JSON width and height).
	AspectGrouping bool
	// StartIter resumes at this global iteration (0-based); skipped batches
	// are not decoded.
	StartIter int64
	// IgnoreEXIF decodes pixels as stored, without the EXIF orientation
	// (torchvision's CocoDetection behaviour); by default it is applied
	// (detectron2's). Either way an image whose decoded size differs from
	// the JSON width and height is skipped with a log line.
	IgnoreEXIF bool
	Transform  TransformConfig
	Logger     *slog.Logger // nil: slog.Default()
	// MaxUnreadable bounds the images that may be skipped because they
	// cannot be read or decoded (or do not have the annotated size), as a
	// fraction of the dataset: once more than MaxUnreadable x len(images)
	// distinct images were skipped, Next returns an ErrUnreadable error
	// naming examples. 0: no bound. Whatever the bound, a dataset none of
	// whose images can be read is an ErrUnreadable error (never a loop).
	// Each image is logged once.
	MaxUnreadable float64
	// Rank and WorldSize shard every batch for data-parallel training
	// (ShardBatch): BatchSize is the global batch, this loader decodes
	// rank's slice of it. WorldSize 0 or 1: no sharding.
	Rank, WorldSize int
}

// ErrUnreadable marks a loader stopped because too many images (or all)
// could not be read.
var ErrUnreadable = errors.New("unreadable images")

// Loader is a parallel prefetching batch loader. Batches, their order and
// their random augmentations depend only on the dataset, Seed, the epoch and
// the iteration, never on the number of workers or on timing.
type Loader struct {
	ds      *Dataset
	cfg     LoaderConfig
	log     *slog.Logger
	jobs    chan job
	slots   chan chan result
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	closed  atomic.Bool
	skipped atomic.Int64

	badMu sync.Mutex
	bad   map[int]error // distinct unreadable images by index
	order []int         // their indices in the order found
}

type job struct {
	iter  int64
	epoch int
	idx   []int
	// offset is the position of idx[0] in the global batch (sharding)
	offset int
	slot   chan result
}

type result struct {
	batch *Batch
	err   error
}

// NewLoader starts the workers of a loader over ds.
func NewLoader(ds *Dataset, cfg LoaderConfig) (*Loader, error) {
	if ds == nil || len(ds.Images) == 0 {
		return nil, fmt.Errorf("loader: empty dataset")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2 * cfg.Workers
	}
	if cfg.StartIter < 0 {
		return nil, fmt.Errorf("loader: negative start iteration %d", cfg.StartIter)
	}
	if err := CheckShard(cfg.BatchSize, cfg.Rank, max(cfg.WorldSize, 1)); err != nil && cfg.Train {
		return nil, err
	}
	tc, err := cfg.Transform.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Transform = tc
	l := &Loader{ds: ds, cfg: cfg, log: cfg.Logger, jobs: make(chan job),
		slots: make(chan chan result, cfg.Prefetch), done: make(chan struct{})}
	if l.log == nil {
		l.log = slog.Default()
	}
	for w := 0; w < cfg.Workers; w++ {
		l.wg.Add(1)
		go l.worker()
	}
	l.wg.Add(1)
	go l.produce()
	return l, nil
}

// EpochPlan returns the batches (lists of indices into ds.Images) of one
// epoch, without decoding anything. In training with aspect grouping an
// epoch's plan depends on the images the earlier epochs left in their
// buckets, so the epochs before it are planned too (permutations only).
func (l *Loader) EpochPlan(epoch int) [][]int {
	p := planner{ds: l.ds, cfg: l.cfg}
	for e := 0; e < epoch; e++ {
		p.next()
	}
	return p.next()
}

// planner computes the batch plans of successive epochs. In training with
// aspect grouping the images that did not fill a batch of their group at
// the end of an epoch stay in their bucket and open the next epoch's batch
// of that group, as detectron2's AspectRatioGroupedDataset does over its
// infinite stream: a batch never mixes wide and tall images (a mixed batch
// pads a landscape and a portrait image to one square canvas, about twice
// the pixels of either), and no image is dropped.
type planner struct {
	ds    *Dataset
	cfg   LoaderConfig
	epoch int
	carry [2][]int
}

func (p *planner) next() [][]int {
	ds, cfg, epoch := p.ds, p.cfg, p.epoch
	p.epoch++
	n := len(ds.Images)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if cfg.Shuffle {
		r := rand.New(rand.NewPCG(uint64(cfg.Seed+int64(epoch)), 0x5DEECE66D))
		r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	B := cfg.BatchSize
	var batches [][]int
	var rest []int
	if cfg.AspectGrouping {
		buckets := [2][]int{}
		if cfg.Train && n >= B {
			buckets = p.carry
		}
		for _, i := range order {
			g := 0
			if ds.Images[i].Width < ds.Images[i].Height {
				g = 1
			}
			buckets[g] = append(buckets[g], i)
			if len(buckets[g]) == B {
				batches = append(batches, buckets[g])
				buckets[g] = nil
			}
		}
		if cfg.Train && n >= B {
			p.carry = buckets
			return batches
		}
		if !cfg.Train {
			// evaluation: one partial batch per group, never a mixed one
			for _, b := range buckets {
				if len(b) > 0 {
					batches = append(batches, b)
				}
			}
			return batches
		}
		// training on a set smaller than one batch: it is the only batch
		rest = append(append(rest, buckets[0]...), buckets[1]...)
	} else {
		rest = order
	}
	for len(rest) >= B {
		batches = append(batches, rest[:B:B])
		rest = rest[B:]
	}
	if len(rest) > 0 && (!cfg.Train || len(batches) == 0) {
		batches = append(batches, rest)
	}
	return batches
}

// splitmix64 mixes a 64-bit value (for per-sample seeds).
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

func (l *Loader) produce() {
	defer l.wg.Done()
	defer close(l.slots)
	defer close(l.jobs)
	iter := l.cfg.StartIter
	epoch := 0
	planner := planner{ds: l.ds, cfg: l.cfg}
	plan := planner.next()
	base := int64(0)
	for {
		if iter-base >= int64(len(plan)) {
			if !l.cfg.Train {
				return
			}
			base += int64(len(plan))
			epoch++
			plan = planner.next()
			continue
		}
		slot := make(chan result, 1)
		idx, off := ShardBatch(plan[iter-base], l.cfg.Rank, l.cfg.WorldSize)
		j := job{iter: iter, epoch: epoch, idx: idx, offset: off, slot: slot}
		select {
		case l.jobs <- j:
		case <-l.done:
			return
		}
		select {
		case l.slots <- slot:
		case <-l.done:
			return
		}
		iter++
	}
}

func (l *Loader) worker() {
	defer l.wg.Done()
	for j := range l.jobs {
		b, err := l.makeBatch(j)
		j.slot <- result{b, err}
	}
}

// makeBatch decodes and transforms the images of one job; unreadable images
// are logged and skipped. It returns a nil batch when none was usable.
func (l *Loader) makeBatch(j job) (*Batch, error) {
	samples := make([]*Sample, 0, len(j.idx))
	for k, i := range j.idx {
		rec := &l.ds.Images[i]
		decode := DecodeImage
		if l.cfg.IgnoreEXIF {
			decode = DecodeImageRaw
		}
		img, err := decode(rec.Path)
		if err == nil && (img.H != rec.Height || img.W != rec.Width) {
			err = fmt.Errorf("image %s is %dx%d but the annotations say %dx%d", rec.Path,
				img.W, img.H, rec.Width, rec.Height)
		}
		if err != nil {
			l.skipped.Add(1)
			if stop := l.unreadable(i, rec.ID, err); stop != nil {
				return nil, stop
			}
			continue
		}
		var rng *rand.Rand
		if l.cfg.Train {
			rng = rand.New(rand.NewPCG(splitmix64(uint64(l.cfg.Seed)^splitmix64(uint64(j.iter))), uint64(j.offset+k)))
		}
		s, err := TransformSample(img, rec.Boxes, rec.Labels, l.cfg.Transform, l.cfg.Train, rng)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", rec.Path, err)
		}
		s.Item.ImageID, s.Item.Index, s.Item.FileName = rec.ID, i, rec.FileName
		samples = append(samples, s)
	}
	if len(samples) == 0 {
		return nil, nil
	}
	b, err := Collate(samples, l.cfg.Transform.SizeDivisible)
	if err != nil {
		return nil, err
	}
	b.Iter, b.Epoch = j.iter, j.epoch
	return b, nil
}

// unreadable records that image i could not be used, logs it the first
// time, and returns the error that stops the loader when the skip policy
// (LoaderConfig.MaxUnreadable) is exceeded or no image is readable.
func (l *Loader) unreadable(i int, id int64, err error) error {
	l.badMu.Lock()
	defer l.badMu.Unlock()
	if l.bad == nil {
		l.bad = map[int]error{}
	}
	if _, seen := l.bad[i]; !seen {
		l.bad[i] = err
		l.order = append(l.order, i)
		l.log.Warn("skipping unreadable image", "image_id", id, "err", err)
	}
	n, total := len(l.bad), len(l.ds.Images)
	limit := l.cfg.MaxUnreadable
	switch {
	case n >= total:
		return fmt.Errorf("%w: none of the %d images can be read (%s); check the image directory", ErrUnreadable, total, l.examples())
	case limit > 0 && float64(n) > limit*float64(total):
		return fmt.Errorf("%w: %d of %d images cannot be read, more than the allowed fraction %g (data.max_unreadable) (%s)",
			ErrUnreadable, n, total, limit, l.examples())
	}
	return nil
}

// examples names the first unreadable images and their errors.
func (l *Loader) examples() string {
	var parts []string
	for _, i := range l.order[:min(3, len(l.order))] {
		parts = append(parts, l.bad[i].Error())
	}
	s := "e.g. " + strings.Join(parts, "; ")
	if len(l.order) > 3 {
		s += fmt.Sprintf("; and %d more", len(l.order)-3)
	}
	return s
}

// Next returns the next batch. An evaluation loader returns io.EOF after its
// pass; a batch whose images were all skipped (missing or corrupt files) is
// passed over, so Batch.Iter may jump. After Close it returns ErrClosed.
func (l *Loader) Next() (*Batch, error) {
	for {
		if l.closed.Load() {
			return nil, ErrClosed
		}
		slot, ok := <-l.slots
		if !ok {
			if l.closed.Load() {
				return nil, ErrClosed
			}
			return nil, io.EOF
		}
		r := <-slot
		if r.err != nil {
			return nil, r.err
		}
		if r.batch == nil {
			continue
		}
		return r.batch, nil
	}
}

// Skipped is the number of images skipped so far because they could not be
// read or decoded, or did not have the annotated size.
func (l *Loader) Skipped() int64 { return l.skipped.Load() }

// Close stops the workers and waits for them. It is safe to call twice.
func (l *Loader) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.done)
		// Drain so that the producer is never blocked on a full queue.
		go func() {
			for range l.slots {
			}
		}()
		l.wg.Wait()
	})
	return nil
}
