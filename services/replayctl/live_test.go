package replayctl_test

import (
	"context"
	"flag"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	"github.com/rustybalancer/rb/services/scaler"
	"github.com/rustybalancer/rb/services/scorer"
)

// waitTimeout bounds every wait; a wait ends as soon as its condition holds.
const waitTimeout = 60 * time.Second

const app = "shop"

// clock is the services' injected clock: synthetic time the test moves on.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }

// fakeDocker is the scaler's runtime: containers that start at once and
// answer the readiness probe on the test's listener (the address of every
// container is 127.0.0.1, TARGET_PORT the listener's port).
type fakeDocker struct {
	mu   sync.Mutex
	app  string
	ctrs map[string]*runtime.Container
	n    int
}

var _ scaler.Runtime = (*fakeDocker)(nil)

func newFakeDocker(app string, seeds ...string) *fakeDocker {
	d := &fakeDocker{app: app, ctrs: map[string]*runtime.Container{}}
	for _, s := range seeds {
		c := d.add(s)
		c.State, c.IPs = "running", map[string]string{"test": "127.0.0.1"}
	}
	return d
}

func (d *fakeDocker) add(name string) *runtime.Container {
	d.n++
	c := &runtime.Container{ID: fmt.Sprintf("id%04d", d.n), Name: name, App: d.app, State: "created",
		Labels: map[string]string{runtime.LabelApp: d.app}, IPs: map[string]string{}}
	d.ctrs[name] = c
	return c
}

