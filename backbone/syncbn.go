package backbone

import "github.com/skd-go/skd/layers"

// SetStatReducer connects the batch-statistics BatchNorms of a "SyncBN"
// backbone to the ranks of a data-parallel run (nil disconnects them) and
// returns how many it connected; with another norm it does nothing.
func (r *ResNet) SetStatReducer(red layers.StatReducer) int {
	if r.Cfg.Norm != "SyncBN" {
		return 0
	}
	n := 0
	set := func(bn *layers.FrozenBN) {
		if bn != nil && bn.BatchStats {
			bn.Sync = red
			n++
		}
	}
	set(r.bn1)
	for _, st := range r.stages {
		for _, b := range st {
			for _, bn := range []*layers.FrozenBN{b.bn1, b.bn2, b.bn3, b.downBN} {
				set(bn)
			}
		}
	}
	return n
}
