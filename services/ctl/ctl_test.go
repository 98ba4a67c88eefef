package ctl

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

// syncBuffer is an io.Writer a command writes from its goroutine while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a system to run commands against: NATS with the streams, Redis.
type env struct {
	natsURL string
	bus     *bus.Bus
	redis   *redistest.Server
	vars    map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url, _ := natstest.Start(t)
	e := &env{natsURL: url, bus: natstest.Connect(t, url), redis: redistest.Start(t)}
	e.vars = map[string]string{"RB_NATS_URL": url, "RB_REDIS_URL": e.redis.URL()}
	return e
}

// result is a finished command.
type result struct {
	code           int
	stdout, stderr string
}

// run runs `rb args...` and waits for it (at most 20 s).
func (e *env) run(t *testing.T, args ...string) result {
	t.Helper()
	r := e.start(t, context.Background(), args...)
	return r.wait(t)
}

// running is a command still going.
type running struct {
	stdout, stderr *syncBuffer
	done           chan int
	args           []string
}

func (e *env) start(t *testing.T, ctx context.Context, args ...string) *running {
	t.Helper()
	r := &running{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1), args: args}
	lookup := func(k string) (string, bool) { v, ok := e.vars[k]; return v, ok }
	go func() { r.done <- Main(ctx, args, IO{Lookup: lookup, Stdout: r.stdout, Stderr: r.stderr}) }()
	return r
}

func (r *running) wait(t *testing.T) result {
	t.Helper()
	select {
	case code := <-r.done:
		return result{code: code, stdout: r.stdout.String(), stderr: r.stderr.String()}
	case <-time.After(20 * time.Second):
		t.Fatalf("rb %v did not finish within 20 s; stdout:\n%s\nstderr:\n%s", r.args, r.stdout, r.stderr)
		return result{}
	}
}

// waitFor waits until the buffer contains s.
func waitFor(t *testing.T, what string, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q not seen within 10 s; got:\n%s", what, s, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publish[T events.Payload](t *testing.T, b *bus.Bus, subj string, ev events.Event[T]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.PublishEvent(ctx, b, subj, ev); err != nil {
		t.Fatal(err)
	}
}

func queue(app string, gen uint64, items ...events.QueueItem) events.Event[events.QueueSnapshot] {
	return events.New(fmt.Sprintf("%s-q%d", app, gen), time.Now(), "queue-builder/test", events.QueueSnapshot{App: app, Generation: gen, Items: items})
}

func qitem(name string, score float64, state events.State, cat events.Category) events.QueueItem {
	return events.QueueItem{Container: name, Address: "10.0.0.1:8080", Score: score, Weight: score, Category: cat, State: state}
}

func score(app, ctr string, overall float64) events.Event[events.Score] {
	return events.New(app+"-"+ctr+"-s", time.Now(), "scorer/test", events.Score{App: app, Container: ctr, Mode: "legacy",
		CPU: overall - 5, Memory: overall + 5, Network: 90, Availability: 80, Overall: overall, Category: events.CategoryMU})
}

