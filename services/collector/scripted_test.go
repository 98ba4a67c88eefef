package collector_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	rt "github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/services/collector"
)

// scriptedRuntime is an engine whose containers and events the test sets:
// the orderings a busy Docker produces now and then, on demand.
type scriptedRuntime struct {
	evs chan rt.Event

	mu         sync.Mutex
	containers map[string]rt.Container
	// hold, when set for an id, blocks its Inspect until closed; inspecting
	// is signalled (once) when that Inspect begins.
	hold       map[string]chan struct{}
	inspecting map[string]chan struct{}
}

func newScriptedRuntime(cs ...rt.Container) *scriptedRuntime {
	r := &scriptedRuntime{evs: make(chan rt.Event, 16), containers: map[string]rt.Container{},
		hold: map[string]chan struct{}{}, inspecting: map[string]chan struct{}{}}
	for _, c := range cs {
		r.containers[c.ID] = c
	}
	return r
}

func (r *scriptedRuntime) set(c rt.Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.containers[c.ID] = c
}

// holdInspect makes the next Inspects of id block until the returned
// release is called; began is closed when the first of them begins.
func (r *scriptedRuntime) holdInspect(tb testing.TB, id string) (began <-chan struct{}, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, b := make(chan struct{}), make(chan struct{})
	r.hold[id], r.inspecting[id] = h, b
	var once sync.Once
	release = func() { once.Do(func() { close(h) }) }
	tb.Cleanup(release)
	return b, release
}

func (r *scriptedRuntime) List(_ context.Context, app string) ([]rt.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []rt.Container
	for _, c := range r.containers {
		if c.App == app {
			out = append(out, c)
		}
	}
	return out, nil
}

func (r *scriptedRuntime) Inspect(ctx context.Context, id string) (rt.Container, error) {
	r.mu.Lock()
	h, b := r.hold[id], r.inspecting[id]
	if b != nil {
		close(b)
		delete(r.inspecting, id)
	}
	r.mu.Unlock()
	if h != nil {
		select {
		case <-h:
		case <-ctx.Done():
			return rt.Container{}, ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return rt.Container{}, rt.ErrNotFound
	}
	return c, nil
}

func (r *scriptedRuntime) Events(ctx context.Context, _ time.Time) (<-chan rt.Event, <-chan error) {
	out, errc := make(chan rt.Event), make(chan error, 1)
	go func() {
		defer close(errc)
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			case ev := <-r.evs:
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			}
		}
	}()
	return out, errc
}

// Stats streams nothing until ctx is done: these tests are not about rates.
func (r *scriptedRuntime) Stats(ctx context.Context, _ string) (<-chan rt.StatsSample, <-chan error) {
	out, errc := make(chan rt.StatsSample), make(chan error, 1)
	go func() {
		<-ctx.Done()
		close(out)
		errc <- ctx.Err()
		close(errc)
	}()
	return out, errc
}

// memPublisher keeps what is published, in the order Publish was called.
type memPublisher struct {
	mu      sync.Mutex
	samples []events.Event[events.Sample]
	facts   []events.Event[events.Lifecycle]
	tb      testing.TB
}

func (p *memPublisher) Publish(_ context.Context, _, _ string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, err := events.Decode[events.Sample](data); err == nil && s.Data.ContainerID != "" && s.Data.State != "" {
		p.samples = append(p.samples, s)
		return nil
	}
	f, err := events.Decode[events.Lifecycle](data)
	if err != nil {
		p.tb.Errorf("published neither a Sample nor a lifecycle fact: %v", err)
		return nil
	}
	p.facts = append(p.facts, f)
	return nil
}

func (p *memPublisher) samplesOf(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.samples {
		if s.Data.Container == name {
			n++
		}
	}
	return n
}

func (p *memPublisher) fact(name string, phase events.Phase) (events.Lifecycle, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.facts {
		if f.Data.Container == name && f.Data.Phase == phase {
			return f.Data, true
		}
	}
	return events.Lifecycle{}, false
}

