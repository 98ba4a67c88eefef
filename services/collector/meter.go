package collector

import (
	"time"

	"github.com/rustybalancer/rb/pkg/runtime"
)

// measure is what one collection tick knows of a container's resources.
type measure struct {
	// Window is the time the rates were measured over; 0 when no rates are
	// known (fewer than two readings, or none fresh).
	Window   time.Duration
	CPU      float64 // percent of the allowance
	RxBps    float64
	TxBps    float64
	MemUsage uint64 // 0 when no fresh reading
	MemLimit uint64 // the engine's limit (host memory when none), else the configured one
}

// meter turns a container's stream of cumulative stats readings into the
// rates of each collection tick. It is not safe for concurrent use.
//
// The rates of a tick are taken between the newest reading at the previous
// tick and the newest one now, so that over time every reading counts once,
// whatever the tick interval. When no reading arrived since the previous
// tick (the engine reads about once a second; the ticks drift against it)
// the previous tick's rates are repeated, as long as they are fresh.
type meter struct {
	readings       int
	newest, before runtime.StatsSample // the last two readings of the stream
	arrived        time.Time           // when newest arrived (collector's clock)

	base    runtime.StatsSample // newest reading at the previous tick
	hasBase bool
	last    measure // the previous tick's rates
	hasLast bool
}

// observe records a reading that arrived at the given time.
func (m *meter) observe(s runtime.StatsSample, at time.Time) {
	m.before, m.newest = m.newest, s
	m.readings++
	m.arrived = at
}

// tick measures at time now. limitCores normalises CPU (0: host CPUs);
// configuredMem is the container's memory limit, reported while no reading
// is fresh. A reading older than staleAfter is not used: the stream is down
// (the engine unreachable, say) and old rates would pass for current ones.
func (m *meter) tick(now time.Time, staleAfter time.Duration, limitCores float64, configuredMem uint64) measure {
	if m.readings == 0 || now.Sub(m.arrived) > staleAfter {
		m.hasBase, m.hasLast = false, false
		return measure{MemLimit: configuredMem}
	}
	out := measure{MemUsage: m.newest.MemUsage, MemLimit: m.newest.MemLimit}
	if out.MemLimit == 0 {
		out.MemLimit = configuredMem
	}
	var from runtime.StatsSample
	switch {
	case m.hasBase && m.newest.Read.After(m.base.Read):
		from = m.base
	case m.hasBase:
		// Nothing new since the previous tick: its rates still hold.
		if m.hasLast {
			out.Window, out.CPU, out.RxBps, out.TxBps = m.last.Window, m.last.CPU, m.last.RxBps, m.last.TxBps
		}
		return out
	case m.readings >= 2 && m.newest.Read.After(m.before.Read):
		from = m.before
	default:
		// A single reading: memory is known, rates need a second one.
		m.base, m.hasBase = m.newest, true
		return out
	}
	out.Window = m.newest.Read.Sub(from.Read)
	out.CPU = runtime.CPUPercent(from, m.newest, limitCores)
	out.RxBps, out.TxBps = runtime.NetRates(from, m.newest)
	m.base, m.hasBase = m.newest, true
	m.last, m.hasLast = out, true
	return out
}
