package balance

import (
	"math"
	"sync/atomic"
	"time"
)

// fallbackLatency is the latency assumed for unknown backends when no
// backend of the table has answered yet and no InitialLatency is set. Its
// value does not matter much: while nothing is known every backend costs the
// same, and the first answers replace it.
const fallbackLatency = float64(time.Millisecond)

// Stats is the mutable state of one backend: counters, latency and outlier
// ejection, all atomics. A Stats outlives table swaps: NewTable hands the
// Stats of a backend to the next table that lists the same ID, so what the
// proxy learned survives a new queue event.
type Stats struct {
	// The fields a pick reads come first, within the first 64 bytes: the
	// padding below makes a Stats 128 bytes, an allocation size class whose
	// objects are 128-byte aligned.
	inflight atomic.Int64
	// ewma is the peak-EWMA latency in nanoseconds as float64 bits; 0 means
	// no answer seen yet. ewmaAt is the time of the last sample.
	ewma   atomic.Uint64
	ewmaAt atomic.Int64
	// probe is the latest probe latency in nanoseconds (0 = none): the level
	// an estimate without fresh samples decays to.
	probe atomic.Int64
	// dflt is the table's latency for unknown backends, float64 bits.
	dflt         atomic.Uint64
	ejectedUntil atomic.Int64
	// rampUntil is the end of the slow-start window (unix nanos), 0 if the
	// backend does not ramp; set by the latest NewTable.
	rampUntil atomic.Int64

	ejectedAt atomic.Int64
	ejections atomic.Int64
	streak    atomic.Int64
	requests  atomic.Uint64
	errors    atomic.Uint64
	probeAt   atomic.Int64
	opts      atomic.Pointer[Options]
	_         [2]uint64
}

// Snapshot is a point-in-time copy of a backend's Stats, for telemetry.
type Snapshot struct {
	InFlight int64
	Requests uint64
	Errors   uint64
	// Latency is the peak-EWMA latency as of its last sample (0 = unknown).
	Latency time.Duration
	// LatencyAt is the time of that sample (unix nanos).
	LatencyAt int64
	// Probe is the latest latency fed through ObserveProbe (0 = none).
	Probe time.Duration
	// EjectedUntil is the end of the current or last ejection (unix nanos).
	EjectedUntil int64
	// Ejections counts consecutive ejections; a success after one ends
	// resets it.
	Ejections int64
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		InFlight:     s.inflight.Load(),
		Requests:     s.requests.Load(),
		Errors:       s.errors.Load(),
		Latency:      time.Duration(math.Float64frombits(s.ewma.Load())),
		LatencyAt:    s.ewmaAt.Load(),
		Probe:        time.Duration(s.probe.Load()),
		EjectedUntil: s.ejectedUntil.Load(),
		Ejections:    s.ejections.Load(),
	}
}

// InFlight returns the number of requests begun and not done.
func (s *Stats) InFlight() int64 { return s.inflight.Load() }

// Ejected reports whether the backend is ejected at now (unix nanos).
func (s *Stats) Ejected(now int64) bool { return s.ejectedUntil.Load() > now }

// Begin records a request sent to the backend. Every Begin must be followed
// by exactly one Done.
func (s *Stats) Begin() { s.inflight.Add(1) }

// Done records the outcome of a request begun with Begin, at now (unix
// nanos): latency is the time to the response (ignored for a connect
// error), status its HTTP status. A connect error ejects the backend at once;
// ErrorStreak consecutive 5xx eject it too. An error never lowers the
// latency estimate, so a backend that fails fast does not attract traffic.
func (s *Stats) Done(latency time.Duration, status int, connErr bool, now int64) {
	s.inflight.Add(-1)
	s.requests.Add(1)
	o := s.options()
	switch {
	case connErr:
		s.errors.Add(1)
		s.eject(now, &o)
	case status >= 500:
		s.errors.Add(1)
		s.observe(float64(latency), now, &o, true)
		if s.streak.Add(1) >= int64(o.ErrorStreak) {
			s.streak.Store(0)
			s.eject(now, &o)
		}
	default:
		// Reads before writes: the common case writes nothing here, so
		// the cache line stays shared between cores.
		if s.streak.Load() != 0 {
			s.streak.Store(0)
		}
		if s.ejections.Load() != 0 && s.ejectedUntil.Load() <= now {
			s.ejections.Store(0)
		}
		s.observe(float64(latency), now, &o, false)
	}
}

