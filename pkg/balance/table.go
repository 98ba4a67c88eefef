package balance

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// State is a backend's lifecycle state as far as picking is concerned.
type State uint8

// The states. Scored categories (LU, MU, HU) are all Active here.
const (
	// Active backends take traffic by weight.
	Active State = iota
	// Init backends were just created; they take traffic, ramped up by
	// slow start.
	Init
	// Sundown backends finish their in-flight requests and get no new ones.
	Sundown
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case Active:
		return "active"
	case Init:
		return "init"
	case Sundown:
		return "sundown"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// epsilonWeight is what a zero weight becomes, as in the prototype: the
// backend stays pickable, just almost never.
const epsilonWeight = 2.220446049250313e-16

// Backend is one worker in a Table. The exported fields are the input to
// NewTable; a *Backend returned by a Table belongs to it and must not be
// modified.
type Backend struct {
	ID      string
	Address string
	// Weight is the backend's score, 0..100. Out of range (or NaN) counts
	// as 1; zero as a tiny epsilon.
	Weight float64
	State  State
	// Added is when the backend was created (unix nanos), the start of its
	// slow-start window; 0 means long ago (no ramp) unless State is Init.
	Added int64

	stats  *Stats
	index  int
	weight float64 // normalised Weight
}

// Stats returns the backend's counters, shared with every table that lists
// the same ID.
func (b *Backend) Stats() *Stats { return b.stats }

// Index returns the backend's position in its table's Backends, e.g. to
// keep a parallel slice of connection pools.
func (b *Backend) Index() int { return b.index }

// Table is an immutable set of backends with their pick structures. Build
// one per queue event with NewTable and swap it in atomically; picks on it
// take no lock and allocate nothing.
type Table struct {
	backends []Backend
	byID     map[string]int
	// eligible are the indexes of the non-SUNDOWN backends; alias is their
	// weighted alias table.
	eligible []int32
	alias    []aliasEntry
	tauInv   float64
	ramp     float64 // 1 / SlowStart in 1/ns, 0 when off
	floor    float64
	opts     Options
	pickers  [numPolicies]Picker
}

// NewTable builds a table from backends (copied; their order is kept).
// Backends whose ID is in prev keep prev's Stats, so in-flight counts,
// latency and ejections carry over; prev may be nil. IDs must be unique and
// non-empty.
func NewTable(backends []Backend, prev *Table, opts Options) (*Table, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("build balance table: %w", err)
	}
	t := &Table{
		backends: make([]Backend, len(backends)),
		byID:     make(map[string]int, len(backends)),
		tauInv:   1 / float64(opts.Tau),
		floor:    opts.SlowStartFloor,
		opts:     opts,
	}
	if opts.SlowStart > 0 {
		t.ramp = 1 / float64(opts.SlowStart)
	}
	// Check every ID before touching Stats shared with prev.
	for i, in := range backends {
		if in.ID == "" {
			return nil, fmt.Errorf("build balance table: backend %d (%s) has no ID", i, in.Address)
		}
		if _, dup := t.byID[in.ID]; dup {
			return nil, fmt.Errorf("build balance table: backend ID %q listed twice", in.ID)
		}
		t.byID[in.ID] = i
	}
	var weights []float64
	var known []float64
	for i, in := range backends {
		b := &t.backends[i]
		*b = Backend{ID: in.ID, Address: in.Address, Weight: in.Weight, State: in.State, Added: in.Added}
		b.index = i
		b.weight = normWeight(in.Weight)
		if prev != nil {
			if old := prev.Lookup(in.ID); old != nil {
				b.stats = old.stats
			}
		}
		if b.stats == nil {
			b.stats = new(Stats)
		}
		b.stats.opts.Store(&t.opts)
		if e := b.stats.ewma.Load(); e != 0 {
			known = append(known, math.Float64frombits(e))
		}
		var rampUntil int64
		if opts.SlowStart > 0 && in.State != Sundown && (in.Added != 0 || in.State == Init) {
			rampUntil = math.MaxInt64
			if in.Added != 0 {
				rampUntil = in.Added + int64(opts.SlowStart)
			}
		}
		b.stats.rampUntil.Store(rampUntil)
		if in.State != Sundown {
			t.eligible = append(t.eligible, int32(i))
			weights = append(weights, b.weight)
		}
	}
	dflt := fallbackLatency
	switch {
	case opts.InitialLatency > 0:
		dflt = float64(opts.InitialLatency)
	case len(known) > 0:
		slices.Sort(known)
		dflt = known[len(known)/2]
	}
	for i := range t.backends {
		t.backends[i].stats.dflt.Store(math.Float64bits(dflt))
	}
	t.alias = buildAlias(t.eligible, weights, t.backends)
	t.pickers = [numPolicies]Picker{
		PolicyP2C:        p2c{t},
		PolicyWeighted:   weighted{t},
		PolicyRoundRobin: &roundRobin{t: t},
		PolicyLeastConn:  leastConn{t},
	}
	return t, nil
}

