package proxy

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// TestFollowsQueue: traffic moves to the workers of a new queue within
// 50 ms of its publication (median of five changes; none over a second).
func TestFollowsQueue(t *testing.T) {
	t.Parallel()
	url, _, b := natsBus(t)
	backs := []*backend{startBackend(t, "w1", nil), startBackend(t, "w2", nil), startBackend(t, "w3", nil)}
	p := startProxy(t, Options{Connect: connectTo(t, url)})
	publishQueue(t, b, queueOf(1, backs[0].item(events.StateActive)))
	c := client()
	waitFor(t, 10*time.Second, "the first queue served", func() bool {
		resp, err := c.Get(p.url + "/")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body) == "w1"
	})
	var delays []time.Duration
	for i := range 5 {
		target := backs[(i+1)%len(backs)]
		start := time.Now()
		publishQueue(t, b, queueOf(uint64(i+2), target.item(events.StateActive)))
		waitFor(t, 5*time.Second, "traffic on "+target.name, func() bool {
			_, _, body := get(t, c, p.url+"/")
			return body == target.name
		})
		delays = append(delays, time.Since(start))
		for range 10 {
			if _, _, body := get(t, c, p.url+"/"); body != target.name {
				t.Fatalf("after the switch to %s a request went to %s", target.name, body)
			}
		}
	}
	slices.Sort(delays)
	t.Logf("publish → traffic on the new worker: %v", delays)
	if delays[len(delays)/2] > 50*time.Millisecond || delays[len(delays)-1] > time.Second {
		t.Fatalf("traffic followed the queue after %v (median must be ≤ 50 ms)", delays)
	}
}

// reports collects the proxy reports of one proxy.
type reports struct {
	mu  sync.Mutex
	all []events.ProxyReport
}

func watchReports(t *testing.T, b *bus.Bus, proxyID string) *reports {
	t.Helper()
	subj, err := events.ProxySubject(testApp, proxyID)
	if err != nil {
		t.Fatal(err)
	}
	r := &reports{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Watch(ctx, events.StreamProxy, []string{subj}, false, func(m bus.Msg) {
			ev, err := events.Decode[events.ProxyReport](m.Data)
			if err != nil {
				t.Errorf("bad proxy report: %v", err)
				return
			}
			r.mu.Lock()
			r.all = append(r.all, ev.Data)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// last returns the last report's entry for container, if the last report
// lists it.
func (r *reports) last(container string) (events.BackendReport, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.all) == 0 {
		return events.BackendReport{}, false
	}
	for _, br := range r.all[len(r.all)-1].Backends {
		if br.Container == container {
			return br, true
		}
	}
	return events.BackendReport{}, false
}

func (r *reports) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}

// TestSundownDrains: a SUNDOWN worker gets no new request, its request in
// flight completes, and the proxy reports it in flight until it is done;
// the same for a worker that leaves the queue altogether.
func TestSundownDrains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		next func(a, b *backend) events.QueueSnapshot
	}{
		{name: "SUNDOWN", next: func(a, b *backend) events.QueueSnapshot {
			return queueOf(2, b.item(events.StateActive), a.item(events.StateSundown))
		}},
		{name: "left the queue", next: func(a, b *backend) events.QueueSnapshot {
			return queueOf(2, b.item(events.StateActive))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, _, nb := natsBus(t)
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					entered <- struct{}{}
					<-release
				}
				io.WriteString(w, "a")
			})
			bk := startBackend(t, "b", nil)
			rep := watchReports(t, nb, "px-drain")
			p := startProxy(t, Options{Connect: connectTo(t, url), ID: "px-drain", ReportInterval: 50 * time.Millisecond})
			publishQueue(t, nb, queueOf(1, a.item(events.StateActive)))
			waitFor(t, 10*time.Second, "the first queue", func() bool { return p.Ready() == nil })

			slow := make(chan string, 1)
			go func() {
				resp, err := http.Get(p.url + "/slow")
				if err != nil {
					slow <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				slow <- string(body)
			}()
			<-entered
			publishQueue(t, nb, tc.next(a, bk))
			waitFor(t, 5*time.Second, "the second queue", func() bool {
				r := p.apps[testApp].route.Load()
				return r != nil && r.gen == 2
			})
			c := client()
			hitsA := a.hits.Load()
			for range 20 {
				if _, _, body := get(t, c, p.url+"/"); body != "b" {
					t.Fatalf("a new request went to %s", body)
				}
			}
			if a.hits.Load() != hitsA {
				t.Fatal("the draining worker got a new request")
			}
			waitFor(t, 5*time.Second, "a reported SUNDOWN with 1 in flight", func() bool {
				br, ok := rep.last("a")
				return ok && br.InFlight == 1 && br.State == events.StateSundown
			})
			n := rep.count()
			waitFor(t, 5*time.Second, "three more reports", func() bool { return rep.count() >= n+3 })
			if br, ok := rep.last("a"); !ok || br.InFlight != 1 {
				t.Fatalf("while its request runs, a is reported as %+v (listed: %v)", br, ok)
			}
			close(release)
			if got := <-slow; got != "a" {
				t.Fatalf("the request in flight on the draining worker ended with %q", got)
			}
			waitFor(t, 5*time.Second, "a reported with 0 in flight", func() bool {
				br, ok := rep.last("a")
				return ok && br.InFlight == 0
			})
			if tc.name == "left the queue" {
				waitFor(t, 5*time.Second, "a no longer reported", func() bool {
					_, ok := rep.last("a")
					return !ok && rep.count() > 0
				})
			}
		})
	}
}

