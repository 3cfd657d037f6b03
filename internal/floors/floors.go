// Package floors declares the project's import floors (docs/ARCHITECTURE.md
// draws them): a package may import only packages on lower floors, so
// leaves know no graph, model parts know no trainer, and nothing imports
// upwards. Its test checks every package of the module against Floor and
// the length of the functions in the packages a newcomer reads first.
package floors

// Floor maps each package (path inside the module) to its floor. A
// package not listed (outside cmd/ and scripts/) is an error of the test:
// a new package gets a floor here, with the picture in
// docs/ARCHITECTURE.md.
var Floor = map[string]int{
	// 0: tools of the module itself (YAML loading, test helpers).
	"internal/yamlconf": 0, "internal/detrand": 0, "internal/golden": 0, "internal/floors": 0,
	// 1: leaves, no graph: kernels, box geometry, data, COCO evaluation,
	// weight files, writers.
	"kernels": 1, "boxes": 1, "data": 1, "data/synth": 1, "cocoeval": 1, "cocoeval/synth": 1,
	"tensorboard": 1, "plots": 1, "model/weights": 1, "export/onnxpb": 1,
	// the data-parallel world (MPI binding behind the mpi tag).
	"dist": 1,
	// 2: the graph's building blocks (custom ops over kernels, builder, machine).
	"layers": 2,
	// 3: model parts, each stage owning its head, targets and loss; the
	// distillation losses.
	"backbone": 3, "fpn": 3, "rpn": 3, "roihead": 3, "kd": 3,
	// 4: the detector's configuration.
	"model/modelcfg": 4,
	// 5: the assembled detector; the configuration schema.
	"model": 5, "config": 5,
	// 6: configuration -> components.
	"glue": 6,
	// 7: inference and evaluation; the detector as an ONNX graph.
	"infer": 7, "export": 7,
	// 8: the training loop and its hooks.
	"train": 8,
	// 9: commands and scripts: every package under cmd/ and scripts/
	// (FloorOf).
}

// Top is the floor of every package under cmd/ and scripts/.
const Top = 9

// FloorOf returns a package's floor: Floor's entry, Top under cmd/ and
// scripts/; ok is false for any other package not in Floor.
func FloorOf(pkg string) (int, bool) {
	if f, ok := Floor[pkg]; ok {
		return f, true
	}
	for _, top := range []string{"cmd/", "scripts/"} {
		if len(pkg) > len(top) && pkg[:len(top)] == top {
			return Top, true
		}
	}
	return 0, false
}

// Allowed tells whether package pkg may import dep: dep is on a lower
// floor, or on the same floor and pkg is one of its sub-packages
// (cocoeval/synth uses cocoeval), or the importing file is a test (a test
// may use a sibling, e.g. the FPN's tests run it on a backbone).
// Model parts never import kd (the detector knows nothing of
// distillation; train joins the two).
func Allowed(pkg, dep string, test bool) bool {
	if dep == "kd" && (pkg == "model" || pkg == "model/modelcfg") {
		return false
	}
	pf, ok1 := FloorOf(pkg)
	df, ok2 := FloorOf(dep)
	switch {
	case !ok1 || !ok2:
		return false
	case df < pf:
		return true
	case df == pf:
		return test || len(pkg) > len(dep) && pkg[:len(dep)+1] == dep+"/"
	}
	return false
}

// ShortFunctions are the packages whose functions stay within MaxFuncLines
// lines (the ones a reader follows one training iteration through).
var ShortFunctions = []string{"model", "roihead", "rpn", "train", "glue"}

// MaxFuncLines bounds a function in ShortFunctions, declaration to brace.
const MaxFuncLines = 80
