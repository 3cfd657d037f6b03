package dist

import (
	"fmt"
	"syscall"
	"testing"
)

// TestLocalAsyncNice: a communication thread with a lower priority runs
// the same collectives, and runs them at that priority.
func TestLocalAsyncNice(t *testing.T) {
	runLocal(t, 2, func(w *World) error {
		if err := checkAsync(w, 10); err != nil {
			return err
		}
		return w.c.(*funnel).do(func() error {
			// the raw syscall returns 20 - nice
			p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
			if err != nil || 20-p != 10 {
				return fmt.Errorf("communication thread at nice %d (%v), want 10", 20-p, err)
			}
			return nil
		})
	})
}
