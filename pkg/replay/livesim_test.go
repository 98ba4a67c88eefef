package replay

import (
	"container/heap"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/services/scaler"
	"github.com/rustybalancer/rb/services/scorer"
)

// testApp is the app of every test recording.
const testApp = "shop"

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// testParams maps a config to parameters with the live services' own
// mappings.
func testParams(c config.Config) (score.Params, scale.Params) {
	return scorer.Params(c), scaler.Params(c)
}

// testConfig is the base config of the scenarios: 1 to 3 workers.
func testConfig(tb testing.TB) config.Config {
	tb.Helper()
	// No scale-down window, so the scenarios stay short.
	c, err := config.Default().WithRuntime(map[string]string{"DEFAULT_CONTAINER": "1", "MAX_CONTAINERS": "3", "RB_SCALE_DOWN_WINDOW": "0s"})
	if err != nil {
		tb.Fatal(err)
	}
	c.App = testApp
	return c
}

// loadFunc is the load (0..1) a worker carries at a time, given the number
// of ready workers; the live simulation turns it into CPU and network use.
type loadFunc func(at time.Time, worker string, ready int) float64

// message is one published message, in publish order.
type message struct {
	stream, subject string
	data            []byte
}

// liveSim runs the live path in one goroutine, the way the services do it:
// a collector sampling every ready worker each second, the scorer (pkg/score
// per container), the scaler (pkg/scale stepped with scale.Ticker over every
// input, its decisions published at their time) and a Docker that starts a
// worker (ready after startDelay) and removes one (removeDelay). It records
// every message it publishes, in order.
type liveSim struct {
	tb     testing.TB
	base   config.Config
	pf     ParamsFunc
	sp     score.Params
	cp     scale.Params
	st     *scale.State
	tk     scale.Ticker
	scores map[string]*score.State
	// running workers and when they answer probes (zero: not yet).
	running map[string]time.Time
	load    loadFunc
	queue   actionQueue
	seq     uint64
	out     []message
	// sink, when set, takes every message instead of out.
	sink func(message)
	// drainFor, when set, runs a proxy that reports every round and has
	// requests in flight to a SUNDOWN worker for drainFor after its SUNDOWN.
	drainFor  time.Duration
	sundownAt map[string]time.Time

	startDelay, removeDelay time.Duration
}

func newLiveSim(tb testing.TB, base config.Config, load loadFunc, initial ...string) *liveSim {
	tb.Helper()
	sp, cp := testParams(base)
	s := &liveSim{
		tb: tb, base: base, pf: testParams, sp: sp, cp: cp, st: scale.NewState(testApp),
		tk: scale.Ticker{Gap: scale.TickGap}, scores: map[string]*score.State{}, running: map[string]time.Time{},
		load: load, startDelay: 2500 * time.Millisecond, removeDelay: 700 * time.Millisecond,
	}
	for _, n := range initial {
		s.running[n] = t0
	}
	return s
}

// setConfig publishes a config change at a time, as the gateway does.
func (s *liveSim) setConfig(at time.Time, version int64, values map[string]string) {
	s.schedule(at, func() {
		c, err := s.base.WithRuntime(values)
		if err != nil {
			s.tb.Fatalf("config: %v", err)
		}
		s.sp, s.cp = s.pf(c)
		s.cp.ConfigVersion = version
		subj, _ := events.ConfigSubject(testApp)
		s.publish(events.StreamDecisions, subj, events.New(fmt.Sprintf("cfg-%d", version), at, "test/gateway",
			events.ConfigChanged{App: testApp, Version: version, Values: values, Changed: []string{"x"}}))
	})
}

// action is something the simulation does at a time; ties run in the order
// they were scheduled.
type action struct {
	at  time.Time
	seq uint64
	do  func()
}

type actionQueue []action

