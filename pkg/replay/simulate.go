package replay

import (
	"container/heap"
	"maps"
	"slices"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/pkg/score"
)

// A what-if cannot replay the lifecycle facts that followed the recorded
// decisions: its own decisions differ. It drops them (Prepared.classify) and
// simulates the consequences of its own decisions instead:
//
//   - a scale-up's or replacement's workers are ready Delays.Start after the
//     decision (a ready fact), and sampled from then on;
//   - while the recorded proxies report, a simulated proxy reports every
//     sampling round in their stead: a SUNDOWN worker has requests in flight for
//     Delays.Drain after its scale-down, none after, so the engine's drain
//     rule removes it RB_DRAIN_GRACE later (or at RB_DRAIN_TIMEOUT); without
//     proxy reports in the recording there is no proxy, and the engine's own
//     rule removes it RB_DRAIN_GRACE after SUNDOWN;
//   - a removal is complete (a removed fact) Delays.Remove after its decision.
//
// The workers' load comes from the load model (model.go). Recorded proxy
// reports are not replayed in a what-if: they describe the recorded fleet.

// Status of a worker slot in a what-if.
const (
	slotUnknown uint8 = iota // not (yet) in the simulated fleet
	slotPresent              // in it, until removed
	slotGone                 // removed: its recorded Samples are demand only
)

type simItem struct {
	at    int64
	seq   uint64
	name  string
	phase events.Phase
}

