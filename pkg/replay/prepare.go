package replay

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/pkg/score"
)

const (
	kindDecision  = events.KindDecision
	kindLifecycle = events.KindLifecycle
	kindConfig    = events.KindConfigChanged
	kindProxy     = events.KindProxyReport
)

// Model is how a what-if turns the recorded load into the load of its own
// workers (docs/replay.md).
type Model string

// The load models.
const (
	// ModelAsRecorded keeps each worker's recorded usage; a worker the
	// recording does not have (or no longer has) takes the fleet's mean.
	ModelAsRecorded Model = "as-recorded"
	// ModelConserveDemand spreads the recorded total demand (CPU %, network
	// bytes/s, summed over the recorded workers) evenly over the replay's
	// ready workers.
	ModelConserveDemand Model = "conserve-demand"
)

// Models lists the load models.
func Models() []Model { return []Model{ModelAsRecorded, ModelConserveDemand} }

// Defaults of Options.
const (
	DefaultFlapWindow = 60 * time.Second
	// DefaultStartDelay is a new worker's time to ready when the recording
	// has no scale-up to measure it on: container start (0.1–0.25 s for a
	// static binary) plus up to one collector interval to the first probe.
	DefaultStartDelay = 2 * time.Second
	// DefaultRemoveDelay is the time from a remove decision to the removed
	// fact when the recording has none to measure.
	DefaultRemoveDelay = time.Second
	// DefaultIdleTimeout is the live scorer's: a container that sent no
	// Sample for this long starts again from a fresh state.
	DefaultIdleTimeout = 10 * time.Minute
)

// Options configure a replay. Base and Params are required.
type Options struct {
	// Base is the configuration the recorded services ran with (before any
	// recorded config event); candidates' overrides apply on top of it.
	Base config.Config
	// Params maps a configuration to parameters, as the live services do.
	Params ParamsFunc
	// Model is the load model of what-ifs (default ModelConserveDemand).
	Model Model
	// MeasureFrom starts the replay proper: the events before the first one
	// at or after it are a warm-up. Zero: no warm-up.
	MeasureFrom time.Time
	// Complete says the recording holds the app's whole history (it starts
	// at the first message the streams have of it, Recording.Meta.Complete):
	// the warm-up is then stepped like a faithful replay, so the replay
	// proper starts from the live state exactly. Otherwise the warm-up
	// rebuilds the state as a restarted scaler does (recorded decisions
	// applied, facts and scores observed, nothing decided), which loses
	// the stabilisation windows, the last hold and the phase of the checks.
	Complete bool
	// FlapWindow: a scale-up and a scale-down (either order) closer than it
	// are a flap (default 60 s).
	FlapWindow time.Duration
	// StartDelay, RemoveDelay and DrainDelay time the simulated
	// consequences of a what-if's decisions; zero takes the recording's
	// median (docs/replay.md), negative turns the drain delay off.
	StartDelay, RemoveDelay, DrainDelay time.Duration
	// SampleInterval is how often a simulated worker is sampled; zero takes
	// the recording's median interval per container, or Base's
	// RB_COLLECT_INTERVAL when it has none.
	SampleInterval time.Duration
	// IdleTimeout is the live scorer's idle timeout (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// TickGap is the spacing of synthesised ticks (scale.TickGap when zero;
	// negative: none), as the live scaler ticks.
	TickGap time.Duration
}

// scored is a recorded Sample's score under the recorded parameters, in 16
// bytes (8.64 M of them for a day of 100 workers).
type scored struct {
	overall float64
	probeOK bool
	cat     uint8 // index in categories
}

// categories are the score categories by their scored.cat index.
var categories = [...]events.Category{events.CategoryLU, events.CategoryMU, events.CategoryHU}

func categoryIndex(c events.Category) uint8 {
	for i, x := range categories {
		if x == c {
			return uint8(i)
		}
	}
	return 0
}

// Delays are the times the simulation of a what-if uses, and where they
// came from. Drain is how long a SUNDOWN worker still has requests in
// flight (reported by the simulated proxy); its removal follows the
// candidate's RB_DRAIN_GRACE later.
type Delays struct {
	Start, Remove, Drain time.Duration
	// From says, per delay, "recording (median of N)", "default" or "flag".
	StartFrom, RemoveFrom, DrainFrom string
}

