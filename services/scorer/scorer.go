package scorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/pkg/store"
	"golang.org/x/sync/errgroup"
)

// SnapshotKind is the kind of the scorer's snapshots in the store.
const SnapshotKind = "scorer"

// Defaults of Options.
const (
	DefaultSnapshotEvery = 5 * time.Second
	DefaultIdleTimeout   = 10 * time.Minute
)

// Timeouts of the I/O around the scoring.
const (
	finalSnapshotTimeout = 2 * time.Second
	restoreRetryMin      = time.Second
	restoreRetryMax      = 30 * time.Second
)

// Store is what the scorer needs of Redis: the app's runtime config and its
// snapshot.
type Store interface {
	GetConfig(ctx context.Context, app string) (store.AppConfig, error)
	GetSnapshot(ctx context.Context, kind, app string) (store.Snapshot, error)
	PutSnapshot(ctx context.Context, kind, app string, version uint64, data []byte) (bool, error)
}

var _ Store = (*store.Store)(nil)

// Options are what a scorer needs. Config, Bus, Store, Logger, Metrics and
// Node are required.
type Options struct {
	// Config is the process's configuration: App, Scoring, Collect. Runtime
	// overrides from Redis and rb.config.<app> are applied on top of it.
	Config config.Config
	Bus    *bus.Bus
	Store  Store
	Logger *slog.Logger
	// Metrics is where the rb_scorer_* metrics are registered.
	Metrics prometheus.Registerer
	// Node names this process in the Scores' source, "scorer/<node>".
	Node string
	// Now is the clock for the latency metric and the start of a rebuild
	// when there is no consumer position yet; nil means time.Now. Scores
	// take their time from their Samples, never from it.
	Now func() time.Time
	// SnapshotEvery is the time between snapshots (default 5 s).
	SnapshotEvery time.Duration
	// IdleTimeout forgets a container that has sent no Sample for this long,
	// in Sample event time (default 10 min).
	IdleTimeout time.Duration
	// RebuildWindow overrides the stretch of RB_STATS read when there is no
	// usable snapshot (default RebuildWindow(Params(Config), Collect.Interval)).
	RebuildWindow time.Duration
}

// Service is the scorer of one app.
type Service struct {
	bus    *bus.Bus
	store  Store
	log    *slog.Logger
	m      *metrics
	now    func() time.Time
	base   config.Config
	app    string
	source string

	durable       string
	statsFilter   string
	lifeFilter    string
	configSubject string

	snapshotEvery time.Duration
	idleTimeout   time.Duration
	window        time.Duration

	ready   atomic.Bool
	confirm chan inFlight // Scores published and not yet confirmed (publish.go)

	mu          sync.Mutex
	params      score.Params
	cfgVersion  int64
	ctrs        map[string]*container
	applied     uint64    // highest stream sequence applied
	appliedTime time.Time // when the stream stored it
	newest      time.Time // newest Sample event time applied
	dirty       bool      // changed since the last snapshot
	seenKinds   map[string]bool
}

// container is the scoring memory of one container.
type container struct {
	st   score.State
	seq  uint64    // stream sequence of the last Sample applied
	last time.Time // its event time
	// pending is the Score of that Sample while it is not known to be
	// published, so a redelivery can publish it instead of applying again.
	pending    events.Event[events.Score]
	hasPending bool
}

