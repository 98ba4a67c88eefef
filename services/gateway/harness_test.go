package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
)

// harness is a gateway on free loopback ports, reading a per-test NATS.
type harness struct {
	bus  *bus.Bus
	svc  *Service
	reg  *prometheus.Registry
	base string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port of the WebSocket port
}

// startGateway starts NATS and a gateway with opts (addresses forced to
// free loopback ports); everything stops when the test ends.
func startGateway(t testing.TB, opts Options) *harness {
	t.Helper()
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	return startGatewayOn(t, b, opts)
}

func startGatewayOn(t testing.TB, b *bus.Bus, opts Options) *harness {
	t.Helper()
	opts.HTTPAddr, opts.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	reg := prometheus.NewRegistry()
	opts.Registerer, opts.Gatherer = reg, reg
	svc, err := New(opts, b, natstest.Logger(t))
	if err != nil {
		t.Fatalf("new gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("gateway did not stop within 10 s")
		}
	})
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	h, w, err := svc.Addrs(actx)
	if err != nil {
		t.Fatalf("gateway did not listen: %v", err)
	}
	return &harness{bus: b, svc: svc, reg: reg, base: "http://" + h.String(), ws: "ws://" + w.String()}
}

// eventually polls cond every 10 ms until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publish encodes and publishes ev on subj.
func publish[T events.Payload](t testing.TB, b *bus.Bus, subj string, ev events.Event[T]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.PublishEvent(ctx, b, subj, ev); err != nil {
		t.Fatalf("publish %s: %v", subj, err)
	}
}

