// Package collector observes the worker containers of one app on a Docker
// engine and publishes what it sees: one events.Sample per running container
// per interval on rb.stats.<app>.<container>, and the lifecycle facts Docker
// reports (started, health, died, removed) on rb.lifecycle.<app>.<container>.
//
// # How it watches
//
// One loop opens Docker's event stream, lists the app's managed containers
// (rb.app=<app> or the prototype's application=<app>), then follows the
// events: no polling, a start is seen within milliseconds. Every event of a
// container is followed by an inspect, and the container is followed while
// Docker says it runs, so a replayed or out-of-order event cannot leave a
// dead container followed. When the list fails or the stream ends (the
// engine restarts, the socket goes away) the collector reports not ready,
// backs off (doubling from RetryBase up to RetryMax) and starts over: it
// re-lists, and re-reads the engine's event history since the last event it
// saw, so the facts of the outage are published late rather than lost.
// Docker unreachable at start is the same case; the collector never exits
// for it.
//
// Each followed container has its own stats stream (one streaming
// connection, readings about once a second) and its own probe loop (a TCP
// connect or an HTTP GET to its address, once per interval, bounded by the
// probe timeout), so a slow or hung worker delays nobody else's sample.
// Unlabelled containers are never read: pkg/runtime refuses them.
//
// # What a Sample says
//
// Every interval (RB_COLLECT_INTERVAL) the collector publishes one Sample
// per followed container, stamped with the tick's time; its id is
// <container>-<tick Unix ns>, its source collector/<node>. A container
// stops being followed the moment its die (or destroy) event is handled,
// before anything else is asked of Docker: no tick that starts after that
// samples it, and a tick already under way checks, just before each
// publish, that the container is still followed, so no Sample of a
// container known dead is published.
//
//   - CPUPercent, NetRxBps, NetTxBps are rates between the newest stats
//     reading at the previous tick and the newest now; WindowSeconds is the
//     time between those two readings. When no new reading arrived since the
//     previous tick, its rates are repeated.
//   - WindowSeconds = 0 means "no rates known": a container started less
//     than about a second ago (one reading or none yet), or a stats stream
//     that has been silent for StaleAfter (the engine unreachable). CPU and
//     network are then 0 and consumers should not read them as idle.
//     MemUsage is 0 while no reading is fresh. A fresh container still gets
//     its Sample at the first tick after its start, so it is visible at once
//     with its state, address, limits and probe.
//   - ProbeOK/ProbeSeconds/ProbeError are the latest finished probe. Before
//     the first one finishes ProbeError is "not probed yet". A worker that
//     stops answering shows a failed probe within the probe timeout plus one
//     interval.
//
// While Docker is unreachable the containers followed so far keep their
// probe loops and Samples (the workers may well run on), with no rates once
// their readings are stale; the re-list after the reconnect drops those
// that are gone.
//
// # Lifecycle facts
//
// Only what Docker says: start → started, die → died (Reason "exit code N"),
// health_status → health (Reason healthy/unhealthy), destroy → removed.
// A fact's Address is where the container answers now, else the last
// address the collector saw it at (a stopped container has lost its network
// IP by the time it is inspected): the collector remembers it per container
// until the container is destroyed or no longer listed. The
// event time is Docker's; the id is <container>-<Docker event ns>-<phase>,
// so a fact re-read after a reconnect is dropped by the stream's dedupe. The
// scaler publishes its own facts (created, ready, sundown, ...). Facts are
// published in order by one goroutine that retries a failing publish for up
// to a minute.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/runtime"
)

// Defaults of Config's zero fields.
const (
	DefaultRetryBase = 250 * time.Millisecond
	DefaultRetryMax  = 10 * time.Second
	// minStaleAfter is the least time a stats reading stays fresh: the
	// engine reads about once a second, whatever the collection interval.
	minStaleAfter = 3 * time.Second
	// factRetryFor bounds the retries of one lifecycle fact.
	factRetryFor = time.Minute
	// factQueue is how many lifecycle facts wait for NATS before new ones
	// are dropped.
	factQueue = 1024
	// factPublishTimeout bounds one attempt to publish a lifecycle fact.
	factPublishTimeout = 5 * time.Second
	// publishParallel bounds the Samples of one tick in flight at once.
	publishParallel = 32
	// runtimeCallTimeout bounds a list or inspect call.
	runtimeCallTimeout = 30 * time.Second
)

// Runtime is the part of the container runtime the collector uses;
// *runtime.Docker implements it.
type Runtime interface {
	List(ctx context.Context, app string) ([]runtime.Container, error)
	Inspect(ctx context.Context, id string) (runtime.Container, error)
	Events(ctx context.Context, since time.Time) (<-chan runtime.Event, <-chan error)
	Stats(ctx context.Context, id string) (<-chan runtime.StatsSample, <-chan error)
}

