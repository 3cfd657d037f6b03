package floors

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/skd-go/skd/"

// packages returns every directory of the module holding Go files (test
// files included: they may not import upwards either), with its files.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string][]string{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "work_dirs") && p != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			pkgs[filepath.ToSlash(rel)] = append(pkgs[filepath.ToSlash(rel)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestNoUpwardImports: every package has a floor and imports only what
// Allowed allows.
func TestNoUpwardImports(t *testing.T) {
	fs := token.NewFileSet()
	for pkg, files := range packages(t) {
		fl, ok := FloorOf(pkg)
		if !ok {
			t.Errorf("package %s has no floor in floors.Floor", pkg)
			continue
		}
		for _, f := range files {
			af, err := parser.ParseFile(fs, f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				dep, ok := strings.CutPrefix(path, module)
				if !ok || dep == pkg {
					continue
				}
				if !Allowed(pkg, dep, strings.HasSuffix(f, "_test.go")) {
					df, ok := FloorOf(dep)
					if !ok {
						df = -1
					}
					t.Errorf("%s (floor %d) imports %s (floor %d)", f, fl, dep, df)
				}
			}
		}
	}
}

// TestShortFunctions: no function of ShortFunctions exceeds MaxFuncLines.
func TestShortFunctions(t *testing.T) {
	fs := token.NewFileSet()
	pkgs := packages(t)
	for _, pkg := range ShortFunctions {
		if len(pkgs[pkg]) == 0 {
			t.Errorf("package %s not found", pkg)
		}
		for _, f := range pkgs[pkg] {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fs, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range af.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok {
					if n := fs.Position(fd.End()).Line - fs.Position(fd.Pos()).Line + 1; n > MaxFuncLines {
						t.Errorf("%s: %s has %d lines (at most %d)", f, fd.Name.Name, n, MaxFuncLines)
					}
				}
			}
		}
	}
}

// TestAllowed: the rule itself, on the cases the floors exist for.
func TestAllowed(t *testing.T) {
	for _, c := range []struct {
		pkg, dep   string
		test, want bool
	}{
		{"model", "roihead", false, true},
		{"roihead", "model", false, false},
		{"config", "model", false, false},
		{"model", "config", false, false},
		{"layers", "train", false, false},
		{"kd", "model", false, false},
		{"model", "kd", false, false},
		{"cocoeval/synth", "cocoeval", false, true},
		{"fpn", "backbone", false, false},
		{"fpn", "backbone", true, true},
		{"fpn", "model", true, false},
		{"nowhere", "layers", false, false},
		{"scripts/new_bench", "train", false, true},
		{"train", "cmd/kdtrain", false, false},
	} {
		if got := Allowed(c.pkg, c.dep, c.test); got != c.want {
			t.Errorf("Allowed(%s, %s, test %v) = %v", c.pkg, c.dep, c.test, got)
		}
	}
}
