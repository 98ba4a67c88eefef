package queuebuilder

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

// harness is a real JetStream server and a real Redis, with a client of each
// for the test's own publishing and reading.
type harness struct {
	natsURL string
	nats    *bus.Server
	redis   *redistest.Server
	bus     *bus.Bus     // the test's client
	store   *store.Store // the test's client (the service gets its own)
	seq     atomic.Int64
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{redis: redistest.Start(t)}
	h.useNATS(t, "")
	h.store = newStore(t, h.redis.URL())
	return h
}

// useNATS starts a fresh JetStream server (url empty) or connects to url.
func (h *harness) useNATS(t testing.TB, url string) {
	t.Helper()
	if url == "" {
		url, h.nats = natstest.Start(t)
	}
	h.natsURL = url
	h.bus = natstest.Connect(t, url)
}

func newStore(t testing.TB, url string) *store.Store {
	t.Helper()
	st, err := store.New(store.Options{URL: url}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// running is one Service started by the harness.
type running struct {
	svc  *Service
	reg  *prometheus.Registry
	stop func()
}

// run starts a Service on its own connections and waits until it is ready.
func (h *harness) run(t testing.TB, opts Options) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.Node == "" {
		opts.Node = "test-node"
	}
	svc, err := New(opts, natstest.Connect(t, h.natsURL), newStore(t, h.redis.URL()), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, 15*time.Second, "service ready", func() bool { return svc.Ready() == nil })
	return &running{svc: svc, reg: reg, stop: stop}
}

func (h *harness) id(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, h.seq.Add(1))
}

// addr is the address of a worker in the tests.
func addr(ctr string) string { return ctr + ".test:8080" }

func scoreOf(app, ctr string, v float64) events.Score {
	cat := events.CategoryHU
	switch {
	case v >= 70:
		cat = events.CategoryLU
	case v >= 40:
		cat = events.CategoryMU
	}
	return events.Score{App: app, Container: ctr, Address: addr(ctr), Mode: "legacy", Overall: v, Category: cat,
		Inputs: events.ScoreInputs{ProbeOK: true, ProbeSeconds: 0.001}}
}

// score publishes a score of ctr stamped at.
func (h *harness) score(t testing.TB, app, ctr string, v float64, at time.Time) {
	t.Helper()
	subj, err := events.ScoreSubject(app, ctr)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.New(h.id("score-"+ctr), at, "test/scorer", scoreOf(app, ctr, v))
	if err := bus.PublishEvent(context.Background(), h.bus, subj, ev); err != nil {
		t.Fatal(err)
	}
}

// fact publishes a lifecycle fact about ctr stamped at.
func (h *harness) fact(t testing.TB, app, ctr string, ph events.Phase, at time.Time) {
	t.Helper()
	subj, err := events.LifecycleSubject(app, ctr)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.New(h.id("fact-"+ctr), at, "test/scaler", events.Lifecycle{App: app, Container: ctr, Phase: ph, Address: addr(ctr)})
	if err := bus.PublishEvent(context.Background(), h.bus, subj, ev); err != nil {
		t.Fatal(err)
	}
}

// received is one queue event seen on RB_QUEUE.
type received struct {
	ev     events.Event[events.QueueSnapshot]
	data   []byte
	seen   time.Time // when the watcher got it
	stored time.Time // when the stream stored it
}

// queueWatch follows rb.queue.<app> from its current message on.
type queueWatch struct {
	mu   sync.Mutex
	got  []received
	errs []error
}

func (h *harness) watch(t testing.TB, app string) *queueWatch {
	t.Helper()
	subj, err := events.QueueSubject(app)
	if err != nil {
		t.Fatal(err)
	}
	w := &queueWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.bus.Watch(ctx, events.StreamQueue, []string{subj}, true, func(m bus.Msg) {
			seen := time.Now()
			ev, err := events.Decode[events.QueueSnapshot](m.Data)
			w.mu.Lock()
			defer w.mu.Unlock()
			if err != nil {
				w.errs = append(w.errs, err)
				return
			}
			w.got = append(w.got, received{ev: ev, data: m.Data, seen: seen, stored: m.Time})
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *queueWatch) all(t testing.TB) []received {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		t.Fatalf("undecodable queue events: %v", w.errs)
	}
	return append([]received(nil), w.got...)
}

// last waits until the latest queue seen satisfies ok and returns it.
func (w *queueWatch) last(t testing.TB, what string, ok func(events.QueueSnapshot) bool) received {
	t.Helper()
	var r received
	waitFor(t, 10*time.Second, what, func() bool {
		got := w.all(t)
		if len(got) == 0 {
			return false
		}
		r = got[len(got)-1]
		return ok(r.ev.Data)
	})
	return r
}

// lastOrder waits until the latest queue reads want (see order).
func (w *queueWatch) lastOrder(t testing.TB, want string) received {
	t.Helper()
	return w.last(t, "queue "+want, func(q events.QueueSnapshot) bool { return order(q) == want })
}

// order renders a queue as "container:state:weight ...".
func order(q events.QueueSnapshot) string {
	parts := make([]string, 0, len(q.Items))
	for _, it := range q.Items {
		parts = append(parts, fmt.Sprintf("%s:%s:%g", it.Container, it.State, it.Weight))
	}
	return strings.Join(parts, " ")
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the sum of the counters or gauges, or of the histograms'
// counts, whose labels include the given ones (0 when there are none).
func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
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
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// histogram returns the named histogram.
func histogram(t testing.TB, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("histogram %s not found", name)
	return nil
}

// countAtMost is how many observations of h are ≤ le (le must be a bucket bound).
func countAtMost(t testing.TB, h *dto.Histogram, le float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if math.Abs(b.GetUpperBound()-le) < 1e-12 {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("no bucket %v", le)
	return 0
}

// checkQueue checks the invariants of every published queue: valid,
// SUNDOWN last with weight 0, the others by score descending, the id
// "<app>-<generation>" and our source.
func checkQueue(t testing.TB, r received) {
	t.Helper()
	q := r.ev.Data
	if err := q.Validate(); err != nil {
		t.Fatalf("invalid queue %+v: %v", q, err)
	}
	if want := fmt.Sprintf("%s-%d", q.App, q.Generation); r.ev.ID != want {
		t.Fatalf("event id %q, want %q", r.ev.ID, want)
	}
	if r.ev.Source != "queuebuilder/test-node" {
		t.Fatalf("event source %q", r.ev.Source)
	}
	sundown := false
	for i, it := range q.Items {
		if it.State == events.StateSundown {
			sundown = true
			if it.Weight != 0 {
				t.Fatalf("SUNDOWN %s has weight %v in %s", it.Container, it.Weight, order(q))
			}
			continue
		}
		if sundown {
			t.Fatalf("%s after a SUNDOWN worker in %s", it.Container, order(q))
		}
		if i > 0 && q.Items[i-1].Score < it.Score {
			t.Fatalf("%s (score %v) after a lower score in %s", it.Container, it.Score, order(q))
		}
	}
}

// checkGenerations checks that generations only grow along rs.
func checkGenerations(t testing.TB, rs []received) {
	t.Helper()
	for i := 1; i < len(rs); i++ {
		if rs[i].ev.Data.Generation <= rs[i-1].ev.Data.Generation {
			t.Fatalf("generation %d after %d", rs[i].ev.Data.Generation, rs[i-1].ev.Data.Generation)
		}
	}
}
