package infer

import (
	"fmt"

	"github.com/skd-go/skd/config"
	"github.com/skd-go/skd/data"
	"github.com/skd-go/skd/data/synth"
)

// Labels maps the detector's labels (1..NumClasses-1; 0 is background) to
// COCO category ids and names, and back.
type Labels struct {
	// Mode is "contiguous" (label i is the i-th category by ascending id) or
	// "category_id" (label == category id).
	Mode string
	// catIDs[label] and names[label]; index 0 is background.
	catIDs []int64
	names  []string
	byCat  map[int64]int
}

// LabelsFromDataset is the contiguous mapping of a COCO dataset: label l is
// ds.Categories[l-1] (categories by ascending id), named after it.
func LabelsFromDataset(ds *data.Dataset) Labels {
	l := Labels{Mode: "contiguous", catIDs: append([]int64{}, ds.LabelToCatID...), byCat: map[int64]int{}}
	l.names = make([]string, len(l.catIDs))
	l.names[0] = "background"
	for _, c := range ds.Categories {
		if c.Label > 0 && c.Label < len(l.names) {
			l.names[c.Label] = c.Name
		}
	}
	for lab, id := range l.catIDs {
		if lab > 0 {
			l.byCat[id] = lab
		}
	}
	return l
}

// LabelsFromConfig is the mapping when no annotation file is at hand. With
// data.labels "category_id" the label is the category id (torchvision's
// 91-output COCO models); with "contiguous" category id l is assumed for
// label l (true of the synthetic set, ids 1..5). Names come from
// data.class_names (label l is class_names[l-1]); without them, a config
// that uses the synthetic set (data.synth.dir) takes its class names, and
// anything else is named "class L".
func LabelsFromConfig(cfg *config.File) Labels {
	n := cfg.Model.RoI.NumClasses
	l := Labels{Mode: cfg.Data.Labels, catIDs: make([]int64, n), names: make([]string, n), byCat: map[int64]int{}}
	names := cfg.Data.ClassNames
	if len(names) == 0 && cfg.Data.Synth.Dir != "" {
		names = synth.ClassNames(cfg.Data.Synth.Variant)
	}
	l.names[0] = "background"
	for lab := 1; lab < n; lab++ {
		l.catIDs[lab] = int64(lab)
		l.byCat[int64(lab)] = lab
		if lab-1 < len(names) {
			l.names[lab] = names[lab-1]
		}
	}
	return l
}

// NumLabels is the number of labels known, background included.
func (l Labels) NumLabels() int { return len(l.catIDs) }

// CategoryID returns the COCO category id of a label. A label outside the
// known range maps to itself in category_id mode and to -1 otherwise.
func (l Labels) CategoryID(label int) int64 {
	if label >= 0 && label < len(l.catIDs) {
		return l.catIDs[label]
	}
	if l.Mode == "category_id" {
		return int64(label)
	}
	return -1
}

// Label returns the label of a COCO category id.
func (l Labels) Label(catID int64) (int, bool) {
	lab, ok := l.byCat[catID]
	return lab, ok
}

// Name returns a label's class name ("class L" when unnamed).
func (l Labels) Name(label int) string {
	if label >= 0 && label < len(l.names) && l.names[label] != "" {
		return l.names[label]
	}
	return fmt.Sprintf("class %d", label)
}
