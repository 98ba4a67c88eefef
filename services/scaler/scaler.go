package scaler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/store"
)

// Runtime is the part of pkg/runtime the scaler uses. It touches only
// labelled containers.
type Runtime interface {
	List(ctx context.Context, app string) ([]runtime.Container, error)
	Inspect(ctx context.Context, id string) (runtime.Container, error)
	Create(ctx context.Context, spec runtime.CreateSpec) (runtime.Container, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
}

var _ Runtime = (*runtime.Docker)(nil)

// Store is the part of pkg/store the scaler uses.
type Store interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	GetConfig(ctx context.Context, app string) (store.AppConfig, error)
	SetDesired(ctx context.Context, app string, n int) error
	PutContainer(ctx context.Context, rec store.ContainerRecord) error
	GetContainer(ctx context.Context, app, name string) (store.ContainerRecord, error)
	DeleteContainer(ctx context.Context, app, name string) error
	ListContainers(ctx context.Context, app string) ([]store.ContainerRecord, error)
	GetSnapshot(ctx context.Context, kind, app string) (store.Snapshot, error)
	PutSnapshot(ctx context.Context, kind, app string, version uint64, data []byte) (bool, error)
}

var _ Store = (*store.Store)(nil)

// Options configure a Service. Zero values take the defaults below.
type Options struct {
	// Config is the process configuration: APP_IDENTIFIER, the worker image
	// and port, the scaling policy. The app's runtime overrides (Redis
	// rb:config:<app>, rb.config.<app>) are applied on top of it.
	Config config.Config
	// NodeID names this scaler as the lease holder and in event sources
	// ("scaler/<NodeID>"); empty: "<hostname>-<random hex>".
	NodeID string
	// Registerer takes the rb_scaler_ metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now stamps the facts the scaler publishes (nil: time.Now). Decisions
	// are stamped with the scaling state's clock, the latest event time.
	Now func() time.Time
	// ProbeInterval is the time between readiness probes (TCP connects to
	// TARGET_PORT) of a starting worker; ProbeTimeout bounds one probe.
	ProbeInterval, ProbeTimeout time.Duration
	// DockerAttempts is how many times a Docker call is tried before the
	// action is reported failed; DockerBackoff the first delay between
	// tries, doubled after each.
	DockerAttempts int
	DockerBackoff  time.Duration
	// MaxParallel bounds the Docker calls in flight.
	MaxParallel int
}

// Defaults of Options.
const (
	DefaultProbeInterval  = 50 * time.Millisecond
	DefaultProbeTimeout   = time.Second
	DefaultDockerAttempts = 4
	DefaultDockerBackoff  = 250 * time.Millisecond
	DefaultMaxParallel    = 4
)

func (o Options) withDefaults() Options {
	if o.NodeID == "" {
		o.NodeID = defaultNodeID()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	if o.DockerAttempts <= 0 {
		o.DockerAttempts = DefaultDockerAttempts
	}
	if o.DockerBackoff <= 0 {
		o.DockerBackoff = DefaultDockerBackoff
	}
	if o.MaxParallel <= 0 {
		o.MaxParallel = DefaultMaxParallel
	}
	return o
}

func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown-host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return h + "-" + hex.EncodeToString(b)
}

// Service is the scaler of one app.
type Service struct {
	opts   Options
	app    string
	bus    *bus.Bus
	store  Store
	rt     Runtime
	log    *slog.Logger
	m      *metrics
	source string
	lease  string

	ready  atomic.Bool
	leader atomic.Bool
}

// errLeaseLost ends a term whose lease another scaler took or that could not
// be renewed in time.
var errLeaseLost = errors.New("scaler lease lost")

