package scale

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// The property tests run the engine against a simulated fleet: a demand that
// wanders, workers that start slowly, fail to start, die, and drain; two
// proxies, one of which may vanish; all seeded, so a failure names its seed.

type simEvent struct {
	at  time.Time
	seq int
	in  Input
	// act, when set, is run instead of feeding in (the fleet's own timers).
	act func()
}

type eventQueue []simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simWorker struct {
	ready    bool
	sundown  bool
	inFlight int64
	stuck    bool // never drains on its own
}

type sim struct {
	tb  testing.TB
	rng *rand.Rand
	p   Params
	s   *State
	q   eventQueue
	seq int
	now time.Time
	end time.Time
	// fleet is what "Docker" runs.
	fleet  map[string]*simWorker
	demand float64
	target float64
	// proxyBDownAt is when proxy px-b stops reporting (zero: never).
	proxyBDownAt time.Time
	// roundTrip, when > 0, re-encodes the state as JSON every roundTrip steps.
	roundTrip int
	steps     int
	out       []events.Decision
	// onStep, when set, sees every input and its decisions.
	onStep     func(Input, []events.Decision)
	lastScale  time.Time
	reachedMin bool
}

func randomParams(rng *rand.Rand) Params {
	p := DefaultParams()
	p.Min = 1 + rng.IntN(5)
	p.Max = p.Min + rng.IntN(9)
	p.Step = 1 + rng.IntN(3)
	p.High = 30 + float64(rng.IntN(31))
	p.Low = p.High + 5 + float64(rng.IntN(int(95-p.High-5)+1))
	p.Critical = 5 + float64(rng.IntN(int(p.High-5)))
	dur := func(maxSeconds int) time.Duration { return time.Duration(rng.IntN(maxSeconds+1)) * time.Second }
	p.Cooldown = dur(30)
	p.CheckPeriod = dur(20)
	p.ScaleUpWindow = dur(20)
	p.ScaleDownWindow = dur(40)
	p.DrainGrace = dur(5)
	p.DrainTimeout = []time.Duration{0, 15 * time.Second, 90 * time.Second}[rng.IntN(3)]
	p.ReadyTimeout = []time.Duration{0, 8 * time.Second, 30 * time.Second, 60 * time.Second}[rng.IntN(4)]
	p.ReplaceBackoff = dur(10)
	p.ScaleInGuard = rng.IntN(2) == 0
	if rng.IntN(2) == 0 {
		p.TrendHorizon = dur(60) + time.Second
	}
	return p
}

func newSim(tb testing.TB, seed uint64, minutes int) *sim {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := randomParams(rng)
	if err := p.Validate(); err != nil {
		tb.Fatalf("seed %d: random params invalid: %v", seed, err)
	}
	sm := &sim{tb: tb, rng: rng, p: p, s: NewState(app), now: t0, end: t0.Add(time.Duration(minutes) * time.Minute),
		fleet: map[string]*simWorker{}, demand: float64(p.Min) * 40, target: float64(p.Max) * 60}
	if rng.IntN(3) == 0 {
		sm.proxyBDownAt = t0.Add(time.Duration(rng.IntN(minutes*60)) * time.Second)
	}
	sm.at(0, func() { sm.second() })
	return sm
}

func (sm *sim) at(d time.Duration, act func()) {
	sm.seq++
	heap.Push(&sm.q, simEvent{at: sm.now.Add(d), seq: sm.seq, act: act})
}

func (sm *sim) feed(d time.Duration, in Input) {
	sm.seq++
	in.Time = sm.now.Add(d)
	heap.Push(&sm.q, simEvent{at: in.Time, seq: sm.seq, in: in})
}

func (sm *sim) jitter(maxMillis int) time.Duration {
	return time.Duration(sm.rng.IntN(maxMillis+1)) * time.Millisecond
}

func (sm *sim) fact(d time.Duration, name string, ph events.Phase) {
	sm.feed(d, Input{Kind: InputLifecycle, Lifecycle: events.Lifecycle{App: app, Container: name, Phase: ph}})
}

