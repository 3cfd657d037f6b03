//go:build race

package infer

// raceOn: the race detector instruments allocations, so heap figures mean
// nothing under it.
const raceOn = true
