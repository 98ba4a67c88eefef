package score_test

import (
	"encoding/json"
	"math"
	randv1 "math/rand"
	"math/rand/v2"
	"strconv"
	"testing"
	"testing/quick"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/score"
)

// special are the values a float input is drawn from besides ordinary ones.
var special = []float64{
	0, math.Copysign(0, -1), 5e-324, 1e-300, 1e-9, 0.5, 1, 100, 101, 1e9, 1e300, math.MaxFloat64,
	-5e-324, -1, -1e300, -math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1),
}

func randFloat(r *rand.Rand, scale float64) float64 {
	switch r.IntN(4) {
	case 0:
		return special[r.IntN(len(special))]
	case 1:
		return -scale + 3*scale*r.Float64() // mostly in range, some negative or over
	default:
		return scale * r.Float64()
	}
}

func randUint(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		return []uint64{0, 1, math.MaxUint64, 1 << 63, 1 << 30}[r.IntN(5)]
	default:
		return r.Uint64N(1 << 34)
	}
}

func randSample(r *rand.Rand) events.Sample {
	return events.Sample{
		App: "shop", Container: "shop-1",
		WindowSeconds: randFloat(r, 2),
		CPUPercent:    randFloat(r, 100),
		CPULimit:      randFloat(r, 4),
		MemUsage:      randUint(r),
		MemLimit:      randUint(r),
		NetRxBps:      randFloat(r, 200e6),
		NetTxBps:      randFloat(r, 200e6),
		ProbeOK:       r.IntN(5) > 0,
		ProbeSeconds:  randFloat(r, 3),
	}
}

// randParams returns valid Params away from the defaults: tiny and odd buffer
// sizes, EMA_ALPHA up to 1, a zero threshold floor, a probe resolution from 0
// up to the probe timeout.
func randParams(r *rand.Rand) score.Params {
	p := score.DefaultParams()
	w := [4]float64{r.Float64(), r.Float64(), r.Float64(), r.Float64()}
	sum := w[0] + w[1] + w[2] + w[3]
	p.CPUWeight, p.MemoryWeight, p.NetworkWeight, p.AvailabilityWeight = w[0]/sum, w[1]/sum, w[2]/sum, w[3]/sum
	p.HistorySize = 1 + r.IntN(25)
	p.BestTimeWindow = 1 + r.IntN(12)
	p.EMAAlpha = []float64{1, 0.2, 1e-9, r.Float64() + 1e-9}[r.IntN(4)]
	p.NetworkCapacity = []float64{125e6, 1, 5e-324, 1e300}[r.IntN(4)]
	p.ProbeTimeout = []float64{5, 1e-9, 3600}[r.IntN(3)]
	p.ThresholdFloor = []float64{0.5, 0, 1e-9}[r.IntN(3)]
	p.ThresholdStart = p.ThresholdFloor + []float64{0, 0.5, 100}[r.IntN(3)]
	p.ProbeResolution = []float64{0, min(0.001, p.ProbeTimeout), p.ProbeTimeout, p.ProbeTimeout * r.Float64()}[r.IntN(4)]
	return p
}

