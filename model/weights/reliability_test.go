package weights

import (
	"archive/zip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWholeModelPickle: a file written by torch.save(model) (a pickled
// nn.Module, not a state dict) gets an error saying so and what to do,
// not the unpickler's internal message (issue 12). The pickle is what
// torch.save writes for a module: NEWOBJ of the class, then BUILD with its
// __dict__.
func TestWholeModelPickle(t *testing.T) {
	p := filepath.Join(t.TempDir(), "model.pth")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	w, _ := z.Create("archive/data.pkl")
	w.Write([]byte("\x80\x02ctorchvision.models.detection.faster_rcnn\nFasterRCNN\nq\x00)\x81q\x01}q\x02(X\x08\x00\x00\x00trainingq\x03\x88X\x0b\x00\x00\x00_parametersq\x04ccollections\nOrderedDict\nq\x05)Rq\x06ub."))
	w, _ = z.Create("archive/version")
	w.Write([]byte("3\n"))
	z.Close()
	f.Close()
	_, err = LoadPth(p)
	if err == nil || !strings.Contains(err.Error(), "a whole pickled model (a torchvision.models.detection.faster_rcnn.FasterRCNN object") ||
		!strings.Contains(err.Error(), "model.state_dict()") || strings.Contains(err.Error(), "BUILD") {
		t.Errorf("whole-model pickle: %v", err)
	}
}

// TestOversizedSafetensors: bytes appended to a valid safetensors file are
// reported as trailing data, not as a truncation (issue 12).
func TestOversizedSafetensors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.safetensors")
	if err := SaveSafetensors(p, StateDict{"a": {Shape: []int{2}, Data: []float32{1, 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(b, make([]byte, 100)...), 0o644)
	_, _, err := LoadSafetensors(p)
	if err == nil || strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), "100 bytes follow") {
		t.Errorf("oversized file: %v", err)
	}
	os.WriteFile(p, b[:len(b)-4], 0o644)
	if _, _, err := LoadSafetensors(p); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated file: %v", err)
	}
}
