//go:build race

package kd

// raceEnabled: the race detector instruments allocations (sync.Pool drops
// items at random), so allocation counts mean nothing under it.
const raceEnabled = true
