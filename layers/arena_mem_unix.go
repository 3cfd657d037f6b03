//go:build linux || darwin || freebsd || netbsd || openbsd

package layers

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocFloats maps n zeroed float32 values outside the Go heap, so that
// the arena's old buffer is returned to the system the moment it grows
// (a Go slice would live on while any stale view of it is referenced).
func allocFloats(n int) ([]float32, error) {
	if n == 0 {
		return nil, nil
	}
	b, err := unix.Mmap(-1, 0, 4*n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("arena: mapping %d MB: %w", 4*n>>20, err)
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n), nil
}

// freeFloats unmaps a buffer from allocFloats.
func freeFloats(f []float32) {
	if len(f) == 0 {
		return
	}
	unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f)))
}