type simQueue []simItem

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simItem)) }
func (q *simQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// sim is the simulated side of a what-if.
type sim struct {
	model Model
	// recordedScores: the candidate scores like the recording (no scoring
	// override, as-recorded model), so recorded Samples keep their
	// precomputed scores.
	recordedScores bool
	nRec           int
	status         []uint8
	names          []string
	newSlots       map[string]int
	states         []*score.State
	lastFed        []int64
	queue          simQueue
	seq            uint64
	next           int64
	buf            []string
	// busyUntil is, per SUNDOWN worker, when the simulated proxy stops
	// reporting requests in flight to it.
	busyUntil map[string]int64
	// proxyAt is the time of the latest recorded proxy report: the
	// simulated proxy reports while the recorded proxies did.
	proxyAt int64
}

func newSim(p *Prepared, ep []epoch) *sim {
	n := len(p.rec.Containers)
	s := &sim{
		model:          p.opt.Model,
		recordedScores: p.opt.Model == ModelAsRecorded && sameScoring(ep, p.recorded),
		nRec:           n,
		status:         make([]uint8, n),
		names:          append([]string(nil), p.rec.Containers...),
		newSlots:       map[string]int{},
		states:         make([]*score.State, n),
		lastFed:        make([]int64, n),
		next:           p.start + p.interval,
		busyUntil:      map[string]int64{},
	}
	// The warm-up's workers are the simulated fleet at the start.
	for i := range p.warm.Workers {
		w := &p.warm.Workers[i]
		if c, ok := p.ctrIndex[w.Name]; ok {
			if w.Phase == scale.PhaseRemoved {
				s.status[c] = slotGone
			} else {
				s.status[c] = slotPresent
			}
		}
	}
	return s
}

// slot returns the slot of a worker, making one for a name the recording
// does not have.
func (s *sim) slot(p *Prepared, name string) int {
	if c, ok := p.ctrIndex[name]; ok {
		return int(c)
	}
	if i, ok := s.newSlots[name]; ok {
		return i
	}
	i := len(s.names)
	s.newSlots[name] = i
	s.names = append(s.names, name)
	s.status = append(s.status, slotUnknown)
	s.states = append(s.states, nil)
	s.lastFed = append(s.lastFed, 0)
	return i
}

// state is the scoring memory of a slot: a recorded worker goes on from its
// state at the cut (or, when its recorded scores are used, from its state
// after its last recorded Sample); a new worker starts afresh.
func (s *sim) state(p *Prepared, slot int) *score.State {
	if st := s.states[slot]; st != nil {
		return st
	}
	var st *score.State
	switch {
	case slot >= s.nRec:
		st = &score.State{}
	case s.recordedScores:
		st = cloneScore(p.endScores[slot])
	default:
		st = cloneScore(p.measureScores[slot])
	}
	s.states[slot] = st
	return st
}

func (s *sim) push(at int64, name string, ph events.Phase) {
	s.seq++
	heap.Push(&s.queue, simItem{at: at, seq: s.seq, name: name, phase: ph})
}

// consequences schedules what the decision sets off in the simulated world.
func (r *runner) consequences(d events.Decision) {
	p, s := r.p, r.sim
	now := r.st.Now.UnixNano()
	switch d.Action {
	case events.ActionScaleUp, events.ActionReplace:
		for _, t := range d.Targets {
			s.status[s.slot(p, t)] = slotPresent
			s.push(now+int64(p.delays.Start), t, events.PhaseReady)
		}
	case events.ActionScaleDown:
		if p.hasProxy {
			for _, t := range d.Targets {
				s.busyUntil[t] = now + int64(p.delays.Drain)
			}
		}
	case events.ActionRemove:
		for _, t := range d.Targets {
			s.push(now+int64(p.delays.Remove), t, events.PhaseRemoved)
		}
	}
}

// simulateUntil runs the simulated facts and sampling rounds due at or
// before t, in time order (facts first on a tie).
func (r *runner) simulateUntil(t int64) {
	s := r.sim
	for {
		qa := int64(1<<63 - 1)
		if len(s.queue) > 0 {
			qa = s.queue[0].at
		}
		switch {
		case qa <= s.next && qa <= t:
			it := heap.Pop(&s.queue).(simItem)
			r.simFact(it)
		case s.next <= t:
			b := s.next
			s.next += r.p.interval
			r.round(b)
		default:
			return
		}
	}
}

func (r *runner) simFact(it simItem) {
	r.step(scale.LifecycleInput(fromNanos(it.at), events.Lifecycle{
		App: r.p.rec.App, Container: it.name, Phase: it.phase, Reason: "simulated by rb replay",
	}))
	if it.phase == events.PhaseRemoved {
		r.sim.status[r.sim.slot(r.p, it.name)] = slotGone
	}
}

// whatIfSample routes a recorded Sample: the demand always sees it; a
// worker of the simulated fleet is fed it under as-recorded; a worker the
// what-if has never heard of is adopted by it, unless the recorded
// decisions created it (then it only exists in the recording).
func (r *runner) whatIfSample(si int, t int64) {
	p, s := r.p, r.sim
	r.dem.note(p.rec.Samples, si)
	c := int(p.rec.Samples[si].Ctr)
	switch s.status[c] {
	case slotGone:
		return
	case slotUnknown:
		if !p.eligible[c] {
			return
		}
		s.status[c] = slotPresent
	case slotPresent:
		if s.model == ModelConserveDemand {
			return
		}
	}
	if s.recordedScores {
		r.step(scale.ScoreInput(fromNanos(t), p.scoreOf(si)))
		return
	}
	smp := &p.rec.Samples[si]
	r.feed(c, t, p.sampleEvent(smp, p.rec.Containers[c]))
}

// feed scores a Sample of a slot with the candidate's parameters and steps it.
func (r *runner) feed(slot int, t int64, smp events.Sample) {
	p, s := r.p, r.sim
	st := s.state(p, slot)
	if l := s.lastFed[slot]; l != 0 && t-l > int64(p.opt.IdleTimeout) {
		*st = score.State{} // the live scorer forgets an idle container
	}
	s.lastFed[slot] = t
	sc := st.Update(r.ep[r.ei].sp, smp)
	r.step(scale.ScoreInput(fromNanos(t), sc))
}

// whatIfFact steps a recorded fact that is not a consequence of a recorded
// decision (a crash, an operator's action), unless it is about a worker the
// what-if removed already or never had.
func (r *runner) whatIfFact(l *events.Lifecycle, at int64) {
	p, s := r.p, r.sim
	c, known := p.ctrIndex[l.Container]
	if known {
		switch s.status[c] {
		case slotGone:
			return
		case slotUnknown:
			if !p.eligible[c] {
				return
			}
			s.status[c] = slotPresent
		}
	}
	r.step(scale.LifecycleInput(fromNanos(at), *l))
	if known && l.Phase == events.PhaseRemoved {
		s.status[c] = slotGone
	}
}

// round is one sampling round of the simulated fleet at time b: every ready
// worker the load model has to make a Sample for gets one.
func (r *runner) round(b int64) {
	p, s := r.p, r.sim
	// The ticks a live scaler hands out while its input is quiet.
	at := fromNanos(b)
	for tk, ok := r.tk.Next(at); ok; tk, ok = r.tk.Next(at) {
		r.met.advance(r.st, tk.UnixNano())
		r.decide(scale.Tick(tk))
	}
	if s.proxyAt != 0 && b-s.proxyAt <= 3*p.interval {
		r.step(scale.ProxyInput(at, s.proxyReport(p, b)))
	}
	if !r.dem.refresh(p.rec.Samples, b, 2*p.interval) {
		return
	}
	s.buf = s.buf[:0]
	ready := 0
	for i := range r.st.Workers {
		w := &r.st.Workers[i]
		if w.Phase != scale.PhaseReady {
			continue
		}
		ready++
		if s.model == ModelAsRecorded {
			if c, ok := p.ctrIndex[w.Name]; ok && b <= p.lastAt[c] {
				continue // its recorded Samples go on
			}
		}
		s.buf = append(s.buf, w.Name)
	}
	for _, name := range s.buf {
		smp := r.dem.sample(s.model, ready)
		smp.App, smp.Container = p.rec.App, name
		r.feed(s.slot(p, name), b, smp)
	}
}

// simProxy names the proxy a what-if simulates.
const simProxy = "rb-replay"

// proxyReport is the simulated proxy's report at b: one request in flight
// to each SUNDOWN worker still draining, nothing elsewhere.
func (s *sim) proxyReport(p *Prepared, b int64) events.ProxyReport {
	r := events.ProxyReport{App: p.rec.App, ProxyID: simProxy, IntervalSeconds: float64(p.interval) / 1e9}
	for name, until := range s.busyUntil {
		if b >= until {
			delete(s.busyUntil, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.busyUntil)) {
		r.Backends = append(r.Backends, events.BackendReport{Container: name, State: events.StateSundown, InFlight: 1})
	}
	return r
}
