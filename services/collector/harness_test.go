package collector_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	rt "github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/services/collector"
)

// waitTimeout bounds every wait for a condition.
const waitTimeout = 20 * time.Second

// started is a collector running until the test ends.
type started struct {
	svc *collector.Service
	reg *prometheus.Registry
}

// startCollector runs a collector with cfg until the test ends, and checks
// that Run returns nil when stopped.
func startCollector(tb testing.TB, cfg collector.Config, r collector.Runtime, pub collector.Publisher) started {
	tb.Helper()
	reg := prometheus.NewRegistry()
	svc, err := collector.New(cfg, r, pub, natstest.Logger(tb), reg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			tb.Errorf("Run did not return within 10 s of cancel")
		}
	})
	return started{svc: svc, reg: reg}
}

// newDocker returns a runtime on host ("" = the environment's engine).
func newDocker(tb testing.TB, host string) *rt.Docker {
	tb.Helper()
	d, err := rt.NewDocker(host, natstest.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = d.Close() })
	return d
}

// metric returns the value of the counter or gauge name (summed over its
// labels) in reg, or of the histogram's sample count.
func metric(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder keeps every Sample and lifecycle fact of one app from the
// streams, from their start.
type recorder struct {
	mu      sync.Mutex
	samples []events.Event[events.Sample]
	facts   []events.Event[events.Lifecycle]
	arrived map[string]time.Time // when each fact arrived, by event id
	bad     []string             // subjects that do not match their payload
}

// record consumes app's samples and lifecycle facts until the test ends.
func record(tb testing.TB, b *bus.Bus, app string) *recorder {
	tb.Helper()
	r := &recorder{arrived: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	consume := func(stream, prefix string, h func(bus.Msg) error) {
		opts := bus.ConsumerOptions{Stream: stream, Durable: "rec-" + randomHex(tb), FilterSubjects: []string{prefix + app + ".>"},
			DeliverPolicy: bus.DeliverAll}
		wg.Go(func() {
			if err := b.Consume(ctx, opts, func(_ context.Context, m bus.Msg) error { return h(m) }); err != nil && ctx.Err() == nil {
				tb.Errorf("consume %s: %v", stream, err)
			}
		})
	}
	consume(events.StreamStats, events.PrefixStats, func(m bus.Msg) error {
		ev, err := bus.DecodeEvent[events.Sample](m)
		if err != nil {
			return err
		}
		want, _ := events.StatsSubject(ev.Data.App, ev.Data.Container)
		r.mu.Lock()
		defer r.mu.Unlock()
		if m.Subject != want {
			r.bad = append(r.bad, m.Subject)
		}
		r.samples = append(r.samples, ev)
		return nil
	})
	consume(events.StreamDecisions, events.PrefixLifecycle, func(m bus.Msg) error {
		ev, err := bus.DecodeEvent[events.Lifecycle](m)
		if err != nil {
			return err
		}
		want, _ := events.LifecycleSubject(ev.Data.App, ev.Data.Container)
		r.mu.Lock()
		defer r.mu.Unlock()
		if m.Subject != want {
			r.bad = append(r.bad, m.Subject)
		}
		r.facts = append(r.facts, ev)
		if _, ok := r.arrived[ev.ID]; !ok {
			r.arrived[ev.ID] = time.Now()
		}
		return nil
	})
	return r
}

// samplesOf returns the Samples of container name, in arrival order.
func (r *recorder) samplesOf(name string) []events.Event[events.Sample] {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Event[events.Sample]
	for _, s := range r.samples {
		if s.Data.Container == name {
			out = append(out, s)
		}
	}
	return out
}

// containers returns the names that have Samples, sorted.
func (r *recorder) containers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, s := range r.samples {
		if !slices.Contains(names, s.Data.Container) {
			names = append(names, s.Data.Container)
		}
	}
	slices.Sort(names)
	return names
}

// factsOf returns the lifecycle facts of container name in phase.
func (r *recorder) factsOf(name string, phase events.Phase) []events.Event[events.Lifecycle] {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Event[events.Lifecycle]
	for _, f := range r.facts {
		if f.Data.Container == name && f.Data.Phase == phase {
			out = append(out, f)
		}
	}
	return out
}

// arrivedAt returns when the fact with event id first arrived.
func (r *recorder) arrivedAt(id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.arrived[id]
}

func (r *recorder) badSubjects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bad)
}

func randomHex(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sockProxy stands between the collector and the engine on a unix socket of
// its own, so a test can cut the engine off and bring it back.
type sockProxy struct {
	path          string
	network, addr string // the engine's
	mu            sync.Mutex
	ln            net.Listener
	conns         map[net.Conn]struct{}
	wg            sync.WaitGroup
}

// newSockProxy returns a stopped proxy to the engine at daemonHost
// (unix:///... or tcp://...); its socket lives in tb.TempDir().
func newSockProxy(tb testing.TB, daemonHost string) *sockProxy {
	tb.Helper()
	u, err := url.Parse(daemonHost)
	if err != nil {
		tb.Fatal(err)
	}
	p := &sockProxy{path: filepath.Join(tb.TempDir(), "docker.sock"), conns: map[net.Conn]struct{}{}}
	switch u.Scheme {
	case "unix":
		p.network, p.addr = "unix", u.Path
	case "tcp":
		p.network, p.addr = "tcp", u.Host
	default:
		tb.Skipf("engine at %s: the proxy speaks unix and tcp only", daemonHost)
	}
	tb.Cleanup(p.stop)
	return p
}

// host is the DOCKER_HOST of the proxy.
func (p *sockProxy) host() string { return "unix://" + p.path }

func (p *sockProxy) start(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		tb.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial(p.network, p.addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			p.wg.Go(func() { pipe(up, c) })
			p.wg.Go(func() { pipe(c, up) })
		}
	})
}

// track registers a pair of connections, or closes them when stopped.
func (p *sockProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// stop closes the socket and every connection through it, like an engine
// that went away.
func (p *sockProxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}
