//go:build race

package kernels

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// steady-state allocation checks are skipped.
const raceEnabled = true
