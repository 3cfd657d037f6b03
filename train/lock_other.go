//go:build !unix

package train

// dirLock is a no-op where flock is not available.
type dirLock struct{}

func lockDir(dir string) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) release() {}
