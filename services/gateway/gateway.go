// Package gateway is the window on RustyBalancer: a read-only subscriber of
// the queue, score, scaling, lifecycle, config and proxy events that keeps a
// bounded in-memory view per app and serves it as
//
//   - /ws, the prototype's WebSocket (an array of {dns_name, score,
//     utilization_category} on connect and on every queue change), so a
//     prototype balancer connects unchanged;
//   - /ws/v1, the event envelopes themselves, filtered by app and topic;
//   - an HTTP API (/stats in the prototype's format, /api/v1/...), whose one
//     write, PUT /api/v1/apps/{app}/config, validates, stores in Redis and
//     publishes rb.config.<app> so every service applies it live;
//   - a dashboard at /, plain HTML, CSS and JavaScript embedded in the
//     binary, live over /ws/v1.
//
// The same handler listens on the WebSocket port and the HTTP port. Slow
// WebSocket clients are dropped, never waited for; writes need the bearer
// token, reads too when configured; cross-origin calls only from an allowlist.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
)

// Options configure a Service. Zero durations and sizes take the defaults.
type Options struct {
	// App is the app /ws and /stats show without ?app= (APP_IDENTIFIER).
	App string
	// HTTPAddr and WSAddr are the listen addresses (host:port, port 0 picks
	// one); the same handler serves both, and one listener when they are equal.
	HTTPAddr, WSAddr string
	// Token is the bearer token for writes (and reads with ProtectReads);
	// empty refuses every write.
	Token        string
	ProtectReads bool
	// CORSOrigins are the origins (scheme://host[:port]) allowed to call from
	// other sites; same-origin calls are always allowed.
	CORSOrigins []string

	// Config serves GET/PUT /api/v1/apps/{app}/config; nil answers 503.
	Config *ConfigWriter

	// Registerer takes the rb_gateway_ metrics; Gatherer is served on
	// /metrics (nil: 404). Usually both are the admin registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	// Now is the clock (aging of proxy reports, ?since=10m).
	Now func() time.Time

	View ViewOptions
	// ScoreHistory, DecisionHistory and ProxyHistory are how far back the
	// history is read at start; negative reads none.
	ScoreHistory, DecisionHistory, ProxyHistory time.Duration

	// ClientBuffer is each WebSocket client's send buffer, in messages.
	ClientBuffer int
	// WriteTimeout bounds one WebSocket write; PingInterval is the time
	// between pings (a ping unanswered within PingInterval drops the client).
	WriteTimeout, PingInterval time.Duration
}

// Defaults of Options.
const (
	DefaultScoreHistory    = 10 * time.Minute
	DefaultDecisionHistory = 24 * time.Hour
	DefaultProxyHistory    = 10 * time.Minute
	DefaultClientBuffer    = 256
	DefaultWriteTimeout    = 10 * time.Second
	DefaultPingInterval    = 20 * time.Second
)

func (o Options) withDefaults() Options {
	hist := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	hist(&o.ScoreHistory, DefaultScoreHistory)
	hist(&o.DecisionHistory, DefaultDecisionHistory)
	hist(&o.ProxyHistory, DefaultProxyHistory)
	if o.ClientBuffer <= 0 {
		o.ClientBuffer = DefaultClientBuffer
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// OptionsFromConfig maps the process config to Options: the prototype's
// ports on RB_GATEWAY_HOST, the token, CORS and the default app.
func OptionsFromConfig(c *config.Config) Options {
	return Options{
		App:          c.App,
		HTTPAddr:     net.JoinHostPort(c.Gateway.Host, strconv.Itoa(c.Gateway.HTTPPort)),
		WSAddr:       net.JoinHostPort(c.Gateway.Host, strconv.Itoa(c.Gateway.WSPort)),
		Token:        c.Gateway.Token,
		ProtectReads: c.Gateway.ProtectReads,
		CORSOrigins:  c.Gateway.CORSOrigins,
	}
}

// Source returns the event source of a component on this host: "<component>/<hostname>".
func Source(component string) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown-host"
	}
	return component + "/" + h
}

// Service is the gateway.
type Service struct {
	opts    Options
	bus     *bus.Bus
	view    *View
	hub     *hub
	metrics *metrics
	logger  *slog.Logger
	handler http.Handler

	mu     sync.Mutex
	addrs  map[string]net.Addr // by "http" / "ws"
	bound  chan struct{}
	logged map[string]bool // invalid-message kinds already logged
}

// New returns a gateway reading events from b. It does no I/O: Run listens
// and watches.
func New(opts Options, b *bus.Bus, logger *slog.Logger) (*Service, error) {
	if b == nil {
		return nil, errors.New("gateway: no NATS bus")
	}
	if opts.HTTPAddr == "" && opts.WSAddr == "" {
		return nil, errors.New("gateway: no listen address")
	}
	if opts.ProtectReads && opts.Token == "" {
		return nil, errors.New("gateway: RB_GATEWAY_PROTECT_READS needs RB_GATEWAY_TOKEN")
	}
	for _, o := range opts.CORSOrigins {
		if o == "*" {
			return nil, errors.New("gateway: RB_CORS_ORIGINS must list origins, not *")
		}
	}
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		opts: opts, bus: b, metrics: m, logger: logger,
		view:   NewView(opts.View, opts.Now),
		hub:    newHub(m),
		addrs:  map[string]net.Addr{},
		bound:  make(chan struct{}),
		logged: map[string]bool{},
	}
	if s.handler, err = s.routes(); err != nil {
		return nil, err
	}
	return s, nil
}

// View is the gateway's view, for tests and embedding.
func (s *Service) View() *View { return s.view }

// Handler is the HTTP handler served on both ports.
func (s *Service) Handler() http.Handler { return s.handler }

