package queuebuilder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/queue"
)

// Defaults of Options.
const (
	DefaultDebounce         = 50 * time.Millisecond
	DefaultScoreHistory     = 10 * time.Minute
	DefaultLifecycleHistory = 24 * time.Hour
	DefaultCatchUpTimeout   = 30 * time.Second
	DefaultPublishTimeout   = 5 * time.Second
)

// The durable consumers, recreated at every start (see the package doc).
const (
	DurableScores    = "queuebuilder-scores"
	DurableLifecycle = "queuebuilder-lifecycle"
)

// Retry delays of a failed publish, and of the start-up reads.
const (
	publishRetryBase = 100 * time.Millisecond
	publishRetryMax  = 5 * time.Second
	startRetryBase   = 250 * time.Millisecond
	startRetryMax    = 10 * time.Second
	catchUpPoll      = 10 * time.Millisecond
)

// Options configure a Service. Zero values take the defaults.
type Options struct {
	// Node names this process in the events' source, "queuebuilder/<node>"
	// (default: the host name).
	Node string
	// Apps are read from Redis at start in addition to the apps found on
	// RB_QUEUE (the process's APP_IDENTIFIER), so a queue whose RB_QUEUE
	// message was lost is restored from Redis.
	Apps []string
	// Debounce is the publish window per app (default 50 ms).
	Debounce time.Duration
	// ScoreHistory is the age, by stream time, beyond which a score is not
	// applied: it matters when the last score of every worker is read at
	// start (default 10 min; negative applies every score).
	ScoreHistory time.Duration
	// LifecycleHistory is how far back lifecycle facts are read at start
	// (default 24 h; negative reads the whole stream).
	LifecycleHistory time.Duration
	// CatchUpTimeout bounds the rebuild at start: after it the service goes
	// live even with messages still pending (default 30 s).
	CatchUpTimeout time.Duration
	// PublishTimeout bounds one publish, acknowledgement included (default 5 s).
	PublishTimeout time.Duration
	// Now is the clock of the history windows; nil is time.Now. The events
	// themselves carry the time of their inputs, not this clock's.
	Now func() time.Time
	// Registerer takes the rb_queuebuilder_ metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "unknown-host"
		}
		o.Node = h
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Debounce, DefaultDebounce)
	def(&o.ScoreHistory, DefaultScoreHistory)
	def(&o.LifecycleHistory, DefaultLifecycleHistory)
	def(&o.CatchUpTimeout, DefaultCatchUpTimeout)
	def(&o.PublishTimeout, DefaultPublishTimeout)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Service is the queue builder.
type Service struct {
	opts   Options
	bus    *bus.Bus
	store  SnapshotStore
	snaps  *snapshotWriter
	logger *slog.Logger
	m      *metrics
	source string

	mu      sync.Mutex // guards builder, apps, live, logged
	builder *queue.Builder
	apps    map[string]*appState
	live    bool
	logged  map[string]bool

	wake    chan struct{} // wakes the publisher
	ready   atomic.Bool
	running atomic.Bool
}

// appState is what the service keeps per app besides its queue.
type appState struct {
	pace pacer
	// eventTime is the latest event time of the changes not yet published.
	eventTime time.Time
	// lastTime is the event time of the last queue published or restored,
	// the time of a publish that no input caused (a restored generation
	// missing on RB_QUEUE).
	lastTime time.Time
	// published is the highest generation known to be on RB_QUEUE.
	published uint64
	failures  int
}

