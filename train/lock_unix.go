//go:build unix

package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// dirLock is an advisory flock on WORK_DIR/.lock; the file holds the
// owner's pid. The kernel drops the lock when the process dies, so a
// killed run never leaves a stale lock.
type dirLock struct{ f *os.File }

func lockDir(dir string) (*dirLock, error) {
	p := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("work dir %s: lock: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		raw, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(raw))
			if pid == "" {
				pid = "unknown"
			}
			return nil, fmt.Errorf("%w: %s is in use by another run (pid %s holds %s): wait for it to end, or choose another train.work_dir",
				ErrWorkDirInUse, dir, pid, p)
		}
		if errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			// a file system without flock (some network mounts): run
			// unlocked rather than not at all
			fmt.Fprintf(os.Stderr, "warning: work dir %s cannot be locked (%v); make sure no other run uses it\n", dir, err)
			return &dirLock{}, nil
		}
		return nil, fmt.Errorf("work dir %s: lock %s: %w", dir, p, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
