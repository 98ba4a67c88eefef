package score

import (
	"math"
	"testing"

	"github.com/rustybalancer/rb/events"
)

const tol = 1e-9

func near(got, want float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

var (
	nan  = math.NaN()
	inf  = math.Inf(1)
	ninf = math.Inf(-1)
)

func TestCPUPercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   float64
		want float64
	}{
		{"in range passes", 37.5, 37.5},
		{"zero", 0, 0},
		{"full allowance", 100, 100},
		{"negative clamps to 0", -5, 0},
		{"over 100 clamps (prototype gave a negative score)", 250, 100},
		{"NaN counts as fully used", nan, 100},
		{"+Inf counts as fully used", inf, 100},
		{"-Inf counts as fully used", ninf, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := cpuPercent(tt.in); !near(got, tt.want) {
				t.Errorf("cpuPercent(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestMemPercent(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	tests := []struct {
		name         string
		usage, limit uint64
		want         float64
	}{
		{"half: 512 MiB / 1024 MiB × 100 = 50", 512 * mib, 1024 * mib, 50},
		{"a third: 1 / 3 × 100 = 33.33…", 1, 3, 100.0 / 3},
		{"idle", 0, 1024 * mib, 0},
		{"no limit figures (0): unused", 5 * mib, 0, 0},
		{"nothing at all", 0, 0, 0},
		{"over the limit clamps to 100", 2048 * mib, 1024 * mib, 100},
		{"largest values: max/max × 100 = 100", math.MaxUint64, math.MaxUint64, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := memPercent(tt.usage, tt.limit); !near(got, tt.want) {
				t.Errorf("memPercent(%d, %d) = %v, want %v", tt.usage, tt.limit, got, tt.want)
			}
		})
	}
}

func TestNetPercent(t *testing.T) {
	t.Parallel()
	const capacity = 125e6 // 1 Gbit/s in bytes/s
	tests := []struct {
		name          string
		rx, tx, capac float64
		want          float64
	}{
		{"(12.5e6 + 0) / 125e6 × 100 = 10", 12.5e6, 0, capacity, 10},
		{"(50e6 + 50e6) / 125e6 × 100 = 80", 50e6, 50e6, capacity, 80},
		{"steady heavy traffic stays heavy: 200e6 / 125e6 → 100", 200e6, 0, capacity, 100},
		{"idle", 0, 0, capacity, 0},
		{"negative rate counts as 0: (0 + 12.5e6) / 125e6 × 100 = 10", -5, 12.5e6, capacity, 10},
		{"NaN rx counts as full", nan, 0, capacity, 100},
		{"+Inf tx counts as full", 0, inf, capacity, 100},
		{"-Inf rx counts as full", ninf, 0, capacity, 100},
		{"huge finite rates do not overflow into NaN", math.MaxFloat64, math.MaxFloat64, capacity, 100},
		{"zero capacity (invalid Params) never divides", 1, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := netPercent(tt.rx, tt.tx, tt.capac); !near(got, tt.want) {
				t.Errorf("netPercent(%v, %v, %v) = %v, want %v", tt.rx, tt.tx, tt.capac, got, tt.want)
			}
		})
	}
}

func TestBase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		best, effective float64
		want            float64
	}{
		{"as fast as the best: 100 × 1^1.5 = 100", 0.001, 0.001, 100},
		{"4× slower: 100 × 0.25^1.5 = 100 × 0.125 = 12.5", 0.001, 0.004, 12.5},
		{"100 × (0.01/0.0225)^1.5 = 100 × (4/9)^1.5 = 100 × 8/27 = 29.6296…", 0.01, 0.0225, 800.0 / 27},
		{"faster than the best clamps: 100 × 2^1.5 → 100", 0.002, 0.001, 100},
		{"zero effective time: 100, not Inf or NaN", 0, 0, 100},
		{"zero best: 0", 0, 1, 0},
		{"tiny effective, overflow to +Inf clamps to 100", 1, 5e-324, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := base(tt.best, tt.effective); !near(got, tt.want) {
				t.Errorf("base(%v, %v) = %v, want %v", tt.best, tt.effective, got, tt.want)
			}
		})
	}
}