// New returns a queue builder that consumes from and publishes on b, and
// keeps the snapshots in st. It does no I/O: Run restores and starts.
func New(opts Options, b *bus.Bus, st SnapshotStore, logger *slog.Logger) (*Service, error) {
	if b == nil {
		return nil, errors.New("queuebuilder: no NATS bus")
	}
	if st == nil {
		return nil, errors.New("queuebuilder: no snapshot store")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults()
	if opts.Debounce < 0 || opts.CatchUpTimeout < 0 || opts.PublishTimeout < 0 {
		return nil, fmt.Errorf("queuebuilder: debounce %s, catch-up timeout %s and publish timeout %s must not be negative",
			opts.Debounce, opts.CatchUpTimeout, opts.PublishTimeout)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{
		opts: opts, bus: b, store: st, logger: logger, m: m,
		snaps:   newSnapshotWriter(st, logger, m),
		source:  "queuebuilder/" + opts.Node,
		builder: queue.NewBuilder(),
		apps:    map[string]*appState{},
		logged:  map[string]bool{},
		wake:    make(chan struct{}, 1),
	}, nil
}

// Source is the source stamped on the published events.
func (s *Service) Source() string { return s.source }

// Ready reports nil once the queues are restored and rebuilt and the
// service publishes.
func (s *Service) Ready() error {
	if s.ready.Load() {
		return nil
	}
	return errors.New("queuebuilder: restoring and rebuilding the queues")
}

// Health reports nil unless queue snapshots cannot be written to Redis.
func (s *Service) Health() error { return s.snaps.health() }

// Run restores the queues, rebuilds them from the streams, then consumes
// and publishes until ctx is done; it then returns nil. It returns an error
// only when a stream is missing or the bus is closed.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("queuebuilder: Run called twice")
	}
	start := time.Now()
	targets := []catchUpTarget{
		{stream: events.StreamDecisions, durable: DurableLifecycle, filter: events.PrefixLifecycle + ">"},
		{stream: events.StreamScores, durable: DurableScores, filter: events.PrefixScore + ">"},
	}
	err := s.retry(ctx, "restore the queues", func(ctx context.Context) error {
		if err := s.restore(ctx); err != nil {
			return err
		}
		if err := s.resetConsumers(ctx); err != nil {
			return err
		}
		for i := range targets {
			seq, err := s.lastSequence(ctx, targets[i].stream, targets[i].filter)
			if err != nil {
				return err
			}
			targets[i].seq = seq
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	lifecycle := bus.ConsumerOptions{
		Stream: events.StreamDecisions, Durable: DurableLifecycle,
		FilterSubjects: []string{events.PrefixLifecycle + ">"},
		DeliverPolicy:  bus.DeliverAll, OnDeadLetter: s.deadLettered,
	}
	if s.opts.LifecycleHistory > 0 {
		lifecycle.DeliverPolicy, lifecycle.StartTime = bus.DeliverByStartTime, s.opts.Now().Add(-s.opts.LifecycleHistory)
	}
	scores := bus.ConsumerOptions{
		Stream: events.StreamScores, Durable: DurableScores,
		FilterSubjects: []string{events.PrefixScore + ">"},
		DeliverPolicy:  bus.DeliverLastPerSubject, OnDeadLetter: s.deadLettered,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.snaps.run(gctx); return nil })
	for _, c := range []struct {
		opts bus.ConsumerOptions
		h    bus.Handler
	}{{lifecycle, s.onLifecycle}, {scores, s.onScore}} {
		g.Go(func() error {
			if err := s.bus.Consume(gctx, c.opts, c.h); err != nil {
				return fmt.Errorf("queuebuilder: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		s.catchUp(gctx, start, targets)
		s.publishLoop(gctx)
		return nil
	})
	return g.Wait()
}

// retry runs fn until it succeeds, ctx is done, or a stream is missing,
// with backoff and one log line per failure streak.
func (s *Service) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	for failures := 0; ; {
		err := fn(ctx)
		switch {
		case err == nil:
			if failures > 0 {
				s.logger.Info("queuebuilder: done after retrying", "what", what, "attempts", failures+1)
			}
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errMissingStream):
			return fmt.Errorf("queuebuilder: %s: %w", what, err)
		}
		failures++
		if failures == 1 {
			s.logger.Warn("queuebuilder: cannot start yet, retrying", "what", what, "err", err)
		}
		t := time.NewTimer(retryDelay(startRetryBase, startRetryMax, failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// appLocked returns the state of app, creating it. s.mu is held.
func (s *Service) appLocked(app string) *appState {
	st, ok := s.apps[app]
	if !ok {
		st = &appState{pace: pacer{window: s.opts.Debounce}}
		s.apps[app] = st
	}
	return st
}

// poke wakes the publisher.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// onScore applies a score. Decoding failures go to the dead letter queue.
func (s *Service) onScore(_ context.Context, m bus.Msg) error {
	ev, err := bus.DecodeEvent[events.Score](m)
	if err != nil {
		s.invalid(events.StreamScores, "score", m, err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.ScoreHistory > 0 && m.Time.Before(s.opts.Now().Add(-s.opts.ScoreHistory)) {
		// Only the last scores read at start can be this old: their worker
		// may be gone without a lifecycle fact.
		s.m.inputs.WithLabelValues("score", resultStale).Inc()
		return nil
	}
	s.noteLocked("score", ev.Data.App, s.builder.ApplyScore(ev.Data), ev.Time)
	return nil
}

// onLifecycle applies a lifecycle fact.
func (s *Service) onLifecycle(_ context.Context, m bus.Msg) error {
	ev, err := bus.DecodeEvent[events.Lifecycle](m)
	if err != nil {
		s.invalid(events.StreamDecisions, "lifecycle", m, err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noteLocked("lifecycle", ev.Data.App, s.builder.ApplyLifecycle(ev.Data), ev.Time)
	return nil
}

// noteLocked counts an applied input and, when it changed the queue of
// app, schedules a publish stamped with the input's event time.
func (s *Service) noteLocked(kind, app string, changed bool, at time.Time) {
	if !changed {
		s.m.inputs.WithLabelValues(kind, resultUnchanged).Inc()
		return
	}
	s.m.inputs.WithLabelValues(kind, resultChanged).Inc()
	st := s.appLocked(app)
	st.pace.changed(time.Now())
	if at.After(st.eventTime) {
		st.eventTime = at
	}
	s.poke()
}

// invalid counts a message that cannot be decoded and logs the first one of
// each stream and kind; the consumer dead-letters it.
func (s *Service) invalid(stream, kind string, m bus.Msg, err error) {
	s.m.inputs.WithLabelValues(kind, resultInvalid).Inc()
	got := "malformed"
	if meta, perr := events.PeekMeta(m.Data); perr == nil && meta.Kind != "" {
		got = string(meta.Kind)
	}
	s.mu.Lock()
	first := !s.logged[stream+"/"+got]
	s.logged[stream+"/"+got] = true
	s.mu.Unlock()
	if first {
		s.logger.Warn("queuebuilder: invalid input dead-lettered (logged once per stream and kind; see rb_queuebuilder_inputs_total)",
			"stream", stream, "subject", m.Subject, "kind", got, "err", err)
	}
}

func (s *Service) deadLettered(d bus.DeadLetter) {
	s.m.deadLettered.WithLabelValues(d.Stream).Inc()
}

// catchUpTarget is how far one consumer must have acknowledged before the
// rebuild is done: the last message of its subjects when it was created.
type catchUpTarget struct {
	stream, durable, filter string
	seq                     uint64
}

// catchUp waits until each consumer has acknowledged every message of its
// subjects stored before it was created (its ack floor reaches the last of
// them), or CatchUpTimeout, then lets the publisher go.
func (s *Service) catchUp(ctx context.Context, start time.Time, targets []catchUpTarget) {
	deadline := time.Now().Add(s.opts.CatchUpTimeout)
	js := s.bus.JetStream()
	for _, c := range targets {
		for {
			cons, err := js.Consumer(ctx, c.stream, c.durable)
			if err == nil {
				// The consumer exists, so nothing published from now on can
				// be missed; its ack floor passes what was acknowledged,
				// dead-lettered (terminated) or never to be delivered (before
				// its start).
				info, ierr := cons.Info(ctx)
				if ierr == nil && info.AckFloor.Stream >= c.seq {
					break
				}
			}
			if ctx.Err() != nil {
				return
			}
			if time.Now().After(deadline) {
				s.logger.Warn("queuebuilder: rebuild not finished in time; going live with what is applied",
					"stream", c.stream, "timeout", s.opts.CatchUpTimeout)
				break
			}
			t := time.NewTimer(catchUpPoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
	s.mu.Lock()
	s.live = true
	now := time.Now()
	for _, st := range s.apps {
		// The flusher publishes the apps whose queue is not on RB_QUEUE yet;
		// the delay is counted from now, not from the replayed changes.
		st.pace.skip()
		st.pace.changed(now)
	}
	n := len(s.apps)
	s.mu.Unlock()
	s.ready.Store(true)
	took := time.Since(start)
	s.m.catchUp.Set(took.Seconds())
	s.logger.Info("queuebuilder live", "apps", n, "took", took.Round(time.Millisecond))
	s.poke()
}

// job is one queue to publish.
type job struct {
	app   string
	snap  events.QueueSnapshot
	at    time.Time // the event time
	first time.Time // when its first change happened
}

// publishLoop publishes due queues until ctx is done.
func (s *Service) publishLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if next := s.flush(ctx); !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// flush publishes every app whose publish is due and returns when the next
// one is due (zero: none pending).
func (s *Service) flush(ctx context.Context) time.Time {
	now := time.Now()
	var (
		jobs []job
		next time.Time
	)
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	s.mu.Lock()
	if !s.live {
		s.mu.Unlock()
		return time.Time{}
	}
	names := make([]string, 0, len(s.apps))
	for app := range s.apps {
		names = append(names, app)
	}
	slices.Sort(names)
	for _, app := range names {
		st := s.apps[app]
		at, ok := st.pace.due()
		if !ok {
			continue
		}
		if at.After(now) {
			earliest(at)
			continue
		}
		snap := s.builder.Snapshot(app)
		if snap.Generation <= st.published {
			st.pace.skip() // the changes cancelled out
			st.eventTime = time.Time{}
			continue
		}
		t := st.eventTime
		if t.IsZero() {
			t = st.lastTime
		}
		if t.IsZero() {
			t = s.opts.Now()
		}
		st.eventTime = time.Time{}
		jobs = append(jobs, job{app: app, snap: snap, at: t, first: st.pace.start(now)})
	}
	s.mu.Unlock()

	for _, j := range jobs {
		s.m.delay.Observe(now.Sub(j.first).Seconds())
		err := s.publish(ctx, j)
		if ctx.Err() != nil {
			return time.Time{}
		}
		s.mu.Lock()
		st := s.apps[j.app]
		switch {
		case err == nil:
			st.published = max(st.published, j.snap.Generation)
			st.lastTime, st.failures = j.at, 0
		case errors.Is(err, errUnpublishable):
			// A bug, not an outage: retrying cannot help; the next change tries again.
			st.published = max(st.published, j.snap.Generation)
		default:
			st.failures++
			retryAt := time.Now().Add(retryDelay(publishRetryBase, publishRetryMax, st.failures))
			st.pace.failed(j.first, retryAt)
			if j.at.After(st.eventTime) {
				st.eventTime = j.at
			}
			earliest(retryAt)
			if st.failures == 1 {
				s.logger.Warn("queuebuilder: publish failed; retrying", "app", j.app, "generation", j.snap.Generation, "err", err)
			}
		}
		s.mu.Unlock()
	}
	return next
}

// errUnpublishable marks a queue that cannot be encoded or has no subject.
var errUnpublishable = errors.New("queue cannot be published")

// publish sends one queue on rb.queue.<app> and hands it to the Redis writer.
func (s *Service) publish(ctx context.Context, j job) error {
	gen := j.snap.Generation
	subj, err := events.QueueSubject(j.app)
	if err != nil {
		s.m.publishes.WithLabelValues(j.app, "error").Inc()
		s.logger.Error("queuebuilder: no subject for app", "app", j.app, "err", err)
		return fmt.Errorf("%w: %w", errUnpublishable, err)
	}
	ev := events.New(fmt.Sprintf("%s-%d", j.app, gen), j.at, s.source, j.snap)
	data, err := events.Encode(ev)
	if err != nil {
		s.m.publishes.WithLabelValues(j.app, "error").Inc()
		s.logger.Error("queuebuilder: queue does not encode", "app", j.app, "generation", gen, "err", err)
		return fmt.Errorf("%w: %w", errUnpublishable, err)
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	defer cancel()
	if err := s.bus.Publish(pctx, subj, ev.ID, data); err != nil {
		s.m.publishes.WithLabelValues(j.app, "error").Inc()
		return fmt.Errorf("publish queue of %s generation %d: %w", j.app, gen, err)
	}
	s.m.publishes.WithLabelValues(j.app, "ok").Inc()
	s.m.generation.WithLabelValues(j.app).Set(float64(gen))
	s.snaps.put(j.app, gen, data)
	return nil
}
