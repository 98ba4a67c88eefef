package balance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// testNow is an arbitrary fixed time for tests, in unix nanos.
const testNow = int64(1_800_000_000_000_000_000)

// newTestTable builds a table of backends with the given weights, all
// active, IDs w0, w1, ….
func newTestTable(tb testing.TB, opts Options, weights ...float64) *Table {
	tb.Helper()
	bs := make([]Backend, len(weights))
	for i, w := range weights {
		bs[i] = Backend{ID: fmt.Sprintf("w%d", i), Address: fmt.Sprintf("10.0.0.%d:80", i), Weight: w}
	}
	t, err := NewTable(bs, nil, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func seeded(seed uint64) Rand { return rand.NewPCG(seed, seed) }

// countPicks picks n times at now and counts the picks per backend index.
func countPicks(tb testing.TB, p Picker, r Rand, now int64, n, backends int) []int {
	tb.Helper()
	counts := make([]int, backends)
	for range n {
		b, err := p.Pick(r, now)
		if err != nil {
			tb.Fatalf("pick: %v", err)
		}
		counts[b.Index()]++
	}
	return counts
}

// efficiency is the paper's η = min(r_i/w_i) / max(r_i/w_i).
func efficiency(counts []int, weights []float64) float64 {
	lo, hi := -1.0, 0.0
	for i, c := range counts {
		x := float64(c) / weights[i]
		if lo < 0 || x < lo {
			lo = x
		}
		hi = max(hi, x)
	}
	return lo / hi
}

func nan() float64 { return math.NaN() }