// Prepared is a Recording made ready to replay many times: the recorded
// parameters, the recorded scores, the warm-up state, the recording's own
// outcome. It is read-only and safe for concurrent Runs.
type Prepared struct {
	rec      *Recording
	opt      Options
	ctrIndex map[string]uint32
	recorded []epoch

	scores []scored
	// cutS, cutE: the replay proper starts at Samples[cutS] and Events[cutE].
	cutS, cutE int
	start, end int64
	interval   int64

	warm     *scale.State
	warmTick scale.Ticker
	warmDem  demand
	// measureScores are the containers' score states at the cut, endScores
	// after each one's last recorded Sample.
	measureScores []*score.State
	endScores     []*score.State
	lastAt        []int64

	eligible    []bool
	consequence []bool
	hasProxy    bool
	delays      Delays
	riskHigh    float64
	riskCrit    float64

	// actual is what happened, measured in the background from Prepare on
	// (a core that would idle during a faithful replay); done closes then.
	actual     *Result
	actualDone chan struct{}
	notes      []string
}

// ErrEmpty is returned for a recording with nothing to replay in the range.
var ErrEmpty = errors.New("nothing to replay")

// Prepare checks the options, scores the recording with the recorded
// parameters (on all cores), rebuilds the state at the start of the replay
// proper and measures what really happened.
func Prepare(rec *Recording, opt Options) (*Prepared, error) {
	if err := rec.Check(); err != nil {
		return nil, err
	}
	if opt.Params == nil {
		return nil, errors.New("prepare replay: no parameter mapping")
	}
	if opt.Model == "" {
		opt.Model = ModelConserveDemand
	}
	if !slices.Contains(Models(), opt.Model) {
		return nil, fmt.Errorf("prepare replay: unknown model %q, want one of %v", opt.Model, Models())
	}
	if opt.FlapWindow <= 0 {
		opt.FlapWindow = DefaultFlapWindow
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = DefaultIdleTimeout
	}
	if opt.TickGap == 0 {
		opt.TickGap = scale.TickGap
	}
	p := &Prepared{rec: rec, opt: opt, ctrIndex: make(map[string]uint32, len(rec.Containers))}
	for i, n := range rec.Containers {
		p.ctrIndex[n] = uint32(i)
	}
	var err error
	if p.recorded, err = epochs(rec, opt.Base, opt.Params, nil); err != nil {
		return nil, fmt.Errorf("prepare replay: the recorded configuration: %w", err)
	}
	for i, e := range p.recorded[1:] {
		if e.refused != nil {
			p.notes = append(p.notes, fmt.Sprintf("config event %d refused, as the live services would: %v", i+1, e.refused))
		}
	}
	_, cp := opt.Params(opt.Base)
	p.riskHigh, p.riskCrit = cp.High, cp.Critical

	p.cut()
	if p.cutS >= len(rec.Samples) && p.cutE >= len(rec.Events) {
		return nil, fmt.Errorf("prepare replay: %w after %s", ErrEmpty, opt.MeasureFrom.Format(time.RFC3339))
	}
	_, last := rec.Span()
	p.end = last.UnixNano()
	p.hasProxy = rec.Count(kindProxy) > 0
	p.classify()
	p.interval = p.sampleInterval()
	p.precompute()
	p.warmUp()
	p.delays = p.estimateDelays()
	p.actualDone = make(chan struct{})
	go func() {
		defer close(p.actualDone)
		p.actual = p.runActual()
	}()
	return p, nil
}

// Recording is the recording the replay runs on.
func (p *Prepared) Recording() *Recording { return p.rec }

// Notes are remarks on the recording worth showing (refused config events).
func (p *Prepared) Notes() []string { return slices.Clone(p.notes) }

// Delays are the simulation's delays.
func (p *Prepared) Delays() Delays { return p.delays }

// Start is the time the replay proper starts at.
func (p *Prepared) Start() time.Time { return fromNanos(p.start) }

// End is the last event time of the recording.
func (p *Prepared) End() time.Time { return fromNanos(p.end) }

