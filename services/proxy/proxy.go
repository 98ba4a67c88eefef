package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/rustybalancer/rb/pkg/balance"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/cache"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
)

// Bus is the part of *bus.Bus the proxy uses.
type Bus interface {
	Watch(ctx context.Context, stream string, filter []string, deliverLastPerSubject bool, h func(bus.Msg)) error
	Publish(ctx context.Context, subject, msgID string, data []byte) error
}

var _ Bus = (*bus.Bus)(nil)

// Store is the part of *store.Store the proxy uses: the queue snapshot for a
// cold start and the app's runtime config.
type Store interface {
	GetSnapshot(ctx context.Context, kind, app string) (store.Snapshot, error)
	GetConfig(ctx context.Context, app string) (store.AppConfig, error)
}

var _ Store = (*store.Store)(nil)

// SnapshotKind is the store's snapshot kind of an app's queue, written by the
// queue builder.
const SnapshotKind = "queue"

// Tuning that has no variable of its own.
const (
	// maxHeaderBytes bounds a request's header (request line included);
	// more is answered 431. It is also fasthttp's read buffer per
	// connection, and bounds a worker's response header.
	maxHeaderBytes = 16 << 10
	// smallBodyLimit is the largest request body read whole before it is
	// forwarded (so that an idempotent request can be sent again);
	// larger ones stream.
	smallBodyLimit = 64 << 10
	// bufferLimit is the largest response body read whole; longer ones
	// (and chunked or close-delimited ones) are streamed.
	bufferLimit = 1 << 20
	// maxConnsPerBackend bounds the connections to one worker; a request
	// waits (within REQUEST_TIMEOUT) for a free one beyond that.
	maxConnsPerBackend = 1024
	// idleConnTimeout closes connections to workers idle that long.
	idleConnTimeout = 30 * time.Second
	// maxConnectTimeout bounds a dial within REQUEST_TIMEOUT, so that a
	// black-holed worker leaves time for the retry on another one.
	maxConnectTimeout = 3 * time.Second
	// clientIdleTimeout closes client keep-alive connections idle that long.
	clientIdleTimeout = 90 * time.Second
	// maxShutdown is the drain budget within the process's 5 s stop budget.
	maxShutdown = 4 * time.Second
)

// Options configure a Service. Config, Logger and Metrics are required.
type Options struct {
	// Config is the process's configuration: APP_IDENTIFIER and the Proxy
	// section.
	Config config.Config
	// Connect returns the bus, blocking until NATS is reachable (as
	// app.Deps.Bus does); it is called once, in the background, so the proxy
	// serves meanwhile. Nil runs without NATS: routes come only from Store.
	Connect func(ctx context.Context) (Bus, error)
	// Store gives the queue snapshot at a cold start and the runtime config;
	// nil does without both.
	Store Store
	// Listener is where to serve; nil listens on :HOST_PORT_HTTP_BALANCER.
	// Run closes it.
	Listener net.Listener
	// Dial connects to a worker; nil uses TCP.
	Dial    func(addr string, timeout time.Duration) (net.Conn, error)
	Logger  *slog.Logger
	Metrics prometheus.Registerer
	// Now is the clock (default time.Now); Rand the randomness of picks
	// (default balance.SystemRand).
	Now  func() time.Time
	Rand balance.Rand
	// ID names this proxy in its reports (rb.proxy.<app>.<ID>); default
	// "proxy".
	ID string
	// ReportInterval is the time between reports (default 1 s).
	ReportInterval time.Duration
	// ShutdownTimeout bounds the drain at stop (default min(REQUEST_TIMEOUT, 4 s)).
	ShutdownTimeout time.Duration
}

// Service is the proxy. Build it with New and start it with Run.
type Service struct {
	opts     Options
	base     config.Config
	cfg      config.Proxy
	log      *slog.Logger
	m        *metrics
	now      func() time.Time
	rnd      balance.Rand
	dial     func(addr string, timeout time.Duration) (net.Conn, error)
	balOpts  balance.Options
	apps     map[string]*appState // by app, fixed after New
	appNames []string
	hosts    map[string]*appState // by lower-case host, fixed after New
	dflt     *appState
	cache    *cache.Cache // nil: no cache
	cacheCfg cache.Config
	server   *fasthttp.Server
	reqIDs   requestIDs
	keys     sync.Pool // *keyBuf
	bodies   sync.Pool // *bodyReader
	streams  sync.Pool // *streamBody
	tunnels  tunnels
	bus      atomic.Pointer[busRef]
	addr     atomic.Pointer[string]
	logOnce  sync.Map // kind → struct{}
	stopping atomic.Bool
}

type busRef struct{ b Bus }