// Addrs returns the bound HTTP and WebSocket addresses once Run listens,
// waiting up to ctx.
func (s *Service) Addrs(ctx context.Context) (httpAddr, wsAddr net.Addr, err error) {
	select {
	case <-s.bound:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs["http"], s.addrs["ws"], nil
}

// Ready reports nil once the gateway listens.
func (s *Service) Ready() error {
	select {
	case <-s.bound:
		return nil
	default:
		return errors.New("gateway: not listening yet")
	}
}

// source is one watched stream.
type source struct {
	stream  string
	filters []string
	history time.Duration
}

func (s *Service) sources() []source {
	return []source{
		{stream: events.StreamQueue, filters: []string{events.PrefixQueue + ">"}},
		{stream: events.StreamScores, filters: []string{events.PrefixScore + ">"}, history: s.opts.ScoreHistory},
		{stream: events.StreamDecisions, filters: []string{events.PrefixScale + ">", events.PrefixLifecycle + ">", events.PrefixConfig + ">"}, history: s.opts.DecisionHistory},
		{stream: events.StreamProxy, filters: []string{events.PrefixProxy + ">"}, history: s.opts.ProxyHistory},
	}
}

// Run listens on both ports, follows the streams (the last message of each
// subject first, so the current queue is known at once), reads the recent
// history for the charts, and serves until ctx is done; it then returns nil.
// A port that cannot be bound, or a stream the server refuses, is an error.
func (s *Service) Run(ctx context.Context) error {
	listeners, err := s.listen()
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range listeners {
		srv := &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return gctx },
		}
		g.Go(func() error {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("gateway: serve %s: %w", l.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx) // hijacked WebSockets end with gctx
			return nil
		})
	}
	for _, src := range s.sources() {
		g.Go(func() error {
			if err := s.bus.Watch(gctx, src.stream, src.filters, true, s.live(src.stream)); err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			return nil
		})
		if src.history > 0 {
			g.Go(func() error {
				s.backfill(gctx, src)
				return nil
			})
		}
	}
	s.logger.Info("gateway listening", "http", s.addrs["http"], "ws", s.addrs["ws"], "app", s.opts.App)
	return g.Wait()
}

func (s *Service) listen() ([]net.Listener, error) {
	var ls []net.Listener
	byAddr := map[string]net.Listener{}
	bind := func(name, addr string) error {
		if l, ok := byAddr[addr]; ok {
			s.addrs[name] = l.Addr()
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("gateway: listen for %s on %s: %w", name, addr, err)
		}
		ls = append(ls, l)
		byAddr[addr] = l
		s.addrs[name] = l.Addr()
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.opts.HTTPAddr != "" {
		err = bind("http", s.opts.HTTPAddr)
	}
	if err == nil && s.opts.WSAddr != "" {
		err = bind("ws", s.opts.WSAddr)
	}
	if err != nil {
		for _, l := range ls {
			_ = l.Close()
		}
		return nil, err
	}
	close(s.bound)
	return ls, nil
}

// live returns the handler of a watched stream: apply, then tell the clients.
func (s *Service) live(stream string) func(bus.Msg) {
	return func(m bus.Msg) {
		u, err := s.view.Apply(m)
		if err != nil {
			s.invalid(stream, m, err)
			return
		}
		if !u.New {
			return
		}
		s.metrics.events.WithLabelValues(string(u.Kind)).Inc()
		out := outbound{app: u.App, topic: topicOf(u.Kind), data: u.Data}
		if u.Kind == events.KindQueue && s.hub.wantsLegacy(u.App) {
			out.legacy = s.legacyJSON(u.App)
		}
		s.hub.publish(out)
	}
}

// backfill reads the recent history of a stream into the view; the live
// watch delivers the same messages again and the view keeps one of each.
// A failure costs history, not the service, so it is logged.
func (s *Service) backfill(ctx context.Context, src source) {
	start := time.Now()
	n := 0
	err := ReadStream(ctx, s.bus.JetStream(), ReadRequest{Stream: src.stream, Filters: src.filters, Since: s.opts.Now().Add(-src.history)},
		func(m bus.Msg) {
			n++
			if _, err := s.view.Apply(m); err != nil {
				s.invalid(src.stream, m, err)
			}
		})
	if err != nil && ctx.Err() == nil {
		s.logger.Warn("gateway: history not read; charts start empty", "stream", src.stream, "err", err)
		return
	}
	s.logger.Debug("gateway: history read", "stream", src.stream, "messages", n, "took", time.Since(start).Round(time.Millisecond))
}

// invalid counts a message the view refused and logs the first of each kind.
func (s *Service) invalid(stream string, m bus.Msg, err error) {
	s.metrics.invalid.WithLabelValues(stream).Inc()
	kind := "malformed"
	if meta, perr := events.PeekMeta(m.Data); perr == nil && meta.Kind != "" {
		kind = string(meta.Kind)
	}
	s.mu.Lock()
	first := !s.logged[stream+"/"+kind]
	s.logged[stream+"/"+kind] = true
	s.mu.Unlock()
	if first {
		s.logger.Warn("gateway: skipping messages it cannot use (logged once per kind; see rb_gateway_events_invalid_total)",
			"stream", stream, "subject", m.Subject, "kind", kind, "err", err)
	}
}

func topicOf(k events.Kind) string {
	switch k {
	case events.KindQueue:
		return TopicQueue
	case events.KindScore:
		return TopicScore
	case events.KindDecision:
		return TopicScale
	case events.KindLifecycle:
		return TopicLifecycle
	case events.KindProxyReport:
		return TopicProxy
	case events.KindConfigChanged:
		return TopicConfig
	}
	return ""
}
