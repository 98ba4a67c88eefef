package scaler_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	rt "github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/dockertest"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	"github.com/rustybalancer/rb/services/scaler"
)

// waitTimeout bounds every wait; waits end as soon as their condition holds.
const waitTimeout = 30 * time.Second

// env is what the Docker tests share: the engine, the worker image, a
// private network, one JetStream server and one Redis. Each test uses its
// own app name, so their containers, subjects and keys never mix.
type env struct {
	cli     *client.Client
	docker  *rt.Docker
	image   string
	network string
	natsURL string
	redis   *redistest.Server
	bus     *bus.Bus
	store   *store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cli := dockertest.Client(t)
	e := &env{cli: cli, image: dockertest.WorkerImage(t), network: dockertest.Network(t)}
	d, err := rt.NewDocker("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	e.docker = d
	e.natsURL, _ = natstest.Start(t)
	e.bus = natstest.Connect(t, e.natsURL)
	e.redis = redistest.Start(t)
	e.store = e.newStore(t)
	return e
}

func (e *env) newStore(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.New(store.Options{URL: e.redis.URL()}, natstest.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// newApp returns a fresh app name and removes every container labelled for
// it when the test ends, also when it fails (after the scalers stopped:
// cleanups run last-registered first). A create cut short by a scaler's
// stop may still complete in the daemon, so the cleanup looks again until
// three listings half a second apart find nothing.
func (e *env) newApp(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	app := prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for empty := 0; empty < 3; {
			found := 0
			for _, label := range []string{rt.LabelApp, rt.LabelLegacy} {
				list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label+"="+app))})
				if err != nil {
					t.Errorf("cleanup: list containers of %s: %v", app, err)
					return
				}
				for _, c := range list {
					found++
					if err := e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
						t.Errorf("cleanup: remove %v: %v", c.Names, err)
					}
				}
			}
			if found == 0 {
				empty++
			} else {
				empty = 0
			}
			if empty < 3 {
				time.Sleep(500 * time.Millisecond)
			}
		}
	})
	return app
}

// config is the tests' configuration: min 1, max 3, short periods.
func (e *env) config(app string) config.Config {
	c := config.Default()
	c.App = app
	c.Docker.Image = e.image
	c.Docker.Port = 8080
	c.Docker.Network = e.network
	c.Docker.WorkerStopTimeout = 2 * time.Second
	s := &c.Scaling
	s.Min, s.Max = 1, 3
	s.Cooldown = 0
	s.CheckPeriod = 300 * time.Millisecond
	s.ScaleDownWindow = 600 * time.Millisecond
	s.ReadyTimeout = 20 * time.Second
	s.DrainGrace = 300 * time.Millisecond
	s.DrainTimeout = 20 * time.Second
	s.ReplaceBackoff = 200 * time.Millisecond
	s.LeaseTTL = 1500 * time.Millisecond
	s.ReconcileInterval = 500 * time.Millisecond
	return c
}

// running is one scaler started by a test.
type running struct {
	svc    *scaler.Service
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop cancels the scaler's Run and waits for it to return.
func (r *running) stop(tb testing.TB) {
	tb.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				tb.Errorf("scaler Run: %v", err)
			}
		case <-time.After(waitTimeout):
			tb.Errorf("scaler Run did not return within %s of its cancellation", waitTimeout)
		}
	})
}

