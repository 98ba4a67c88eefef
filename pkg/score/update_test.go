package score_test

import (
	"math"
	"testing"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/score"
)

const tol = 1e-9

func near(got, want float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// probe is an idle sample (no CPU, memory or network use) with one probe result.
func probe(ok bool, secs float64) events.Sample {
	return events.Sample{
		App: "shop", Container: "shop-1", State: "running", WindowSeconds: 1,
		MemLimit: 1 << 30, ProbeOK: ok, ProbeSeconds: secs,
	}
}

// TestUpdateAvailabilitySequence follows the availability algorithm step by
// step with the default Params (HISTORY_SIZE 20, BEST_TIME_WINDOW 10,
// EMA_ALPHA 0.2, threshold start 1.0, floor 0.5, probe resolution 1 ms).
func TestUpdateAvailabilitySequence(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := score.NewState(p)

	type want struct {
		probeOK                               bool
		eff, best, thr, base, pen, trend, raw float64
		hist                                  int
		avail                                 float64
	}
	steps := []struct {
		name   string
		sample events.Sample
		want   want
	}{
		{
			// history [0.001], best [0.001]; mean 0.001
			// eff = 0.3 × 0.001 + 0.7 × 0.001 = 0.001
			// thr = max(0.5, 0.9 × 1.0 + 0.1 × 1.5 × 0.001) = 0.90015
			// base = 100 × (0.001/0.001)^1.5 = 100; penalty 0 (0.001 ≤ thr); trend 0 (1 entry)
			// raw 100; EMA = 0.2 × 100 + 0.8 × 100 = 100
			name: "first answer", sample: probe(true, 0.001),
			want: want{true, 0.001, 0.001, 0.90015, 100, 0, 0, 100, 1, 100},
		},
		{
			// history [0.001, 0.002], best stays [0.001] (0.002 does not beat 0.001); mean 0.0015
			// eff = 0.3 × 0.002 + 0.7 × 0.0015 = 0.0006 + 0.00105 = 0.00165
			// thr = max(0.5, 0.9 × 0.90015 + 0.15 × 0.0015) = 0.810135 + 0.000225 = 0.81036
			// base = 100 × (0.001/0.00165)^1.5 = 100 × 0.6060606^1.5 = 47.18175419
			// trend: k = min(5, 2/2) = 1; older 0.001, recent 0.002: (0.001 − 0.002)/0.001 = −1 → −10
			// raw = 47.18175419 − 0 − 10 = 37.18175419
			// EMA = 0.2 × 37.18175419 + 0.8 × 100 = 87.43635084
			name: "slower answer", sample: probe(true, 0.002),
			want: want{true, 0.00165, 0.001, 0.81036, 47.18175419160745, 0, -1, 37.18175419160745, 2, 87.43635083832149},
		},
		{
			// no answer: raw 0; history, best list and threshold unchanged
			// EMA = 0.2 × 0 + 0.8 × 87.43635084 = 69.94908067
			name: "no answer", sample: probe(false, 5),
			want: want{false, 0, 0.001, 0.81036, 0, 0, 0, 0, 2, 69.9490806706572},
		},
		{
			// 0.5 ms is below the 1 ms resolution: it counts as 0.001
			// history [0.001, 0.002, 0.001], mean 0.004/3 = 0.00133333
			// best stays [0.001] (0.001 does not beat 0.001), best = 0.001
			// eff = 0.3 × 0.001 + 0.7 × 0.00133333 = 0.0003 + 0.00093333 = 0.00123333
			// thr = max(0.5, 0.9 × 0.81036 + 0.15 × 0.00133333) = 0.729324 + 0.0002 = 0.729524
			// base = 100 × (0.001/0.00123333)^1.5 = 100 × 0.81081081^1.5 = 73.00948685
			// trend: k = 1; older 0.002, recent 0.001: (0.002 − 0.001)/0.002 = 0.5 → +5
			// raw = 73.00948685 + 5 = 78.00948685
			// EMA = 0.2 × 78.00948685 + 0.8 × 69.94908067 = 15.60189737 + 55.95926454 = 71.56116191
			name: "faster answer after the failure", sample: probe(true, 0.0005),
			want: want{true, 0.0037 / 3, 0.001, 0.729524, 73.00948684714835, 0, 0.5, 78.00948684714835, 3, 71.56116190595543},
		},
		{
			// 7 s is past RB_PROBE_TIMEOUT (5 s): no answer, as a failed probe
			// EMA = 0.8 × 71.56116191 = 57.24892952
			name: "answer after the timeout", sample: probe(true, 7),
			want: want{false, 0, 0.001, 0.729524, 0, 0, 0, 0, 3, 0.8 * 71.56116190595543},
		},
	}
	for _, step := range steps {
		got := st.Update(p, step.sample)
		in, w := got.Inputs, step.want
		if in.ProbeOK != w.probeOK || in.HistoryLen != w.hist ||
			!near(in.EffectiveSecs, w.eff) || !near(in.BestSecs, w.best) || !near(in.ThresholdSecs, w.thr) ||
			!near(in.Base, w.base) || !near(in.Penalty, w.pen) || !near(in.Trend, w.trend) ||
			!near(in.RawAvailability, w.raw) || !near(got.Availability, w.avail) {
			t.Fatalf("%s: got inputs %+v availability %v\nwant %+v", step.name, in, got.Availability, w)
		}
	}
	if st.Samples() != uint64(len(steps)) {
		t.Errorf("Samples() = %d, want %d", st.Samples(), len(steps))
	}
}

// TestUpdateWithoutResolution is the fourth step of
// TestUpdateAvailabilitySequence with RB_PROBE_RESOLUTION 0: the 0.5 ms answer
// is taken as it is and joins the best-times list, as in the prototype.
func TestUpdateWithoutResolution(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	p.ProbeResolution = 0
	st := score.NewState(p)
	for _, s := range []events.Sample{probe(true, 0.001), probe(true, 0.002), probe(false, 5)} {
		st.Update(p, s)
	}
	// history [0.001, 0.002, 0.0005], mean 0.0035/3 = 0.00116667
	// best [0.001, 0.0005] (0.0005 beats 0.001), best = 0.00075
	// eff = 0.3 × 0.0005 + 0.7 × 0.00116667 = 0.00015 + 0.00081667 = 0.00096667
	// thr = max(0.5, 0.9 × 0.81036 + 0.15 × 0.00116667) = 0.729324 + 0.000175 = 0.729499
	// base = 100 × (0.00075/0.00096667)^1.5 = 100 × 0.77586207^1.5 = 68.34028417
	// trend: k = 1; older 0.002, recent 0.0005: (0.002 − 0.0005)/0.002 = 0.75 → +7.5
	// raw = 68.34028417 + 7.5 = 75.84028417
	// EMA = 0.2 × 75.84028417 + 0.8 × 69.94908067 = 71.12732137
	got := st.Update(p, probe(true, 0.0005))
	in := got.Inputs
	if !near(in.EffectiveSecs, 0.0029/3) || !near(in.BestSecs, 0.00075) || !near(in.ThresholdSecs, 0.729499) ||
		!near(in.Base, 68.34028416765946) || !near(in.Trend, 0.75) || !near(in.RawAvailability, 75.84028416765946) ||
		!near(got.Availability, 71.12732137005764) {
		t.Fatalf("got inputs %+v availability %v", in, got.Availability)
	}
}

// TestBestTimesExpire is the prototype's defect 8 (docs/scoring.md): one very
// fast answer capped the base for good. Now the best-times list is built over
// the history, the last HISTORY_SIZE answers, so an answer leaves it when it
// leaves the history. Resolution 0, so the sub-millisecond times are taken as
// they are.
func TestBestTimesExpire(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	p.ProbeResolution = 0
	st := score.NewState(p)
	// Answer 1: 0.1 ms, a lucky probe. Answers 2..: 0.2 ms, a healthy worker.
	st.Update(p, probe(true, 0.0001))
	var got events.Score
	for range 18 {
		got = st.Update(p, probe(true, 0.0002))
	}
	// Answer 19: history [0.0001, 0.0002 × 18], mean 0.0037/19 = 0.000194737
	// list [0.0001] (0.0002 never beats it), best = 0.0001
	// eff = 0.3 × 0.0002 + 0.7 × 0.000194737 = 0.00006 + 0.000136316 = 0.000196316
	// base = 100 × (0.0001/0.000196316)^1.5 = 100 × 0.50938338^1.5 = 36.35534
	// The prototype stayed about here: once the history holds only 0.2 ms,
	// base = 100 × (0.0001/0.0002)^1.5 = 100 × 0.5^1.5 = 35.36, for good.
	if !near(got.Inputs.BestSecs, 0.0001) || !near(got.Inputs.Base, 100*math.Pow(0.0001/(0.00006+0.7*0.0037/19), 1.5)) {
		t.Fatalf("answer 19: best %v base %v, want 0.0001 and ≈ 36.355", got.Inputs.BestSecs, got.Inputs.Base)
	}
	// Answer 20: the 0.1 ms answer is still one of the last 20.
	if got = st.Update(p, probe(true, 0.0002)); !near(got.Inputs.BestSecs, 0.0001) {
		t.Fatalf("answer 20: best %v, want 0.0001 (one of the last 20 answers)", got.Inputs.BestSecs)
	}
	// Answer 21: answer 1 has left the history, 0.2 ms × 20; list [0.0002],
	// best 0.0002, eff 0.0002, base = 100 × 1^1.5 = 100; trend 0; raw 100.
	got = st.Update(p, probe(true, 0.0002))
	if !near(got.Inputs.BestSecs, 0.0002) || !near(got.Inputs.Base, 100) || !near(got.Inputs.RawAvailability, 100) {
		t.Fatalf("answer 21: best %v base %v raw %v, want 0.0002, 100, 100", got.Inputs.BestSecs, got.Inputs.Base, got.Inputs.RawAvailability)
	}
	// Failed probes are not answers: they do not age the list.
	st2 := score.NewState(p)
	st2.Update(p, probe(true, 0.0001))
	for range 50 {
		st2.Update(p, probe(false, 5))
	}
	if got = st2.Update(p, probe(true, 0.0002)); !near(got.Inputs.BestSecs, 0.0001) {
		t.Fatalf("after 50 failures: best %v, want 0.0001 (answer 1 of 2)", got.Inputs.BestSecs)
	}
}

// TestBestTimesSlowdown shows what the fix keeps and what it gives up. A
// worker that slows down from 1 ms to 2 s is judged against its 1 ms answers
// while any is in the history (base ≈ 0); once the history holds only 2 s
// answers its base is 100 again: the base compares a worker with its own
// recent best, and lasting slowness is left to the penalty, the trend and the
// CPU, memory and network scores.
func TestBestTimesSlowdown(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := score.NewState(p)
	for range 20 {
		st.Update(p, probe(true, 0.001))
	}
	for i := 1; i <= 20; i++ {
		got := st.Update(p, probe(true, 2))
		switch {
		case i < 20 && (!near(got.Inputs.BestSecs, 0.001) || got.Inputs.Base > 0.01):
			// list over [0.001 × (20 − i), 2 × i] is [0.001]; eff ≥ 0.3 × 2:
			// base ≤ 100 × (0.001/0.6)^1.5 = 0.0068
			t.Fatalf("slow answer %d: best %v base %v, want 0.001 and < 0.01", i, got.Inputs.BestSecs, got.Inputs.Base)
		case i == 20 && (!near(got.Inputs.BestSecs, 2) || !near(got.Inputs.Base, 100)):
			t.Fatalf("slow answer 20: best %v base %v, want 2 and 100", got.Inputs.BestSecs, got.Inputs.Base)
		}
	}
}

// TestProbeResolution: jitter below the resolution does not move the score.
// With the default 1 ms, answers of 0.1 ms and 0.2 ms both count as 1 ms:
// history, best and effective are all 0.001, base 100, trend 0, raw 100.
// Without it, the same worker loses availability to 0.1 ms of jitter.
func TestProbeResolution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		resolution float64
		wantAvail  func(float64) bool
	}{
		{name: "1 ms (default)", resolution: 0.001, wantAvail: func(a float64) bool { return near(a, 100) }},
		{name: "0 (the prototype's)", resolution: 0, wantAvail: func(a float64) bool { return a < 90 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := score.DefaultParams()
			p.ProbeResolution = tt.resolution
			st := score.NewState(p)
			var got events.Score
			for i := range 60 {
				got = st.Update(p, probe(true, 0.0001*float64(1+i%2)))
				in := got.Inputs
				if tt.resolution > 0 && (!near(in.Base, 100) || !near(in.Trend, 0) || !near(in.EffectiveSecs, 0.001)) {
					t.Fatalf("answer %d: inputs %+v, want base 100, trend 0, effective 0.001", i+1, in)
				}
			}
			if !tt.wantAvail(got.Availability) {
				t.Fatalf("availability after 60 jittery answers: %v", got.Availability)
			}
		})
	}
}

