package layers

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Group watch: a callback at the point of the tape where a group of values
// (the gradients of a data-parallel bucket) has been computed, while the
// machine goes on with the rest of the program.
//
// Why not an op in the graph: Gorgonia's tape is the reverse of
// gonum's stabilised topological sort, a depth-first post-order over the
// nodes in increasing id. A node's inputs always have smaller ids, so the
// tape is simply the order in which the nodes were created; an op added
// after G.Grad (the only time the gradient nodes exist) has the largest
// id and runs after the whole backward pass, however early its inputs are
// ready (model's TestPitfallGraphOpAfterGradRunsLast pins this). Placing
// it earlier would mean renumbering Gorgonia's nodes or rewriting its
// tape. The watch gets the same effect without touching either: a planned
// machine knows each op's place in the tape (Arena.plan), and every op of
// the project calls opBase.out when it starts computing, when every op
// before it has finished; the first op past a group's last node reports
// the group.

// watch is a machine's group watch during one run.
type watch struct {
	at       []int // tape position after which group k is complete (ascending)
	f        func(k int)
	next     int
	reported []int
	tape     int
}

// reached is called when the op at tape position seq starts.
func (w *watch) reached(seq int) {
	for w.next < len(w.at) && w.at[w.next] < seq {
		w.reported[w.next] = seq
		k := w.next
		w.next++
		w.f(k)
	}
}

// finish reports the groups not reported during the run.
func (w *watch) finish() {
	for w.next < len(w.at) {
		w.reported[w.next] = w.tape
		k := w.next
		w.next++
		w.f(k)
	}
}

// WatchGroups makes every later successful Run call f(k), for k = 0, 1,
// ... in order, as soon as every node of groups[k] (and of the groups
// before it) has been computed: on the machine's goroutine, at the start
// of the first op of the tape past the group's last node, while the rest
// of the program waits for f to return. Groups not reported by then are
// reported after the last op, before Run returns (all of them on a
// machine without an arena: its ops' places in the tape are not known).
// The nodes' values are final when f runs: a planned value is never
// rewritten in the run that computed it. nil groups stop the watch.
func (m *Machine) WatchGroups(groups [][]*G.Node, f func(k int)) error {
	if groups == nil {
		m.watch = nil
		return nil
	}
	w := &watch{at: make([]int, len(groups)), f: f, reported: make([]int, len(groups))}
	if m.plan != nil {
		w.tape = m.plan.tape
	}
	last := -1
	for k, g := range groups {
		w.at[k] = w.tape // unplanned: never reached during the run
		if m.plan == nil {
			continue
		}
		for _, n := range g {
			mo, ok := n.Op().(memOp)
			if !ok {
				return fmt.Errorf("watching %v: not an op of the project (%T)", n, n.Op())
			}
			last = max(last, mo.base().seq)
		}
		w.at[k] = last
	}
	m.watch = w
	return nil
}

// Watched describes the last run of a watched machine: each group's last
// node's tape position, the position of the op whose start reported it
// (tape, the number of tape positions, when it was reported after the
// last op).
func (m *Machine) Watched() (last, reported []int, tape int) {
	if m.watch == nil {
		return nil, nil, 0
	}
	w := m.watch
	return append([]int(nil), w.at...), append([]int(nil), w.reported...), w.tape
}
