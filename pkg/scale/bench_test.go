package scale

import (
	"fmt"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// BenchmarkStepScore measures one score through the engine, the replay's
// inner loop: each worker scores once a second, and the scores stay between
// the thresholds, so (as in a steady recording) almost no step decides.
func BenchmarkStepScore(b *testing.B) {
	for _, n := range []int{15, 100} {
		for _, trend := range []bool{false, true} {
			b.Run(fmt.Sprintf("workers=%d/trend=%v", n, trend), func(b *testing.B) {
				p := DefaultParams()
				p.Min, p.Max = n, n
				if trend {
					p.TrendHorizon = 30 * time.Second
				}
				s := NewState(app)
				ins := make([]Input, n)
				for i := range ins {
					ins[i] = ScoreInput(t0, scoreOf(fmt.Sprintf("%s-%08x", app, i), 60+float64(i%10), true))
					if _, err := s.Step(p, ins[i]); err != nil {
						b.Fatal(err)
					}
				}
				gap := time.Second / time.Duration(n)
				now := t0
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					now = now.Add(gap)
					in := &ins[i%n]
					in.Time = now
					in.Score.Overall = 60 + float64(i%17)
					if _, err := s.Step(p, *in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "scores/s")
			})
		}
	}
}

// BenchmarkStepProxy measures one proxy report with 15 backends.
func BenchmarkStepProxy(b *testing.B) {
	p := DefaultParams()
	p.Min, p.Max = 15, 15
	w := newWorld(b, p)
	w.start(15, 70)
	r := events.ProxyReport{App: app, ProxyID: "px-a", IntervalSeconds: 1}
	for _, wk := range w.s.Workers {
		r.Backends = append(r.Backends, events.BackendReport{Container: wk.Name, InFlight: 2})
	}
	in := ProxyInput(w.now, r)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in.Time = in.Time.Add(time.Second)
		if _, err := w.s.Step(p, in); err != nil {
			b.Fatal(err)
		}
	}
}