// Interval is the sampling interval of simulated workers.
func (p *Prepared) Interval() time.Duration { return time.Duration(p.interval) }

// Measured is the number of Samples in the replay proper (after the warm-up).
func (p *Prepared) Measured() int { return len(p.rec.Samples) - p.cutS }

// Risk returns the thresholds risk is measured against: the recorded
// configuration's HIGH and CRITICAL, the same for every candidate.
func (p *Prepared) Risk() (high, critical float64) { return p.riskHigh, p.riskCrit }

// Actual is what really happened: the recorded decisions and the worker
// count and risk the recorded facts and scores give. It waits for the
// measurement Prepare started.
func (p *Prepared) Actual() *Result {
	<-p.actualDone
	return p.actual
}

// cut finds the first item of the timeline at or after MeasureFrom.
func (p *Prepared) cut() {
	rec := p.rec
	from := int64(0)
	if !p.opt.MeasureFrom.IsZero() {
		from = p.opt.MeasureFrom.UnixNano()
	}
	si, ei := 0, 0
	for {
		isEvent := ei < len(rec.Events) && rec.Events[ei].Pos <= si
		var t int64
		switch {
		case isEvent:
			t = rec.Events[ei].At
		case si < len(rec.Samples):
			t = rec.Samples[si].At
		default:
			p.cutS, p.cutE, p.start = si, ei, max(from, p.end)
			return
		}
		if t >= from {
			p.cutS, p.cutE, p.start = si, ei, t
			if from > 0 {
				p.start = from
			}
			return
		}
		if isEvent {
			ei++
		} else {
			si++
		}
	}
}

// classify marks the recorded lifecycle facts that are consequences of the
// recorded decisions of the replay proper (a what-if drops them and
// simulates its own), and the containers a what-if may adopt: every one
// but those the recorded decisions created.
func (p *Prepared) classify() {
	rec := p.rec
	p.consequence = make([]bool, len(rec.Events))
	p.eligible = make([]bool, len(rec.Containers))
	for i := range p.eligible {
		p.eligible[i] = true
	}
	up, down, removed, ids := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := p.cutE; i < len(rec.Events); i++ {
		e := &rec.Events[i]
		switch e.Kind {
		case kindDecision:
			ids[e.ID] = true
			for _, t := range e.Decision.Targets {
				switch e.Decision.Action {
				case events.ActionScaleUp, events.ActionReplace:
					up[t] = true
					if c, ok := p.ctrIndex[t]; ok {
						p.eligible[c] = false
					}
				case events.ActionScaleDown:
					down[t] = true
				case events.ActionRemove:
					removed[t] = true
				}
			}
		case kindLifecycle:
			l := &e.Lifecycle
			switch {
			case l.DecisionID != "" && ids[l.DecisionID], up[l.Container]:
				p.consequence[i] = true
			case down[l.Container] && (l.Phase == events.PhaseSundown || l.Phase == events.PhaseDrained):
				p.consequence[i] = true
			case removed[l.Container] && (l.Phase == events.PhaseDied || l.Phase == events.PhaseRemoved || l.Phase == events.PhaseFailed):
				p.consequence[i] = true
			}
		}
	}
}

// sampleInterval is the median time between two Samples of a container
// (over the first 100,000 Samples), else RB_COLLECT_INTERVAL.
func (p *Prepared) sampleInterval() int64 {
	if p.opt.SampleInterval > 0 {
		return int64(p.opt.SampleInterval)
	}
	last := make([]int64, len(p.rec.Containers))
	var gaps []int64
	for i := range p.rec.Samples[:min(len(p.rec.Samples), 100_000)] {
		s := &p.rec.Samples[i]
		if l := last[s.Ctr]; l != 0 && s.At > l {
			gaps = append(gaps, s.At-l)
		}
		last[s.Ctr] = s.At
	}
	if len(gaps) == 0 {
		if iv := p.opt.Base.Collect.Interval; iv > 0 {
			return int64(iv)
		}
		return int64(time.Second)
	}
	return median(gaps)
}

