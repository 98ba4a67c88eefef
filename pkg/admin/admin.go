// Package admin is the per-process admin listener: /healthz (liveness of the
// process and its connections, used by `rb -health` and compose
// healthchecks), /readyz (ready to do its work) and /metrics (Prometheus text).
// Every service registers its checks and metrics here.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports nil when healthy, else what is wrong.
type Check func() error

// Server is the admin listener of one process.
type Server struct {
	addr   string
	logger *slog.Logger
	reg    *prometheus.Registry

	mu     sync.Mutex
	health map[string]Check
	ready  map[string]Check
	bound  net.Addr
	up     chan struct{}
}

// New returns an admin server for addr (host:port). Nothing listens until Run.
func New(addr string, logger *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{addr: addr, logger: logger, reg: reg, health: map[string]Check{}, ready: map[string]Check{}, up: make(chan struct{})}
}

// Registry is where services register their metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// AddHealth registers a liveness check (a connection the process depends on).
// A failing health check also makes the process not ready.
func (s *Server) AddHealth(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health[name] = c
}

// AddReady registers a readiness check (the service can do its work).
func (s *Server) AddReady(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready[name] = c
}

// Addr returns the bound address once Run listens (useful with port 0), waiting up to ctx.
func (s *Server) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case <-s.up:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.bound, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Handler serves the admin routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { s.report(w, false) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { s.report(w, true) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	return mux
}

// Status is the JSON body of /healthz and /readyz.
type Status struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (s *Server) evaluate(withReady bool) (Status, bool) {
	s.mu.Lock()
	checks := make(map[string]Check, len(s.health)+len(s.ready))
	for k, c := range s.health {
		checks[k] = c
	}
	if withReady {
		for k, c := range s.ready {
			checks[k] = c
		}
	}
	s.mu.Unlock()
	names := make([]string, 0, len(checks))
	for k := range checks {
		names = append(names, k)
	}
	sort.Strings(names)
	st := Status{Status: "ok", Checks: map[string]string{}}
	ok := true
	for _, n := range names {
		if err := checks[n](); err != nil {
			st.Checks[n] = err.Error()
			ok = false
		} else {
			st.Checks[n] = "ok"
		}
	}
	if !ok {
		st.Status = "failing"
	}
	return st, ok
}

func (s *Server) report(w http.ResponseWriter, withReady bool) {
	st, ok := s.evaluate(withReady)
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}

// Run listens and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin listen on %s (RB_ADMIN_ADDR): %w", s.addr, err)
	}
	s.mu.Lock()
	s.bound = ln.Addr()
	s.mu.Unlock()
	close(s.up)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.logger.Info("admin listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("admin shutdown: %w", err)
	}
	return nil
}

// Probe asks the admin listener at addr for /healthz, as `rb -health` does.
// An addr with no host or an unspecified host is probed on loopback.
func Probe(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("health probe: bad admin address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health probe %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var st Status
	_ = json.NewDecoder(resp.Body).Decode(&st)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health probe %s: %s %v", addr, resp.Status, st.Checks)
	}
	return nil
}