func (q actionQueue) Len() int { return len(q) }
func (q actionQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q actionQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *actionQueue) Push(x any)   { *q = append(*q, x.(action)) }
func (q *actionQueue) Pop() any {
	old := *q
	a := old[len(old)-1]
	*q = old[:len(old)-1]
	return a
}

func (s *liveSim) schedule(at time.Time, do func()) {
	s.seq++
	heap.Push(&s.queue, action{at: at, seq: s.seq, do: do})
}

func publishEvent[T events.Payload](s *liveSim, stream, subject string, ev events.Event[T]) {
	b, err := events.Encode(ev)
	if err != nil {
		s.tb.Fatalf("encode: %v", err)
	}
	if s.sink != nil {
		s.sink(message{stream: stream, subject: subject, data: b})
		return
	}
	s.out = append(s.out, message{stream: stream, subject: subject, data: b})
}

func (s *liveSim) publish(stream, subject string, ev any) {
	switch e := ev.(type) {
	case events.Event[events.Sample]:
		publishEvent(s, stream, subject, e)
	case events.Event[events.Decision]:
		publishEvent(s, stream, subject, e)
	case events.Event[events.Lifecycle]:
		publishEvent(s, stream, subject, e)
	case events.Event[events.ConfigChanged]:
		publishEvent(s, stream, subject, e)
	case events.Event[events.ProxyReport]:
		publishEvent(s, stream, subject, e)
	default:
		s.tb.Fatalf("publish %T", ev)
	}
}

// input is the scaler's loop for one input.
func (s *liveSim) input(in scale.Input) {
	for at, ok := s.tk.Next(in.Time); ok; at, ok = s.tk.Next(in.Time) {
		s.decide(scale.Tick(at))
	}
	s.tk.Input(in.Time)
	s.decide(in)
}

func (s *liveSim) decide(in scale.Input) {
	ds, err := s.st.Step(s.cp, in)
	if err != nil {
		s.tb.Fatalf("step: %v", err)
	}
	for _, d := range ds {
		now := s.st.Now
		subj, _ := events.ScaleSubject(testApp)
		id := fmt.Sprintf("d-%d-%d", now.UnixNano(), len(s.out))
		s.publish(events.StreamDecisions, subj, events.New(id, now, "scaler/test", d))
		for _, t := range d.Targets {
			switch d.Action {
			case events.ActionScaleUp, events.ActionReplace:
				s.running[t] = time.Time{}
				s.fact(now.Add(100*time.Millisecond), t, events.PhaseCreated, id)
				ready := now.Add(s.startDelay)
				s.schedule(ready, func() { s.running[t] = ready })
				s.fact(ready, t, events.PhaseReady, id)
			case events.ActionScaleDown:
				s.fact(now.Add(time.Millisecond), t, events.PhaseSundown, id)
				if s.sundownAt != nil {
					s.sundownAt[t] = now
				}
			case events.ActionRemove:
				s.schedule(now, func() { delete(s.running, t) })
				s.fact(now.Add(s.removeDelay), t, events.PhaseRemoved, id)
			}
		}
	}
}

// fact schedules a lifecycle fact: published, then stepped by the scaler.
func (s *liveSim) fact(at time.Time, name string, ph events.Phase, decisionID string) {
	s.schedule(at, func() {
		l := events.Lifecycle{App: testApp, Container: name, Phase: ph, DecisionID: decisionID}
		subj, _ := events.LifecycleSubject(testApp, name)
		s.publish(events.StreamDecisions, subj, events.New(fmt.Sprintf("l-%s-%s-%d", name, ph, at.UnixNano()), at, "scaler/test", l))
		s.input(scale.LifecycleInput(at, l))
	})
}