// fields splits a table line on runs of spaces.
func fields(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

func lineWith(t *testing.T, out, prefix string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return fields(l)
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return nil
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	if r := e.run(t, "status"); r.code != 0 || !strings.Contains(r.stdout, "no events of any app yet") {
		t.Fatalf("status of an empty system: %+v", r)
	}
	publish(t, e.bus, "rb.queue.shop", queue("shop", 7,
		qitem("shop-a", 70, events.StateActive, events.CategoryLU),
		qitem("shop-b", 30, events.StateActive, events.CategoryHU),
		qitem("shop-c", 90, events.StateSundown, events.CategoryLU)))
	publish(t, e.bus, "rb.score.shop.shop-a", score("shop", "shop-a", 70))
	publish(t, e.bus, "rb.score.shop.shop-b", score("shop", "shop-b", 30))
	publish(t, e.bus, "rb.scale.shop", events.New("d1", time.Now(), "scaler/test", events.Decision{App: "shop", Action: events.ActionScaleDown,
		Reason: "mean score 85 > LOW_LOAD_THRESHOLD 80", From: 3, To: 2, Targets: []string{"shop-c"}}))
	publish(t, e.bus, "rb.lifecycle.shop.shop-c", events.New("l1", time.Now(), "scaler/test", events.Lifecycle{App: "shop", Container: "shop-c", Phase: events.PhaseSundown}))
	publish(t, e.bus, "rb.proxy.shop.p1", events.New("p1", time.Now(), "proxy/test", events.ProxyReport{App: "shop", ProxyID: "p1", IntervalSeconds: 1,
		Backends: []events.BackendReport{{Container: "shop-a", InFlight: 4, Requests: 300}, {Container: "shop-c", InFlight: 2, Requests: 0}}}))
	publish(t, e.bus, "rb.queue.other", queue("other", 1, qitem("o-1", 55, events.StateInit, events.CategoryInit)))

	r := e.run(t, "status")
	if r.code != 0 {
		t.Fatalf("status: %+v", r)
	}
	app := lineWith(t, r.stdout, "shop ")
	// APP WORKERS ACTIVE STARTING DRAINING DESIRED MEAN REQ/S ERR/S IN-FLIGHT GEN UPDATED
	want := []string{"shop", "3", "2", "0", "1", "2", "50.0", "300.0", "0.0", "6", "7"}
	if strings.Join(app[:len(want)], "|") != strings.Join(want, "|") {
		t.Fatalf("app line %q, want it to start with %q\n%s", app, want, r.stdout)
	}
	if w := lineWith(t, r.stdout, "shop-a"); w[1] != "ACTIVE" || w[2] != "LU" || w[3] != "70.0" || w[8] != "70%" || w[9] != "4" {
		t.Fatalf("shop-a line %q\n%s", w, r.stdout)
	}
	if w := lineWith(t, r.stdout, "shop-c"); w[1] != "SUNDOWN" || w[2] != "SUNDOWN" || w[8] != "-" || !strings.HasPrefix(w[len(w)-1], "sundown") {
		t.Fatalf("shop-c line %q\n%s", w, r.stdout)
	}
	if w := lineWith(t, r.stdout, "other "); w[1] != "1" || w[3] != "1" || w[5] != "-" {
		t.Fatalf("other line %q\n%s", w, r.stdout)
	}
	// One app only, and JSON.
	r = e.run(t, "status", "-app", "other", "-json")
	if r.code != 0 || !strings.Contains(r.stdout, `"app": "other"`) || strings.Contains(r.stdout, `"shop"`) || !strings.Contains(r.stdout, `"container": "o-1"`) {
		t.Fatalf("status -app other -json: %+v", r)
	}
}

func TestQueueWatch(t *testing.T) {
	e := newEnv(t)
	publish(t, e.bus, "rb.queue.shop", queue("shop", 1, qitem("shop-a", 40, events.StateActive, events.CategoryMU), qitem("shop-b", 60, events.StateActive, events.CategoryMU)))
	publish(t, e.bus, "rb.queue.other", queue("other", 1, qitem("o-1", 50, events.StateActive, events.CategoryMU)))
	w := e.start(t, context.Background(), "queue", "watch", "shop", "-n", "2")
	waitFor(t, "the current queue", w.stdout, "generation 1")
	publish(t, e.bus, "rb.queue.other", queue("other", 2))
	publish(t, e.bus, "rb.queue.shop", queue("shop", 2, qitem("shop-b", 62, events.StateActive, events.CategoryMU), qitem("shop-a", 35, events.StateSundown, events.CategoryHU)))
	r := w.wait(t)
	if r.code != 0 {
		t.Fatalf("queue watch: %+v", r)
	}
	if strings.Contains(r.stdout, "other") {
		t.Fatalf("queue watch shop printed app other:\n%s", r.stdout)
	}
	for _, want := range []string{
		"shop  generation 1: 2 workers (2 active, 0 starting, 0 draining)",
		"shop  generation 2: 2 workers (1 active, 0 starting, 1 draining)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Generation 1 lists the higher score first; generation 2 the SUNDOWN worker last.
	gen2 := r.stdout[strings.Index(r.stdout, "generation 2"):]
	if a, b := lineWith(t, r.stdout, "1  shop-b"), lineWith(t, gen2, "2  shop-a"); a[5] != "60.0" || a[6] != "60%" || b[2] != "SUNDOWN" || b[3] != "SUNDOWN" || b[6] != "-" {
		t.Fatalf("rows %q %q\n%s", a, b, r.stdout)
	}
}

func TestQueueWatchStopsOnInterrupt(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := e.start(t, ctx, "queue", "watch")
	waitFor(t, "the watch", w.stderr, "following rb.queue.>")
	cancel() // Ctrl-C
	if r := w.wait(t); r.code != 0 {
		t.Fatalf("interrupted queue watch: %+v", r)
	}
}

func TestConfigSetGetAndTail(t *testing.T) {
	e := newEnv(t)
	tail := e.start(t, context.Background(), "events", "tail", "--subject", "rb.config.>", "-n", "2")
	waitFor(t, "the tail", tail.stderr, "following rb.config.>")

	r := e.run(t, "config", "set", "shop", "HIGH_LOAD_THRESHOLD=50", "SCALE_STEP=2")
	if r.code != 0 || !strings.Contains(r.stdout, "app shop: config version 1: HIGH_LOAD_THRESHOLD=50, SCALE_STEP=2; published on rb.config.shop") {
		t.Fatalf("config set: %+v", r)
	}
	r = e.run(t, "config", "set", "shop", "SCALE_STEP=", "-version", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "config version 2: SCALE_STEP (removed: 1 from the base applies)") {
		t.Fatalf("config set KEY= (remove): %+v", r)
	}
	tr := tail.wait(t)
	if tr.code != 0 {
		t.Fatalf("events tail: %+v", tr)
	}
	lines := strings.Split(strings.TrimSpace(tr.stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "rb.config.shop  config_changed  version 1: HIGH_LOAD_THRESHOLD=50, SCALE_STEP=2 (by rb config set)") ||
		!strings.Contains(lines[1], "version 2: SCALE_STEP removed") {
		t.Fatalf("tail printed:\n%s", tr.stdout)
	}

	st, err := store.New(store.Options{URL: e.redis.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if c, err := st.GetConfig(context.Background(), "shop"); err != nil || c.Version != 2 || len(c.Values) != 1 || c.Values["HIGH_LOAD_THRESHOLD"] != "50" {
		t.Fatalf("stored %+v, %v", c, err)
	}

	r = e.run(t, "config", "get", "shop")
	if r.code != 0 || !strings.Contains(r.stdout, "app shop: config version 2") {
		t.Fatalf("config get: %+v", r)
	}
	if l := lineWith(t, r.stdout, "HIGH_LOAD_THRESHOLD"); l[1] != "50" || l[2] != "override" {
		t.Fatalf("HIGH_LOAD_THRESHOLD line %q", l)
	}
	if l := lineWith(t, r.stdout, "SCALE_STEP"); l[1] != "1" || l[2] != "base" {
		t.Fatalf("SCALE_STEP line %q", l)
	}
	if r := e.run(t, "config", "get", "shop", "-json"); r.code != 0 || !strings.Contains(r.stdout, `"version": 2`) {
		t.Fatalf("config get -json: %+v", r)
	}
	if r := e.run(t, "config", "set", "shop", "HIGH_LOAD_THRESHOLD=50"); r.code != 0 || !strings.Contains(r.stdout, "no change (config version 2)") {
		t.Fatalf("config set of the stored value: %+v", r)
	}
}

func TestConfigSetRejects(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "bad value names the variable", args: []string{"HIGH_LOAD_THRESHOLD=abc"}, code: 2, want: `HIGH_LOAD_THRESHOLD="abc"`},
		{name: "relation names the variables", args: []string{"HIGH_LOAD_THRESHOLD=90"}, code: 2, want: "LOW_LOAD_THRESHOLD"},
		{name: "unknown variable", args: []string{"HIGH_LOAD=50"}, code: 2, want: "HIGH_LOAD"},
		{name: "not a runtime variable", args: []string{"REDIS_PORT=1"}, code: 2, want: "restart"},
		{name: "remove of an unknown variable", args: []string{"NOPE="}, code: 2, want: "NOPE"},
		{name: "not KEY=VALUE", args: []string{"HIGH_LOAD_THRESHOLD"}, code: 2, want: "want KEY=VALUE"},
		{name: "stale version", args: []string{"SCALE_STEP=2", "-version", "3"}, code: 1, want: "conflict"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(t, append([]string{"config", "set", "shop"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("rb config set shop %v = %d, stderr:\n%s\nwant %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
	if r := e.run(t, "config", "set", "two words", "SCALE_STEP=2"); r.code != 2 || !strings.Contains(r.stderr, "app") {
		t.Fatalf("bad app name: %+v", r)
	}
}

func TestEventsTailDescribes(t *testing.T) {
	e := newEnv(t)
	tail := e.start(t, context.Background(), "events", "tail", "-subject", "rb.scale.>,rb.lifecycle.>", "-subject", "rb.score.>", "-n", "3")
	waitFor(t, "the tail", tail.stderr, "following rb.scale.>, rb.lifecycle.>, rb.score.>")
	publish(t, e.bus, "rb.queue.shop", queue("shop", 1)) // not followed
	publish(t, e.bus, "rb.scale.shop", events.New("d1", time.Now(), "scaler/test", events.Decision{App: "shop", Action: events.ActionScaleUp,
		Reason: "mean score 41.0 < HIGH_LOAD_THRESHOLD 55.0", From: 2, To: 3, Targets: []string{"shop-n"}}))
	publish(t, e.bus, "rb.lifecycle.shop.shop-n", events.New("l1", time.Now(), "scaler/test", events.Lifecycle{App: "shop", Container: "shop-n",
		Phase: events.PhaseFailed, Reason: "create worker", Error: "no such image"}))
	publish(t, e.bus, "rb.score.shop.shop-a", score("shop", "shop-a", 61.5))
	r := tail.wait(t)
	for _, want := range []string{
		"rb.scale.shop  decision  scale_up 2 → 3: mean score 41.0 < HIGH_LOAD_THRESHOLD 55.0 [shop-n]",
		"rb.lifecycle.shop.shop-n  lifecycle  shop-n failed: create worker: no such image",
		"rb.score.shop.shop-a  score  shop-a overall 61.5 MU (cpu 56.5, mem 66.5, net 90.0, avail 80.0)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("tail output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "rb.queue") {
		t.Fatalf("tail printed a subject it does not follow:\n%s", r.stdout)
	}
}

func TestTailJSONAndTimeout(t *testing.T) {
	e := newEnv(t)
	tail := e.start(t, context.Background(), "events", "tail", "-subject", "rb.config.>", "-json", "-timeout", "1s")
	waitFor(t, "the tail", tail.stderr, "following")
	publish(t, e.bus, "rb.config.shop", events.New("c1", time.Now(), "t", events.ConfigChanged{App: "shop", Version: 1, Values: map[string]string{}}))
	waitFor(t, "the event", tail.stdout, `"kind":"config_changed"`)
	start := time.Now()
	r := tail.wait(t)
	if r.code != 0 || time.Since(start) > 3*time.Second {
		t.Fatalf("tail -timeout 1s: code %d after %v", r.code, time.Since(start))
	}
}

func TestClientCommandsNeedARunningNATS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	e := &env{vars: map[string]string{"RB_NATS_URL": dead}}
	for _, args := range [][]string{{"status"}, {"queue", "watch"}, {"events", "tail"}, {"config", "set", "shop", "SCALE_STEP=2"}} {
		start := time.Now()
		r := e.run(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, dead) || !strings.Contains(r.stderr, "is rb running?") {
			t.Fatalf("rb %v against %s = %+v; want exit 1 naming the URL", args, dead, r)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("rb %v took %v to fail", args, d)
		}
	}
}

func TestUsage(t *testing.T) {
	e := &env{vars: map[string]string{}}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "queue without watch", args: []string{"queue"}, want: "usage: rb queue watch"},
		{name: "config without verb", args: []string{"config", "delete", "shop"}, want: "usage: rb config get"},
		{name: "config get without app", args: []string{"config", "get"}, want: "usage: rb config get APP"},
		{name: "events without tail", args: []string{"events", "head"}, want: "usage: rb events tail"},
		{name: "status with arguments", args: []string{"status", "shop"}, want: "-app"},
		{name: "bad flag", args: []string{"status", "-frobnicate"}, want: "flag provided but not defined"},
		{name: "bad environment", args: []string{"config", "set", "shop", "SCALE_STEP=2"}, want: "REDIS_PORT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "bad environment" {
				e = &env{vars: map[string]string{"REDIS_PORT": "none"}}
			}
			r := e.run(t, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("rb %v = %d, stderr:\n%s\nwant 2 and %q", tc.args, r.code, r.stderr, tc.want)
			}
		})
	}
}
