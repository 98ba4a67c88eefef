package balance

import "sync/atomic"

// roundRobin cycles through the non-SUNDOWN backends with one atomic
// counter, ignoring weights. Ejected and excluded backends are skipped; a
// backend in slow start is skipped with probability 1 - its ramp factor.
type roundRobin struct {
	t    *Table
	next atomic.Uint64
}

func (p *roundRobin) Pick(r Rand, now int64) (*Backend, error) {
	return p.pick(r, now, nil)
}

func (p *roundRobin) PickExcept(r Rand, now int64, exclude *Backend) (*Backend, error) {
	return p.pick(r, now, statsOf(exclude))
}

func (p *roundRobin) pick(r Rand, now int64, ex *Stats) (*Backend, error) {
	t := p.t
	n := uint64(len(t.eligible))
	if n == 0 {
		return nil, ErrNoBackend
	}
	k := (p.next.Add(1) - 1) % n
	for range n {
		b := &t.backends[t.eligible[k]]
		if usable(b, now, ex, nil) && (!ramping(b.stats, now) || t.admit(r.Uint64(), b, now)) {
			return b, nil
		}
		if k++; k == n {
			k = 0
		}
	}
	if b := t.leastRecentlyEjected(ex); b != nil {
		return b, nil
	}
	return nil, ErrNoBackend
}