func TestUpdatePenalty(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := score.NewState(p)
	// A worker answering in 2 s:
	// history [2], best [2]; eff = 0.3 × 2 + 0.7 × 2 = 2
	// thr = max(0.5, 0.9 × 1.0 + 0.1 × 1.5 × 2) = 1.2
	// base = 100; penalty = 20 × (1 − e^−(2 − 1.2)) = 20 × 0.55067104 = 11.01342072
	// raw = 100 − 11.01342072 = 88.98657928; EMA = 0.2 × 88.98657928 + 80 = 97.79731586
	got := st.Update(p, probe(true, 2))
	if !near(got.Inputs.ThresholdSecs, 1.2) || !near(got.Inputs.Penalty, 11.013420717655569) ||
		!near(got.Inputs.RawAvailability, 88.98657928234443) || !near(got.Availability, 97.79731585646888) {
		t.Fatalf("got %+v, availability %v", got.Inputs, got.Availability)
	}
}

func TestUpdateComponentsAndOverall(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	tests := []struct {
		name       string
		sample     events.Sample
		cpu, mem   float64
		net, avail float64
		overall    float64
		cat        events.Category
	}{
		{
			// cpu 100 − 37.5 = 62.5; mem 100 − 512/1024 × 100 = 50;
			// net 100 − (10e6 + 2.5e6)/125e6 × 100 = 100 − 10 = 90; avail: first answer, 100
			// overall = 0.35 × 62.5 + 0.25 × 50 + 0.15 × 90 + 0.25 × 100
			//         = 21.875 + 12.5 + 13.5 + 25 = 72.875 → LU (≥ 70)
			name: "moderate load",
			sample: events.Sample{App: "shop", Container: "shop-1", CPUPercent: 37.5,
				MemUsage: 512 << 20, MemLimit: 1024 << 20, NetRxBps: 10e6, NetTxBps: 2.5e6, ProbeOK: true, ProbeSeconds: 0.001},
			cpu: 62.5, mem: 50, net: 90, avail: 100, overall: 72.875, cat: events.CategoryLU,
		},
		{
			// cpu 100 − 90 = 10; mem 100 − 900/1000 × 100 = 10; net 100 − 100e6/125e6 × 100 = 20;
			// avail: first answer, 100
			// overall = 0.35 × 10 + 0.25 × 10 + 0.15 × 20 + 0.25 × 100 = 3.5 + 2.5 + 3 + 25 = 34 → HU (< 40)
			name: "heavy load",
			sample: events.Sample{App: "shop", Container: "shop-1", CPUPercent: 90,
				MemUsage: 900, MemLimit: 1000, NetRxBps: 60e6, NetTxBps: 40e6, ProbeOK: true, ProbeSeconds: 0.001},
			cpu: 10, mem: 10, net: 20, avail: 100, overall: 34, cat: events.CategoryHU,
		},
		{
			// cpu 100 − 50 = 50; mem 100 − 0 (no limit figures) = 100; net 100 − 0 = 100;
			// avail: no answer, EMA = 0.2 × 0 + 0.8 × 100 = 80
			// overall = 0.35 × 50 + 0.25 × 100 + 0.15 × 100 + 0.25 × 80 = 17.5 + 25 + 15 + 20 = 77.5 → LU
			name: "no memory limit, probe failed",
			sample: events.Sample{App: "shop", Container: "shop-1", CPUPercent: 50,
				MemUsage: 1 << 20, MemLimit: 0, ProbeOK: false, ProbeError: "dial tcp: i/o timeout"},
			cpu: 50, mem: 100, net: 100, avail: 80, overall: 77.5, cat: events.CategoryLU,
		},
		{
			// cpu: 400 % clamps to 100 → 0 (the prototype gave −300); mem: 3 GiB / 1 GiB clamps → 0;
			// net: NaN counts as full → 0; avail: first answer, 100
			// overall = 0.25 × 100 = 25 → HU
			name: "out of range and NaN inputs",
			sample: events.Sample{App: "shop", Container: "shop-1", CPUPercent: 400,
				MemUsage: 3 << 30, MemLimit: 1 << 30, NetRxBps: math.NaN(), ProbeOK: true, ProbeSeconds: 0.001},
			cpu: 0, mem: 0, net: 0, avail: 100, overall: 25, cat: events.CategoryHU,
		},
		{
			// cpu 100 − 60 = 40; mem 100 − 60 = 40; net 100 − 60 = 40 (75e6/125e6); avail 80 (failed)
			// overall = 0.35 × 40 + 0.25 × 40 + 0.15 × 40 + 0.25 × 80 = 14 + 10 + 6 + 20 = 50 → MU
			name: "medium",
			sample: events.Sample{App: "shop", Container: "shop-1", CPUPercent: 60,
				MemUsage: 600, MemLimit: 1000, NetRxBps: 75e6, ProbeOK: false},
			cpu: 40, mem: 40, net: 40, avail: 80, overall: 50, cat: events.CategoryMU,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := score.NewState(p).Update(p, tt.sample)
			if !near(got.CPU, tt.cpu) || !near(got.Memory, tt.mem) || !near(got.Network, tt.net) ||
				!near(got.Availability, tt.avail) || !near(got.Overall, tt.overall) || got.Category != tt.cat {
				t.Errorf("got cpu %v mem %v net %v avail %v overall %v %s;\nwant cpu %v mem %v net %v avail %v overall %v %s",
					got.CPU, got.Memory, got.Network, got.Availability, got.Overall, got.Category,
					tt.cpu, tt.mem, tt.net, tt.avail, tt.overall, tt.cat)
			}
			if got.App != tt.sample.App || got.Container != tt.sample.Container || got.Mode != score.ModeLegacy {
				t.Errorf("identity: got app %q container %q mode %q", got.App, got.Container, got.Mode)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Score.Validate: %v", err)
			}
		})
	}
}

