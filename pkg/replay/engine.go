package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/scale"
)

// mode is how the engine treats the recording.
type mode uint8

const (
	// modeWarm and modeActual rebuild what happened: recorded decisions are
	// applied, facts and scores observed, nothing is decided.
	modeWarm mode = iota
	modeActual
	// modeWarmStep steps the warm-up like modeFaithful and drops its own
	// decisions: for a recording that holds the scaler's whole history.
	modeWarmStep
	// modeFaithful steps the recorded scores, facts and proxy reports, as the
	// live scaler did, and keeps its own decisions to compare.
	modeFaithful
	// modeWhatIf steps under a candidate's parameters and simulates the
	// consequences of its own decisions (simulate.go).
	modeWhatIf
)

// Decided is one decision of a replay at its event time.
type Decided struct {
	Time time.Time `json:"time"`
	events.Decision
}

// Result is the outcome of one replay.
type Result struct {
	Candidate Candidate `json:"candidate"`
	Summary   Summary   `json:"summary"`
	// Decisions is the decision timeline, holds included.
	Decisions []Decided `json:"decisions"`
	// Start is the first second of Workers.
	Start time.Time `json:"start"`
	// Workers is the number of worker containers (starting, ready,
	// SUNDOWN or failed and not yet removed) at each second from Start.
	Workers []int32 `json:"-"`
	// Skipped counts inputs the engine refused, as the live scaler would
	// have (logged and dropped), by reason.
	Skipped map[string]int `json:"skipped,omitempty"`
}

// runner is one pass of the engine over the recording.
type runner struct {
	p    *Prepared
	mode mode
	ep   []epoch
	ei   int
	st   *scale.State
	tk   scale.Ticker
	dem  demand

	decisions []Decided
	met       meter
	skipped   map[string]int

	sim      *sim
	progress func(int)
	ctx      context.Context
	stopped  error
}

func (p *Prepared) newRunner(m mode, ep []epoch, progress func(int)) *runner {
	return &runner{p: p, mode: m, ep: ep, progress: progress, skipped: map[string]int{}, ctx: context.Background()}
}

// fork starts a runner at the cut from the warm-up state.
func (p *Prepared) fork(ctx context.Context, m mode, ep []epoch, progress func(int)) *runner {
	r := p.newRunner(m, ep, progress)
	r.ctx = ctx
	r.ei = p.configEventsBefore(p.cutE)
	r.st = p.warm.Clone()
	r.tk = p.warmTick
	r.dem = p.warmDem.clone()
	r.met = newMeter(p.start, p.end, p.riskHigh, p.riskCrit)
	return r
}

// configEventsBefore counts the config events among Events[:n].
func (p *Prepared) configEventsBefore(n int) int {
	k := 0
	for i := range p.rec.Events[:n] {
		if p.rec.Events[i].Kind == kindConfig {
			k++
		}
	}
	return k
}

// progressEvery is how many Samples go by between progress reports (and
// cancellation checks).
const progressEvery = 1 << 16

// loop runs the timeline from (si, ei) to (toS, toE).
func (r *runner) loop(si, ei, toS, toE int) {
	rec := r.p.rec
	done := 0
	for r.stopped == nil {
		isEvent := ei < toE && rec.Events[ei].Pos <= si
		if !isEvent && si >= toS {
			break
		}
		var t int64
		if isEvent {
			t = rec.Events[ei].At
		} else {
			t = rec.Samples[si].At
		}
		if r.sim != nil {
			r.simulateUntil(t)
		}
		if isEvent {
			r.event(ei, t)
			ei++
			continue
		}
		r.sample(si, t)
		si++
		if done++; done == progressEvery {
			if r.progress != nil {
				r.progress(done)
			}
			done = 0
			if err := r.ctx.Err(); err != nil {
				r.stopped = err
			}
		}
	}
	if r.progress != nil && done > 0 {
		r.progress(done)
	}
	if r.mode == modeWarm || r.mode == modeWarmStep || r.stopped != nil {
		return
	}
	if r.sim != nil {
		r.simulateUntil(r.p.end)
	}
	r.met.advance(r.st, r.p.end+1)
}

