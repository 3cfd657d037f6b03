package infer

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IsImageFile reports whether a file name has an image extension the
// commands read (.jpg, .jpeg, .png, any case).
func IsImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// CollectImages expands the --images arguments: directories (not
// recursively) into their image files, files as given; it returns the
// paths sorted, without duplicates. A path that does not exist, or a
// directory without images, is an error; a file that exists but cannot be
// decoded is reported later, when it is read.
func CollectImages(args []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if c := filepath.Clean(p); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("--images: %w", err)
		}
		if !st.IsDir() {
			add(a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("--images %s: %w", a, err)
		}
		n := 0
		for _, e := range entries {
			if !e.IsDir() && IsImageFile(e.Name()) {
				add(filepath.Join(a, e.Name()))
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("--images %s: no .jpg, .jpeg or .png files in the directory", a)
		}
	}
	sort.Strings(out)
	return out, nil
}