// TestSteadyHeavyTrafficIsNotIdle is the prototype's network defect: a
// constant heavy rate had no relative change and scored as idle.
func TestSteadyHeavyTrafficIsNotIdle(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := score.NewState(p)
	s := probe(true, 0.001)
	s.NetRxBps, s.NetTxBps = 60e6, 40e6 // 100e6 of 125e6 bytes/s: 80 % → network score 20
	for i := range 10 {
		if got := st.Update(p, s); !near(got.Network, 20) {
			t.Fatalf("sample %d: network score %v, want 20", i, got.Network)
		}
	}
}

func TestZeroStateStartsLikeNewState(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	var zero score.State
	if zero.Availability() != 100 {
		t.Errorf("zero State Availability() = %v, want 100", zero.Availability())
	}
	fresh := score.NewState(p)
	for i, s := range scenario() {
		a, b := zero.Update(p, s), fresh.Update(p, s)
		if a != b {
			t.Fatalf("sample %d: zero State gave %+v, NewState gave %+v", i, a, b)
		}
	}
}

func TestUpdateDoesNotAllocate(t *testing.T) {
	p := score.DefaultParams()
	st := score.NewState(p)
	samples := scenario()
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		st.Update(p, samples[i%len(samples)])
		i++
	})
	if allocs != 0 {
		t.Errorf("Update allocates %v times per sample, want 0", allocs)
	}
}
