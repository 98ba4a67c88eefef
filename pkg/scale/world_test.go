package scale

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

const app = "shop"

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// world drives one State through hand-written inputs on a clock of its own.
type world struct {
	tb  testing.TB
	p   Params
	s   *State
	now time.Time
	// all holds every decision so far.
	all []events.Decision
}

func newWorld(tb testing.TB, p Params) *world {
	tb.Helper()
	if err := p.Validate(); err != nil {
		tb.Fatalf("params: %v", err)
	}
	return &world{tb: tb, p: p, s: NewState(app), now: t0}
}

// wait moves the world's clock on.
func (w *world) wait(d time.Duration) *world {
	w.now = w.now.Add(d)
	return w
}

func (w *world) step(in Input) []events.Decision {
	w.tb.Helper()
	ds, err := w.s.Step(w.p, in)
	if err != nil {
		w.tb.Fatalf("step %+v: %v", in, err)
	}
	w.all = append(w.all, ds...)
	return ds
}

func (w *world) tick() []events.Decision { return w.step(Tick(w.now)) }

func (w *world) score(name string, v float64) []events.Decision {
	return w.step(ScoreInput(w.now, scoreOf(name, v, true)))
}

func (w *world) scoreNoProbe(name string, v float64) []events.Decision {
	return w.step(ScoreInput(w.now, scoreOf(name, v, false)))
}

func (w *world) fact(name string, ph events.Phase) []events.Decision {
	return w.step(LifecycleInput(w.now, events.Lifecycle{App: app, Container: name, Phase: ph}))
}

// report is one proxy report; inFlight is "name=n,name=n".
func (w *world) report(proxy string, inFlight string) []events.Decision {
	r := events.ProxyReport{App: app, ProxyID: proxy, IntervalSeconds: 1}
	for _, kv := range strings.Split(inFlight, ",") {
		if kv == "" {
			continue
		}
		var name string
		var n int64
		if _, err := fmt.Sscanf(strings.Replace(kv, "=", " ", 1), "%s %d", &name, &n); err != nil {
			w.tb.Fatalf("bad in-flight %q: %v", kv, err)
		}
		r.Backends = append(r.Backends, events.BackendReport{Container: name, Address: "10.0.0.1:80", InFlight: n})
	}
	return w.step(ProxyInput(w.now, r))
}

// scoreAll gives every ready or starting worker the score v.
func (w *world) scoreAll(v float64) []events.Decision {
	var ds []events.Decision
	for _, n := range w.names(PhaseReady, PhaseInit, PhaseRequested) {
		ds = append(ds, w.score(n, v)...)
	}
	return ds
}

// names lists the workers in the given phases, in name order.
func (w *world) names(phases ...Phase) []string {
	var out []string
	for _, wk := range w.s.Workers {
		for _, ph := range phases {
			if wk.Phase == ph {
				out = append(out, wk.Name)
			}
		}
	}
	return out
}

// start brings n workers named w1..wn up as ready with score v, past the
// first check, and returns the decisions of that first check.
func (w *world) start(n int, v float64) []events.Decision {
	w.tb.Helper()
	for i := 1; i <= n; i++ {
		if ds := w.score(fmt.Sprintf("w%d", i), v); len(ds) > 0 {
			w.tb.Fatalf("decisions while starting: %+v", ds)
		}
	}
	return w.wait(w.p.CheckPeriod).tick()
}

// readyAll makes every starting worker ready with score v.
func (w *world) readyAll(v float64) {
	for _, n := range w.names(PhaseRequested, PhaseInit) {
		w.fact(n, events.PhaseCreated)
		w.score(n, v)
	}
}

func (w *world) phase(name string) Phase {
	w.tb.Helper()
	wk, ok := w.s.Worker(name)
	if !ok {
		return ""
	}
	return wk.Phase
}

func scoreOf(name string, v float64, probeOK bool) events.Score {
	return events.Score{App: app, Container: name, Mode: "legacy", Overall: v, Category: category(v),
		Inputs: events.ScoreInputs{ProbeOK: probeOK, ProbeSeconds: 0.001}}
}

func category(v float64) events.Category {
	switch {
	case v >= 70:
		return events.CategoryLU
	case v >= 40:
		return events.CategoryMU
	}
	return events.CategoryHU
}

// only returns the decisions of the given actions.
func only(ds []events.Decision, actions ...events.Action) []events.Decision {
	var out []events.Decision
	for _, d := range ds {
		for _, a := range actions {
			if d.Action == a {
				out = append(out, d)
			}
		}
	}
	return out
}

func testParams() Params {
	p := DefaultParams()
	p.ScaleDownWindow = 0
	return p
}
