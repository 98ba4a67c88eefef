package collector

import (
	"math"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/runtime"
)

func TestMeter(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const stale = 3 * time.Second
	// reading at second sec: cpuSecs of container CPU, 2 online CPUs (the
	// system counter advances 2 s per wall second), rx/tx bytes, mem bytes.
	reading := func(sec, cpuSecs float64, rx, tx, mem uint64) runtime.StatsSample {
		return runtime.StatsSample{
			Read:       t0.Add(time.Duration(sec * float64(time.Second))),
			CPUTotal:   uint64(cpuSecs * 1e9),
			SystemCPU:  uint64((1000 + 2*sec) * 1e9),
			OnlineCPUs: 2, MemUsage: mem, MemLimit: 1 << 30, RxBytes: rx, TxBytes: tx,
		}
	}
	type step struct {
		observe *runtime.StatsSample
		at      float64 // seconds after t0: arrival of observe, or the tick
		want    measure // for a tick
	}
	obs := func(s runtime.StatsSample, at float64) step { return step{observe: &s, at: at} }
	tick := func(at float64, want measure) step { return step{at: at, want: want} }
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	tests := []struct {
		name       string
		limitCores float64
		confMem    uint64
		steps      []step
	}{
		{name: "no reading yet: only the configured limit", confMem: 64 << 20, steps: []step{
			tick(0.5, measure{MemLimit: 64 << 20}),
		}},
		{name: "one reading: memory, no rates", steps: []step{
			obs(reading(0, 1, 100, 10, 5<<20), 0),
			tick(0.2, measure{MemUsage: 5 << 20, MemLimit: 1 << 30}),
		}},
		{name: "two readings before the first tick: rates between them", steps: []step{
			obs(reading(0, 1, 100, 10, 5<<20), 0),
			// Half a core for one second of two CPUs: 25 %.
			obs(reading(1, 1.5, 2100, 1010, 6<<20), 1),
			tick(1.1, measure{Window: sec(1), CPU: 25, RxBps: 2000, TxBps: 1000, MemUsage: 6 << 20, MemLimit: 1 << 30}),
		}},
		{name: "rates from the previous tick's reading; repeated when nothing new", steps: []step{
			obs(reading(0, 1, 0, 0, 1), 0),
			tick(0.5, measure{MemUsage: 1, MemLimit: 1 << 30}),
			obs(reading(1, 2, 1000, 0, 2), 1),
			tick(1.5, measure{Window: sec(1), CPU: 50, RxBps: 1000, MemUsage: 2, MemLimit: 1 << 30}),
			tick(1.9, measure{Window: sec(1), CPU: 50, RxBps: 1000, MemUsage: 2, MemLimit: 1 << 30}),
			// Two readings between ticks: the window spans both.
			obs(reading(2, 2, 1000, 0, 3), 2),
			obs(reading(3, 3, 5000, 0, 4), 3),
			tick(3.5, measure{Window: sec(2), CPU: 25, RxBps: 2000, MemUsage: 4, MemLimit: 1 << 30}),
		}},
		{name: "CPU normalised by the limit", limitCores: 0.5, steps: []step{
			obs(reading(0, 0, 0, 0, 0), 0),
			obs(reading(1, 0.25, 0, 0, 0), 1),
			tick(1, measure{Window: sec(1), CPU: 50, MemLimit: 1 << 30}),
		}},
		{name: "stale readings give nothing; fresh ones start over", confMem: 7, steps: []step{
			obs(reading(0, 0, 0, 0, 9), 0),
			obs(reading(1, 1, 0, 0, 9), 1),
			tick(1, measure{Window: sec(1), CPU: 50, MemUsage: 9, MemLimit: 1 << 30}),
			tick(1+3.5, measure{MemLimit: 7}),
			obs(reading(10, 2, 0, 0, 8), 10),
			// The base was dropped with the staleness: the pair before is used.
			tick(10.2, measure{Window: sec(9), CPU: 1.0 / 9 * 50, MemUsage: 8, MemLimit: 1 << 30}),
		}},
		{name: "counter reset gives 0, not a negative rate", steps: []step{
			obs(reading(0, 5, 5000, 5000, 1), 0),
			obs(reading(1, 0.1, 10, 10, 1), 1),
			tick(1, measure{Window: sec(1), MemUsage: 1, MemLimit: 1 << 30}),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m meter
			for i, st := range tt.steps {
				at := t0.Add(sec(st.at))
				if st.observe != nil {
					m.observe(*st.observe, at)
					continue
				}
				got := m.tick(at, stale, tt.limitCores, tt.confMem)
				w := st.want
				if got.Window != w.Window || !near(got.CPU, w.CPU) || !near(got.RxBps, w.RxBps) || !near(got.TxBps, w.TxBps) ||
					got.MemUsage != w.MemUsage || got.MemLimit != w.MemLimit {
					t.Errorf("step %d: tick = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
