package main

import (
	"math"
	"time"
)

// Latency histogram: bucket i holds durations up to histBase × histGrowth^i,
// so a quantile is off by at most one bucket (about 5 %) and the memory is
// fixed whatever the number of requests.
const (
	histBase    = time.Microsecond
	histGrowth  = 1.05
	histBuckets = 512 // histBase × 1.05^511 ≈ 7 × 10^4 s: more than any timeout
)

type histogram struct {
	counts [histBuckets]int64
	n      int64
	max    time.Duration
}

func bucketOf(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(histBase)) / math.Log(histGrowth)))
	return min(i, histBuckets-1)
}

func bucketUpper(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the upper bound of the bucket holding the q-quantile,
// capped by the largest value seen; 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketUpper(i), h.max)
		}
	}
	return h.max
}