// TestKillBackendUnderLoad: a worker killed while requests run loses no
// idempotent request: they are retried on another worker.
func TestKillBackendUnderLoad(t *testing.T) {
	t.Parallel()
	handler := func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		io.WriteString(w, "ok")
	}
	backs := []*backend{startBackend(t, "k1", handler), startBackend(t, "k2", handler), startBackend(t, "k3", handler)}
	p := startProxy(t, Options{})
	items := make([]events.QueueItem, len(backs))
	for i, b := range backs {
		items[i] = b.item(events.StateActive)
	}
	p.applyQueue(t, queueOf(1, items...))
	c := client()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				method := []string{http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut, http.MethodOptions}[i%5]
				req, _ := http.NewRequest(method, p.url+"/", nil)
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
					continue
				}
				ok.Add(1)
			}
		})
	}
	waitFor(t, 10*time.Second, "load on every worker", func() bool { return backs[0].hits.Load() > 50 })
	backs[0].kill()
	killedAt := ok.Load()
	waitFor(t, 20*time.Second, "500 more requests", func() bool { return ok.Load() > killedAt+500 })
	close(stop)
	wg.Wait()
	t.Logf("%d requests answered, %d failed; retries %v, connect errors %v", ok.Load(), failed.Load(),
		p.metric(t, "rb_proxy_retries_total"), p.metric(t, "rb_proxy_backend_errors_total", "kind", "connect"))
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed after a worker was killed (first: %v)", failed.Load(), firstErr.Load())
	}
	if p.metric(t, "rb_proxy_backend_errors_total", "kind", "connect") == 0 {
		t.Fatal("the killed worker caused no connect error: the test did not test anything")
	}
}

// TestRetryAfterRefusedConnection: any request, a POST with a body
// included, is sent to another worker when the connection to the first is
// refused, since nothing reached it.
func TestRetryAfterRefusedConnection(t *testing.T) {
	t.Parallel()
	live := startBackend(t, "live", echoHandler)
	// weighted: p2c would keep to the live worker once it answered, and
	// the dead one might never be tried; here it is, with probability
	// 1 - (80/180)^20 > 0.999999.
	cfg := testConfig()
	cfg.Proxy.Policy = "weighted"
	p := startProxy(t, Options{Config: cfg})
	p.applyQueue(t, queueOf(1,
		events.QueueItem{Container: "dead", Address: deadAddr(t), Weight: 100, State: events.StateActive},
		live.item(events.StateActive)))
	c := client()
	for i := range 20 {
		resp, err := c.Post(p.url+"/p", "text/plain", pattern(int64(100+i)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	if p.metric(t, "rb_proxy_retries_total") == 0 {
		t.Fatal("no retry: the dead worker was never picked")
	}
}

// TestP2CAvoidsSlowBackend: four workers answer in 2 ms, one in 20 ms; with
// the default policy the slow one gets at most 1 % of the requests after
// the first second, under a bounded open-loop load (300 requests/s, at most
// 16 outstanding). Peak-EWMA follows the worst latency a worker showed
// recently, so scheduling stalls of the machine count as worker latency:
// when the client sees the fast workers answer in more than 15 ms at the
// 99.9th percentile, 2 ms and 20 ms cannot be told apart here and the test
// says so and skips. Not parallel: the package's other tests would add
// their own stalls.
func TestP2CAvoidsSlowBackend(t *testing.T) {
	sleeper := func(d time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { time.Sleep(d) }
	}
	var items []events.QueueItem
	for i := range 4 {
		items = append(items, startBackend(t, "fast"+string(rune('1'+i)), sleeper(2*time.Millisecond)).item(events.StateActive))
	}
	items = append(items, startBackend(t, "slow", sleeper(20*time.Millisecond)).item(events.StateActive))
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, items...))
	c := client()
	var (
		counts  syncSet
		total   atomic.Int64
		mu      sync.Mutex
		fastLat []time.Duration
	)
	const rate, outstanding = 300, 16
	start := time.Now()
	end := start.Add(4 * time.Second)
	sem := make(chan struct{}, outstanding)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	for now := range tick.C {
		if now.After(end) {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // bounded: skip a send rather than pile up
		}
		wg.Go(func() {
			defer func() { <-sem }()
			sent := time.Now()
			resp, err := c.Get(p.url + "/")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took := time.Since(sent)
			if sent.Sub(start) < time.Second {
				return
			}
			who := resp.Header.Get("X-Backend")
			counts.add(who)
			total.Add(1)
			if who != "slow" {
				mu.Lock()
				fastLat = append(fastLat, took)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(fastLat)
	if len(fastLat) < 300 {
		t.Fatalf("only %d requests to the fast workers measured", len(fastLat))
	}
	p999 := fastLat[len(fastLat)*999/1000]
	slow := counts.get("slow")
	share := float64(slow) / float64(total.Load())
	t.Logf("after the first second: %d requests, %s(slow share %.2f%%); fast workers p50 %v p99.9 %v as the client saw them",
		total.Load(), counts.String(), 100*share, fastLat[len(fastLat)/2], p999)
	if share > 0.01 {
		if p999 > 15*time.Millisecond {
			t.Skipf("the machine is too busy to measure this: fast workers took %v at p99.9 (slow share %.2f%%)", p999, 100*share)
		}
		t.Fatalf("the slow worker got %.2f%% of the requests, want ≤ 1%%", 100*share)
	}
}