func (d *fakeDocker) find(id string) (*runtime.Container, error) {
	if c, ok := d.ctrs[id]; ok {
		return c, nil
	}
	for _, c := range d.ctrs {
		if c.ID == id {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
}

func (d *fakeDocker) List(_ context.Context, app string) ([]runtime.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []runtime.Container
	for _, c := range d.ctrs {
		if c.App == app {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b runtime.Container) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (d *fakeDocker) Inspect(_ context.Context, id string) (runtime.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.find(id)
	if err != nil {
		return runtime.Container{}, err
	}
	return *c, nil
}

func (d *fakeDocker) Create(_ context.Context, spec runtime.CreateSpec) (runtime.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ctrs[spec.Name]; ok {
		return runtime.Container{}, fmt.Errorf("create %s: name taken", spec.Name)
	}
	return *d.add(spec.Name), nil
}

func (d *fakeDocker) Start(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.find(id)
	if err == nil {
		c.State, c.IPs = "running", map[string]string{"test": "127.0.0.1"}
	}
	return err
}

func (d *fakeDocker) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.find(id)
	if err == nil {
		c.State, c.IPs = "exited", map[string]string{}
	}
	return err
}

func (d *fakeDocker) Remove(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.find(id)
	if err == nil {
		delete(d.ctrs, c.Name)
	}
	return err
}

// running lists the running containers by name.
func (d *fakeDocker) running() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n, c := range d.ctrs {
		if c.State == "running" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// probeTarget accepts the scaler's readiness probes until the test ends.
func probeTarget(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// liveRun is a recording made by the real scorer and scaler.
type liveRun struct {
	natsURL   string
	bus       *bus.Bus
	env       map[string]string
	decisions int
}

// record runs the live scorer and scaler (in-process, with their New/Run)
// against embedded JetStream, a real Redis and the fake Docker, and feeds
// them synthetic Samples of every running worker, one second apart in
// event time. After each Sample it waits until the services are quiet —
// the Score published and stepped, every decision's actions done and their
// facts stepped — so the services see their inputs in event-time order,
// the order a replay merges them in. The load is a total demand spread over
// the running workers, as a balancer spreads it: 1.9 workers' worth for the
// first minute (one worker scores 50, two 52.5, both below HIGH 55; three
// 68), 0.3 after (95 on three, 92.5 on two: above LOW 80; 85 on one).
func record(t *testing.T, d time.Duration) liveRun {
	t.Helper()
	natsURL, _ := natstest.Start(t)
	b := natstest.Connect(t, natsURL)
	rds := redistest.Start(t)
	st, err := store.New(store.Options{URL: rds.URL()}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	port := probeTarget(t)
	env := map[string]string{
		"APP_IDENTIFIER": app, "DOCKER_IMAGE": "rb-replay-test", "TARGET_PORT": strconv.Itoa(port),
		"DEFAULT_CONTAINER": "1", "MAX_CONTAINERS": "3", "RB_SCALE_DOWN_WINDOW": "0s",
		"RB_RECONCILE_INTERVAL": "1h", "RB_NATS_URL": natsURL,
	}
	cfg, err := config.NewLoader(flag.NewFlagSet("env", flag.ContinueOnError)).Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clk := newClock(t0)
	docker := newFakeDocker(app, "shop-seed0001")
	reg := prometheus.NewRegistry()

	sc, err := scorer.New(scorer.Options{Config: *cfg, Bus: b, Store: st, Logger: natstest.Logger(t),
		Metrics: reg, Node: "test", Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	sl, err := scaler.New(scaler.Options{Config: *cfg, NodeID: "test", Registerer: reg, Now: clk.now}, b, st, docker, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, svc := range []interface{ Run(context.Context) error }{sc, sl} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Run(ctx); err != nil {
				t.Errorf("service: %v", err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	w := newWatcher(t, b)
	// Live: the scaler went live (its start tick) and adopted the seed.
	waitFor(t, "the scaler to go live and adopt the seed worker", func() bool {
		return sl.Leader() && metric(t, reg, "rb_scaler_inputs_total", "kind", "tick") >= 1 &&
			metric(t, reg, "rb_scaler_lifecycle_published_total", "", "") == 2 &&
			metric(t, reg, "rb_scaler_inputs_total", "kind", "lifecycle") == 2
	})
	if err := sc.Ready(); err != nil {
		waitFor(t, "the scorer to be ready", func() bool { return sc.Ready() == nil })
	}

	published := 0
	ctx2 := context.Background()
	for k := time.Duration(0); k < d; k += time.Second {
		round := t0.Add(k + 500*time.Millisecond)
		running := docker.running()
		for i, name := range running {
			at := round.Add(time.Duration(i) * time.Millisecond)
			clk.set(at)
			load := 1.9 / float64(len(running))
			if k >= time.Minute {
				load = 0.3 / float64(len(running))
			}
			smp := events.Sample{App: app, Container: name, ContainerID: "id-" + name, State: "running", Address: "127.0.0.1:1",
				WindowSeconds: 1, CPUPercent: 100 * load, CPULimit: 1, MemUsage: 1 << 20, MemLimit: 1 << 30,
				NetRxBps: load * 62.5e6, NetTxBps: load * 62.5e6, ProbeOK: true, ProbeSeconds: 0.0012}
			subj, _ := events.StatsSubject(app, name)
			if err := bus.PublishEvent(ctx2, b, subj, events.New(fmt.Sprintf("%s-%d", name, at.UnixNano()), at, "collector/test", smp)); err != nil {
				t.Fatal(err)
			}
			published++
			for deadline := time.Now().Add(waitTimeout); ; time.Sleep(5 * time.Millisecond) {
				ok, why := settled(t, b, reg, w, published)
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting for the services to settle after sample %d: %s", published, why)
				}
			}
		}
	}
	cancel()
	wg.Wait()
	return liveRun{natsURL: natsURL, bus: b, env: env, decisions: w.count()}
}

// settled says whether every Sample published is scored and stepped and
// every decision's facts are published and stepped.
func settled(t *testing.T, b *bus.Bus, reg *prometheus.Registry, w *watcher, samples int) (bool, string) {
	t.Helper()
	info, err := b.JetStream().Stream(context.Background(), events.StreamScores)
	if err != nil {
		t.Fatal(err)
	}
	if n := int(info.CachedInfo().State.Msgs); n != samples {
		return false, fmt.Sprintf("%d scores stored of %d samples", n, samples)
	}
	if n := metric(t, reg, "rb_scaler_inputs_total", "kind", "score"); n != float64(samples) {
		return false, fmt.Sprintf("scaler stepped %v scores of %d", n, samples)
	}
	decided := metric(t, reg, "rb_scaler_decisions_total", "", "")
	if float64(w.count()) != decided {
		return false, fmt.Sprintf("watcher saw %d decisions, scaler took %v", w.count(), decided)
	}
	facts := metric(t, reg, "rb_scaler_lifecycle_published_total", "", "")
	stepped := metric(t, reg, "rb_scaler_inputs_total", "kind", "lifecycle")
	if facts != float64(w.expectedFacts()) || stepped != facts {
		return false, fmt.Sprintf("facts published %v, expected %d, stepped %v", facts, w.expectedFacts(), stepped)
	}
	return true, ""
}

// watcher follows the decisions and counts the facts they call for: two
// per worker started (created, ready), one per SUNDOWN, one per removal and
// one more when a SUNDOWN worker is removed (drained), plus the seed's two
// (started, ready).
type watcher struct {
	mu       sync.Mutex
	n        int
	facts    int
	sundowns map[string]bool
}

func newWatcher(t *testing.T, b *bus.Bus) *watcher {
	t.Helper()
	w := &watcher{facts: 2, sundowns: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	subj, _ := events.ScaleSubject(app)
	go func() {
		defer close(done)
		_ = b.Watch(ctx, events.StreamDecisions, []string{subj}, false, func(m bus.Msg) {
			ev, err := events.Decode[events.Decision](m.Data)
			if err != nil {
				t.Errorf("decision: %v", err)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			w.n++
			for _, name := range ev.Data.Targets {
				switch ev.Data.Action {
				case events.ActionScaleUp, events.ActionReplace:
					w.facts += 2
				case events.ActionScaleDown:
					w.facts++
					w.sundowns[name] = true
				case events.ActionRemove:
					w.facts++
					if w.sundowns[name] {
						w.facts++
					}
				}
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *watcher) expectedFacts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.facts
}

// metric sums a metric's samples whose label has the value (all of them
// when label is empty).
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		// Each check asks the server for stream info: poll gently.
		time.Sleep(5 * time.Millisecond)
	}
}

// streamMsgs counts a stream's messages.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}