// New builds the proxy from its options; it listens only in Run.
func New(opts Options) (*Service, error) {
	if opts.Logger == nil || opts.Metrics == nil {
		return nil, errors.New("new proxy: Logger and Metrics are required")
	}
	c := opts.Config
	if c.App == "" {
		return nil, errors.New("new proxy: APP_IDENTIFIER is empty")
	}
	if c.Proxy.Timeout <= 0 {
		return nil, fmt.Errorf("new proxy: REQUEST_TIMEOUT %s: must be positive", c.Proxy.Timeout)
	}
	if c.Proxy.MaxBodySize <= 0 {
		return nil, fmt.Errorf("new proxy: RB_MAX_BODY_SIZE %d: must be positive", c.Proxy.MaxBodySize)
	}
	policy, err := balance.ParsePolicy(c.Proxy.Policy)
	if err != nil {
		return nil, fmt.Errorf("new proxy: %w", err)
	}
	s := &Service{
		opts: opts, base: c, cfg: c.Proxy,
		log: opts.Logger, now: opts.Now, rnd: opts.Rand, dial: opts.Dial,
		apps: map[string]*appState{}, hosts: map[string]*appState{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rnd == nil {
		s.rnd = balance.SystemRand{}
	}
	if s.dial == nil {
		s.dial = dialTCP
	}
	if s.opts.ID == "" {
		s.opts.ID = "proxy"
	}
	if s.opts.ReportInterval <= 0 {
		s.opts.ReportInterval = time.Second
	}
	if s.opts.ShutdownTimeout <= 0 {
		s.opts.ShutdownTimeout = min(c.Proxy.Timeout, maxShutdown)
	}
	s.balOpts = balance.DefaultOptions()
	s.balOpts.SlowStart = c.Proxy.SlowStart
	if err := s.balOpts.Validate(); err != nil {
		return nil, fmt.Errorf("new proxy: %w", err)
	}
	s.reqIDs.init(s.rnd.Uint64())

	if c.Proxy.CacheCapacity > 0 {
		cc := cache.DefaultConfig()
		cc.Capacity = c.Proxy.CacheCapacity
		cc.MaxBytes = c.Proxy.CacheMaxBytes
		cc.MaxEntryBytes = min(cc.MaxEntryBytes, cc.MaxBytes)
		ch, err := cache.New(cc, nil)
		if err != nil {
			return nil, fmt.Errorf("new proxy: %w", err)
		}
		s.cache, s.cacheCfg = ch, cc
	}
	m := newMetrics(s)
	s.m = m
	add := func(name string) *appState {
		if a, ok := s.apps[name]; ok {
			return a
		}
		a := newAppState(name, policy, m)
		s.apps[name] = a
		s.appNames = append(s.appNames, name)
		return a
	}
	s.dflt = add(c.App)
	for host, app := range c.Proxy.Hosts {
		s.hosts[host] = add(app)
	}
	slices.Sort(s.appNames)
	if err := m.register(opts.Metrics); err != nil {
		s.closeCache()
		return nil, fmt.Errorf("new proxy: %w", err)
	}
	s.keys.New = func() any { return &keyBuf{b: make([]byte, 0, 256)} }
	s.bodies.New = func() any { return new(bodyReader) }
	s.server = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.rejectRequest,
		ExpectHandler:                s.expect,
		ReadBufferSize:               maxHeaderBytes,
		ReadTimeout:                  c.Proxy.Timeout,
		IdleTimeout:                  clientIdleTimeout,
		MaxRequestBodySize:           int(min(c.Proxy.MaxBodySize, math.MaxInt32)),
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{s.log},
	}
	return s, nil
}

// Run serves until ctx is done, then drains and returns nil. It returns an
// error only when it cannot listen or the server fails.
func (s *Service) Run(ctx context.Context) error {
	ln := s.opts.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(s.cfg.Port))
		if err != nil {
			s.closeCache()
			return fmt.Errorf("proxy: listen on HOST_PORT_HTTP_BALANCER %d: %w", s.cfg.Port, err)
		}
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	s.log.Info("proxy listening", "addr", addr, "apps", s.appNames, "proxy_id", s.opts.ID)

	// Background work outlives ctx by the drain, so that telemetry keeps
	// reporting the requests that finish.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.coldStart(bg) })
	wg.Go(func() { s.follow(bg) })
	wg.Go(func() { s.report(bg) })

	served := make(chan error, 1)
	go func() { served <- s.server.Serve(&lingerListener{Listener: ln}) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		served <- serveErr
	}
	s.stopping.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	if err := s.server.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("proxy shutdown", "err", err)
	}
	cancel()
	// Tunnels (WebSockets) live as long as their users want: cut them once
	// the plain requests are done.
	tctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	s.tunnels.closeAll(tctx)
	cancel()
	left := s.inFlight()
	stopBG()
	wg.Wait()
	if err := <-served; err != nil && serveErr == nil {
		s.log.Warn("proxy server stopped", "err", err)
	}
	s.closeCache()
	if serveErr != nil && ctx.Err() == nil {
		return fmt.Errorf("proxy: serve on %s: %w", addr, serveErr)
	}
	if left > 0 {
		s.log.Warn("proxy stopped with requests still in flight", "in_flight", left, "budget", s.opts.ShutdownTimeout)
	} else {
		s.log.Info("proxy stopped")
	}
	return nil
}

// Addr returns the address the proxy listens on, once Run has started ("" before).
func (s *Service) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Ready reports nil once some app has a route (its queue came from NATS or
// Redis) and the proxy is not stopping.
func (s *Service) Ready() error {
	if s.stopping.Load() {
		return errors.New("stopping")
	}
	for _, a := range s.apps {
		if a.route.Load() != nil {
			return nil
		}
	}
	return errors.New("no queue received yet for any app (NATS rb.queue.<app> or the Redis snapshot)")
}

func (s *Service) closeCache() {
	if s.cache != nil {
		s.cache.Close()
	}
}

// inFlight counts the requests in flight over every app.
func (s *Service) inFlight() int64 {
	var n int64
	for _, a := range s.apps {
		n += a.inFlight()
	}
	return n
}

// warnOnce logs a warning the first time a kind of problem occurs.
func (s *Service) warnOnce(kind, msg string, args ...any) {
	if _, seen := s.logOnce.LoadOrStore(kind, struct{}{}); !seen {
		s.log.Warn(msg, args...)
	}
}

// dialError marks a failure to connect: nothing was sent to the worker.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func dialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// fasthttpLogger sends fasthttp's own messages to the debug log.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}
