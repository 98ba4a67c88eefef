// Package queue builds each app's queue, the list every proxy routes by, from
// the latest score of each worker and the lifecycle facts: address, score,
// weight, category, state and probe latency per worker, SUNDOWN last and the
// others by score descending (ties by name), with a generation that grows
// only when the content changes.
//
// It is pure and deterministic: no clock, no I/O, no map order in its output.
// The queue-builder service and `rb replay` feed it the same events and get
// the same snapshots.
package queue

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/rustybalancer/rb/events"
)

// initScore is the prototype's score of a worker before its first score.
const initScore = 100

// tombstoneCap is how many removed worker names an app remembers, so a late
// score or fact cannot put a removed worker back on the queue.
const tombstoneCap = 4096

// The prototype's category cut-offs, used when a score carries none.
const (
	luCutoff = 70
	muCutoff = 40
)

type item struct {
	name     string
	address  string
	score    float64
	scored   bool
	weight   float64
	category events.Category
	state    events.State
	probe    float64
}

type appQueue struct {
	items map[string]*item
	// order holds the items, kept sorted at each snapshot: it is nearly
	// sorted already, and sorting pointers is cheap.
	order []*item
	// gone is the set of removed names and goneOrder their FIFO.
	gone      map[string]struct{}
	goneOrder []string
	gen       uint64
	// last is the content of the last snapshot taken.
	last []events.QueueItem
}

// Builder holds the queues of all apps. It is not safe for concurrent use.
type Builder struct {
	apps map[string]*appQueue
}

// NewBuilder returns a builder with no queues.
func NewBuilder() *Builder {
	return &Builder{apps: map[string]*appQueue{}}
}

func (b *Builder) app(name string) *appQueue {
	q, ok := b.apps[name]
	if !ok {
		q = &appQueue{items: map[string]*item{}, gone: map[string]struct{}{}}
		b.apps[name] = q
	}
	return q
}

