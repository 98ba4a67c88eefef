package balance

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchNow is an arbitrary fixed time for benchmarks, in unix nanos.
const benchNow = int64(1_700_000_000_000_000_000)

// benchTable builds n active backends with varied weights and latencies
// learned 10 ms before benchNow, so p2c pays for the decay.
func benchTable(b testing.TB, n int) *Table {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	bs := make([]Backend, n)
	for i := range bs {
		bs[i] = Backend{ID: fmt.Sprintf("w%d", i), Address: fmt.Sprintf("10.0.%d.%d:80", i/256, i%256), Weight: 1 + rng.Float64()*99}
	}
	t, err := NewTable(bs, nil, DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	for i := range t.Backends() {
		s := t.Backends()[i].Stats()
		s.Begin()
		s.Done(time.Duration(1+rng.IntN(5))*time.Millisecond, 200, false, benchNow-int64(10*time.Millisecond))
		s.ObserveProbe(100*time.Microsecond, benchNow)
	}
	return t
}

func BenchmarkPick(b *testing.B) {
	for _, pol := range []Policy{PolicyP2C, PolicyWeighted, PolicyRoundRobin, PolicyLeastConn} {
		for _, n := range []int{10, 100, 10_000} {
			b.Run(fmt.Sprintf("%s/n=%d", pol, n), func(b *testing.B) {
				p := benchTable(b, n).Picker(pol)
				b.ReportAllocs()
				b.ResetTimer()
				defer reportCPU(b, processCPU())
				b.RunParallel(func(pb *testing.PB) {
					r := SystemRand{}
					for pb.Next() {
						if _, err := p.Pick(r, benchNow); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkPickBeginDone is the whole per-request cost of balancing: pick,
// Begin and Done with a latency sample.
func BenchmarkPickBeginDone(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("p2c/n=%d", n), func(b *testing.B) {
			p := benchTable(b, n).Picker(PolicyP2C)
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b, processCPU())
			b.RunParallel(func(pb *testing.PB) {
				r := SystemRand{}
				now := benchNow
				for pb.Next() {
					bk, err := p.Pick(r, now)
					if err != nil {
						b.Error(err)
						return
					}
					bk.Stats().Begin()
					now += 1000
					bk.Stats().Done(2*time.Millisecond, 200, false, now)
				}
			})
		})
	}
}

// BenchmarkSystemRand is the reference: the cost of one draw of the
// production Rand, against which the picks can be read on a busy machine.
func BenchmarkSystemRand(b *testing.B) {
	defer reportCPU(b, processCPU())
	b.RunParallel(func(pb *testing.PB) {
		r := SystemRand{}
		var x uint64
		for pb.Next() {
			x += r.Uint64()
		}
		if x == 1 {
			b.Log(x)
		}
	})
}

// reportCPU adds the CPU time per operation since start (see processCPU).
func reportCPU(b *testing.B, start int64) {
	if end := processCPU(); start >= 0 && end >= 0 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}
