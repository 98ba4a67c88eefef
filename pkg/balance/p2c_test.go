package balance

import (
	"math"
	"slices"
	"testing"
	"time"
)

// TestP2CPrefersCheaper: with two backends both are always the candidates,
// so p2c must always take the cheaper one.
func TestP2CPrefersCheaper(t *testing.T) {
	t.Parallel()
	ms := int64(time.Millisecond)
	tests := []struct {
		name     string
		setup    func(a, b *Stats)
		wantFrac float64 // share of picks that go to w1 at least
	}{
		{
			name: "fewer in flight, same latency",
			setup: func(a, b *Stats) {
				for _, s := range []*Stats{a, b} {
					s.Begin()
					s.Done(2*time.Millisecond, 200, false, testNow)
				}
				for range 3 {
					a.Begin()
				}
			},
			wantFrac: 1,
		},
		{
			name: "faster, same load",
			setup: func(a, b *Stats) {
				a.Begin()
				a.Done(10*time.Millisecond, 200, false, testNow)
				b.Begin()
				b.Done(time.Millisecond, 200, false, testNow)
			},
			wantFrac: 1,
		},
		{
			name: "faster wins until its queue costs more",
			setup: func(a, b *Stats) {
				a.Begin()
				a.Done(4*time.Millisecond, 200, false, testNow)
				b.Begin()
				b.Done(time.Millisecond, 200, false, testNow)
				for range 4 { // (4+1) × 1 ms > (0+1) × 4 ms
					b.Begin()
				}
			},
			wantFrac: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			table := newTestTable(t, DefaultOptions(), 50, 50)
			bs := table.Backends()
			tt.setup(bs[0].Stats(), bs[1].Stats())
			counts := countPicks(t, table.Picker(PolicyP2C), seeded(9), testNow+ms, 1000, 2)
			if got := float64(counts[1]) / 1000; got != tt.wantFrac {
				t.Errorf("share of w1 = %.3f, want %.3f (counts %v)", got, tt.wantFrac, counts)
			}
		})
	}
}

// TestPeakEWMA checks the estimator: a slower sample replaces the estimate at
// once, a faster one pulls it with weight 1 - e^(-Δt/τ), and without
// samples it decays towards the probe latency, or the default without one.
func TestPeakEWMA(t *testing.T) {
	t.Parallel()
	tau := float64(time.Second)
	opts := DefaultOptions()
	opts.InitialLatency = 5 * time.Millisecond
	tests := []struct {
		name string
		run  func(s *Stats) (got, want float64)
	}{
		{
			name: "unknown backend costs the default",
			run: func(s *Stats) (float64, float64) {
				return s.latency(testNow, 1/tau), float64(5 * time.Millisecond)
			},
		},
		{
			name: "first sample is taken as is",
			run: func(s *Stats) (float64, float64) {
				s.Begin()
				s.Done(time.Millisecond, 200, false, testNow)
				return s.latency(testNow, 1/tau), float64(time.Millisecond)
			},
		},
		{
			name: "peak replaces at once",
			run: func(s *Stats) (float64, float64) {
				for i, d := range []time.Duration{time.Millisecond, 50 * time.Millisecond} {
					s.Begin()
					s.Done(d, 200, false, testNow+int64(i))
				}
				return s.latency(testNow+1, 1/tau), float64(50 * time.Millisecond)
			},
		},
		{
			name: "lower sample blends by elapsed time",
			run: func(s *Stats) (float64, float64) {
				s.Begin()
				s.Done(10*time.Millisecond, 200, false, testNow)
				s.Begin()
				s.Done(2*time.Millisecond, 200, false, testNow+int64(100*time.Millisecond))
				// cur decays from 10 ms towards the default (5 ms), then
				// the 2 ms sample pulls it with weight 1 - w.
				w := math.Exp(-0.1)
				cur := 5e6 + (10e6-5e6)*w
				return s.latency(testNow+int64(100*time.Millisecond), 1/tau), cur + (2e6-cur)*(1-w)
			},
		},
		{
			name: "old estimate decays towards the probe",
			run: func(s *Stats) (float64, float64) {
				s.Begin()
				s.Done(20*time.Millisecond, 200, false, testNow)
				s.ObserveProbe(100*time.Microsecond, testNow)
				return s.latency(testNow+int64(2*time.Second), 1/tau), 1e5 + (20e6-1e5)*math.Exp(-2)
			},
		},
		{
			name: "old estimate decays towards the default without probe",
			run: func(s *Stats) (float64, float64) {
				s.Begin()
				s.Done(20*time.Millisecond, 200, false, testNow)
				return s.latency(testNow+int64(time.Second), 1/tau), 5e6 + (20e6-5e6)*math.Exp(-1)
			},
		},
		{
			name: "a fast error does not lower the estimate",
			run: func(s *Stats) (float64, float64) {
				s.Begin()
				s.Done(10*time.Millisecond, 200, false, testNow)
				s.Begin()
				s.Done(time.Microsecond, 503, false, testNow+1)
				return s.latency(testNow+1, 1/tau), 10e6 * decay(1/tau) // decays towards 5 ms by 1 ns only
			},
		},
		{
			name: "a slow error raises it",
			run: func(s *Stats) (float64, float64) {
				s.Begin()
				s.Done(10*time.Millisecond, 200, false, testNow)
				s.Begin()
				s.Done(30*time.Millisecond, 504, false, testNow+1)
				return s.latency(testNow+1, 1/tau), 30e6
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			table := newTestTable(t, opts, 50)
			got, want := tt.run(table.Backends()[0].Stats())
			if math.Abs(got-want) > want*1e-3 {
				t.Errorf("latency = %.0f ns, want %.0f ns", got, want)
			}
		})
	}
}