// second schedules one second of the fleet's life.
func (sm *sim) second() {
	// Demand follows a target that jumps every few minutes: load waves.
	if sm.rng.IntN(180) == 0 {
		sm.target = sm.rng.Float64() * float64(sm.p.Max) * 100
	}
	sm.demand += (sm.target-sm.demand)*0.1 + (sm.rng.Float64()-0.5)*20
	sm.demand = max(sm.demand, 0)
	names := slices.Sorted(maps.Keys(sm.fleet))
	ready := 0
	for _, n := range names {
		if w := sm.fleet[n]; w.ready && !w.sundown {
			ready++
		}
	}
	for _, n := range names {
		w := sm.fleet[n]
		if !w.ready {
			continue
		}
		usage := 100.0
		if !w.sundown && ready > 0 {
			usage = sm.demand / float64(ready)
		} else if w.sundown {
			usage = 0
		}
		v := min(max(100-usage+(sm.rng.Float64()-0.5)*10, 0), 100)
		sm.feed(sm.jitter(999), ScoreInput(time.Time{}, scoreOf(n, v, true)))
		if !w.sundown && sm.rng.IntN(1500) == 0 {
			sm.fact(sm.jitter(999), n, events.PhaseDied)
			w.ready = false
		}
	}
	for _, px := range []string{"px-a", "px-b"} {
		if px == "px-b" && !sm.proxyBDownAt.IsZero() && sm.now.After(sm.proxyBDownAt) {
			continue
		}
		r := events.ProxyReport{App: app, ProxyID: px, IntervalSeconds: 1}
		for _, n := range names {
			w := sm.fleet[n]
			if w.sundown && w.inFlight > 0 {
				r.Backends = append(r.Backends, events.BackendReport{Container: n, InFlight: w.inFlight})
				if !w.stuck {
					w.inFlight -= int64(sm.rng.IntN(2))
				}
			}
		}
		sm.feed(sm.jitter(999), ProxyInput(time.Time{}, r))
	}
	if sm.rng.IntN(4) == 0 {
		sm.feed(sm.jitter(999), Tick(time.Time{}))
	}
	if sm.now.Before(sm.end) {
		sm.at(time.Second, func() { sm.second() })
	}
}

// execute plays the fleet's part for one decision.
func (sm *sim) execute(d events.Decision) {
	for _, n := range d.Targets {
		switch d.Action {
		case events.ActionScaleUp, events.ActionReplace:
			if sm.rng.IntN(10) == 0 {
				sm.fact(sm.jitter(2000), n, events.PhaseFailed)
				continue
			}
			w := &simWorker{}
			sm.fleet[n] = w
			created := sm.jitter(2000)
			sm.fact(created, n, events.PhaseCreated)
			if sm.rng.IntN(20) == 0 {
				continue // never ready
			}
			name := n
			sm.at(created+time.Second+sm.jitter(9000), func() {
				if w, ok := sm.fleet[name]; ok && !w.sundown {
					w.ready = true
					sm.fact(0, name, events.PhaseReady)
				}
			})
		case events.ActionScaleDown:
			if w, ok := sm.fleet[n]; ok {
				w.sundown, w.inFlight, w.stuck = true, int64(sm.rng.IntN(6)), sm.rng.IntN(10) == 0
			}
			sm.fact(100*time.Millisecond, n, events.PhaseSundown)
		case events.ActionRemove:
			if sm.rng.IntN(20) == 0 {
				sm.fact(sm.jitter(1000), n, events.PhaseFailed)
				continue
			}
			if _, ok := sm.fleet[n]; ok {
				sm.fact(200*time.Millisecond, n, events.PhaseDied)
			}
			delete(sm.fleet, n)
			sm.fact(500*time.Millisecond+sm.jitter(2500), n, events.PhaseRemoved)
		}
	}
}

// run plays the simulation to its end, checking the invariants at every step.
func (sm *sim) run() {
	for sm.q.Len() > 0 {
		e := heap.Pop(&sm.q).(simEvent)
		sm.now = e.at
		if e.act != nil {
			e.act()
			continue
		}
		ds, err := sm.s.Step(sm.p, e.in)
		if err != nil {
			sm.tb.Fatalf("step: %v", err)
		}
		sm.steps++
		sm.checkStep(ds)
		if sm.onStep != nil {
			sm.onStep(e.in, ds)
		}
		for _, d := range ds {
			sm.execute(d)
		}
		sm.out = append(sm.out, ds...)
		if sm.roundTrip > 0 && sm.steps%sm.roundTrip == 0 {
			b, err := json.Marshal(sm.s)
			if err != nil {
				sm.tb.Fatal(err)
			}
			next := &State{}
			if err := json.Unmarshal(b, next); err != nil {
				sm.tb.Fatal(err)
			}
			sm.s = next
		}
	}
}

