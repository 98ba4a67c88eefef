package balance

import "math"

// aliasEntry is one column of Vose's alias table: a uniform column k is kept
// with probability thr/2^64 (self) and otherwise gives way to its alias
// (other). Both are indexes into Table.backends; the entry also holds their
// Stats, so that a draw touches the column and the chosen Stats only, two
// cache lines, however large the table.
type aliasEntry struct {
	thr        uint64
	selfStats  *Stats
	otherStats *Stats
	self       int32
	other      int32
}

// buildAlias builds Vose's alias table for the backends at idx with the
// given positive weights, in O(n).
func buildAlias(idx []int32, weights []float64, backends []Backend) []aliasEntry {
	n := len(idx)
	if n == 0 {
		return nil
	}
	var sum float64
	for _, w := range weights {
		sum += w
	}
	scaled := make([]float64, n)
	small := make([]int, 0, n)
	large := make([]int, 0, n)
	for i, w := range weights {
		scaled[i] = w / sum * float64(n)
		if scaled[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	out := make([]aliasEntry, n)
	for len(small) > 0 && len(large) > 0 {
		s := small[len(small)-1]
		small = small[:len(small)-1]
		l := large[len(large)-1]
		out[s] = aliasEntry{thr: threshold(scaled[s]), self: idx[s], other: idx[l]}
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left has probability 1 up to rounding.
	for _, i := range large {
		out[i] = aliasEntry{thr: math.MaxUint64, self: idx[i], other: idx[i]}
	}
	for _, i := range small {
		out[i] = aliasEntry{thr: math.MaxUint64, self: idx[i], other: idx[i]}
	}
	for k := range out {
		out[k].selfStats = backends[out[k].self].stats
		out[k].otherStats = backends[out[k].other].stats
	}
	return out
}

// threshold maps p in [0, 1] to the 64-bit cut-off a uniform value is
// compared with.
func threshold(p float64) uint64 {
	if p >= 1 {
		return math.MaxUint64
	}
	if p <= 0 {
		return 0
	}
	return uint64(p * 0x1p64)
}
