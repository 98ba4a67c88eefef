package balance

// p2c is the power of two choices over Peak-EWMA cost: two distinct
// candidates drawn by weight, the cheaper one taken.
type p2c struct{ t *Table }

func (p p2c) Pick(r Rand, now int64) (*Backend, error) {
	return p.pick(r, now, nil)
}

func (p p2c) PickExcept(r Rand, now int64, exclude *Backend) (*Backend, error) {
	return p.pick(r, now, statsOf(exclude))
}

func (p p2c) pick(r Rand, now int64, ex *Stats) (*Backend, error) {
	t := p.t
	if len(t.alias) == 0 {
		return nil, ErrNoBackend
	}
	m := mix(r.Uint64())
	a := t.draw(&m, now, ex, nil)
	if a == nil {
		if a = t.scan(&m, now, ex, nil); a == nil {
			if a = t.leastRecentlyEjected(ex); a == nil {
				return nil, ErrNoBackend
			}
			return a, nil
		}
	}
	// The second candidate must differ from a. Draws fail only when a
	// (or ejected backends) hold most of the weight, so the linear scan is
	// rare; it never falls back to an ejected backend: a alone is the
	// answer then.
	b := t.draw(&m, now, ex, a.stats)
	if b == nil {
		if b = t.scan(&m, now, ex, a.stats); b == nil {
			return a, nil
		}
	}
	if t.cost(b, now) < t.cost(a, now) {
		return b, nil
	}
	return a, nil
}

// cost is (in flight + 1) × the decayed peak-EWMA latency.
func (t *Table) cost(b *Backend, now int64) float64 {
	s := b.stats
	return float64(s.inflight.Load()+1) * s.latency(now, t.tauInv)
}