var _ Runtime = (*runtime.Docker)(nil)

// Publisher publishes one message and waits for the stream's ack; msgID is
// the dedupe id. *bus.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
}

// Config is what the collector needs to know.
type Config struct {
	App     string // APP_IDENTIFIER: whose containers to follow
	Network string // RB_DOCKER_NETWORK: where workers are reached ("" = their only network)
	// Port is the worker port to probe (TARGET_PORT). 0 runs without
	// probes: every Sample then says so in ProbeError.
	Port int

	Interval     time.Duration // RB_COLLECT_INTERVAL
	Probe        string        // RB_PROBE: ProbeTCP or ProbeHTTP
	ProbePath    string        // RB_PROBE_PATH, for ProbeHTTP
	ProbeTimeout time.Duration // RB_PROBE_TIMEOUT

	// Node names this collector in the events' source, collector/<node>.
	Node string
	// Now is the clock that stamps events (nil: time.Now).
	Now func() time.Time
	// RetryBase and RetryMax bound the backoff after a Docker failure
	// (zero: DefaultRetryBase, DefaultRetryMax).
	RetryBase, RetryMax time.Duration
	// StaleAfter is how long a stats reading is used (zero: three intervals,
	// at least 3 s).
	StaleAfter time.Duration
}

// FromConfig takes the collector's settings from the process configuration.
func FromConfig(c *config.Config, node string) Config {
	return Config{
		App: c.App, Network: c.Docker.Network, Port: c.Docker.Port,
		Interval: c.Collect.Interval, Probe: c.Collect.Probe, ProbePath: c.Collect.ProbePath,
		ProbeTimeout: c.Collect.ProbeTimeout, Node: node,
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.App == "" {
		errs = append(errs, errors.New("app is empty (APP_IDENTIFIER)"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1 to 65535, or 0 for none (TARGET_PORT)", c.Port))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %v: want > 0 (RB_COLLECT_INTERVAL)", c.Interval))
	}
	if c.Node == "" {
		errs = append(errs, errors.New("node is empty"))
	}
	if c.RetryBase < 0 || c.RetryMax < 0 || c.StaleAfter < 0 {
		errs = append(errs, errors.New("retry base, retry max and stale after must not be negative"))
	}
	return errors.Join(errs...)
}

// Service is the collector. Run it once.
type Service struct {
	cfg     Config
	rt      Runtime
	pub     Publisher
	prober  *Prober
	logger  *slog.Logger
	metrics *metrics
	now     func() time.Time
	source  string
	facts   chan lifecycleFact

	wg sync.WaitGroup // the goroutines of followed containers

	mu      sync.Mutex
	tracked map[string]*tracked // by container ID
	up      bool                // following Docker's events
	listed  bool                // listed at least once
	downErr error               // why not, when not
	since   time.Time           // down since
	// addrs is the last address each container was seen at while running,
	// by container ID, kept after it stops (for its died fact) until it is
	// destroyed or no longer listed.
	addrs map[string]string
}

// New returns a collector of cfg.App's containers on rt that publishes on
// pub. The metrics are registered on reg.
func New(cfg Config, rt Runtime, pub Publisher, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = max(3*cfg.Interval, minStaleAfter)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new collector: %w", err)
	}
	if rt == nil || pub == nil || logger == nil || reg == nil {
		return nil, errors.New("new collector: runtime, publisher, logger and registerer are required")
	}
	prober, err := NewProber(cfg.Probe, cfg.ProbePath, cfg.ProbeTimeout)
	if err != nil {
		return nil, fmt.Errorf("new collector: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new collector: %w", err)
	}
	return &Service{
		cfg: cfg, rt: rt, pub: pub, prober: prober, logger: logger, metrics: m,
		now: cfg.Now, source: "collector/" + cfg.Node,
		facts:   make(chan lifecycleFact, factQueue),
		tracked: map[string]*tracked{},
		addrs:   map[string]string{},
		downErr: errors.New("docker: not listed yet"),
		since:   cfg.Now(),
	}, nil
}

// Ready reports nil while the collector follows Docker's events, else why
// not (register it with the admin listener's AddReady).
func (s *Service) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		return nil
	}
	if !s.listed {
		return fmt.Errorf("collector starting since %s: %w", s.since.Format(time.RFC3339), s.downErr)
	}
	return fmt.Errorf("collector not following docker since %s: %w", s.since.Format(time.RFC3339), s.downErr)
}

