package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
)

const testApp = "shop"

// backend is a worker: a real HTTP server on a loopback port.
type backend struct {
	name string
	addr string
	srv  *http.Server
	hits atomic.Int64
}

// startBackend serves h (or, when nil, a handler answering the backend's
// name) on 127.0.0.1:0 until the test ends or kill.
func startBackend(tb testing.TB, name string, h http.HandlerFunc) *backend {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String()}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
	}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hits.Add(1)
			w.Header().Set("X-Backend", name)
			h(w, r)
		}),
		ErrorLog: nil,
	}
	go func() { _ = b.srv.Serve(ln) }()
	tb.Cleanup(b.kill)
	return b
}

// kill stops the backend at once, cutting the connections it has.
func (b *backend) kill() { _ = b.srv.Close() }

// item is a queue entry for b.
func (b *backend) item(state events.State) events.QueueItem {
	return events.QueueItem{Container: b.name, Address: b.addr, Score: 80, Weight: 80, Category: events.CategoryLU, State: state}
}

func queueOf(gen uint64, items ...events.QueueItem) events.QueueSnapshot {
	return events.QueueSnapshot{App: testApp, Generation: gen, Items: items}
}

// testConfig is the default configuration for app "shop".
func testConfig() config.Config {
	c := config.Default()
	c.App = testApp
	c.Proxy.Timeout = 5 * time.Second
	c.Proxy.SlowStart = 0
	return c
}

// testProxy is a running Service.
type testProxy struct {
	*Service
	url    string
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// startProxy runs a Service on 127.0.0.1:0 with opts (Config defaults to
// testConfig); it is stopped when the test ends.
func startProxy(tb testing.TB, opts Options) *testProxy {
	tb.Helper()
	if opts.Config.App == "" {
		opts.Config = testConfig()
	}
	if opts.Logger == nil {
		opts.Logger = natstest.Logger(tb)
	}
	reg := prometheus.NewRegistry()
	opts.Metrics = reg
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	opts.Listener = ln
	s, err := New(opts)
	if err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &testProxy{Service: s, url: "http://" + ln.Addr().String(), reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- s.Run(ctx) }()
	tb.Cleanup(func() { p.stop(tb) })
	return p
}

// stop stops the proxy and checks that Run returned nil.
func (p *testProxy) stop(tb testing.TB) {
	p.cancel()
	select {
	case err, ok := <-p.done:
		if ok && err != nil {
			tb.Errorf("Run: %v", err)
		}
		close(p.done)
	case <-time.After(10 * time.Second):
		tb.Errorf("Run did not return within 10 s of its context's end")
	}
}

// applyQueue installs q as the app's route directly (no NATS).
func (p *testProxy) applyQueue(tb testing.TB, q events.QueueSnapshot) {
	tb.Helper()
	if err := p.apply(p.apps[q.App], q, true); err != nil {
		tb.Fatal(err)
	}
}

// natsBus starts an embedded JetStream server and returns its URL and a
// connected bus for the test to publish with.
func natsBus(tb testing.TB) (string, *bus.Server, *bus.Bus) {
	tb.Helper()
	url, srv := natstest.Start(tb)
	return url, srv, natstest.Connect(tb, url)
}

// connectTo is an Options.Connect giving a bus connected to url. The bus is
// connected now, so that it is closed after the proxy stops.
func connectTo(tb testing.TB, url string) func(context.Context) (Bus, error) {
	b := natstest.Connect(tb, url)
	return func(context.Context) (Bus, error) { return b, nil }
}

var pubSeq atomic.Int64

// publishQueue publishes q on rb.queue.<app>.
func publishQueue(tb testing.TB, b *bus.Bus, q events.QueueSnapshot) {
	tb.Helper()
	subj, err := events.QueueSubject(q.App)
	if err != nil {
		tb.Fatal(err)
	}
	ev := events.New(fmt.Sprintf("%s-%d-%d", q.App, q.Generation, pubSeq.Add(1)), time.Now(), "test/queuebuilder", q)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.PublishEvent(ctx, b, subj, ev); err != nil {
		tb.Fatal(err)
	}
}

// waitFor polls cond every few milliseconds until it holds or timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// client is an HTTP client for the proxy, keep-alive, no redirects.
func client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 30 * time.Second,
	}
}

// get does a GET and returns the status, a header and the body.
func get(tb testing.TB, c *http.Client, url string) (int, http.Header, string) {
	tb.Helper()
	resp, err := c.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// metric reads a counter or gauge of the proxy's registry.
func (p *testProxy) metric(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// quietLogger drops everything (for benchmarks).
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// syncSet is a set of strings safe for concurrent use.
type syncSet struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *syncSet) add(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[k]++
}

func (s *syncSet) get(k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *syncSet) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for k, v := range s.m {
		fmt.Fprintf(&b, "%s=%d ", k, v)
	}
	return b.String()
}
