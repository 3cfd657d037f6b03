package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A small persistent worker pool: spawning goroutines per GEMM would
// dominate small products. Tasks are handed over without blocking; when
// every worker is busy (or a task itself calls gemmParallel) the caller runs
// the work itself, so nested use cannot deadlock.

type poolJob struct {
	next atomic.Int64
	n    int64
	f    func(int)
	wg   sync.WaitGroup
}

var (
	poolOnce sync.Once
	poolCh   chan *poolJob
)

func startPool() {
	workers := max(1, runtime.NumCPU()-1)
	poolCh = make(chan *poolJob, 4*workers)
	for i := 0; i < workers; i++ {
		go func() {
			for j := range poolCh {
				j.run()
				j.wg.Done()
			}
		}()
	}
}

func (j *poolJob) run() {
	for {
		t := j.next.Add(1) - 1
		if t >= j.n {
			return
		}
		j.f(int(t))
	}
}

// gemmParallel calls f(0..n-1), distributing the calls dynamically over the
// calling goroutine and up to GOMAXPROCS-1 pool workers, and returns when
// all calls have finished.
func gemmParallel(n int, f func(int)) {
	if n <= 0 {
		return
	}
	helpers := min(n, runtime.GOMAXPROCS(0)) - 1
	if helpers <= 0 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	poolOnce.Do(startPool)
	j := &poolJob{n: int64(n), f: f}
	for h := 0; h < helpers; h++ {
		j.wg.Add(1)
		select {
		case poolCh <- j:
		default:
			j.wg.Done()
		}
	}
	j.run()
	j.wg.Wait()
}
