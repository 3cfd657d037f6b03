//go:build !race

package kd

const raceEnabled = false
