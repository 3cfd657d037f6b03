//go:build linux

package dist

import "syscall"

// setThreadNice sets the calling OS thread's nice value (on Linux the
// nice value is per thread: setpriority(2) with a thread id).
func setThreadNice(n int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), n)
}
