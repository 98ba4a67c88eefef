package balance

import (
	"testing"
)

// TestPicksFollowWeights is a chi-square goodness-of-fit test: with a fixed
// seed, 200,000 picks over eight weights must not reject the categorical
// distribution at α = 0.001 (critical value 24.322 for 7 degrees of
// freedom). An idle p2c (no load, no latency) reduces to the same pick.
func TestPicksFollowWeights(t *testing.T) {
	t.Parallel()
	weights := []float64{100, 80, 60, 40, 20, 10, 5, 1}
	const n = 200_000
	const critical = 24.322
	tests := []struct {
		name   string
		policy Policy
	}{
		{name: "weighted", policy: PolicyWeighted},
		{name: "idle p2c", policy: PolicyP2C},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			table := newTestTable(t, DefaultOptions(), weights...)
			counts := countPicks(t, table.Picker(tt.policy), seeded(1), testNow, n, len(weights))
			chi2 := chiSquare(counts, weights, n)
			t.Logf("counts %v chi2 %.3f", counts, chi2)
			if chi2 > critical {
				t.Errorf("chi-square %.3f > %.3f: picks do not follow the weights", chi2, critical)
			}
		})
	}
}

// TestChiSquareRejectsWrongWeights guards the test above: the same counts
// judged against other weights must be rejected.
func TestChiSquareRejectsWrongWeights(t *testing.T) {
	t.Parallel()
	table := newTestTable(t, DefaultOptions(), 100, 80, 60, 40)
	counts := countPicks(t, table.Picker(PolicyWeighted), seeded(1), testNow, 100_000, 4)
	if chi2 := chiSquare(counts, []float64{100, 80, 60, 45}, 100_000); chi2 < 16.266 {
		t.Errorf("chi-square %.3f against wrong weights, want > 16.266 (α = 0.001, 3 df)", chi2)
	}
}

func chiSquare(counts []int, weights []float64, n int) float64 {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	var chi2 float64
	for i, c := range counts {
		exp := float64(n) * weights[i] / sum
		d := float64(c) - exp
		chi2 += d * d / exp
	}
	return chi2
}

// TestEfficiency reports the paper's η at 100,000 picks. The paper gives
// about 0.9 for {100,50,25,5} and 0.985 for {100,95,90,85} at 10,000.
func TestEfficiency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []float64
		min     float64
	}{
		{name: "100 50 25 5", weights: []float64{100, 50, 25, 5}, min: 0.9},
		{name: "100 95 90 85", weights: []float64{100, 95, 90, 85}, min: 0.975},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, policy := range []Policy{PolicyWeighted, PolicyP2C} {
				table := newTestTable(t, DefaultOptions(), tt.weights...)
				counts := countPicks(t, table.Picker(policy), seeded(3), testNow, 100_000, len(tt.weights))
				eta := efficiency(counts, tt.weights)
				t.Logf("%s: η = %.4f, counts %v", policy, eta, counts)
				if eta < tt.min {
					t.Errorf("%s: η = %.4f, want >= %.3f", policy, eta, tt.min)
				}
			}
		})
	}
}

func TestWeightNormalisation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   float64
		want float64
	}{
		{name: "in range", in: 42, want: 42},
		{name: "max", in: 100, want: 100},
		{name: "zero becomes epsilon", in: 0, want: epsilonWeight},
		{name: "negative becomes 1", in: -3, want: 1},
		{name: "above 100 becomes 1", in: 100.5, want: 1},
		{name: "NaN becomes 1", in: nan(), want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := normWeight(tt.in); got != tt.want {
				t.Errorf("normWeight(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestZeroWeightAlmostNeverPicked: the prototype raises a zero weight to
// machine epsilon, so next to a real weight it is (practically) never picked.
func TestZeroWeightAlmostNeverPicked(t *testing.T) {
	t.Parallel()
	table := newTestTable(t, DefaultOptions(), 0, 50)
	counts := countPicks(t, table.Picker(PolicyWeighted), seeded(5), testNow, 50_000, 2)
	if counts[0] != 0 {
		t.Errorf("zero-weight backend picked %d times", counts[0])
	}
	only := newTestTable(t, DefaultOptions(), 0)
	if b, err := only.Picker(PolicyWeighted).Pick(seeded(5), testNow); err != nil || b.ID != "w0" {
		t.Errorf("only backend with zero weight: got %v, %v", b, err)
	}
}