// Run collects until ctx is done and returns nil then. Docker and NATS
// failures are logged, counted and retried, never returned.
func (s *Service) Run(ctx context.Context) error {
	s.logger.Info("collector starting", "app", s.cfg.App, "interval", s.cfg.Interval, "probe", s.cfg.Probe,
		"network", s.cfg.Network, "port", s.cfg.Port)
	if s.cfg.Port == 0 {
		s.logger.Warn("TARGET_PORT is not set: workers are not probed and have no address")
	}
	var g sync.WaitGroup
	g.Go(func() { s.publishFacts(ctx) })
	g.Go(func() { s.collectLoop(ctx) })
	s.followLoop(ctx)
	g.Wait()
	s.mu.Lock()
	for id, t := range s.tracked {
		t.cancel()
		delete(s.tracked, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.metrics.watched.Set(0)
	s.logger.Info("collector stopped")
	return nil
}

// followLoop runs follow sessions with backoff between them until ctx is done.
func (s *Service) followLoop(ctx context.Context) {
	var since time.Time // the first session follows from now
	for attempt := 1; ; attempt++ {
		began := s.now()
		last, listed, err := s.follow(ctx, since)
		if ctx.Err() != nil {
			return
		}
		// Next time, re-read the engine's history from where this session's
		// view ends: the last event it saw, else its start when it followed
		// (nothing came since), else unchanged (it saw nothing at all). A
		// first attempt that failed marks the start of what to catch up.
		switch {
		case listed:
			since = maxTime(since, began, last)
		case since.IsZero():
			since = began
		}
		if s.now().Sub(began) >= s.cfg.RetryMax {
			attempt = 1
		}
		delay := backoff(s.cfg.RetryBase, s.cfg.RetryMax, attempt)
		s.setDown(err)
		s.metrics.reconnects.Inc()
		s.logger.Warn("docker unavailable; retrying", "err", err, "retry_in", delay)
		if !sleep(ctx, delay) {
			return
		}
	}
}

// follow opens the event stream, lists, reconciles, then handles events
// until the stream or a call fails. It returns the time of the last event it
// handled, whether it got as far as the list, and why it stopped.
func (s *Service) follow(ctx context.Context, since time.Time) (time.Time, bool, error) {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last time.Time
	// Events first, list second: nothing that happens in between is lost.
	evs, errc := s.rt.Events(fctx, since)
	lctx, lcancel := context.WithTimeout(fctx, runtimeCallTimeout)
	list, err := s.rt.List(lctx, s.cfg.App)
	lcancel()
	if err != nil {
		return last, false, err
	}
	s.reconcile(ctx, list)
	s.setUp()
	s.logger.Info("following docker events", "app", s.cfg.App, "running", s.watchedCount(), "since", since)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return last, true, <-errc
			}
			if err := s.handle(ctx, fctx, ev); err != nil {
				return last, true, err
			}
			last = maxTime(last, ev.Time)
		case <-ctx.Done():
			return last, true, ctx.Err()
		}
	}
}

func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// handle publishes the fact an event states, then follows or drops the
// container as Docker now reports it. runCtx outlives the session; the
// container's goroutines run under it.
func (s *Service) handle(runCtx, ctx context.Context, ev runtime.Event) error {
	if ev.App != s.cfg.App {
		return nil
	}
	if ev.Action == actionDie || ev.Action == actionDestroy {
		// Dead from now on, whatever the inspect below takes: no Sample of
		// it is published past this point. A container that died and is
		// running again (a restart policy) is followed afresh below.
		s.unwatch(ev.ID)
	}
	var (
		c       runtime.Container
		running bool
		ierr    error
	)
	if ev.Action != actionDestroy {
		ictx, cancel := context.WithTimeout(ctx, runtimeCallTimeout)
		c, ierr = s.rt.Inspect(ictx, ev.ID)
		cancel()
		switch {
		case ierr == nil:
			running = c.State == "running" && c.App == s.cfg.App
		case errors.Is(ierr, runtime.ErrNotFound), errors.Is(ierr, runtime.ErrNotManaged):
			ierr = nil // gone or relabelled: not ours any more
		}
	}
	// Where it answers now, else (stopped, gone) where it last answered.
	addr, ok := c.Address(s.cfg.Network, s.cfg.Port)
	if !ok {
		addr = s.lastAddress(ev.ID)
	}
	if s.cfg.Port == 0 {
		addr = ""
	}
	if fact, ok := factFrom(s.cfg.App, s.source, ev, addr); ok {
		s.enqueueFact(fact)
	}
	if ev.Action == actionDestroy {
		s.forget(ev.ID)
	}
	if ierr != nil {
		return fmt.Errorf("after %s of %s: %w", ev.Action, ev.Name, ierr)
	}
	if running {
		s.watch(runCtx, c)
	} else {
		s.unwatch(ev.ID)
	}
	return nil
}

