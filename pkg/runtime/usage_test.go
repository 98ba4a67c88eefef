package runtime_test

import (
	"math"
	"testing"
	"time"

	rt "github.com/rustybalancer/rb/pkg/runtime"
)

func TestCPUPercent(t *testing.T) {
	t.Parallel()
	// s builds a sample from container and system CPU seconds.
	s := func(cpu, system float64, online uint32) rt.StatsSample {
		return rt.StatsSample{CPUTotal: uint64(cpu * 1e9), SystemCPU: uint64(system * 1e9), OnlineCPUs: online}
	}
	tests := []struct {
		name      string
		prev, cur rt.StatsSample
		limit     float64
		want      float64
	}{
		// Δcpu 0.5 s, Δsystem 2 s on 2 CPUs (1 s of wall time): half a core,
		// the prototype's 50 %, a quarter of the host.
		{name: "half a core of two, no limit", prev: s(1, 10, 2), cur: s(1.5, 12, 2), want: 25},
		{name: "half a core with a 0.5 core limit", prev: s(1, 10, 2), cur: s(1.5, 12, 2), limit: 0.5, want: 100},
		{name: "half a core with a 1 core limit", prev: s(1, 10, 2), cur: s(1.5, 12, 2), limit: 1, want: 50},
		{name: "limit above the host counts as the host", prev: s(1, 10, 2), cur: s(1.5, 12, 2), limit: 4, want: 25},
		// One core busy on an 8-CPU host over 1 s: Δsystem 8 s.
		{name: "one core of eight", prev: s(0, 0, 8), cur: s(1, 8, 8), want: 12.5},
		{name: "one core of eight, 2 core limit", prev: s(0, 0, 8), cur: s(1, 8, 8), limit: 2, want: 50},
		// The prototype would report 400 % here.
		{name: "four busy cores of four", prev: s(0, 0, 4), cur: s(4, 4, 4), want: 100},
		{name: "over the limit clamps to 100", prev: s(0, 0, 4), cur: s(4, 4, 4), limit: 1, want: 100},
		{name: "idle", prev: s(3, 10, 2), cur: s(3, 12, 2), want: 0},
		{name: "container counter reset", prev: s(5, 10, 2), cur: s(0.1, 12, 2), want: 0},
		{name: "system counter did not move", prev: s(1, 10, 2), cur: s(1.5, 10, 2), want: 0},
		{name: "system counter went back", prev: s(1, 10, 2), cur: s(1.5, 9, 2), want: 0},
		{name: "online CPUs from the previous sample", prev: s(1, 10, 2), cur: s(1.5, 12, 0), want: 25},
		// No CPU count at all: assume one, Δcpu/Δsystem × 100.
		{name: "online CPUs unknown", prev: s(1, 10, 0), cur: s(1.5, 12, 0), want: 25},
		{name: "NaN limit means no limit", prev: s(1, 10, 2), cur: s(1.5, 12, 2), limit: math.NaN(), want: 25},
		{name: "negative limit means no limit", prev: s(1, 10, 2), cur: s(1.5, 12, 2), limit: -1, want: 25},
		{name: "zero samples", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := rt.CPUPercent(tt.prev, tt.cur, tt.limit)
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("CPUPercent = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNetRates(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := func(at time.Duration, rx, tx uint64) rt.StatsSample {
		return rt.StatsSample{Read: t0.Add(at), RxBytes: rx, TxBytes: tx}
	}
	tests := []struct {
		name      string
		prev, cur rt.StatsSample
		rx, tx    float64
	}{
		{name: "two seconds", prev: s(0, 1000, 500), cur: s(2*time.Second, 5000, 2500), rx: 2000, tx: 1000},
		{name: "half a second", prev: s(0, 0, 0), cur: s(500*time.Millisecond, 1000, 0), rx: 2000, tx: 0},
		{name: "rx counter reset keeps tx", prev: s(0, 9000, 100), cur: s(time.Second, 10, 400), rx: 0, tx: 300},
		{name: "tx counter reset keeps rx", prev: s(0, 100, 9000), cur: s(time.Second, 400, 10), rx: 300, tx: 0},
		{name: "same read time", prev: s(time.Second, 0, 0), cur: s(time.Second, 100, 100), rx: 0, tx: 0},
		{name: "read time went back", prev: s(2*time.Second, 0, 0), cur: s(time.Second, 100, 100), rx: 0, tx: 0},
		{name: "no read time", prev: rt.StatsSample{RxBytes: 1}, cur: s(time.Second, 100, 100), rx: 0, tx: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rx, tx := rt.NetRates(tt.prev, tt.cur)
			if math.Abs(rx-tt.rx) > 1e-9 || math.Abs(tx-tt.tx) > 1e-9 {
				t.Errorf("NetRates = %v, %v; want %v, %v", rx, tx, tt.rx, tt.tx)
			}
		})
	}
}
