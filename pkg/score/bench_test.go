package score_test

import (
	"testing"

	"github.com/rustybalancer/rb/pkg/score"
)

// BenchmarkUpdate scores the golden scenario over and over on one state:
// one op is one sample. Run with -cpu 1 for the per-core figure.
func BenchmarkUpdate(b *testing.B) {
	p := score.DefaultParams()
	st := score.NewState(p)
	samples := scenario()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		st.Update(p, samples[i])
		i++
		if i == len(samples) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