// checkScore fails t unless every score is in [0, 100], every input is finite,
// and the Score validates and encodes to JSON.
func checkScore(t *testing.T, where string, s events.Score) {
	t.Helper()
	for _, v := range []struct {
		name string
		v    float64
	}{
		{"cpu", s.CPU}, {"memory", s.Memory}, {"network", s.Network},
		{"availability", s.Availability}, {"overall", s.Overall},
		{"inputs.cpu_percent", s.Inputs.CPUPercent}, {"inputs.mem_percent", s.Inputs.MemPercent},
		{"inputs.net_percent", s.Inputs.NetPercent}, {"inputs.base", s.Inputs.Base},
		{"inputs.raw_availability", s.Inputs.RawAvailability},
	} {
		if !(v.v >= 0 && v.v <= 100) {
			t.Fatalf("%s: %s = %v, want 0..100 (score %+v)", where, v.name, v.v, s)
		}
	}
	for _, v := range []struct {
		name string
		v    float64
	}{
		{"probe_seconds", s.Inputs.ProbeSeconds}, {"effective_seconds", s.Inputs.EffectiveSecs},
		{"best_seconds", s.Inputs.BestSecs}, {"threshold_seconds", s.Inputs.ThresholdSecs},
		{"penalty", s.Inputs.Penalty}, {"trend", s.Inputs.Trend},
	} {
		if math.IsNaN(v.v) || math.IsInf(v.v, 0) {
			t.Fatalf("%s: inputs.%s = %v, want finite (score %+v)", where, v.name, v.v, s)
		}
	}
	if s.Inputs.Penalty < 0 || s.Inputs.Penalty > 20 {
		t.Fatalf("%s: penalty %v, want 0..20", where, s.Inputs.Penalty)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("%s: Score.Validate: %v", where, err)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatalf("%s: encode score: %v", where, err)
	}
}

// TestPropertyScoresInRange feeds random sequences, with zero, tiny, huge,
// negative, NaN and infinite fields, through random valid Params.
func TestPropertyScoresInRange(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for c := range 200 {
		p := randParams(r)
		if err := p.Validate(); err != nil {
			t.Fatalf("randParams made invalid Params: %v", err)
		}
		st := score.NewState(p)
		for i := range 200 {
			s := randSample(r)
			checkScore(t, "container "+strconv.Itoa(c)+" sample "+strconv.Itoa(i), st.Update(p, s))
		}
		// The state must still snapshot after anything.
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("container %d: encode state: %v", c, err)
		}
	}
}

// TestQuickFiniteInputs lets testing/quick choose any finite values.
func TestQuickFiniteInputs(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := score.NewState(p)
	f := func(cpu, rx, tx, probe float64, usage, limit uint64, ok bool) bool {
		s := events.Sample{App: "a", Container: "c", CPUPercent: cpu, NetRxBps: rx, NetTxBps: tx,
			MemUsage: usage, MemLimit: limit, ProbeOK: ok, ProbeSeconds: math.Abs(math.Mod(probe, 10))}
		sc := st.Update(p, s)
		in := sc.Inputs
		for _, v := range []float64{sc.CPU, sc.Memory, sc.Network, sc.Availability, sc.Overall, in.RawAvailability, in.Base} {
			if !(v >= 0 && v <= 100) {
				return false
			}
		}
		for _, v := range []float64{in.Trend, in.Penalty, in.EffectiveSecs, in.BestSecs, in.ThresholdSecs} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		}
		return sc.Validate() == nil
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 5000, Rand: newQuickRand()}); err != nil {
		t.Error(err)
	}
}

// TestPropertyMoreLoadNeverScoresHigher: with everything else equal, more CPU,
// memory or network use never raises the overall score.
func TestPropertyMoreLoadNeverScoresHigher(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		lo := events.Sample{App: "a", Container: "c", CPUPercent: 100 * r.Float64(),
			MemUsage: r.Uint64N(1 << 30), MemLimit: 1 << 30, NetRxBps: 100e6 * r.Float64(),
			ProbeOK: true, ProbeSeconds: 0.001}
		hi := lo
		hi.CPUPercent += 50 * r.Float64()
		hi.MemUsage += r.Uint64N(1 << 29)
		hi.NetRxBps += 50e6 * r.Float64()
		a := score.NewState(p).Update(p, lo)
		b := score.NewState(p).Update(p, hi)
		if b.Overall > a.Overall || b.CPU > a.CPU || b.Memory > a.Memory || b.Network > a.Network {
			t.Fatalf("case %d: more load scored higher: %+v → %+v", i, a, b)
		}
	}
}

// newQuickRand is testing/quick's source, seeded so a failure reproduces.
func newQuickRand() *randv1.Rand { return randv1.New(randv1.NewSource(42)) }
