package balance

import "math/bits"

// leastConnExact is the table size up to which least-conn scans every
// backend; above it, it takes the least loaded of leastConnSample random
// ones (the power of d choices), so a pick stays O(1).
const (
	leastConnExact  = 64
	leastConnSample = 16
)

// leastConn takes the backend with the fewest requests in flight, ties
// broken uniformly at random. Weights are ignored; slow start skips a
// ramping backend with probability 1 - its ramp factor.
type leastConn struct{ t *Table }

func (p leastConn) Pick(r Rand, now int64) (*Backend, error) {
	return p.pick(r, now, nil)
}

func (p leastConn) PickExcept(r Rand, now int64, exclude *Backend) (*Backend, error) {
	return p.pick(r, now, statsOf(exclude))
}

func (p leastConn) pick(r Rand, now int64, ex *Stats) (*Backend, error) {
	t := p.t
	n := len(t.eligible)
	if n == 0 {
		return nil, ErrNoBackend
	}
	m := mix(r.Uint64())
	var pick *Backend
	var best int64
	ties := uint64(0)
	consider := func(b *Backend) {
		if !usable(b, now, ex, nil) || (ramping(b.stats, now) && !t.admit(m.next(), b, now)) {
			return
		}
		in := b.stats.inflight.Load()
		switch {
		case pick == nil || in < best:
			pick, best, ties = b, in, 1
		case in == best:
			// Reservoir sampling keeps each tied backend with
			// probability 1/ties.
			ties++
			if hi, _ := bits.Mul64(m.next(), ties); hi == 0 {
				pick = b
			}
		}
	}
	if n <= leastConnExact {
		for _, i := range t.eligible {
			consider(&t.backends[i])
		}
	} else {
		for range leastConnSample {
			hi, _ := bits.Mul64(m.next(), uint64(n))
			consider(&t.backends[t.eligible[hi]])
		}
	}
	if pick != nil {
		return pick, nil
	}
	if n > leastConnExact {
		// Every sampled backend was unusable: look at all of them.
		for _, i := range t.eligible {
			consider(&t.backends[i])
		}
		if pick != nil {
			return pick, nil
		}
	}
	if b := t.leastRecentlyEjected(ex); b != nil {
		return b, nil
	}
	return nil, ErrNoBackend
}