// start runs a scaler for cfg.App with its own NATS connection and Redis
// client, as a separate process would; it is stopped when the test ends.
func (e *env) start(t *testing.T, cfg config.Config, runtime scaler.Runtime, nodeID string) *running {
	t.Helper()
	if runtime == nil {
		runtime = e.docker
	}
	reg := prometheus.NewRegistry()
	b := natstest.Connect(t, e.natsURL)
	svc, err := scaler.New(scaler.Options{Config: cfg, NodeID: nodeID, Registerer: reg}, b, e.newStore(t), runtime, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: svc, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// testLogger shows the scaler's info logs in the test log (with -v or on
// failure) until the test ends.
func testLogger(tb testing.TB) *slog.Logger {
	w := &logWriter{tb: tb}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type logWriter struct {
	mu     sync.Mutex
	tb     testing.TB
	closed bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// seen is one decision or fact, with when the test received it.
type seen struct {
	at       time.Time // received
	meta     events.Meta
	decision *events.Decision
	fact     *events.Lifecycle
}

// fleet plays the rest of the system for one app: it records every decision
// and fact on RB_DECISIONS, and, every interval, publishes a score at the
// current load for each ready or SUNDOWN worker (as the scorer would) and a
// proxy report with each worker's in-flight count (as a proxy would).
type fleet struct {
	tb       testing.TB
	app      string
	bus      *bus.Bus
	interval time.Duration

	mu       sync.Mutex
	log      []seen
	load     float64
	inflight map[string]int64 // by worker; default 0
	phase    map[string]events.Phase
	addr     map[string]string
	reports  bool
	// silent publishes nothing at all (a scaler alone in the world).
	silent bool
	// crossedAt is when a score at a new load was first published.
	crossedAt time.Time
	lastLoad  float64
	// zeroAt is when a report first said 0 in flight for a worker after
	// saying more.
	zeroAt map[string]time.Time
}

func (e *env) newFleet(t *testing.T, app string, load float64, opts ...func(*fleet)) *fleet {
	t.Helper()
	f := &fleet{tb: t, app: app, bus: e.bus, interval: 100 * time.Millisecond, load: load,
		inflight: map[string]int64{}, phase: map[string]events.Phase{}, addr: map[string]string{}, zeroAt: map[string]time.Time{}, reports: true}
	for _, o := range opts {
		o(f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	cons, err := e.bus.JetStream().OrderedConsumer(ctx, events.StreamDecisions, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.PrefixScale + app, events.PrefixLifecycle + app + ".>"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer it.Stop()
		stop := context.AfterFunc(ctx, it.Stop)
		defer stop()
		for {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				return
			}
			f.record(m.Data())
		}
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(f.interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				f.publish(ctx)
			}
		}
	}()
	return f
}

func (f *fleet) record(data []byte) {
	meta, err := events.PeekMeta(data)
	if err != nil {
		f.tb.Errorf("undecodable message on RB_DECISIONS: %v", err)
		return
	}
	s := seen{at: time.Now(), meta: meta}
	switch meta.Kind {
	case events.KindDecision:
		ev, err := events.Decode[events.Decision](data)
		if err != nil {
			f.tb.Errorf("decision: %v", err)
			return
		}
		s.decision = &ev.Data
	case events.KindLifecycle:
		ev, err := events.Decode[events.Lifecycle](data)
		if err != nil {
			f.tb.Errorf("lifecycle: %v", err)
			return
		}
		s.fact = &ev.Data
	default:
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, s)
	if l := s.fact; l != nil {
		switch l.Phase {
		case events.PhaseReady, events.PhaseSundown, events.PhaseRemoved, events.PhaseFailed, events.PhaseDied:
			f.phase[l.Container] = l.Phase
		case events.PhaseCreated, events.PhaseStarted:
			if _, ok := f.phase[l.Container]; !ok {
				f.phase[l.Container] = l.Phase
			}
		}
		if l.Address != "" {
			f.addr[l.Container] = l.Address
		}
	}
}

// publish sends one round of scores and a proxy report.
func (f *fleet) publish(ctx context.Context) {
	now := time.Now()
	f.mu.Lock()
	if f.silent {
		f.mu.Unlock()
		return
	}
	load := f.load
	var scored []string
	var report events.ProxyReport
	report = events.ProxyReport{App: f.app, ProxyID: "p1", IntervalSeconds: f.interval.Seconds()}
	names := make([]string, 0, len(f.phase))
	for n := range f.phase {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ph := f.phase[n]
		if ph == events.PhaseReady || ph == events.PhaseSundown {
			scored = append(scored, n)
		}
		if ph == events.PhaseRemoved || ph == events.PhaseFailed || ph == events.PhaseDied {
			continue
		}
		state := events.StateActive
		if ph == events.PhaseSundown {
			state = events.StateSundown
		}
		in := f.inflight[n]
		if in == 0 && f.zeroAt[n].IsZero() {
			f.zeroAt[n] = now
		}
		report.Backends = append(report.Backends, events.BackendReport{Container: n, Address: f.addr[n], State: state, InFlight: in})
	}
	reports := f.reports
	if len(scored) > 0 && load != f.lastLoad {
		f.lastLoad, f.crossedAt = load, now
	}
	f.mu.Unlock()
	for _, n := range scored {
		sc := events.Score{App: f.app, Container: n, Mode: "legacy", CPU: load, Memory: load, Network: load, Availability: load,
			Overall: load, Category: category(load), SampleID: "test", Inputs: events.ScoreInputs{ProbeOK: true, ProbeSeconds: 0.001}}
		subj, _ := events.ScoreSubject(f.app, n)
		ev := events.New(fmt.Sprintf("%s-score-%d", n, now.UnixNano()), now, "scorer/test", sc)
		if err := bus.PublishEvent(ctx, f.bus, subj, ev); err != nil && ctx.Err() == nil {
			f.tb.Logf("publish score: %v", err)
		}
	}
	if !reports {
		return
	}
	subj, _ := events.ProxySubject(f.app, "p1")
	ev := events.New(fmt.Sprintf("p1-%d", now.UnixNano()), now, "proxy/test", report)
	if err := bus.PublishEvent(ctx, f.bus, subj, ev); err != nil && ctx.Err() == nil {
		f.tb.Logf("publish proxy report: %v", err)
	}
}

func category(v float64) events.Category {
	switch {
	case v >= 70:
		return events.CategoryLU
	case v >= 40:
		return events.CategoryMU
	}
	return events.CategoryHU
}

func (f *fleet) setLoad(v float64) {
	f.mu.Lock()
	f.load = v
	f.mu.Unlock()
}

// setInFlight sets what the proxy reports in flight for each named worker;
// the time a count goes to 0 is kept (zeroAt).
func (f *fleet) setInFlight(n int64, names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range names {
		f.inflight[name] = n
		if n > 0 {
			delete(f.zeroAt, name)
		}
	}
}

func (f *fleet) entries() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// decisions returns the decisions so far with the given action ("" = all).
func (f *fleet) decisions(action events.Action) []seen {
	var out []seen
	for _, s := range f.entries() {
		if s.decision != nil && (action == "" || s.decision.Action == action) {
			out = append(out, s)
		}
	}
	return out
}

// facts returns the facts so far about a worker ("" = all) in a phase ("" = all).
func (f *fleet) facts(name string, phase events.Phase) []seen {
	var out []seen
	for _, s := range f.entries() {
		if s.fact != nil && (name == "" || s.fact.Container == name) && (phase == "" || s.fact.Phase == phase) {
			out = append(out, s)
		}
	}
	return out
}

// ready returns the workers whose last fact says ready.
func (f *fleet) ready() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, ph := range f.phase {
		if ph == events.PhaseReady {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// containers lists the app's managed containers.
func (e *env) containers(tb testing.TB, app string) []rt.Container {
	tb.Helper()
	list, err := e.docker.List(context.Background(), app)
	if err != nil {
		tb.Fatal(err)
	}
	return list
}

// runningNames lists the names of the app's running containers.
func (e *env) runningNames(tb testing.TB, app string) []string {
	tb.Helper()
	var out []string
	for _, c := range e.containers(tb, app) {
		if c.State == "running" {
			out = append(out, c.Name)
		}
	}
	return out
}

// gauge returns the value of a gauge (without labels) in reg.
func gauge(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	tb.Fatalf("no gauge %s", name)
	return 0
}