func median(v []int64) int64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// precompute scores every Sample with the recorded parameters, as the live
// scorer did, keeping the states at the cut and after each container's last
// Sample. Containers are independent, so they are split over the cores:
// each goroutine walks the timeline and scores its own.
func (p *Prepared) precompute() {
	rec := p.rec
	n := len(rec.Containers)
	p.scores = make([]scored, len(rec.Samples))
	p.measureScores = make([]*score.State, n)
	p.endScores = make([]*score.State, n)
	p.lastAt = make([]int64, n)
	lastIdx := make([]int, n)
	for i := range lastIdx {
		lastIdx[i] = -1
	}
	for i := range rec.Samples {
		lastIdx[rec.Samples[i].Ctr] = i
		p.lastAt[rec.Samples[i].Ctr] = rec.Samples[i].At
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), n))
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.precomputePart(g, workers, lastIdx)
		}()
	}
	wg.Wait()
}

func (p *Prepared) precomputePart(g, of int, lastIdx []int) {
	rec := p.rec
	mine := func(c uint32) bool { return int(c)%of == g }
	states := make([]score.State, len(rec.Containers))
	last := make([]int64, len(rec.Containers))
	snapshot := func() {
		for c := range states {
			if mine(uint32(c)) {
				p.measureScores[c] = cloneScore(&states[c])
			}
		}
	}
	ep, si, ei := 0, 0, 0
	for {
		if si == p.cutS && ei == p.cutE {
			snapshot()
		}
		if ei < len(rec.Events) && rec.Events[ei].Pos <= si {
			e := &rec.Events[ei]
			switch e.Kind {
			case kindConfig:
				ep++
			case kindLifecycle:
				// The scorer forgets a container that was removed or died.
				if ph := e.Lifecycle.Phase; ph == events.PhaseRemoved || ph == events.PhaseDied {
					if c, ok := p.ctrIndex[e.Lifecycle.Container]; ok && mine(c) {
						states[c] = score.State{}
					}
				}
			}
			ei++
			continue
		}
		if si == len(rec.Samples) {
			return
		}
		s := &rec.Samples[si]
		if mine(s.Ctr) {
			st := &states[s.Ctr]
			if l := last[s.Ctr]; l != 0 && s.At-l > int64(p.opt.IdleTimeout) {
				*st = score.State{}
			}
			last[s.Ctr] = s.At
			sc := st.Update(p.recorded[ep].sp, p.sampleEvent(s, rec.Containers[s.Ctr]))
			p.scores[si] = scored{overall: sc.Overall, probeOK: sc.Inputs.ProbeOK, cat: categoryIndex(sc.Category)}
			if lastIdx[s.Ctr] == si {
				p.endScores[s.Ctr] = cloneScore(st)
			}
		}
		si++
	}
}

// sampleEvent rebuilds the Sample scoring reads.
func (p *Prepared) sampleEvent(s *Sample, name string) events.Sample {
	return events.Sample{
		App: p.rec.App, Container: name, State: "running",
		CPUPercent: s.CPU, MemUsage: s.MemUsage, MemLimit: s.MemLimit,
		NetRxBps: s.Rx, NetTxBps: s.Tx, ProbeOK: s.ProbeOK, ProbeSeconds: s.Probe,
	}
}

// scoreOf is the recorded score of Samples[si] as a scale input.
func (p *Prepared) scoreOf(si int) events.Score {
	s := &p.rec.Samples[si]
	sc := &p.scores[si]
	return events.Score{
		App: p.rec.App, Container: p.rec.Containers[s.Ctr], Mode: score.ModeLegacy,
		Overall: sc.overall, Category: categories[sc.cat], Inputs: events.ScoreInputs{ProbeOK: sc.probeOK},
	}
}

// cloneScore copies a score state through its exact JSON form.
func cloneScore(st *score.State) *score.State {
	var c score.State
	if st == nil {
		return &c
	}
	b, err := st.MarshalJSON()
	if err == nil {
		err = c.UnmarshalJSON(b)
	}
	if err != nil {
		// A state Update produced always round-trips (pkg/score's tests).
		panic(fmt.Sprintf("replay: copy score state: %v", err))
	}
	return &c
}