func (r *runner) params() scale.Params { return r.ep[r.ei].cp }

// observe applies a fact without deciding, as a restarted scaler rebuilds.
func (r *runner) observe(in scale.Input) {
	r.met.advance(r.st, in.Time.UnixNano())
	if err := r.st.Observe(r.params(), in); err != nil {
		r.skipped[err.Error()]++
	}
	r.tk.Input(in.Time)
}

// step is the live scaler's loop: the ticks due before the input, then the input.
func (r *runner) step(in scale.Input) {
	t := in.Time.UnixNano()
	for at, ok := r.tk.Next(in.Time); ok; at, ok = r.tk.Next(in.Time) {
		r.met.advance(r.st, at.UnixNano())
		r.decide(scale.Tick(at))
	}
	r.met.advance(r.st, t)
	r.tk.Input(in.Time)
	r.decide(in)
}

func (r *runner) decide(in scale.Input) {
	ds, err := r.st.Step(r.params(), in)
	if err != nil {
		r.skipped[err.Error()]++
		return
	}
	if r.mode == modeWarmStep {
		return
	}
	for _, d := range ds {
		r.decisions = append(r.decisions, Decided{Time: r.st.Now, Decision: d})
		if r.sim != nil {
			r.consequences(d)
		}
	}
}

func (r *runner) sample(si int, t int64) {
	switch r.mode {
	case modeWarm, modeActual:
		r.dem.note(r.p.rec.Samples, si)
		r.observe(scale.ScoreInput(fromNanos(t), r.p.scoreOf(si)))
	case modeFaithful, modeWarmStep:
		r.dem.note(r.p.rec.Samples, si)
		r.step(scale.ScoreInput(fromNanos(t), r.p.scoreOf(si)))
	case modeWhatIf:
		r.whatIfSample(si, t)
	}
}

func (r *runner) event(i int, t int64) {
	e := &r.p.rec.Events[i]
	at := fromNanos(t)
	if e.Kind == kindConfig {
		r.ei++
		return
	}
	switch r.mode {
	case modeWarm, modeActual:
		switch e.Kind {
		case kindDecision:
			r.met.advance(r.st, t)
			if err := r.st.ApplyDecision(at, e.Decision); err != nil {
				r.skipped[err.Error()]++
			}
			if r.mode == modeActual {
				r.decisions = append(r.decisions, Decided{Time: at, Decision: e.Decision})
			}
		case kindLifecycle:
			r.observe(scale.LifecycleInput(at, e.Lifecycle))
		case kindProxy:
			r.observe(scale.ProxyInput(at, e.Proxy))
		}
	case modeFaithful, modeWarmStep:
		switch e.Kind {
		case kindDecision:
			r.anchor(at)
		case kindLifecycle:
			r.step(scale.LifecycleInput(at, e.Lifecycle))
		case kindProxy:
			r.step(scale.ProxyInput(at, e.Proxy))
		}
	case modeWhatIf:
		switch {
		case e.Kind == kindDecision && r.st.Now.IsZero():
			r.goLive(at)
		case e.Kind == kindLifecycle && !r.p.consequence[i]:
			r.whatIfFact(&e.Lifecycle, t)
		case e.Kind == kindProxy:
			r.sim.proxyAt = max(r.sim.proxyAt, t)
		}
	}
}

// anchor puts the clock of a faithful replay at a recorded decision's time.
// The live scaler's ticks are not recorded: the tick rule (scale.Ticker)
// gives the same ones from the recorded inputs, except the tick a scaler
// takes when it starts acting, and the ticks after the last input. A
// decision later than every input so far was taken at such a tick, so the
// replay ticks there too.
func (r *runner) anchor(at time.Time) {
	if r.st.Now.IsZero() {
		r.goLive(at)
	}
	if r.st.Now.Before(at) {
		r.step(scale.Tick(at))
	}
}

