package boxes

import "testing"

// BenchmarkNMS10k runs NMS at IoU 0.7 on the 10k boxes of
// testdata/nms10k.bin (the boxes scripts/boxes_bench.py times with
// torchvision.ops.nms).
func BenchmarkNMS10k(b *testing.B) {
	d := loadNMS10k(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := NMS(d.boxes, d.scores, 0.7); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNMS10kAllPairs is BenchmarkNMS10k through the kernel's
// all-pairs loop (no grid), for comparison.
func BenchmarkNMS10kAllPairs(b *testing.B) {
	d := loadNMS10k(b)
	idx := make([]int, len(d.scores))
	for i := range idx {
		idx[i] = i
	}
	var w nmsWork
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.runAllPairs(d.boxes, d.scores, idx, 0.7)
	}
}

// BenchmarkBatchedNMS10k runs per-group NMS at IoU 0.7 on the same boxes
// split into 5 groups (the RPN's per-level NMS shape).
func BenchmarkBatchedNMS10k(b *testing.B) {
	d := loadNMS10k(b)
	groups := make([]int, len(d.scores))
	for i := range groups {
		groups[i] = i % 5
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := BatchedNMS(d.boxes, d.scores, groups, 0.7); err != nil {
			b.Fatal(err)
		}
	}
}
