package balance

// weighted is the prototype's categorical pick: P(i) = w_i / Σw over the
// non-SUNDOWN backends, O(1) through the alias table.
type weighted struct{ t *Table }

func (p weighted) Pick(r Rand, now int64) (*Backend, error) {
	return p.pick(r, now, nil)
}

func (p weighted) PickExcept(r Rand, now int64, exclude *Backend) (*Backend, error) {
	return p.pick(r, now, statsOf(exclude))
}

func (p weighted) pick(r Rand, now int64, ex *Stats) (*Backend, error) {
	t := p.t
	if len(t.alias) == 0 {
		return nil, ErrNoBackend
	}
	m := mix(r.Uint64())
	if b := t.draw(&m, now, ex, nil); b != nil {
		return b, nil
	}
	if b := t.scan(&m, now, ex, nil); b != nil {
		return b, nil
	}
	if b := t.leastRecentlyEjected(ex); b != nil {
		return b, nil
	}
	return nil, ErrNoBackend
}