// New checks the options and returns a scorer; it does no I/O.
func New(o Options) (*Service, error) {
	var errs []error
	if o.Bus == nil {
		errs = append(errs, errors.New("no bus"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("no logger"))
	}
	if o.Metrics == nil {
		errs = append(errs, errors.New("no metrics registry"))
	}
	if o.Node == "" {
		errs = append(errs, errors.New("no node name"))
	}
	p := Params(o.Config)
	if err := p.Validate(); err != nil {
		errs = append(errs, err)
	}
	app := o.Config.App
	statsFilter, err := prefixFilter(events.StatsSubject, app)
	if err != nil {
		errs = append(errs, err)
	}
	lifeFilter, _ := prefixFilter(events.LifecycleSubject, app)
	configSubject, _ := events.ConfigSubject(app)
	if o.SnapshotEvery < 0 || o.IdleTimeout < 0 || o.RebuildWindow < 0 {
		errs = append(errs, errors.New("negative SnapshotEvery, IdleTimeout or RebuildWindow"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new scorer for app %q: %w", app, err)
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, fmt.Errorf("new scorer for app %q: %w", app, err)
	}
	s := &Service{
		bus: o.Bus, store: o.Store, log: o.Logger, m: m, now: o.Now, base: o.Config, app: app,
		source:        "scorer/" + o.Node,
		durable:       durableName(app),
		statsFilter:   statsFilter,
		lifeFilter:    lifeFilter,
		configSubject: configSubject,
		snapshotEvery: o.SnapshotEvery,
		idleTimeout:   o.IdleTimeout,
		window:        o.RebuildWindow,
		params:        p,
		ctrs:          map[string]*container{},
		seenKinds:     map[string]bool{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.snapshotEvery == 0 {
		s.snapshotEvery = DefaultSnapshotEvery
	}
	if s.idleTimeout == 0 {
		s.idleTimeout = DefaultIdleTimeout
	}
	if s.window == 0 {
		s.window = RebuildWindow(p, o.Config.Collect.Interval)
	}
	return s, nil
}

// prefixFilter is "<subject of app and a placeholder>" with the last token
// made the '>' wildcard, e.g. rb.stats.shop.>.
func prefixFilter(build func(app, ctr string) (string, error), app string) (string, error) {
	subj, err := build(app, "x")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(subj, "x") + ">", nil
}

// durableName is the scorer's consumer name for app: JetStream names may not
// hold '.', '*', '>', '/', '\' or white space.
func durableName(app string) string {
	esc, _ := events.EscapeToken(app) // app is checked non-empty by New's filters
	return "scorer_" + strings.NewReplacer("/", "%2F", `\`, "%5C").Replace(esc)
}

// ScoreID is the id of the Score computed from the Sample with id sampleID:
// a redelivered Sample yields the same Score id, which RB_SCORES drops as a
// duplicate.
func ScoreID(sampleID string) string { return "score:" + sampleID }

// Ready reports nil once the state is restored and Samples are consumed.
func (s *Service) Ready() error {
	if !s.ready.Load() {
		return errors.New("scorer: restoring the score state")
	}
	return nil
}

// Run scores Samples until ctx is done, then writes a last snapshot and
// returns nil. It returns an error only when NATS refuses the consumer or
// the bus is closed.
func (s *Service) Run(ctx context.Context) error {
	s.confirm = make(chan inFlight, confirmQueue)
	confirmed := make(chan struct{})
	// The confirmer outlives the consumer, to take the last acks; its retries
	// end when the rest has stopped, whatever stopped it.
	cctx, stopConfirmer := context.WithCancel(ctx)
	defer stopConfirmer()
	go func() {
		defer close(confirmed)
		s.confirmer(cctx)
	}()
	s.loadRuntimeConfig(ctx)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.watchConfig(gctx) })
	g.Go(func() error { return s.watchLifecycle(gctx) })
	g.Go(func() error {
		startAt, ok := s.restoreWithRetry(gctx)
		if !ok {
			return nil // ctx done while restoring
		}
		if err := s.publishPending(gctx); err != nil {
			s.log.Warn("scores restored as unconfirmed not published; the containers' next Samples supersede them", "err", err)
		}
		g.Go(func() error { s.snapshotLoop(gctx); return nil })
		opts := bus.ConsumerOptions{
			Stream: events.StreamStats, Durable: s.durable, FilterSubjects: []string{s.statsFilter},
			DeliverPolicy: bus.DeliverAll,
			OnDeadLetter:  func(bus.DeadLetter) { s.m.deadLettered.Inc() },
		}
		if !startAt.IsZero() {
			opts.DeliverPolicy, opts.StartTime = bus.DeliverByStartTime, startAt
		}
		// One handler: a container's Samples are applied in stream order,
		// as replay applies them.
		s.ready.Store(true)
		s.log.Info("scorer consuming", "stream", events.StreamStats, "consumer", s.durable, "filter", s.statsFilter)
		err := s.bus.Consume(gctx, opts, s.handleSample)
		s.ready.Store(false)
		return err
	})
	err := g.Wait()
	// Every sender has returned: let the confirmer take the last acks.
	stopConfirmer()
	close(s.confirm)
	<-confirmed
	// Write what was applied, so the next start resumes exactly here.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSnapshotTimeout)
	s.snapshot(fctx)
	cancel()
	if err != nil {
		return fmt.Errorf("scorer for app %s: %w", s.app, err)
	}
	return nil
}

// restoreWithRetry restores the state (restore) until it succeeds or ctx is
// done; it returns where a newly created consumer should start.
func (s *Service) restoreWithRetry(ctx context.Context) (time.Time, bool) {
	delay := restoreRetryMin
	for attempt := 1; ; attempt++ {
		startAt, err := s.restore(ctx)
		if err == nil {
			return startAt, true
		}
		if ctx.Err() != nil {
			return time.Time{}, false
		}
		level := slog.LevelDebug
		if attempt == 1 {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "restoring the score state failed, retrying", "err", err, "attempt", attempt, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, false
		case <-t.C:
		}
		delay = min(2*delay, restoreRetryMax)
	}
}

// snapshotLoop writes a snapshot and forgets idle containers every
// snapshotEvery until ctx is done.
func (s *Service) snapshotLoop(ctx context.Context) {
	t := time.NewTicker(s.snapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.forgetIdle()
			s.snapshot(ctx)
		}
	}
}

// logOnce logs msg at warn level the first time kind is seen, at debug level
// after that.
func (s *Service) logOnce(kind, msg string, args ...any) {
	s.mu.Lock()
	seen := s.seenKinds[kind]
	s.seenKinds[kind] = true
	s.mu.Unlock()
	level := slog.LevelWarn
	if seen {
		level = slog.LevelDebug
	} else {
		args = append(args, "note", "logged once per kind; see rb_scorer_* metrics for counts")
	}
	s.log.Log(context.Background(), level, msg, append(args, "kind", kind)...)
}