func (sm *sim) checkStep(ds []events.Decision) {
	tb, p, s := sm.tb, sm.p, sm.s
	fail := func(format string, args ...any) {
		tb.Helper()
		tb.Fatalf("at %s (params %+v): %s\ndecisions:\n%s", s.Now.Sub(t0), p, fmt.Sprintf(format, args...), dump(ds))
	}
	// The running tally must equal a recount.
	running := s.agg
	s.agg.ok = false
	if recount := *s.counted(p.Critical); running != recount {
		fail("running tally %+v, recount %+v", running, recount)
	}
	c := s.Counts()
	if s.Desired >= p.Min {
		sm.reachedMin = true
	}
	if sm.reachedMin && (s.Desired < p.Min || s.Desired > p.Max) {
		fail("desired %d outside [%d, %d]", s.Desired, p.Min, p.Max)
	}
	if c.Live > p.Max {
		fail("%d live workers > max %d", c.Live, p.Max)
	}
	for _, d := range ds {
		if err := d.Validate(); err != nil {
			fail("invalid decision: %v", err)
		}
		switch d.Action {
		case events.ActionScaleUp, events.ActionScaleDown:
			if !sm.lastScale.IsZero() && s.Now.Sub(sm.lastScale) < p.Cooldown {
				fail("%s %s after the last scaling, cooldown %s", d.Action, s.Now.Sub(sm.lastScale), p.Cooldown)
			}
			sm.lastScale = s.Now
		}
		switch d.Action {
		case events.ActionScaleUp:
			if d.To > p.Max || len(d.Targets) != d.To-d.From {
				fail("scale-up %d → %d with %d targets, max %d", d.From, d.To, len(d.Targets), p.Max)
			}
			if !strings.HasPrefix(d.Reason, "desired") && d.Inputs.Starting > 0 {
				fail("scale-up while %d workers were starting", d.Inputs.Starting)
			}
		case events.ActionScaleDown:
			if d.To < p.Min {
				fail("scale-down to %d < min %d", d.To, p.Min)
			}
			for _, n := range d.Targets {
				w, _ := s.Worker(n)
				if w.Phase != PhaseSundown || w.ReadyAt.IsZero() {
					fail("SUNDOWN of %s which was never ready (phase %s)", n, w.Phase)
				}
			}
			if len(d.Targets) > 0 && c.Live < p.Min {
				fail("SUNDOWN left %d live workers < min %d", c.Live, p.Min)
			}
		case events.ActionRemove:
			for _, n := range d.Targets {
				if w, _ := s.Worker(n); w.live() {
					fail("remove of live worker %s (%s)", n, w.Phase)
				}
			}
		}
	}
}

func (sm *sim) decisionsJSON() []byte {
	b, err := json.Marshal(sm.out)
	if err != nil {
		sm.tb.Fatal(err)
	}
	return b
}

func TestPropertyInvariants(t *testing.T) {
	t.Parallel()
	seeds, minutes := 40, 15
	if testing.Short() {
		seeds, minutes = 10, 5
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			sm := newSim(t, seed, minutes)
			sm.run()
			acts := map[events.Action]int{}
			for _, d := range sm.out {
				acts[d.Action]++
			}
			if acts[events.ActionScaleUp] == 0 {
				t.Fatalf("seed %d never scaled up (%v): the simulation does not exercise the engine", seed, acts)
			}
		})
	}
}

func TestPropertyDeterministic(t *testing.T) {
	t.Parallel()
	for seed := uint64(100); seed < 110; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			a := newSim(t, seed, 10)
			a.run()
			b := newSim(t, seed, 10)
			b.run()
			c := newSim(t, seed, 10)
			c.roundTrip = 37 // same run through a JSON round trip of the state every 37 steps
			c.run()
			ja, jb, jc := a.decisionsJSON(), b.decisionsJSON(), c.decisionsJSON()
			if len(a.out) == 0 {
				t.Fatal("no decisions")
			}
			if !bytes.Equal(ja, jb) {
				t.Fatalf("two runs of seed %d differ:\n%s\n%s", seed, ja, jb)
			}
			if !bytes.Equal(ja, jc) {
				t.Fatalf("a JSON round trip of the state changed the decisions of seed %d", seed)
			}
			sa, _ := json.Marshal(a.s)
			sb, _ := json.Marshal(b.s)
			if !bytes.Equal(sa, sb) {
				t.Fatalf("final states of seed %d differ", seed)
			}
		})
	}
}

// TestCoverage checks that the simulation reaches every kind of decision
// across seeds, so the invariants above are tested where they matter.
func TestPropertyCoverage(t *testing.T) {
	t.Parallel()
	acts := map[string]int{}
	for seed := uint64(1); seed <= 20; seed++ {
		sm := newSim(t, seed, 10)
		sm.run()
		for _, d := range sm.out {
			key := string(d.Action)
			switch {
			case strings.Contains(d.Reason, "RB_DRAIN_TIMEOUT"):
				key = "drain timeout"
			case strings.Contains(d.Reason, "RB_READY_TIMEOUT"):
				key = "ready timeout"
			case strings.Contains(d.Reason, "RB_SCALE_IN_GUARD"):
				key = "guard"
			}
			acts[key]++
		}
	}
	for _, k := range []string{"scale_up", "scale_down", "replace", "remove", "hold", "drain timeout", "ready timeout", "guard"} {
		if acts[k] == 0 {
			t.Errorf("no %q decision in 20 seeds: %v", k, acts)
		}
	}
}