func TestNextThreshold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		thr, mean, floor float64
		want             float64
	}{
		{"0.9 × 1.0 + 0.1 × 1.5 × 0.001 = 0.90015", 1.0, 0.001, 0.5, 0.90015},
		{"0.9 × 0.5 + 0.00015 = 0.45015 → floor 0.5", 0.5, 0.001, 0.5, 0.5},
		{"slow history raises it: 0.9 × 1.0 + 0.1 × 1.5 × 2 = 1.2", 1.0, 2.0, 0.5, 1.2},
		{"empty history (mean 0): 0.9 × 1.0 = 0.9", 1.0, 0, 0.5, 0.9},
		{"zero floor: 0.9 × 0.1 = 0.09", 0.1, 0, 0, 0.09},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := nextThreshold(tt.thr, tt.mean, tt.floor); !near(got, tt.want) {
				t.Errorf("nextThreshold(%v, %v, %v) = %v, want %v", tt.thr, tt.mean, tt.floor, got, tt.want)
			}
		})
	}
}

func TestPenalty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		effective, thr float64
		want           float64
	}{
		{"under the threshold: 0", 0.4, 0.5, 0},
		{"at the threshold: 0", 0.5, 0.5, 0},
		{"1 s over: 20 × (1 − e^−1) = 20 × 0.6321205588 = 12.642411177", 1.5, 0.5, 20 * (1 - 1/math.E)},
		{"ln 2 over: 20 × (1 − 1/2) = 10", 0.5 + math.Ln2, 0.5, 10},
		{"far over approaches 20", 3600, 0.5, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := penalty(tt.effective, tt.thr); !near(got, tt.want) {
				t.Errorf("penalty(%v, %v) = %v, want %v", tt.effective, tt.thr, got, tt.want)
			}
		})
	}
}

func TestTrend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		history []float64 // oldest first
		want    float64
	}{
		{"empty: 0", 20, nil, 0},
		{"one entry: 0 (prototype divided by 5)", 20, []float64{1}, 0},
		{"k=1, slower: (1 − 2) / 1 = −1", 20, []float64{1, 2}, -1},
		{"k=1, faster: (2 − 1) / 2 = 0.5", 20, []float64{2, 1}, 0.5},
		{"k=1 of 3 entries: older 2, recent 0.5: (2 − 0.5)/2 = 0.75", 20, []float64{1, 2, 0.5}, 0.75},
		{"k=3 of 7: older mean 1, recent mean 2: (1 − 2)/1 = −1", 20, []float64{9, 1, 1, 1, 2, 2, 2}, -1},
		{"k=5: older 1, recent 0.5: (1 − 0.5)/1 = 0.5", 20, []float64{1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5}, 0.5},
		{"only the newest 10 count: 0.5", 20, []float64{100, 100, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5}, 0.5},
		{"older mean 0: 0 (prototype gave NaN)", 20, []float64{0, 0, 1, 1}, 0},
		{"all zero: 0", 20, []float64{0, 0, 0, 0}, 0},
		{"tiny older mean: (0.001 − 1000)/0.001 = −999999 → bounded at −10", 20, []float64{0.001, 1000}, -10},
		{"denormal older mean: −Inf → bounded at −10", 20, []float64{5e-324, 3600}, -10},
		{"ring wrapped: newest 4 of [1,2,3,4,5] in size 4: older (2+3)/2 = 2.5, recent 4.5: (2.5−4.5)/2.5 = −0.8", 4, []float64{1, 2, 3, 4, 5}, -0.8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRing(tt.size)
			for _, v := range tt.history {
				r.push(v)
			}
			if got := trend(&r); !near(got, tt.want) {
				t.Errorf("trend(%v) = %v, want %v", tt.history, got, tt.want)
			}
		})
	}
}

func TestBestTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		window  int
		history []float64 // pushed oldest first
		want    float64
	}{
		{"empty: 0", 20, 10, nil, 0},
		{"one answer", 20, 10, []float64{0.002}, 0.002},
		{"only slower answers after the first: list [0.001]", 20, 10, []float64{0.001, 0.002, 0.003}, 0.001},
		{"equal does not beat: list [0.001]", 20, 10, []float64{0.001, 0.001, 0.001}, 0.001},
		{"record lows: list [0.004, 0.003, 0.002], mean 0.003", 20, 10, []float64{0.004, 0.005, 0.003, 0.003, 0.002}, 0.003},
		{"window 2 keeps the newest 2 of [5, 4, 3, 2]: (3 + 2)/2 = 2.5", 20, 2, []float64{5, 4, 3, 2}, 2.5},
		{"window 1 of [5, 4, 3]: 3", 20, 1, []float64{5, 4, 3}, 3},
		{"an answer leaves with the history: size 3, [0.1, 0.2, 0.2, 0.2] keeps [0.2, 0.2, 0.2]: list [0.2]", 3, 10, []float64{0.1, 0.2, 0.2, 0.2}, 0.2},
		{"wrapped ring: size 4, [9, 1, 5, 4, 3, 6] keeps [5, 4, 3, 6]: list [5, 4, 3], mean 4", 4, 10, []float64{9, 1, 5, 4, 3, 6}, 4},
		{"wrapped ring, window 2: list [5, 4, 3], newest 2: 3.5", 4, 2, []float64{9, 1, 5, 4, 3, 6}, 3.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRing(tt.size)
			for _, v := range tt.history {
				r.push(v)
			}
			if got := bestTime(&r, tt.window); !near(got, tt.want) {
				t.Errorf("bestTime(%v, window %d) = %v, want %v", tt.history, tt.window, got, tt.want)
			}
		})
	}
}

func TestCategory(t *testing.T) {
	t.Parallel()
	p := DefaultParams()
	tests := []struct {
		name    string
		overall float64
		want    events.Category
	}{
		{"100 is LU", 100, events.CategoryLU},
		{"at the LU cut-off 70 is LU", 70, events.CategoryLU},
		{"just under 70 is MU", 69.999, events.CategoryMU},
		{"at the MU cut-off 40 is MU", 40, events.CategoryMU},
		{"just under 40 is HU", 39.999, events.CategoryHU},
		{"0 is HU", 0, events.CategoryHU},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := category(p, tt.overall); got != tt.want {
				t.Errorf("category(%v) = %s, want %s", tt.overall, got, tt.want)
			}
		})
	}
}

func TestProbeTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		ok         bool
		secs       float64
		resolution float64
		want       float64
		wantOK     bool
	}{
		{"answer", true, 0.002, 0, 0.002, true},
		{"zero latency is an answer", true, 0, 0, 0, true},
		{"exactly the timeout is an answer", true, 5, 0, 5, true},
		{"later than the timeout is no answer", true, 5.001, 0, 0, false},
		{"probe failed", false, 0.002, 0, 0, false},
		{"negative latency is no answer", true, -0.001, 0, 0, false},
		{"NaN latency is no answer", true, nan, 0, 0, false},
		{"+Inf latency is no answer", true, inf, 0, 0, false},
		{"above the resolution: as it is", true, 0.002, 0.001, 0.002, true},
		{"at the resolution: as it is", true, 0.001, 0.001, 0.001, true},
		{"below the resolution counts as it: 0.0001 → 0.001", true, 0.0001, 0.001, 0.001, true},
		{"zero latency counts as the resolution", true, 0, 0.001, 0.001, true},
		{"failed probe stays no answer whatever the resolution", false, 0.0001, 0.001, 0, false},
		{"past the timeout stays no answer", true, 5.001, 0.001, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := probeTime(tt.ok, tt.secs, 5, tt.resolution)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("probeTime(%v, %v, 5, %v) = %v, %v; want %v, %v", tt.ok, tt.secs, tt.resolution, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestClampScore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   float64
		want float64
	}{
		{"in range", 42, 42},
		{"negative", -1, 0},
		{"over", 101, 100},
		{"NaN becomes 0", nan, 0},
		{"+Inf", inf, 100},
		{"-Inf", ninf, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := clampScore(tt.in); got != tt.want {
				t.Errorf("clampScore(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