// Apps returns the apps the builder has heard of, sorted.
func (b *Builder) Apps() []string {
	names := make([]string, 0, len(b.apps))
	for n := range b.apps {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// render is an item as the queue carries it; false while its address is unknown.
func (it *item) render() (events.QueueItem, bool) {
	if it.address == "" {
		return events.QueueItem{}, false
	}
	q := events.QueueItem{Container: it.name, Address: it.address, Score: it.score, Weight: it.weight,
		Category: it.category, State: it.state, ProbeSeconds: it.probe}
	if !it.scored {
		q.Score, q.Weight = initScore, initScore
	}
	switch it.state {
	case events.StateInit:
		q.Category = events.CategoryInit
	case events.StateSundown:
		q.Category, q.Weight = events.CategorySundown, 0
	default:
		if q.Category != events.CategoryLU && q.Category != events.CategoryMU && q.Category != events.CategoryHU {
			q.Category = categorize(q.Score)
		}
	}
	return q, true
}

func categorize(score float64) events.Category {
	switch {
	case score >= luCutoff:
		return events.CategoryLU
	case score >= muCutoff:
		return events.CategoryMU
	}
	return events.CategoryHU
}

// weightOf is the prototype's weight: the score, or 1 when the score is out
// of range. (The proxy raises a zero weight to machine epsilon.)
func weightOf(score float64) float64 {
	if math.IsNaN(score) || score < 0 || score > 100 {
		return 1
	}
	return score
}

// change applies fn to the named item (nil when unknown) and reports whether
// the queue's content changed. fn returns the item to keep, or nil to drop it.
func (q *appQueue) change(name string, fn func(it *item) *item) bool {
	if _, removed := q.gone[name]; removed {
		return false
	}
	old, had := q.items[name]
	var before events.QueueItem
	var wasShown bool
	if had {
		before, wasShown = old.render()
	}
	it := fn(old)
	if it == nil {
		if had {
			delete(q.items, name)
			q.order = slices.DeleteFunc(q.order, func(o *item) bool { return o == old })
		}
		return wasShown
	}
	switch {
	case !had:
		q.items[name] = it
		q.order = append(q.order, it)
	case it != old:
		q.items[name] = it
		q.order[slices.Index(q.order, old)] = it
	}
	after, shown := it.render()
	return shown != wasShown || after != before
}

// forget drops a worker for good.
func (q *appQueue) forget(name string) bool {
	changed := q.change(name, func(*item) *item { return nil })
	if _, ok := q.gone[name]; !ok {
		q.gone[name] = struct{}{}
		q.goneOrder = append(q.goneOrder, name)
		if len(q.goneOrder) > tombstoneCap {
			delete(q.gone, q.goneOrder[0])
			q.goneOrder = slices.Delete(q.goneOrder, 0, 1)
		}
	}
	return changed
}

// ApplyScore records a worker's latest score and reports whether the queue
// of its app changed. A worker first heard of through a score joins the
// queue (only the app's labelled workers are scored): ACTIVE if its probe
// succeeded, INIT otherwise. A successful probe makes an INIT worker ACTIVE,
// the same readiness rule as pkg/scale. Scores of removed workers are ignored.
func (b *Builder) ApplyScore(s events.Score) bool {
	if s.App == "" || s.Container == "" {
		return false
	}
	return b.app(s.App).change(s.Container, func(it *item) *item {
		if it == nil {
			st := events.StateInit
			if s.Inputs.ProbeOK {
				st = events.StateActive
			}
			it = &item{name: s.Container, state: st}
		}
		if s.Address != "" {
			it.address = s.Address
		}
		score := s.Overall
		it.weight = weightOf(score)
		if math.IsNaN(score) {
			score = 0
		}
		it.score, it.scored = min(max(score, 0), 100), true
		it.category = s.Category
		it.probe = s.Inputs.ProbeSeconds
		if math.IsNaN(it.probe) || math.IsInf(it.probe, 0) || it.probe < 0 {
			it.probe = 0
		}
		if it.state == events.StateInit && s.Inputs.ProbeOK {
			it.state = events.StateActive
		}
		return it
	})
}

// ApplyLifecycle applies a lifecycle fact and reports whether the queue of
// its app changed: created and started put a worker on as INIT, ready makes
// it ACTIVE, sundown moves it last with weight 0, and died, removed and failed
// take it off for good; health and drained change nothing but the address.
// A fact's address, when it has one, is the worker's.
func (b *Builder) ApplyLifecycle(l events.Lifecycle) bool {
	if l.App == "" || l.Container == "" {
		return false
	}
	q := b.app(l.App)
	switch l.Phase {
	case events.PhaseDied, events.PhaseRemoved, events.PhaseFailed:
		return q.forget(l.Container)
	}
	return q.change(l.Container, func(it *item) *item {
		if it == nil {
			switch l.Phase {
			case events.PhaseCreated, events.PhaseStarted:
				it = &item{name: l.Container, state: events.StateInit}
			case events.PhaseReady:
				it = &item{name: l.Container, state: events.StateActive}
			case events.PhaseSundown:
				it = &item{name: l.Container, state: events.StateSundown}
			default:
				return nil
			}
		}
		if l.Address != "" {
			it.address = l.Address
		}
		switch l.Phase {
		case events.PhaseReady:
			if it.state == events.StateInit {
				it.state = events.StateActive
			}
		case events.PhaseSundown:
			it.state = events.StateSundown
		}
		return it
	})
}

// Snapshot returns the app's queue: SUNDOWN last, the others by score
// descending, ties by name. Its generation grows by one when the content
// differs from the last snapshot taken, and only then; an unknown app has an
// empty queue at generation 0. The returned items are the caller's.
func (b *Builder) Snapshot(app string) events.QueueSnapshot {
	q, ok := b.apps[app]
	if !ok {
		return events.QueueSnapshot{App: app, Items: []events.QueueItem{}}
	}
	items := q.render()
	if !slices.Equal(items, q.last) {
		q.gen++
		q.last = slices.Clone(items)
	}
	return events.QueueSnapshot{App: app, Generation: q.gen, Items: items}
}

func (q *appQueue) render() []events.QueueItem {
	slices.SortFunc(q.order, func(a, b *item) int { return compare(a.key(), b.key()) })
	items := make([]events.QueueItem, 0, len(q.order))
	for _, it := range q.order {
		if r, ok := it.render(); ok {
			items = append(items, r)
		}
	}
	return items
}

// sortKey is what the queue is ordered by.
type sortKey struct {
	sundown bool
	score   float64
	name    string
}

func (it *item) key() sortKey {
	k := sortKey{sundown: it.state == events.StateSundown, score: it.score, name: it.name}
	if !it.scored {
		k.score = initScore
	}
	return k
}

func keyOf(q events.QueueItem) sortKey {
	return sortKey{sundown: q.State == events.StateSundown, score: q.Score, name: q.Container}
}

// compare orders the queue: SUNDOWN last, then score descending, then name.
func compare(a, b sortKey) int {
	if a.sundown != b.sundown {
		if a.sundown {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// Restore sets an app's queue to a snapshot (the one kept in Redis, at a
// cold start), generation included, so generations keep growing across
// restarts. Items are taken as they are; INIT items with score 100 count as
// not yet scored.
func (b *Builder) Restore(s events.QueueSnapshot) {
	if s.App == "" {
		return
	}
	q := b.app(s.App)
	q.items = make(map[string]*item, len(s.Items))
	q.order = q.order[:0]
	for _, r := range s.Items {
		if r.Container == "" {
			continue
		}
		st := r.State
		if st != events.StateInit && st != events.StateSundown {
			st = events.StateActive
		}
		it := &item{name: r.Container, address: r.Address, score: r.Score, weight: weightOf(r.Score),
			scored: st != events.StateInit || r.Score != initScore, category: r.Category, state: st, probe: r.ProbeSeconds}
		if old, dup := q.items[r.Container]; dup {
			q.order = slices.DeleteFunc(q.order, func(o *item) bool { return o == old })
		}
		q.items[r.Container] = it
		q.order = append(q.order, it)
	}
	q.gen = s.Generation
	q.last = q.render()
}
