package balance

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The simulation drives the balancer with simulated time: backends answer
// after a fixed service time (with jitter), requests arrive open-loop
// (Poisson) or closed-loop (fixed number of clients that send again as soon
// as they get an answer). Everything is seeded, so a run is deterministic.

const (
	simFast   = 2 * time.Millisecond
	simSlow   = 20 * time.Millisecond
	simProbe  = 100 * time.Microsecond
	simWindow = int64(time.Second)
)

type completion struct {
	at, start int64
	b         *Backend
	client    int
}

type completions []completion

func (c completions) Len() int           { return len(c) }
func (c completions) Less(i, j int) bool { return c[i].at < c[j].at }
func (c completions) Swap(i, j int)      { c[i], c[j] = c[j], c[i] }
func (c *completions) Push(x any)        { *c = append(*c, x.(completion)) }
func (c *completions) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

type simConfig struct {
	policy   Policy
	backends int
	// openRate is arrivals per second (open loop); 0 means closed loop
	// with clients.
	openRate float64
	clients  int
	// slowFrom..slowUntil is when backend 0 answers in simSlow.
	slowFrom, slowUntil time.Duration
	duration            time.Duration
	// probeEvery feeds ObserveProbe(simProbe) to every backend; 0 = never.
	probeEvery time.Duration
	// slowProbe makes backend 0's probe as slow as its answers while it is
	// slow (a sick host rather than a slow handler).
	slowProbe bool
	// rebuildEvery rebuilds the table from the previous one, as a queue
	// event does.
	rebuildEvery time.Duration
	seed         uint64
}

// simResult holds, per one-second window, how many requests each backend got.
type simResult struct {
	perWindow [][]int
}

