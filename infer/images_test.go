package infer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCollectImages(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.PNG", "a.jpg", "c.jpeg", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := CollectImages([]string{dir, filepath.Join(dir, "a.jpg"), filepath.Join(dir, "notes.txt")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.jpg"), filepath.Join(dir, "b.PNG"), filepath.Join(dir, "c.jpeg"), filepath.Join(dir, "notes.txt")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := CollectImages([]string{filepath.Join(dir, "missing.jpg")}); err == nil || !strings.Contains(err.Error(), "missing.jpg") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := CollectImages([]string{filepath.Join(dir, "sub.jpg")}); err == nil || !strings.Contains(err.Error(), "no .jpg") {
		t.Errorf("directory without images: %v", err)
	}
}
