package boxes

import "fmt"

// Match values for predictions that are not matched to a ground-truth box
// (torchvision's Matcher constants).
const (
	// BelowLowThreshold marks a prediction whose best quality is below the
	// low threshold (background).
	BelowLowThreshold = -1
	// BetweenThresholds marks a prediction whose best quality is in
	// [low, high) (ignored).
	BetweenThresholds = -2
)

// Matcher assigns each prediction (anchor or proposal) to a ground-truth
// box, as torchvision.models.detection._utils.Matcher (0.14).
type Matcher struct {
	// High: best quality >= High is a match.
	High float32
	// Low: best quality < Low is BelowLowThreshold; in [Low, High) it is
	// BetweenThresholds.
	Low float32
	// AllowLowQualityMatches restores, for every ground truth, the match of
	// every prediction whose quality with it equals that ground truth's
	// maximum quality (ties included), as set_low_quality_matches_.
	AllowLowQualityMatches bool
}

// RPNMatcher returns torchvision's RPN matcher: 0.7 / 0.3, low-quality
// matches allowed.
func RPNMatcher() Matcher { return Matcher{High: 0.7, Low: 0.3, AllowLowQualityMatches: true} }

// RoIMatcher returns torchvision's RoI-heads matcher: 0.5 / 0.5, no
// low-quality matches.
func RoIMatcher() Matcher { return Matcher{High: 0.5, Low: 0.5} }

// Match takes the numGT x numPred quality matrix (row-major, e.g. IoU(gt,
// predictions) from IoU) and returns, for each prediction, the index of its
// ground truth in [0, numGT) or BelowLowThreshold / BetweenThresholds.
//
// The best ground truth of a prediction is the first one reaching the
// maximum quality (torch's max(dim=0) on CPU). A NaN quality compares false
// everywhere, as in torch. With numGT = 0 every prediction is
// BelowLowThreshold: torchvision's Matcher raises there, and its callers
// (RPN and RoI heads) then label every prediction background, which this
// return value encodes.
func (m Matcher) Match(quality []float32, numGT, numPred int) ([]int, error) {
	if numGT < 0 || numPred < 0 || len(quality) != numGT*numPred {
		return nil, fmt.Errorf("boxes: Match got a quality matrix of %d values for %d ground truths x %d predictions", len(quality), numGT, numPred)
	}
	if m.Low > m.High {
		return nil, fmt.Errorf("boxes: Matcher low threshold %v is above the high threshold %v", m.Low, m.High)
	}
	matches := make([]int, numPred)
	if numGT == 0 {
		for j := range matches {
			matches[j] = BelowLowThreshold
		}
		return matches, nil
	}
	best := make([]float32, numPred)
	copy(best, quality[:numPred])
	for g := 1; g < numGT; g++ {
		row := quality[g*numPred : (g+1)*numPred]
		for j, v := range row {
			// torch's max propagates NaN: a NaN, once seen, stays.
			if best[j] == best[j] && (v > best[j] || v != v) {
				best[j] = v
				matches[j] = g
			}
		}
	}
	var all []int
	if m.AllowLowQualityMatches {
		all = append([]int(nil), matches...)
	}
	for j, v := range best {
		if v < m.Low {
			matches[j] = BelowLowThreshold
		} else if v >= m.Low && v < m.High {
			matches[j] = BetweenThresholds
		}
	}
	if m.AllowLowQualityMatches {
		for g := 0; g < numGT; g++ {
			row := quality[g*numPred : (g+1)*numPred]
			hi := row[0]
			for _, v := range row[1:] {
				if hi == hi && (v > hi || v != v) {
					hi = v
				}
			}
			for j, v := range row {
				if v == hi {
					matches[j] = all[j]
				}
			}
		}
	}
	return matches, nil
}