// round samples every ready worker at a time, a millisecond apart. Every
// Sample is an action of its own, so a fact scheduled between two of them
// runs between them: the simulation steps its inputs strictly in time order
// (a fact after the Samples of the same time), the order a replay merges them.
func (s *liveSim) round(at time.Time) {
	// The ticks a live scaler hands out while its input is quiet, one gap
	// behind its clock.
	for tk, ok := s.tk.Next(at.Add(-s.tk.Gap)); ok; tk, ok = s.tk.Next(at.Add(-s.tk.Gap)) {
		s.decide(scale.Tick(tk))
	}
	if s.drainFor > 0 {
		s.schedule(at.Add(-250*time.Millisecond), func() { s.report(at.Add(-250 * time.Millisecond)) })
	}
	var names []string
	for n, ready := range s.running {
		if !ready.IsZero() && !ready.After(at) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for i, n := range names {
		t := at.Add(time.Duration(i) * time.Millisecond)
		s.schedule(t, func() { s.sample(t, n, len(names)) })
	}
}

// report is the proxy's report at t.
func (s *liveSim) report(t time.Time) {
	r := events.ProxyReport{App: testApp, ProxyID: "px-1", IntervalSeconds: 1}
	var names []string
	for n, at := range s.sundownAt {
		if _, running := s.running[n]; running && t.Before(at.Add(s.drainFor)) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		r.Backends = append(r.Backends, events.BackendReport{Container: n, Address: "10.0.0.1:8080", State: events.StateSundown, InFlight: 1})
	}
	subj, _ := events.ProxySubject(testApp, "px-1")
	s.publish(events.StreamProxy, subj, events.New(fmt.Sprintf("px-%d", t.UnixNano()), t, "proxy/test", r))
	s.input(scale.ProxyInput(t, r))
}

func (s *liveSim) sample(t time.Time, n string, ready int) {
	if _, ok := s.running[n]; !ok {
		return // removed since the round started
	}
	l := s.load(t, n, ready)
	smp := events.Sample{
		App: testApp, Container: n, ContainerID: "id-" + n, State: "running", Address: "10.0.0.1:8080",
		WindowSeconds: 1, CPUPercent: 100 * l, CPULimit: 1, MemUsage: 1 << 20, MemLimit: 1 << 30,
		NetRxBps: l * 62.5e6, NetTxBps: l * 62.5e6, ProbeOK: true, ProbeSeconds: 0.0012,
	}
	subj, _ := events.StatsSubject(testApp, n)
	s.publish(events.StreamStats, subj, events.New(fmt.Sprintf("%s-%d", n, t.UnixNano()), t, "collector/test", smp))
	st := s.scores[n]
	if st == nil {
		st = score.NewState(s.sp)
		s.scores[n] = st
	}
	s.input(scale.ScoreInput(t, st.Update(s.sp, smp)))
}

// run simulates from t0 for d: the scaler goes live with a tick at t0 (not
// recorded, as live), then a sampling round every second (at 0.5 s past)
// and every scheduled action, in time order.
func (s *liveSim) run(d time.Duration) []message {
	s.schedule(t0, func() { s.input(scale.Tick(t0)) })
	for k := time.Duration(0); k < d; k += time.Second {
		at := t0.Add(k + 500*time.Millisecond)
		s.schedule(at, func() { s.round(at) })
	}
	end := t0.Add(d)
	for len(s.queue) > 0 && s.queue[0].at.Before(end) {
		heap.Pop(&s.queue).(action).do()
	}
	return s.out
}

// recording builds the Recording of the published messages.
func recordingOf(tb testing.TB, msgs []message) *Recording {
	tb.Helper()
	seq := map[string]uint64{}
	b := NewBuilder(testApp)
	for _, m := range msgs {
		seq[m.stream]++
		b.AddMessage(m.stream, m.subject, seq[m.stream], m.data)
	}
	return b.Finish()
}

func decisionsOf(msgs []message) int {
	n := 0
	for _, m := range msgs {
		if m.stream == events.StreamDecisions && len(m.subject) > len(events.PrefixScale) && m.subject[:len(events.PrefixScale)] == events.PrefixScale {
			n++
		}
	}
	return n
}