func normWeight(w float64) float64 {
	switch {
	case math.IsNaN(w) || w < 0 || w > 100:
		return 1
	case w == 0:
		return epsilonWeight
	}
	return w
}

// Picker returns the table's picker for policy p, which must be one of the
// Policy constants (as ParsePolicy returns); any other value gets p2c.
// Pickers are built with the table: this does not allocate.
func (t *Table) Picker(p Policy) Picker {
	if p >= numPolicies {
		p = PolicyP2C
	}
	return t.pickers[p]
}

// Backends returns every backend in input order, SUNDOWN ones included (for
// in-flight reporting). The slice belongs to the table: do not modify it.
func (t *Table) Backends() []Backend { return t.backends }

// Lookup returns the backend with the given ID, or nil.
func (t *Table) Lookup(id string) *Backend {
	if t == nil {
		return nil
	}
	i, ok := t.byID[id]
	if !ok {
		return nil
	}
	return &t.backends[i]
}

// Eligible returns how many backends may take new requests (not SUNDOWN).
func (t *Table) Eligible() int { return len(t.eligible) }

// Options returns the options the table was built with.
func (t *Table) Options() Options { return t.opts }

// ObserveProbe feeds a probe latency for backend id measured at now (unix
// nanos); see Stats.ObserveProbe. It reports whether the ID is in the table.
func (t *Table) ObserveProbe(id string, latency time.Duration, now int64) bool {
	b := t.Lookup(id)
	if b == nil {
		return false
	}
	b.stats.ObserveProbe(latency, now)
	return true
}

// usable reports whether b may take a new request at now, apart from slow
// start: not excluded and not ejected.
func usable(b *Backend, now int64, ex1, ex2 *Stats) bool {
	return b.stats != ex1 && b.stats != ex2 && b.stats.ejectedUntil.Load() <= now
}

// ramping reports whether b is in its slow-start window at now.
func ramping(s *Stats, now int64) bool {
	u := s.rampUntil.Load()
	return u != 0 && now < u
}

// rampFactor is the share of its weight b gets at now under slow start.
func (t *Table) rampFactor(b *Backend, now int64) float64 {
	if !ramping(b.stats, now) {
		return 1
	}
	if b.Added == 0 {
		return t.floor
	}
	f := float64(now-b.Added) * t.ramp
	return min(1, max(t.floor, f))
}

// admit decides, for a backend in its slow-start window, whether it takes
// this request: with probability rampFactor, u being a random value.
func (t *Table) admit(u uint64, b *Backend, now int64) bool {
	return unit(u) < t.rampFactor(b, now)
}

// maxDraws bounds the rejection loop of a weighted draw. Each draw is
// rejected with the weight share of ejected, excluded or ramping-out
// backends q, so the linear fallback runs with probability q^maxDraws.
const maxDraws = 8

// draw picks a backend by weight × slow-start factor among the usable
// eligible ones, by rejection from the alias table. It returns nil after
// maxDraws rejections; the caller then falls back to scan. Its randomness
// comes from m, seeded by one call of the caller's Rand per pick: p2c's
// two draws then cost one Rand call.
func (t *Table) draw(m *mix, now int64, ex1, ex2 *Stats) *Backend {
	n := uint64(len(t.alias))
	for range maxDraws {
		hi, lo := bits.Mul64(m.next(), n)
		e := &t.alias[hi]
		i, s := e.other, e.otherStats
		if lo < e.thr {
			i, s = e.self, e.selfStats
		}
		if s == ex1 || s == ex2 || s.ejectedUntil.Load() > now {
			continue
		}
		b := &t.backends[i]
		if ramping(s, now) && !t.admit(m.next(), b, now) {
			continue
		}
		return b
	}
	return nil
}

// scan is the exact, linear version of draw: one weighted reservoir pass
// over the usable eligible backends. It returns nil when none is usable.
func (t *Table) scan(m *mix, now int64, ex1, ex2 *Stats) *Backend {
	var total float64
	var pick *Backend
	for _, i := range t.eligible {
		b := &t.backends[i]
		if !usable(b, now, ex1, ex2) {
			continue
		}
		w := b.weight * t.rampFactor(b, now)
		total += w
		if unit(m.next())*total < w {
			pick = b
		}
	}
	return pick
}

// leastRecentlyEjected is the last resort when every candidate is ejected:
// the backend ejected longest ago, so traffic continues rather than failing.
func (t *Table) leastRecentlyEjected(ex *Stats) *Backend {
	var pick *Backend
	var at int64
	for _, i := range t.eligible {
		b := &t.backends[i]
		if b.stats == ex {
			continue
		}
		if a := b.stats.ejectedAt.Load(); pick == nil || a < at {
			pick, at = b, a
		}
	}
	return pick
}

func statsOf(b *Backend) *Stats {
	if b == nil {
		return nil
	}
	return b.stats
}