// TestDecayAccuracy bounds the fast e^-x against math.Exp and checks that it
// never increases.
func TestDecayAccuracy(t *testing.T) {
	t.Parallel()
	prev := 2.0
	xs := []float64{}
	for x := 0.0; x <= 45; x += 1e-4 {
		xs = append(xs, x)
	}
	// Around the branch points, in the smallest steps.
	for _, at := range []float64{0x1p-7, 40} {
		for x, i := math.Nextafter(at, 0), 0; i < 64; x, i = math.Nextafter(x, 100), i+1 {
			xs = append(xs, x)
		}
	}
	slices.Sort(xs)
	for _, x := range xs {
		got := decay(x)
		want := math.Exp(-x)
		if x <= 40 && math.Abs(got-want) > 2e-6*want {
			t.Fatalf("decay(%g) = %g, want %g within 2e-6", x, got, want)
		}
		if got > prev {
			t.Fatalf("decay(%g) = %g rises above the value before, %g", x, got, prev)
		}
		prev = got
	}
}

// TestMedianDefault: a backend never seen costs the median latency of the
// known ones, so it is neither starved (too high) nor flooded (too low).
func TestMedianDefault(t *testing.T) {
	t.Parallel()
	table := newTestTable(t, DefaultOptions(), 50, 50, 50)
	for i, d := range []time.Duration{time.Millisecond, 3 * time.Millisecond, 9 * time.Millisecond} {
		s := table.Backends()[i].Stats()
		s.Begin()
		s.Done(d, 200, false, testNow)
	}
	bs := []Backend{{ID: "w0", Weight: 50}, {ID: "w1", Weight: 50}, {ID: "w2", Weight: 50}, {ID: "new", Weight: 50}}
	next, err := NewTable(bs, table, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := next.Lookup("new").Stats().latency(testNow, next.tauInv); got != float64(3*time.Millisecond) {
		t.Errorf("new backend's latency = %v, want the median 3ms", time.Duration(got))
	}
	empty := newTestTable(t, DefaultOptions(), 50)
	if got := empty.Backends()[0].Stats().latency(testNow, empty.tauInv); got != fallbackLatency {
		t.Errorf("latency with nothing known = %v, want %v", time.Duration(got), time.Duration(fallbackLatency))
	}
}