// must returns a func that passes a subject through, failing the test on an error.
func must(t testing.TB) func(string, error) string {
	return func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// Demo builds a believable history for app, ending at End: the workers but
// the last are scored every Step (the second-to-last joins after a first
// scale-up), a hold, a config change, proxy telemetry, and at the end a
// scale-up whose new worker (the last) is being created, so a test can add
// it to the queue. It is exported for the browser test.
type Demo struct {
	App     string
	Workers []string
	End     time.Time
	// Points is the score history per worker, one every Step.
	Points int
	Step   time.Duration
	gen    uint64
}

// PublishHistory publishes the demo's events, oldest first.
func (d *Demo) PublishHistory(t testing.TB, b *bus.Bus) {
	t.Helper()
	n := len(d.Workers)
	start := d.End.Add(-time.Duration(d.Points) * d.Step)
	joinAt := d.Points / 8 // the second-to-last worker's first score
	inputs := func(mean float64, active int) events.DecisionInputs {
		return events.DecisionInputs{MeanScore: mean, MinScore: mean - 12, Active: active, Ready: active, Desired: active, Min: 2, Max: 10,
			HighThreshold: 55, LowThreshold: 80, CriticalThresh: 20}
	}
	decide := func(id string, at time.Time, action events.Action, from, to int, reason string, mean float64, targets ...string) events.Event[events.Decision] {
		ev := events.New(d.App+"-"+id, at, "scaler/test", events.Decision{App: d.App, Action: action, Reason: reason, From: from, To: to,
			Targets: targets, Inputs: inputs(mean, from)})
		publish(t, b, must(t)(events.ScaleSubject(d.App)), ev)
		return ev
	}
	life := func(w string, at time.Time, decisionID string, phases ...events.Phase) {
		for i, ph := range phases {
			ev := events.New(fmt.Sprintf("%s-%s-%s", d.App, w, ph), at.Add(time.Duration(i)*d.Step/4), "scaler/test",
				events.Lifecycle{App: d.App, Container: w, Phase: ph, Address: "10.0.0.9:8080", Reason: "scale up", DecisionID: decisionID})
			publish(t, b, must(t)(events.LifecycleSubject(d.App, w)), ev)
		}
	}
	first := decide("up-1", start.Add(time.Duration(joinAt-2)*d.Step), events.ActionScaleUp, n-3, n-2,
		fmt.Sprintf("mean score 48.2 < HIGH_LOAD_THRESHOLD 55: add 1 (%d → %d)", n-3, n-2), 48.2, d.Workers[n-2])
	life(d.Workers[n-2], start.Add(time.Duration(joinAt-2)*d.Step), first.ID, events.PhaseCreated, events.PhaseStarted, events.PhaseReady)
	for p := 0; p < d.Points; p++ {
		at := start.Add(time.Duration(p+1) * d.Step)
		for i, w := range d.Workers[:n-1] {
			if i == n-2 && p < joinAt {
				continue
			}
			publish(t, b, must(t)(events.ScoreSubject(d.App, w)), d.score(w, i, p, at))
		}
		if p%2 == 0 || p == d.Points-1 {
			publish(t, b, must(t)(events.ProxySubject(d.App, "proxy-a")), d.proxy(p, at))
		}
		switch p {
		case d.Points / 2:
			decide("hold-1", at, events.ActionHold, n-2, n-2, "mean score 63.0 between HIGH_LOAD_THRESHOLD 55 and LOW_LOAD_THRESHOLD 80: hold", 63)
		case d.Points * 2 / 3:
			cfg := events.New(d.App+"-config-1", at, "rb-config/test", events.ConfigChanged{
				App: d.App, Version: 1, Values: map[string]string{"HIGH_LOAD_THRESHOLD": "55"}, Changed: []string{"HIGH_LOAD_THRESHOLD"}, By: "rb config set"})
			publish(t, b, must(t)(events.ConfigSubject(d.App)), cfg)
		}
	}
	last := decide("up-2", d.End.Add(-d.Step/2), events.ActionScaleUp, n-1, n,
		fmt.Sprintf("worker %s score 18.5 < CRITICAL_LOAD_THRESHOLD 20: add 1 (%d → %d)", d.Workers[0], n-1, n), 52.4, d.Workers[n-1])
	life(d.Workers[n-1], d.End.Add(-d.Step/2), last.ID, events.PhaseCreated, events.PhaseStarted)
}

func (d *Demo) score(w string, i, p int, at time.Time) events.Event[events.Score] {
	wave := func(period, phase float64) float64 {
		x := float64(p)/period + phase + float64(i)
		return x - float64(int(x))
	}
	cpu := 35 + 50*tri(wave(23, 0.1)) - float64(i)*6
	mem := 70 + 20*tri(wave(41, 0.3))
	net := 80 + 18*tri(wave(17, 0.6))
	avail := 60 + 35*tri(wave(31, 0.8))
	overall := 0.35*cpu + 0.25*mem + 0.15*net + 0.25*avail
	cat := events.CategoryHU
	switch {
	case overall >= 70:
		cat = events.CategoryLU
	case overall >= 40:
		cat = events.CategoryMU
	}
	return events.New(fmt.Sprintf("%s-%s-score-%d", d.App, w, p), at, "scorer/test", events.Score{
		App: d.App, Container: w, ContainerID: fmt.Sprintf("%012x", i+1), Address: fmt.Sprintf("10.0.0.%d:8080", i+2), Mode: "legacy",
		CPU: clamp(cpu), Memory: clamp(mem), Network: clamp(net), Availability: clamp(avail), Overall: clamp(overall), Category: cat,
	})
}

func (d *Demo) proxy(p int, at time.Time) events.Event[events.ProxyReport] {
	var backs []events.BackendReport
	for i, w := range d.Workers[:len(d.Workers)-1] {
		backs = append(backs, events.BackendReport{Container: w, Address: fmt.Sprintf("10.0.0.%d:8080", i+2), State: events.StateActive,
			InFlight: int64((p + 3*i) % 7), Requests: uint64(120 + 40*((p+i)%5)), Errors: uint64((p + i) % 9 / 8), LatencySeconds: 0.002 + 0.001*float64(i)})
	}
	return events.New(fmt.Sprintf("%s-proxy-%d", d.App, p), at, "proxy/test", events.ProxyReport{
		App: d.App, ProxyID: "proxy-a", IntervalSeconds: 1, QueueGeneration: d.gen, Backends: backs})
}

// PublishScore publishes a score of worker i at time at.
func (d *Demo) PublishScore(t testing.TB, b *bus.Bus, i int, at time.Time) {
	t.Helper()
	publish(t, b, must(t)(events.ScoreSubject(d.App, d.Workers[i])), d.score(d.Workers[i], i, d.Points, at))
}

// PublishQueue publishes the demo's current queue with workers (the last
// one INIT when init is true), with the latest scores as weights.
func (d *Demo) PublishQueue(t testing.TB, b *bus.Bus, workers []string, init bool, at time.Time) {
	t.Helper()
	d.gen++
	var items []events.QueueItem
	for i, w := range workers {
		s := d.score(w, i, d.Points-1, at).Data
		it := events.QueueItem{Container: w, Address: fmt.Sprintf("10.0.0.%d:8080", i+2), Score: s.Overall, Weight: s.Overall, Category: s.Category, State: events.StateActive, ProbeSeconds: 0.002}
		if init && i == len(workers)-1 {
			it.Score, it.Weight, it.Category, it.State = 100, 100, events.CategoryInit, events.StateInit
		}
		items = append(items, it)
	}
	ev := events.New(fmt.Sprintf("%s-queue-%d", d.App, d.gen), at, "queue-builder/test", events.QueueSnapshot{App: d.App, Generation: d.gen, Items: SortQueue(items)})
	publish(t, b, must(t)(events.QueueSubject(d.App)), ev)
}

func tri(x float64) float64 {
	if x < 0.5 {
		return 2 * x
	}
	return 2 - 2*x
}

func clamp(f float64) float64 { return max(0, min(100, f)) }

// get does a GET with optional headers and returns status and body.
func get(t testing.TB, url string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	return do(t, http.MethodGet, url, hdr, "")
}

func do(t testing.TB, method, url string, hdr map[string]string, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// counterValue reads a counter or gauge.
func counterValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither a counter nor a gauge", c.Desc())
	return 0
}
