package model

import (
	"fmt"
	"math"
	"sort"
)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Losses are a training step's named loss values and their total.
type Losses map[string]float64

// CheckFinite reports the first loss that is NaN or infinite.
func (l Losses) CheckFinite() error {
	for _, k := range sortedKeys(l) {
		if v := l[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s is %v", k, v)
		}
	}
	return nil
}