// New checks the configuration and returns the scaler of opts.Config.App.
// The worker image and port are required; the scaling policy must validate.
func New(opts Options, b *bus.Bus, st Store, rt Runtime, logger *slog.Logger) (*Service, error) {
	opts = opts.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	var errs []error
	if b == nil || st == nil || rt == nil {
		errs = append(errs, errors.New("bus, store and runtime are required"))
	}
	if _, err := events.EscapeToken(cfg.App); err != nil {
		errs = append(errs, fmt.Errorf("APP_IDENTIFIER %q: %w", cfg.App, err))
	}
	if err := cfg.Require("DOCKER_IMAGE", "TARGET_PORT"); err != nil {
		errs = append(errs, err)
	}
	if err := Params(cfg).Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Scaling.LeaseTTL < 3*time.Millisecond {
		errs = append(errs, fmt.Errorf("RB_SCALER_LEASE_TTL=%s: want at least 3ms", cfg.Scaling.LeaseTTL))
	}
	if cfg.Scaling.ReconcileInterval <= 0 {
		errs = append(errs, fmt.Errorf("RB_RECONCILE_INTERVAL=%s: want > 0", cfg.Scaling.ReconcileInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new scaler: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{
		opts:   opts,
		app:    cfg.App,
		bus:    b,
		store:  st,
		rt:     rt,
		log:    logger.With("app", cfg.App, "node", opts.NodeID),
		m:      m,
		source: "scaler/" + opts.NodeID,
		lease:  "scaler:" + cfg.App,
	}, nil
}

// NodeID is this scaler's lease holder name.
func (s *Service) NodeID() string { return s.opts.NodeID }

// Leader reports whether this scaler holds the lease and acts.
func (s *Service) Leader() bool { return s.leader.Load() }

// Ready reports nil once the scaler knows whether it leads or stands by.
func (s *Service) Ready() error {
	if !s.ready.Load() {
		return errors.New("scaler: lease not tried yet")
	}
	return nil
}

// Run tries for the lease until ctx is done, acts while it holds it and
// stands by otherwise; it returns nil when ctx is done. Errors while acting
// (NATS or Redis unreachable) end the term and are retried, never returned.
func (s *Service) Run(ctx context.Context) error {
	ttl := s.opts.Config.Scaling.LeaseTTL
	poll := ttl / 5
	failing := false
	for {
		ok, err := s.store.AcquireLease(ctx, s.lease, s.opts.NodeID, ttl)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !failing {
				s.log.Warn("scaler lease cannot be tried; standing by", "lease", s.lease, "err", err)
			}
			failing = true
		case ok:
			failing = false
			s.ready.Store(true)
			s.lead(ctx)
			if ctx.Err() != nil {
				return nil
			}
		default:
			failing = false
		}
		s.ready.Store(true)
		sleep(ctx, poll)
	}
}

// lead runs one leader term until the lease is lost or ctx is done, and
// releases the lease when it stops by itself.
func (s *Service) lead(ctx context.Context) {
	s.log.Info("scaler lease acquired: acting", "lease", s.lease)
	lctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.renew(lctx, cancel)
	}()
	s.leader.Store(true)
	s.m.leaseHeld.Set(1)
	err := s.runTerm(lctx)
	cancel(nil)
	wg.Wait()
	s.leader.Store(false)
	s.m.leaseHeld.Set(0)

	lost := errors.Is(context.Cause(lctx), errLeaseLost)
	switch {
	case lost:
		s.log.Warn("scaler stopped acting: lease lost", "lease", s.lease)
		return
	case err != nil && ctx.Err() == nil:
		s.log.Error("scaler term failed; releasing the lease and trying again", "err", err)
	default:
		s.log.Info("scaler stopping: releasing the lease", "lease", s.lease)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	if err := s.store.ReleaseLease(rctx, s.lease, s.opts.NodeID); err != nil {
		s.log.Warn("release scaler lease", "lease", s.lease, "err", err)
	}
}

// renew keeps the lease every third of its TTL. A renewal that says another
// holder has it, or failures that leave less than a renewal period of the
// last TTL, end the term at once: two scalers must never act together.
func (s *Service) renew(ctx context.Context, cancel context.CancelCauseFunc) {
	ttl := s.opts.Config.Scaling.LeaseTTL
	every := ttl / 3
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := s.store.AcquireLease(ctx, s.lease, s.opts.NodeID, ttl)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if time.Since(lastOK) >= ttl-every {
				s.log.Warn("scaler lease not renewed in time", "lease", s.lease, "err", err)
				s.leader.Store(false)
				s.m.leaseHeld.Set(0)
				cancel(fmt.Errorf("%w: renewal failing since %s: %w", errLeaseLost, lastOK.Format(time.RFC3339Nano), err))
				return
			}
			s.log.Warn("scaler lease renewal failed; retrying", "lease", s.lease, "err", err)
		case !ok:
			// Not ours any more: say so at once, then stop everything.
			s.leader.Store(false)
			s.m.leaseHeld.Set(0)
			cancel(fmt.Errorf("%w: held by another scaler", errLeaseLost))
			return
		default:
			lastOK = time.Now()
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
