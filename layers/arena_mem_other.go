//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package layers

// allocFloats allocates n zeroed float32 values on the Go heap (systems
// without mmap: the old buffer is freed by the collector once no stale
// view refers to it).
func allocFloats(n int) ([]float32, error) { return make([]float32, n), nil }

func freeFloats([]float32) {}
