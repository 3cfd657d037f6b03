package boxes

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// BalancedSampler draws a fixed-size batch of positive and negative
// examples per image, as torchvision's BalancedPositiveNegativeSampler:
// labels >= 1 are positive, 0 negative, anything else (e.g. -1 ignored) is
// never sampled; at most int(BatchSizePerImage*PositiveFraction) positives,
// and negatives fill the rest of the batch as far as there are any.
type BalancedSampler struct {
	// BatchSizePerImage is the number of examples per image (256 for the
	// RPN, 512 for the RoI heads).
	BatchSizePerImage int
	// PositiveFraction is the largest fraction of positives (0.5 for the
	// RPN, 0.25 for the RoI heads).
	PositiveFraction float64
}

// Counts returns the candidate positive and negative indices (increasing)
// of labels and how many of each the sampler takes.
func (s BalancedSampler) Counts(labels []int) (pos, neg []int, numPos, numNeg int, err error) {
	if s.BatchSizePerImage < 0 || !(s.PositiveFraction >= 0 && s.PositiveFraction <= 1) {
		return nil, nil, 0, 0, fmt.Errorf("boxes: BalancedSampler has batch size %d and positive fraction %v, want >= 0 and in [0, 1]", s.BatchSizePerImage, s.PositiveFraction)
	}
	for i, l := range labels {
		if l >= 1 {
			pos = append(pos, i)
		} else if l == 0 {
			neg = append(neg, i)
		}
	}
	numPos = min(len(pos), int(float64(s.BatchSizePerImage)*s.PositiveFraction))
	numNeg = min(len(neg), s.BatchSizePerImage-numPos)
	return pos, neg, numPos, numNeg, nil
}

// Sample draws the batch with rng (caller-owned, so runs are reproducible
// from its seed) and returns the sampled positive and negative indices into
// labels, each in increasing order (the order of torchvision's masks).
func (s BalancedSampler) Sample(labels []int, rng *rand.Rand) (pos, neg []int, err error) {
	if rng == nil {
		return nil, nil, fmt.Errorf("boxes: BalancedSampler.Sample needs a random source, got nil")
	}
	cp, cn, np, nn, err := s.Counts(labels)
	if err != nil {
		return nil, nil, err
	}
	pos = pick(cp, np, rng)
	neg = pick(cn, nn, rng)
	return pos, neg, nil
}

// pick selects k of the candidates uniformly (partial Fisher-Yates) and
// returns them sorted. It reorders cand.
func pick(cand []int, k int, rng *rand.Rand) []int {
	for i := 0; i < k; i++ {
		j := i + rng.IntN(len(cand)-i)
		cand[i], cand[j] = cand[j], cand[i]
	}
	out := append([]int(nil), cand[:k]...)
	slices.Sort(out)
	return out
}

// SampleWithPermutations samples with explicit permutations instead of a
// random source: torchvision takes positive[randperm(P)[:numPos]] and
// negative[randperm(N)[:numNeg]], and feeding the same two permutations
// (of the candidate positives and negatives, in increasing index order)
// reproduces its choice exactly. Only the first numPos / numNeg entries are
// used; each must be a distinct index into the candidates.
func (s BalancedSampler) SampleWithPermutations(labels, posPerm, negPerm []int) (pos, neg []int, err error) {
	cp, cn, np, nn, err := s.Counts(labels)
	if err != nil {
		return nil, nil, err
	}
	pos, err = takePerm(cp, posPerm, np, "positive")
	if err != nil {
		return nil, nil, err
	}
	neg, err = takePerm(cn, negPerm, nn, "negative")
	if err != nil {
		return nil, nil, err
	}
	return pos, neg, nil
}

func takePerm(cand, perm []int, k int, what string) ([]int, error) {
	if len(perm) < k {
		return nil, fmt.Errorf("boxes: SampleWithPermutations needs %d %s permutation entries, got %d", k, what, len(perm))
	}
	seen := make(map[int]bool, k)
	out := make([]int, k)
	for i, p := range perm[:k] {
		if p < 0 || p >= len(cand) || seen[p] {
			return nil, fmt.Errorf("boxes: SampleWithPermutations %s permutation entry %d is %d: out of range [0, %d) or repeated", what, i, p, len(cand))
		}
		seen[p] = true
		out[i] = cand[p]
	}
	slices.Sort(out)
	return out, nil
}

// Bind returns the sampler as a per-image function drawing from rng: the
// default of both stages' samplers (rpn.SampleFunc, roihead.SampleFunc),
// which parity tests replace with torchvision's recorded choices.
func (s BalancedSampler) Bind(rng *rand.Rand) func(image int, labels []int) (pos, neg []int, err error) {
	return func(_ int, labels []int) ([]int, []int, error) { return s.Sample(labels, rng) }
}