// goLive is the start tick of a scaler that had heard of nothing before its
// first decision at: its first check comes one SCALE_CHECK_PERIOD after its
// first input, so it went live (its start tick) that long before.
func (r *runner) goLive(at time.Time) {
	r.step(scale.Tick(at.Add(-r.params().CheckPeriod)))
}

// runActual measures what really happened in the replay proper.
func (p *Prepared) runActual() *Result {
	r := p.fork(context.Background(), modeActual, p.recorded, nil)
	r.loop(p.cutS, p.cutE, len(p.rec.Samples), len(p.rec.Events))
	return r.result(Candidate{Name: "recorded (what happened)"})
}

// Comparison says whether a faithful replay reproduced the recorded
// decisions, byte for byte (time, action, reason, targets, inputs, from/to).
type Comparison struct {
	Recorded, Replayed int
	// Identical is the length of the common prefix; Equal is true when both
	// lists are equal.
	Identical int
	Equal     bool
	// First holds the first differing pair as JSON ("" where one list ended).
	FirstRecorded, FirstReplayed string
	// Actions compares the decisions that act (all but holds) alone: a
	// hold's reason carries durations to the nanosecond, which the order of
	// two inputs a millisecond apart on different streams changes.
	Actions struct {
		Recorded, Replayed, Identical int
		Equal                         bool
	}
}

// Faithful replays the recording with its recorded configuration and its
// recorded facts, as the live scaler saw them, and compares the decisions
// with the recorded ones.
func (p *Prepared) Faithful(ctx context.Context, progress func(int)) (*Result, Comparison, error) {
	r := p.fork(ctx, modeFaithful, p.recorded, progress)
	r.loop(p.cutS, p.cutE, len(p.rec.Samples), len(p.rec.Events))
	if r.stopped != nil {
		return nil, Comparison{}, r.stopped
	}
	res := r.result(Candidate{Name: "recorded config (faithful replay)"})
	return res, Compare(p.Actual().Decisions, res.Decisions), nil
}

// Compare compares two decision lists byte for byte in their JSON form.
func Compare(recorded, replayed []Decided) Comparison {
	c := Comparison{Recorded: len(recorded), Replayed: len(replayed)}
	for c.Identical < len(recorded) && c.Identical < len(replayed) {
		if decisionJSON(recorded[c.Identical]) != decisionJSON(replayed[c.Identical]) {
			break
		}
		c.Identical++
	}
	if c.Identical < len(recorded) {
		c.FirstRecorded = decisionJSON(recorded[c.Identical])
	}
	if c.Identical < len(replayed) {
		c.FirstReplayed = decisionJSON(replayed[c.Identical])
	}
	c.Equal = len(recorded) == len(replayed) && c.Identical == len(recorded)
	a, b := acting(recorded), acting(replayed)
	c.Actions.Recorded, c.Actions.Replayed = len(a), len(b)
	for c.Actions.Identical < len(a) && c.Actions.Identical < len(b) && decisionJSON(a[c.Actions.Identical]) == decisionJSON(b[c.Actions.Identical]) {
		c.Actions.Identical++
	}
	c.Actions.Equal = len(a) == len(b) && c.Actions.Identical == len(a)
	return c
}

// acting drops the holds.
func acting(ds []Decided) []Decided {
	out := make([]Decided, 0, len(ds))
	for _, d := range ds {
		if d.Action != events.ActionHold {
			out = append(out, d)
		}
	}
	return out
}

func decisionJSON(d Decided) string {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Sprintf("unencodable decision: %v", err)
	}
	return string(b)
}

// Run replays one candidate as a what-if (simulate.go) under the load
// model of the options. It is safe to call from several goroutines.
func (p *Prepared) Run(ctx context.Context, c Candidate, progress func(int)) (*Result, error) {
	ep, err := epochs(p.rec, p.opt.Base, p.opt.Params, c.Set)
	if err != nil {
		return nil, err
	}
	r := p.fork(ctx, modeWhatIf, ep, progress)
	r.sim = newSim(p, ep)
	r.loop(p.cutS, p.cutE, len(p.rec.Samples), len(p.rec.Events))
	if r.stopped != nil {
		return nil, r.stopped
	}
	return r.result(c), nil
}