// ObserveProbe records a health-probe latency measured at now (unix nanos),
// e.g. the collector's connect time carried by a queue event. It does not
// change the latency estimate directly: it is the level towards which an
// estimate without fresh samples decays (see the package doc).
func (s *Stats) ObserveProbe(latency time.Duration, now int64) {
	if latency <= 0 {
		latency = 1
	}
	s.probe.Store(int64(latency))
	s.probeAt.Store(now)
}

// Eject takes the backend out of rotation at now (unix nanos) for the
// back-off period, unless it is already ejected. It reports whether it did.
func (s *Stats) Eject(now int64) bool {
	o := s.options()
	return s.eject(now, &o)
}

func (s *Stats) eject(now int64, o *Options) bool {
	for {
		until := s.ejectedUntil.Load()
		if until > now {
			return false
		}
		n := s.ejections.Load() + 1
		d := o.EjectBase
		for i := int64(1); i < n && d < o.EjectMax; i++ {
			d *= 2
		}
		d = min(d, o.EjectMax)
		if s.ejectedUntil.CompareAndSwap(until, now+int64(d)) {
			s.ejections.Store(n)
			s.ejectedAt.Store(now)
			return true
		}
	}
}

func (s *Stats) options() Options {
	if p := s.opts.Load(); p != nil {
		return *p
	}
	return DefaultOptions()
}

// latency returns the cost latency at now: the peak-EWMA estimate, decayed
// towards the probe latency (or the table default) by how old its last
// sample is; the default when the backend never answered.
func (s *Stats) latency(now int64, tauInv float64) float64 {
	eb := s.ewma.Load()
	if eb == 0 {
		return math.Float64frombits(s.dflt.Load())
	}
	e := math.Float64frombits(eb)
	age := now - s.ewmaAt.Load()
	if age <= 0 {
		return e
	}
	tg := s.target()
	return tg + (e-tg)*decay(float64(age)*tauInv)
}

// target is the level a latency estimate without samples decays to: the
// latest probe latency, else the table's default.
func (s *Stats) target() float64 {
	if p := s.probe.Load(); p > 0 {
		return float64(p)
	}
	return math.Float64frombits(s.dflt.Load())
}

// observe folds a latency sample into the peak-EWMA: a sample above the
// current estimate replaces it; a lower one pulls it down with weight
// 1 - e^(-Δt/τ). With errOnly the estimate may only rise.
func (s *Stats) observe(sample float64, now int64, o *Options, errOnly bool) {
	if sample < 1 {
		sample = 1 // 0 means unknown
	}
	tauInv := 1 / float64(o.Tau)
	for {
		eb := s.ewma.Load()
		at := s.ewmaAt.Load()
		next := sample
		if eb != 0 {
			e := math.Float64frombits(eb)
			cur, w := e, 1.0
			if age := now - at; age > 0 {
				target := s.target()
				w = decay(float64(age) * tauInv)
				cur = target + (e-target)*w
			}
			if sample <= cur {
				next = cur + (sample-cur)*(1-w)
				if errOnly {
					next = cur
				}
			}
		} else if errOnly {
			// An error as the first answer: take it only if it is worse
			// than what an unknown backend is assumed to cost.
			next = max(sample, math.Float64frombits(s.dflt.Load()))
		}
		if s.ewma.CompareAndSwap(eb, math.Float64bits(next)) {
			for {
				t := s.ewmaAt.Load()
				if t >= now || s.ewmaAt.CompareAndSwap(t, now) {
					return
				}
			}
		}
	}
}

// decay returns e^-x for x >= 0 to a relative error below 2e-6 at about half
// the cost of math.Exp, which matters on the pick path: 2^-y = 2^-k ×
// e^(-t) with k = ⌊y⌋ and t in [0, ln 2), the second factor by a degree-6
// polynomial (Taylor, with the last coefficient fitted so that the pieces
// meet at t = ln 2 and the whole stays monotone), evaluated in Estrin's
// scheme: three short chains instead of Horner's one long one.
func decay(x float64) float64 {
	switch {
	case x < 0x1p-7:
		// Samples younger than τ/128, the common case under load. An upper
		// bound of e^-x, so the step to the branch below goes down: the
		// whole stays monotone. Error below x³/6 < 1e-7.
		return 1 - x + x*x/2
	case x > 40:
		return 0
	}
	const c6 = 0.0012624177804347314 // (1/2 - p5(ln 2)) / ln(2)^6
	y := x * math.Log2E
	k := uint64(y)
	t := (y - float64(k)) * math.Ln2
	t2 := t * t
	t4 := t2 * t2
	p := (1 - t) + t2*(1.0/2-t*(1.0/6)) + t4*((1.0/24-t*(1.0/120))+t2*c6)
	return p * math.Float64frombits((1023-k)<<52)
}
