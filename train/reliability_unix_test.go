//go:build unix

package train

import (
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/skd-go/skd/layers"
)

// TestSaveErrorMessage: a write that fails (here: the file-size limit,
// as a full disk would) names the checkpoint and file once, without the
// doubled "weights: weights:" prefix (issue 12).
func TestSaveErrorMessage(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	reg := layers.NewRegistry()
	reg.Add("big.weight", 64, 64)
	lim := old
	lim.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	_, err := SaveCheckpoint(t.TempDir(), "iter_0000001", reg, nil, &State{Iter: 1}, true)
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if err == nil {
		t.Fatal("write beyond the file-size limit succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "weights: weights:") || !strings.Contains(msg, "checkpoint iter_0000001") || !strings.Contains(msg, "file too large") {
		t.Errorf("message %q", msg)
	}
}
