package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"golang.org/x/sync/errgroup"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/scale"
)

// inputKind says what an input carries.
type inputKind uint8

const (
	inDecision inputKind = iota + 1
	inLifecycle
	inConfig
	inScore
	inProxy
	// inCaughtUp marks the end of the decision log as it was when the term
	// started: what follows is live.
	inCaughtUp
	// inSnapshot carries the saved state the rebuild starts from.
	inSnapshot
)

// input is one message for the term's loop, decoded.
type input struct {
	kind      inputKind
	at        time.Time // event time
	source    string
	id        string // event id
	seq       uint64 // RB_DECISIONS sequence (log messages only)
	snapshot  *Snapshot
	decision  events.Decision
	lifecycle events.Lifecycle
	config    events.ConfigChanged
	score     events.Score
	proxy     events.ProxyReport
}

// workerView is what reconciliation needs of a worker in the state.
type workerView struct {
	Name     string
	Phase    scale.Phase
	RemoveAt time.Time
}

// term is one leadership: the scaling state and everything acting on it.
// Only the loop goroutine touches st, p, version, values and ticker.
type term struct {
	s   *Service
	log *slog.Logger

	st      *scale.State
	p       scale.Params
	version int64
	values  map[string]string
	ticker  scale.Ticker
	live    bool
	// lastArrival is the wall time of the last live input (quiet ticks).
	lastArrival time.Time
	// rebuilt counts the log messages read before going live.
	rebuilt int
	// seq is the last RB_DECISIONS sequence applied; pending holds the ids
	// of this term's decisions not yet seen back in the log. The state is
	// exact at seq (a snapshot may be taken) only while pending is empty.
	seq     uint64
	pending map[string]bool
	snapAt  time.Time
	snapSeq uint64
	snaps   *snapshotWriter

	in        chan input
	snapshots chan chan []workerView
	reconDone chan struct{}
	reconBusy bool

	x       *executor
	desired *desiredWriter

	// params is the latest policy for the executor's goroutines (ready
	// timeout), written by the loop.
	paramsMu sync.Mutex
	params   scale.Params

	asyncWG sync.WaitGroup
	// warned keeps "logged once" keys of invalid inputs.
	warnMu sync.Mutex
	warned map[string]bool
}

func (s *Service) newTerm() *term {
	t := &term{
		s:         s,
		log:       s.log,
		st:        scale.NewState(s.app),
		p:         Params(s.opts.Config),
		ticker:    scale.Ticker{Gap: scale.TickGap},
		in:        make(chan input, 256),
		snapshots: make(chan chan []workerView),
		reconDone: make(chan struct{}, 1),
		warned:    map[string]bool{},
		pending:   map[string]bool{},
	}
	t.snaps = &snapshotWriter{s: s, wake: make(chan struct{}, 1)}
	t.params = t.p
	t.x = newExecutor(t)
	t.desired = &desiredWriter{s: s, wake: make(chan struct{}, 1), want: -1, have: -1}
	return t
}

