package dist

import (
	"errors"
	"os"
	"sync"
)

// ErrAborted is returned by a Local world's collectives after a rank
// called Abort.
var ErrAborted = errors.New("dist: another rank aborted the world")

// Local returns n worlds connected inside this process: rank r is
// worlds[r], to be driven by its own goroutine. Results equal an n-rank
// MPI run's (sums in rank order). Abort does not exit: it makes every
// pending and later collective of the group return ErrAborted.
func Local(n int) []*World {
	if n < 1 {
		n = 1
	}
	h := &hub{n: n, slots: make([]any, n)}
	h.cond = sync.NewCond(&h.mu)
	ws := make([]*World, n)
	for r := range ws {
		ws[r] = &World{c: &local{h: h, r: r}, backend: "local"}
	}
	return ws
}

type hub struct {
	n       int
	mu      sync.Mutex
	cond    *sync.Cond
	slots   []any
	count   int
	gen     int
	aborted bool
}

// barrier is a cyclic barrier; false when the group was aborted.
func (h *hub) barrier() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.aborted {
		return false
	}
	g := h.gen
	h.count++
	if h.count == h.n {
		h.count = 0
		h.gen++
		h.cond.Broadcast()
		return true
	}
	for g == h.gen && !h.aborted {
		h.cond.Wait()
	}
	return !h.aborted
}

// exchange deposits v and returns every rank's deposit.
func (h *hub) exchange(rank int, v any) ([]any, error) {
	h.mu.Lock()
	h.slots[rank] = v
	h.mu.Unlock()
	if !h.barrier() {
		return nil, ErrAborted
	}
	h.mu.Lock()
	out := append([]any(nil), h.slots...)
	h.mu.Unlock()
	if !h.barrier() {
		return nil, ErrAborted
	}
	return out, nil
}

type local struct {
	h *hub
	r int
}

func (l *local) rank() int { return l.r }
func (l *local) size() int { return l.h.n }

func (l *local) allreduceF32(buf []float32) error {
	all, err := l.h.exchange(l.r, append([]float32(nil), buf...))
	if err != nil {
		return err
	}
	for i := range buf {
		var s float32
		for _, a := range all {
			s += a.([]float32)[i]
		}
		buf[i] = s
	}
	return nil
}

func (l *local) allreduceF64(buf []float64) error {
	all, err := l.h.exchange(l.r, append([]float64(nil), buf...))
	if err != nil {
		return err
	}
	for i := range buf {
		var s float64
		for _, a := range all {
			s += a.([]float64)[i]
		}
		buf[i] = s
	}
	return nil
}

func (l *local) bcastBytes(b []byte, root int) ([]byte, error) {
	all, err := l.h.exchange(l.r, append([]byte(nil), b...))
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), all[root].([]byte)...), nil
}

func (l *local) bcastF32(buf []float32, root int) error {
	all, err := l.h.exchange(l.r, append([]float32(nil), buf...))
	if err != nil {
		return err
	}
	copy(buf, all[root].([]float32))
	return nil
}

func (l *local) barrier() error {
	if !l.h.barrier() {
		return ErrAborted
	}
	return nil
}

func (l *local) gather(b []byte, root int) ([][]byte, error) {
	all, err := l.allgather(b)
	if err != nil || l.r != root {
		return nil, err
	}
	return all, nil
}

func (l *local) allgather(b []byte) ([][]byte, error) {
	all, err := l.h.exchange(l.r, append([]byte(nil), b...))
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(all))
	for i, a := range all {
		out[i] = append([]byte(nil), a.([]byte)...)
	}
	return out, nil
}

func (l *local) abort(code int) {
	if l.h.n == 1 {
		os.Exit(code)
	}
	l.h.mu.Lock()
	l.h.aborted = true
	l.h.cond.Broadcast()
	l.h.mu.Unlock()
}

func (l *local) finalize() error { return nil }