// warmUp rebuilds the scaling state at the cut from the warm-up events.
func (p *Prepared) warmUp() {
	m := modeWarm
	if p.opt.Complete {
		m = modeWarmStep
	}
	r := p.newRunner(m, p.recorded, nil)
	r.st = scale.NewState(p.rec.App)
	r.tk = scale.Ticker{Gap: max(p.opt.TickGap, 0)}
	r.dem = newDemand(len(p.rec.Containers))
	r.loop(0, 0, p.cutS, p.cutE)
	p.warm, p.warmTick, p.warmDem = r.st, r.tk, r.dem
}

// estimateDelays measures the recorded start, removal and drain times: a
// new worker is ready at its first ready fact or first answered probe,
// whichever comes first; a removal is done at its removed fact; a drain
// ends at the remove decision of a SUNDOWN worker.
func (p *Prepared) estimateDelays() Delays {
	rec := p.rec
	readyAt := map[string]int64{}
	note := func(name string, at int64) {
		if r, ok := readyAt[name]; !ok || at < r {
			readyAt[name] = at
		}
	}
	for i := range rec.Samples {
		if s := &rec.Samples[i]; s.ProbeOK {
			if _, ok := readyAt[rec.Containers[s.Ctr]]; !ok {
				note(rec.Containers[s.Ctr], s.At)
			}
		}
	}
	for i := range rec.Events {
		if e := &rec.Events[i]; e.Kind == kindLifecycle && e.Lifecycle.Phase == events.PhaseReady {
			note(e.Lifecycle.Container, e.At)
		}
	}
	removeAsked := map[string]int64{}
	sundownAt := map[string]int64{}
	var starts, removes, drains []int64
	for i := range rec.Events {
		e := &rec.Events[i]
		switch e.Kind {
		case kindDecision:
			for _, t := range e.Decision.Targets {
				switch e.Decision.Action {
				case events.ActionScaleUp, events.ActionReplace:
					if r, ok := readyAt[t]; ok && r >= e.At {
						starts = append(starts, r-e.At)
					}
				case events.ActionScaleDown:
					sundownAt[t] = e.At
				case events.ActionRemove:
					if s, ok := sundownAt[t]; ok {
						drains = append(drains, e.At-s)
						delete(sundownAt, t)
					}
					if _, ok := removeAsked[t]; !ok {
						removeAsked[t] = e.At
					}
				}
			}
		case kindLifecycle:
			if l := &e.Lifecycle; l.Phase == events.PhaseRemoved {
				if a, ok := removeAsked[l.Container]; ok {
					removes = append(removes, e.At-a)
					delete(removeAsked, l.Container)
				}
			}
		}
	}
	pick := func(flag time.Duration, got []int64, def time.Duration) (time.Duration, string) {
		switch {
		case flag != 0:
			return max(flag, 0), "flag"
		case len(got) > 0:
			return time.Duration(median(got)), fmt.Sprintf("recording (median of %d)", len(got))
		}
		return def, "default"
	}
	var d Delays
	d.Start, d.StartFrom = pick(p.opt.StartDelay, starts, DefaultStartDelay)
	d.Remove, d.RemoveFrom = pick(p.opt.RemoveDelay, removes, DefaultRemoveDelay)
	// A recorded drain is the requests' time in flight, then the recorded
	// RB_DRAIN_GRACE: the simulated proxy reports the first part, the
	// candidate's own grace follows.
	grace := int64(p.recorded[0].cp.DrainGrace)
	for i := range drains {
		drains[i] = max(drains[i]-grace, 0)
	}
	d.Drain, d.DrainFrom = pick(p.opt.DrainDelay, drains, 0)
	switch {
	case !p.hasProxy:
		d.Drain, d.DrainFrom = 0, "no proxy reports recorded: no proxy, removed RB_DRAIN_GRACE after SUNDOWN"
	case p.opt.DrainDelay < 0:
		d.DrainFrom = "flag: no request in flight, removed RB_DRAIN_GRACE after SUNDOWN"
	}
	return d
}

// seconds rounds a duration in nanoseconds to whole seconds.
func seconds(ns int64) int64 { return int64(math.Round(float64(ns) / 1e9)) }