// TestScriptedDeath: what a stopping worker looks like on a busy engine.
// The event before die (kill, stop) may be inspected when the container has
// already exited and lost its IP, so the collector drops it then; the died
// fact must still carry the address the worker last had. And an inspect
// that is slow to answer after the die must not let ticks sample the dead
// container meanwhile.
func TestScriptedDeath(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // what the probes connect to
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
	port := ln.Addr().(*net.TCPAddr).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const app, netw = "scripted", "n"
	worker := func(name string) rt.Container {
		return rt.Container{ID: "id-" + name, Name: name, App: app, State: "running", IPs: map[string]string{netw: "127.0.0.1"}}
	}
	exited := func(c rt.Container) rt.Container { c.State, c.IPs = "exited", nil; return c }
	event := func(action string, c rt.Container, code string) rt.Event {
		return rt.Event{Action: action, ID: c.ID, Name: c.Name, App: app, Time: time.Now(), ExitCode: code}
	}

	tests := []struct {
		name string
		// stop makes worker a exit and sends the events Docker sends; it
		// returns how many Samples of a were published once the collector
		// is known to handle the death.
		stop func(tb testing.TB, r *scriptedRuntime, pub *memPublisher, a rt.Container) int
	}{
		{name: "kill seen after exit", stop: func(tb testing.TB, r *scriptedRuntime, pub *memPublisher, a rt.Container) int {
			r.set(exited(a))
			r.evs <- event("kill", a, "")
			r.evs <- event("die", a, "137")
			waitFor(tb, "the died fact", func() bool { _, ok := pub.fact("a", events.PhaseDied); return ok })
			return pub.samplesOf("a")
		}},
		{name: "die inspected slowly", stop: func(tb testing.TB, r *scriptedRuntime, pub *memPublisher, a rt.Container) int {
			began, release := r.holdInspect(tb, a.ID)
			r.set(exited(a))
			r.evs <- event("die", a, "137")
			select {
			case <-began:
			case <-time.After(waitTimeout):
				tb.Fatal("the die event was not handled")
			}
			// From here on the collector knows a is dead; let several
			// ticks pass before its inspect answers.
			n := pub.samplesOf("a")
			go func() { time.Sleep(6 * scriptedInterval); release() }()
			return n
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := worker("a"), worker("b")
			r := newScriptedRuntime(a, b)
			pub := &memPublisher{tb: t}
			cfg := collector.Config{App: app, Network: netw, Port: port, Interval: scriptedInterval,
				Probe: collector.ProbeTCP, ProbeTimeout: time.Second, Node: "test"}
			svc, err := collector.New(cfg, r, pub, natstest.Logger(t), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = svc.Run(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			waitFor(t, "Samples of both workers", func() bool { return pub.samplesOf("a") > 0 && pub.samplesOf("b") > 0 })
			// The die is being handled: at most the one tick already past
			// its check publishes a Sample of a from now on.
			nA := tt.stop(t, r, pub, a)
			waitFor(t, "the died fact", func() bool { _, ok := pub.fact("a", events.PhaseDied); return ok })
			died, _ := pub.fact("a", events.PhaseDied)
			if died.Address != addr || died.Reason != "exit code 137" || died.ContainerID != a.ID {
				t.Errorf("died fact %+v, want address %s, reason \"exit code 137\", id %s", died, addr, a.ID)
			}
			nB := pub.samplesOf("b")
			waitFor(t, "four more Samples of b", func() bool { return pub.samplesOf("b") >= nB+4 })
			if extra := pub.samplesOf("a") - nA; extra > 1 {
				t.Errorf("%d Samples of a after its die was handled, want at most the one of a tick under way", extra)
			}
		})
	}
}

// scriptedInterval is the collection interval of the scripted tests.
const scriptedInterval = 50 * time.Millisecond