// share returns backend b's share of requests over windows [from, to).
func (r simResult) share(b, from, to int) float64 {
	var n, all int
	for w := from; w < to && w < len(r.perWindow); w++ {
		for i, c := range r.perWindow[w] {
			all += c
			if i == b {
				n += c
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(n) / float64(all)
}

func (r simResult) String() string {
	var sb strings.Builder
	for w, counts := range r.perWindow {
		fmt.Fprintf(&sb, "t=%2ds share0=%.4f counts=%v\n", w, r.share(0, w, w+1), counts)
	}
	return sb.String()
}

func simulate(tb testing.TB, cfg simConfig) simResult {
	tb.Helper()
	const start = int64(1_000_000_000_000_000_000)
	bs := make([]Backend, cfg.backends)
	for i := range bs {
		bs[i] = Backend{ID: fmt.Sprintf("w%d", i), Address: fmt.Sprintf("10.0.0.%d:80", i), Weight: 50}
	}
	table, err := NewTable(bs, nil, DefaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	pickRand := rand.NewPCG(cfg.seed, cfg.seed)
	world := rand.New(rand.NewPCG(cfg.seed+1, cfg.seed+2))
	end := start + int64(cfg.duration)
	res := simResult{perWindow: make([][]int, int(cfg.duration/time.Second))}
	for i := range res.perWindow {
		res.perWindow[i] = make([]int, cfg.backends)
	}
	var pending completions
	service := func(b *Backend, now int64) int64 {
		d := simFast
		if b.Index() == 0 && now >= start+int64(cfg.slowFrom) && now < start+int64(cfg.slowUntil) {
			d = simSlow
		}
		jitter := 0.9 + 0.2*world.Float64()
		return int64(float64(d) * jitter)
	}
	send := func(now int64, client int) {
		b, err := table.Picker(cfg.policy).Pick(pickRand, now)
		if err != nil {
			tb.Fatalf("pick at %s: %v", time.Duration(now-start), err)
		}
		b.Stats().Begin()
		res.perWindow[(now-start)/simWindow][b.Index()]++
		heap.Push(&pending, completion{at: now + service(b, now), start: now, b: b, client: client})
	}
	nextArrival := int64(-1)
	if cfg.openRate > 0 {
		nextArrival = start
	} else {
		for c := range cfg.clients {
			send(start, c)
		}
	}
	nextProbe, nextRebuild := start, start+int64(cfg.rebuildEvery)
	for {
		now := end
		if nextArrival >= 0 {
			now = min(now, nextArrival)
		}
		if len(pending) > 0 {
			now = min(now, pending[0].at)
		}
		if cfg.probeEvery > 0 {
			now = min(now, nextProbe)
		}
		if cfg.rebuildEvery > 0 {
			now = min(now, nextRebuild)
		}
		if now >= end {
			return res
		}
		switch {
		case cfg.probeEvery > 0 && now == nextProbe:
			for _, b := range table.Backends() {
				p := simProbe
				if cfg.slowProbe && b.Index() == 0 && service(&b, now) > int64(simFast*2) {
					p = simSlow
				}
				table.ObserveProbe(b.ID, p, now)
			}
			nextProbe += int64(cfg.probeEvery)
		case cfg.rebuildEvery > 0 && now == nextRebuild:
			if table, err = NewTable(bs, table, DefaultOptions()); err != nil {
				tb.Fatal(err)
			}
			nextRebuild += int64(cfg.rebuildEvery)
		case len(pending) > 0 && now == pending[0].at:
			c := heap.Pop(&pending).(completion)
			c.b.Stats().Done(time.Duration(c.at-c.start), 200, false, c.at)
			if cfg.openRate == 0 {
				send(now, c.client)
			}
		default:
			send(now, 0)
			gap := world.ExpFloat64() / cfg.openRate * float64(time.Second)
			nextArrival = now + max(1, int64(gap))
		}
	}
}

// TestP2CShedsSlowBackendAndRecovers is the proactive requirement: backend 0
// turns 10× slower at 2 s and heals at 8 s. Within a second of slowing down
// its share must be below 1 %; within 5 s of healing it must be back to most
// of its fair share (1/5), through probe latencies rather than random
// traffic.
func TestP2CShedsSlowBackendAndRecovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  simConfig
	}{
		{name: "open loop 1000 req/s", cfg: simConfig{openRate: 1000}},
		{name: "open loop 3000 req/s", cfg: simConfig{openRate: 3000}},
		{name: "closed loop 8 clients", cfg: simConfig{clients: 8}},
		{name: "closed loop 32 clients", cfg: simConfig{clients: 32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.policy = PolicyP2C
			cfg.backends = 5
			cfg.slowFrom, cfg.slowUntil = 2*time.Second, 8*time.Second
			cfg.duration = 15 * time.Second
			cfg.probeEvery = time.Second
			cfg.rebuildEvery = 2 * time.Second
			cfg.seed = 42
			res := simulate(t, cfg)
			t.Logf("\n%s", res)
			fair := 1.0 / float64(cfg.backends)
			if s := res.share(0, 0, 2); s < 0.8*fair {
				t.Errorf("healthy share before slowing = %.4f, want >= %.4f", s, 0.8*fair)
			}
			if s := res.share(0, 3, 8); s >= 0.01 {
				t.Errorf("slow share from 1 s after slowing = %.4f, want < 0.01", s)
			}
			if s := res.share(0, 13, 15); s < 0.75*fair {
				t.Errorf("share from 5 s after healing = %.4f, want >= %.4f", s, 0.75*fair)
			}
		})
	}
}

// TestSimulationDiscriminates shows that the simulation can fail: the
// latency-blind policies keep sending the slow backend its share; without
// probes p2c still recovers, through decay towards the table's median
// latency; a probe that is as slow as the backend keeps it out entirely.
func TestSimulationDiscriminates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		policy         Policy
		probeEvery     time.Duration
		slowProbe      bool
		minSlow        float64
		maxSlow        float64
		minHealedShare float64
	}{
		{name: "weighted keeps its share", policy: PolicyWeighted, minSlow: 0.15, maxSlow: 0.25, minHealedShare: 0.15},
		{name: "round-robin keeps its share", policy: PolicyRoundRobin, minSlow: 0.19, maxSlow: 0.21, minHealedShare: 0.19},
		{name: "least-conn keeps a share", policy: PolicyLeastConn, minSlow: 0.02, maxSlow: 0.25, minHealedShare: 0.15},
		{name: "p2c without probes", policy: PolicyP2C, maxSlow: 0.01, minHealedShare: 0.15},
		{name: "p2c with slow probes", policy: PolicyP2C, probeEvery: time.Second, slowProbe: true, maxSlow: 0.0005, minHealedShare: 0.15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := simulate(t, simConfig{
				policy: tt.policy, backends: 5, openRate: 1000,
				slowFrom: 2 * time.Second, slowUntil: 8 * time.Second, duration: 15 * time.Second,
				probeEvery: tt.probeEvery, slowProbe: tt.slowProbe, rebuildEvery: 2 * time.Second, seed: 7,
			})
			t.Logf("\n%s", res)
			if s := res.share(0, 3, 8); s < tt.minSlow || s > tt.maxSlow {
				t.Errorf("share while slow = %.4f, want in [%.4f, %.4f]", s, tt.minSlow, tt.maxSlow)
			}
			if s := res.share(0, 13, 15); s < tt.minHealedShare {
				t.Errorf("share from 5 s after healing = %.4f, want >= %.4f", s, tt.minHealedShare)
			}
		})
	}
}