// reconcile follows the running containers of list and drops the others.
func (s *Service) reconcile(ctx context.Context, list []runtime.Container) {
	running, listed := map[string]bool{}, map[string]bool{}
	for _, c := range list {
		listed[c.ID] = true
		if c.State == "running" && c.App == s.cfg.App {
			running[c.ID] = true
			s.watch(ctx, c)
		}
	}
	s.mu.Lock()
	for id := range s.addrs {
		if !listed[id] {
			delete(s.addrs, id) // removed while unseen: no fact of it will need it
		}
	}
	var gone []string
	for id := range s.tracked {
		if !running[id] {
			gone = append(gone, id)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		s.unwatch(id)
	}
}

// watch follows c, or updates what is known of it when already followed.
func (s *Service) watch(ctx context.Context, c runtime.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr, ok := c.Address(s.cfg.Network, s.cfg.Port); ok && s.cfg.Port > 0 {
		s.addrs[c.ID] = addr
	}
	if t, ok := s.tracked[c.ID]; ok {
		t.update(c)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	t := &tracked{id: c.ID, cancel: cancel, c: c}
	s.tracked[c.ID] = t
	s.metrics.watched.Set(float64(len(s.tracked)))
	s.wg.Go(func() { s.statsLoop(cctx, t) })
	s.wg.Go(func() { s.probeLoop(cctx, t) })
	s.logger.Info("following container", "container", c.Name, "id", c.ID)
}

// unwatch stops following the container id, if followed.
func (s *Service) unwatch(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tracked[id]
	if !ok {
		return
	}
	t.cancel()
	delete(s.tracked, id)
	s.metrics.watched.Set(float64(len(s.tracked)))
	s.logger.Info("stopped following container", "container", t.container().Name, "id", id)
}

// lastAddress is the last address container id was seen at while running,
// or "" when none is known.
func (s *Service) lastAddress(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[id]
}

// forget drops what is remembered of the destroyed container id.
func (s *Service) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.addrs, id)
}

// following reports whether t is still followed: false once its container
// died, was destroyed or was dropped by a re-list.
func (s *Service) following(t *tracked) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracked[t.id] == t
}

func (s *Service) watchedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tracked)
}

func (s *Service) setUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up && s.listed {
		s.logger.Info("docker reachable again", "down_for", s.now().Sub(s.since).Round(time.Millisecond))
	}
	s.up, s.listed, s.downErr = true, true, nil
	s.metrics.dockerUp.Set(1)
}

func (s *Service) setDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		s.since = s.now()
	}
	s.up, s.downErr = false, err
	s.metrics.dockerUp.Set(0)
}

// collectLoop publishes the Samples of every followed container once per
// interval until ctx is done.
func (s *Service) collectLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.collect(ctx, s.now())
		}
	}
}

// collect publishes one Sample per followed container, stamped at.
func (s *Service) collect(ctx context.Context, at time.Time) {
	s.mu.Lock()
	ts := make([]*tracked, 0, len(s.tracked))
	for _, t := range s.tracked {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	// One deadline for the whole tick: with NATS down, a thousand Samples
	// time out together instead of one batch after another.
	tctx, cancel := context.WithTimeout(ctx, max(s.cfg.Interval, time.Second))
	defer cancel()
	var (
		g        errgroup.Group
		failMu   sync.Mutex
		failed   int
		firstErr error
	)
	g.SetLimit(publishParallel)
	for _, t := range ts {
		smp := t.sample(s.cfg.App, s.cfg.Network, s.cfg.Port, at, s.cfg.StaleAfter)
		g.Go(func() error {
			// The container may have died since the tick began: checked
			// here, at the last moment, so a container known dead is
			// never sampled.
			if !s.following(t) {
				return nil
			}
			subj, err := events.StatsSubject(smp.App, smp.Container)
			if err == nil {
				id := fmt.Sprintf("%s-%d", smp.Container, at.UnixNano())
				err = publishEvent(tctx, s.pub, subj, events.New(id, at, s.source, smp))
			}
			if err != nil {
				s.metrics.publishErrors.WithLabelValues(kindSample).Inc()
				failMu.Lock()
				if failed++; firstErr == nil {
					firstErr = fmt.Errorf("sample of %s: %w", smp.Container, err)
				}
				failMu.Unlock()
				return nil
			}
			s.metrics.published.WithLabelValues(kindSample).Inc()
			return nil
		})
	}
	_ = g.Wait()
	if failed > 0 && ctx.Err() == nil {
		// One line per tick, however many containers: NATS down would
		// otherwise flood the log.
		s.logger.Warn("samples not published", "failed", failed, "of", len(ts), "err", firstErr)
	}
}