// runTerm acts until ctx is done (nil) or a feed fails (an error).
func (s *Service) runTerm(ctx context.Context) error {
	t := s.newTerm()
	t.loadStoredConfig(ctx)

	g, gctx := errgroup.WithContext(ctx)
	t.x.start(gctx)
	g.Go(func() error { return t.followLog(gctx) })
	g.Go(func() error { return t.watch(gctx, events.StreamScores, events.PrefixScore, inScore) })
	g.Go(func() error { return t.watch(gctx, events.StreamProxy, events.PrefixProxy, inProxy) })
	g.Go(func() error { t.desired.run(gctx); return nil })
	g.Go(func() error { t.snaps.run(gctx); return nil })
	g.Go(func() error { return t.loop(gctx) })
	err := g.Wait()
	t.x.wait()
	t.asyncWG.Wait()
	// The loop's last snapshot, written even though ctx is done.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	t.snaps.write(fctx)
	cancel()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// loadStoredConfig applies the app's runtime config from Redis; the decision
// log may hold newer versions, applied as the rebuild reads them.
func (t *term) loadStoredConfig(ctx context.Context) {
	ac, err := t.s.store.GetConfig(ctx, t.s.app)
	if err != nil && ac.Version == 0 {
		t.log.Warn("runtime config not readable from Redis; using the environment's until rb.config arrives", "err", err)
		return
	}
	if ac.Version == 0 {
		return
	}
	t.applyConfig(ac.Values, ac.Version, "redis")
}

// applyConfig switches to a new runtime config, or logs and keeps the
// current one when it is invalid.
func (t *term) applyConfig(values map[string]string, version int64, from string) {
	_, p, err := RuntimeParams(t.s.opts.Config, values, version)
	if err != nil {
		t.log.Warn("runtime config refused; keeping the current one", "from", from, "version", version,
			"current_version", t.version, "err", err)
		return
	}
	t.p, t.version, t.values = p, version, values
	t.paramsMu.Lock()
	t.params = p
	t.paramsMu.Unlock()
	t.log.Info("runtime config applied", "from", from, "version", version)
}

func (t *term) currentParams() scale.Params {
	t.paramsMu.Lock()
	defer t.paramsMu.Unlock()
	return t.params
}

// send hands an input to the loop, or gives up when ctx is done.
func (t *term) send(ctx context.Context, in input) bool {
	select {
	case t.in <- in:
		return true
	case <-ctx.Done():
		return false
	}
}

// loop is the only goroutine that reads or changes the scaling state.
func (t *term) loop(ctx context.Context) error {
	gap := t.ticker.Gap
	quiet := time.NewTicker(gap / 2)
	defer quiet.Stop()
	recon := time.NewTicker(t.s.opts.Config.Scaling.ReconcileInterval)
	defer recon.Stop()
	snap := time.NewTicker(snapshotEvery)
	defer snap.Stop()
	for {
		select {
		case <-ctx.Done():
			t.maybeSnapshot(true)
			return nil
		case in := <-t.in:
			t.handle(ctx, in)
			if in.seq > 0 {
				t.seq = in.seq
			}
		case <-snap.C:
			t.maybeSnapshot(false)
		case <-quiet.C:
			if t.live {
				t.quietTicks(ctx)
			}
		case <-recon.C:
			if t.live {
				t.startReconcile(ctx)
			}
		case <-t.reconDone:
			t.reconBusy = false
		case reply := <-t.snapshots:
			reply <- t.view()
		}
	}
}

func (t *term) view() []workerView {
	out := make([]workerView, len(t.st.Workers))
	for i := range t.st.Workers {
		w := &t.st.Workers[i]
		out[i] = workerView{Name: w.Name, Phase: w.Phase, RemoveAt: w.RemoveAt}
	}
	return out
}

func (t *term) handle(ctx context.Context, in input) {
	switch in.kind {
	case inConfig:
		if t.live || in.config.Version >= t.version {
			t.applyConfig(in.config.Values, in.config.Version, "rb.config")
		}
	case inSnapshot:
		t.restore(in.snapshot)
	case inDecision:
		switch {
		case in.source == t.s.source && t.pending[in.id]:
			delete(t.pending, in.id)
		case !t.live:
			t.rebuilt++
			if err := t.st.ApplyDecision(in.at, in.decision); err != nil {
				t.invalid(events.StreamDecisions, "decision", err)
			}
		case in.source != t.s.source:
			// Another scaler's decision (a leader that had not yet seen it
			// lost the lease): the log is the truth, take it in; the periodic
			// reconciliation creates what it requested.
			t.log.Warn("decision by another scaler while this one leads", "by", in.source, "action", in.decision.Action, "reason", in.decision.Reason)
			if err := t.st.ApplyDecision(in.at, in.decision); err != nil {
				t.invalid(events.StreamDecisions, "decision", err)
			}
		}
	case inLifecycle:
		in := scale.LifecycleInput(in.at, in.lifecycle)
		if !t.live {
			t.rebuilt++
			if err := t.st.Observe(t.p, in); err != nil {
				t.invalid(events.StreamDecisions, "lifecycle", err)
			}
			return
		}
		t.stepInput(ctx, in)
	case inScore:
		if t.live {
			t.stepInput(ctx, scale.ScoreInput(in.at, in.score))
		}
	case inProxy:
		if t.live {
			t.stepInput(ctx, scale.ProxyInput(in.at, in.proxy))
		}
	case inCaughtUp:
		t.goLive(ctx)
	}
}

// goLive ends the rebuild: the term's first input is a tick at its start,
// so an app nobody publishes anything about still gets its DEFAULT_CONTAINER
// workers, then Docker and Redis are reconciled with the state.
func (t *term) goLive(ctx context.Context) {
	t.live = true
	t.s.m.rebuildInputs.Set(float64(t.rebuilt))
	c := t.st.Counts()
	t.log.Info("scaler state rebuilt from the decision log; acting", "messages", t.rebuilt, "seq", t.seq, "desired", t.st.Desired,
		"live", c.Live, "ready", c.Ready, "sundown", c.Sundown, "config_version", t.version)
	t.maybeSnapshot(true)
	t.stepInput(ctx, scale.Tick(t.s.opts.Now()))
	t.startReconcile(ctx)
}

// stepInput steps the ticks the tick rule puts before in, then in.
func (t *term) stepInput(ctx context.Context, in scale.Input) {
	for at, ok := t.ticker.Next(in.Time); ok; at, ok = t.ticker.Next(in.Time) {
		t.step(ctx, scale.Tick(at))
	}
	t.ticker.Input(in.Time)
	t.step(ctx, in)
	t.lastArrival = time.Now()
}

// quietTicks hands out the tick rule's ticks while no input arrives, one
// gap behind the wall clock, so an input in transit still comes after them.
func (t *term) quietTicks(ctx context.Context) {
	gap := t.ticker.Gap
	if time.Since(t.lastArrival) <= gap {
		return
	}
	bound := t.s.opts.Now().Add(-gap)
	for at, ok := t.ticker.Next(bound); ok; at, ok = t.ticker.Next(bound) {
		t.step(ctx, scale.Tick(at))
	}
}

var kindNames = map[scale.InputKind]string{
	scale.InputTick: "tick", scale.InputScore: "score", scale.InputLifecycle: "lifecycle", scale.InputProxy: "proxy",
}

// step runs pkg/scale on one input and executes what it decides.
func (t *term) step(ctx context.Context, in scale.Input) {
	wasStarting := false
	if in.Kind == scale.InputScore && in.Score.Inputs.ProbeOK {
		if w, ok := t.st.Worker(in.Score.Container); ok {
			wasStarting = w.Phase == scale.PhaseRequested || w.Phase == scale.PhaseInit
		}
	}
	ds, err := t.st.Step(t.p, in)
	if err != nil {
		t.invalid(streamOf(in.Kind), kindNames[in.Kind], err)
		return
	}
	t.s.m.inputs.WithLabelValues(kindNames[in.Kind]).Inc()
	if wasStarting {
		if w, ok := t.st.Worker(in.Score.Container); ok && w.Phase == scale.PhaseReady {
			// Readiness went into the state through a score: record it as a
			// fact too, so a rebuild from the decision log sees it.
			fact := events.Lifecycle{App: t.s.app, Container: w.Name, ContainerID: in.Score.ContainerID,
				Phase: events.PhaseReady, Address: in.Score.Address, Reason: "a score whose probe succeeded"}
			t.async(func(ctx context.Context) { t.x.publishFact(ctx, fact) })
		}
	}
	for _, d := range ds {
		if !t.decided(ctx, d) {
			return
		}
	}
	t.observeCounts()
}

func streamOf(k scale.InputKind) string {
	switch k {
	case scale.InputScore:
		return events.StreamScores
	case scale.InputProxy:
		return events.StreamProxy
	}
	return events.StreamDecisions
}

// decided publishes a decision at the state's clock and dispatches its
// actions. A decision is recorded before anything is done, so a restart
// knows the names it asked for. It returns false when ctx ended first.
func (t *term) decided(ctx context.Context, d events.Decision) bool {
	id := "decision-" + nuid.Next()
	ev := events.New(id, t.st.Now, t.s.source, d)
	subj, err := events.ScaleSubject(t.s.app)
	if err == nil {
		err = publishRetry(ctx, t.s.bus, subj, ev)
	}
	if err != nil {
		if ctx.Err() == nil {
			t.log.Error("decision not published; not acting on it", "action", d.Action, "err", err)
		}
		return false
	}
	t.pending[id] = true
	t.s.m.decisions.WithLabelValues(string(d.Action)).Inc()
	level := slog.LevelInfo
	if d.Action == events.ActionHold {
		level = slog.LevelDebug
	}
	t.log.Log(ctx, level, "decision", "action", d.Action, "from", d.From, "to", d.To, "targets", strings.Join(d.Targets, ","), "reason", d.Reason)
	for _, name := range d.Targets {
		a := action{name: name, decisionID: id, reason: d.Reason}
		switch d.Action {
		case events.ActionScaleUp, events.ActionReplace:
			a.kind = actCreate
		case events.ActionScaleDown:
			a.kind = actSundown
		case events.ActionRemove:
			a.kind = actRemove
			w, _ := t.st.Worker(name)
			a.drain = w.Phase == scale.PhaseSundown
		default:
			continue
		}
		t.x.enqueue(ctx, a)
	}
	return true
}

func (t *term) observeCounts() {
	c := t.st.Counts()
	m := t.s.m
	m.desired.Set(float64(t.st.Desired))
	m.workers.WithLabelValues("live").Set(float64(c.Live))
	m.workers.WithLabelValues("ready").Set(float64(c.Ready))
	m.workers.WithLabelValues("starting").Set(float64(c.Starting))
	m.workers.WithLabelValues("sundown").Set(float64(c.Sundown))
	t.desired.set(t.st.Desired)
}

// invalid counts an input that could not be used and logs it once per
// stream and kind (later ones at debug level). Safe for concurrent use.
func (t *term) invalid(stream, kind string, err error) {
	t.s.m.invalid.WithLabelValues(stream).Inc()
	key := stream + "/" + kind
	t.warnMu.Lock()
	seen := t.warned[key]
	t.warned[key] = true
	t.warnMu.Unlock()
	if seen {
		t.log.Debug("input not usable", "stream", stream, "kind", kind, "err", err)
		return
	}
	t.log.Warn("input not usable (logged once per stream and kind)", "stream", stream, "kind", kind, "err", err)
}

// invalidFeed is invalid for a message that could not be decoded.
func (t *term) invalidFeed(stream, subject string, err error) {
	t.invalid(stream, "undecodable", fmt.Errorf("%s: %w", subject, err))
}

// async runs f in a goroutine the term waits for before it ends.
func (t *term) async(f func(ctx context.Context)) {
	t.asyncWG.Add(1)
	go func() {
		defer t.asyncWG.Done()
		f(t.x.ctx)
	}()
}

// publishRetry publishes ev until it is acknowledged or ctx is done, with
// backoff; the event id deduplicates the repeats.
func publishRetry[T events.Payload](ctx context.Context, b *bus.Bus, subject string, ev events.Event[T]) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := bus.PublishEvent(pctx, b, subject, ev)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish %s: %w", subject, ctx.Err())
		}
		if _, encErr := events.Encode(ev); encErr != nil {
			return err // a bad event never gets better
		}
		sleep(ctx, delay)
		delay = min(2*delay, 5*time.Second)
	}
}

// desiredWriter keeps Redis's desired count equal to the state's, writing the
// latest value and retrying while Redis is down, off the loop's path.
type desiredWriter struct {
	s    *Service
	mu   sync.Mutex
	want int
	have int
	wake chan struct{}
}

func (w *desiredWriter) set(n int) {
	w.mu.Lock()
	changed := w.want != n
	w.want = n
	w.mu.Unlock()
	if changed {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *desiredWriter) run(ctx context.Context) {
	var retry <-chan time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retry:
		}
		retry = nil
		w.mu.Lock()
		want, have := w.want, w.have
		w.mu.Unlock()
		if want < 0 || want == have {
			continue
		}
		if err := w.s.store.SetDesired(ctx, w.s.app, want); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				w.s.log.Warn("desired count not written to Redis; retrying", "desired", want, "err", err)
			}
			failing = true
			retry = time.After(time.Second)
			continue
		}
		failing = false
		w.mu.Lock()
		w.have = want
		w.mu.Unlock()
	}
}
