package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// benchApp is the APP_IDENTIFIER of the rb proxy under test.
const benchApp = "bench"

// queued is one backend as the bench lists it in the queue event.
type queued struct {
	addr   string
	weight float64
}

// startRB runs `rb -target=nats,proxy` (embedded NATS, no collector, no
// queue builder) with policy, publishes one queue event listing the
// backends as ACTIVE with their weights and probe latencies unknown (0), and
// waits until the proxy answers through a backend. (Its /readyz also
// reports Redis, which the bench does not run by default, so it is not the
// criterion here.)
func (e *env) startRB(ctx context.Context, name, policy string, backends []queued) (*running, error) {
	r, err := e.startRBOnce(ctx, name, policy, backends)
	if err == nil || ctx.Err() != nil {
		return r, err
	}
	// A port taken between the check and the listen is the likely cause:
	// one more try on other ports.
	e.log.Warn("rb did not start; trying once more on other ports", "target", name, "err", err)
	return e.startRBOnce(ctx, name, policy, backends)
}

func (e *env) startRBOnce(ctx context.Context, name, policy string, backends []queued) (*running, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	adminAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	natsAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	dir, err := os.MkdirTemp(e.dir, "rb-")
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	env := append(baseEnv(),
		"APP_IDENTIFIER="+benchApp,
		"RB_LOG_LEVEL=warn",
		"RB_ADMIN_ADDR="+adminAddr,
		"RB_NATS_LISTEN="+natsAddr,
		"RB_NATS_STORE_DIR="+filepath.Join(dir, "nats"),
		"RB_NATS_MONITOR_PORT=0",
		fmt.Sprintf("HOST_PORT_HTTP_BALANCER=%d", ports[0]),
		"RB_BALANCE_POLICY="+policy,
		"RB_SLOW_START=0",
		"CACHE_CAPACITY=0",
		"RB_REDIS_URL="+e.redisURL,
	)
	if e.cfg.rbCPUProfile != "" {
		prof, err := filepath.Abs(filepath.Join(e.cfg.rbCPUProfile, strings.NewReplacer(" ", "_", "{", "", "}", "", ",", "-", "(", "", ")", "").Replace(name)+".pprof"))
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		env = append(env, "RB_CPUPROFILE="+prof)
	}
	p, err := startProc(name, e.cfg.proxyCPUs, dir, env, e.cfg.rb, "-target=nats,proxy")
	if err != nil {
		return nil, err
	}
	e.procs.add(p)
	fail := func(err error) (*running, error) {
		_ = e.procs.stop(p)
		return nil, err
	}
	if err := p.waitDial(ctx, natsAddr, 20*time.Second); err != nil {
		return fail(err)
	}
	if err := e.publishQueue(ctx, "nats://"+natsAddr, backends); err != nil {
		return fail(fmt.Errorf("start %s: %w", name, err))
	}
	url := "http://" + proxyAddr + "/"
	answers := func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if err := p.waitFor(ctx, 10*time.Second, "answer 200 through a backend", answers); err != nil {
		return fail(err)
	}
	return &running{name: name, url: url, p: p, admin: adminAddr, nats: "nats://" + natsAddr}, nil
}

// publishQueue publishes the app's queue once on rb.queue.<app> (stream
// RB_QUEUE), as the queue builder would, without probe latencies: the bench
// runs no collector.
func (e *env) publishQueue(ctx context.Context, natsURL string, backends []queued) error {
	b, err := bus.Connect(ctx, bus.Options{URL: natsURL, Name: "proxybench"}, e.log.With("component", "bus"))
	if err != nil {
		return fmt.Errorf("publish queue: %w", err)
	}
	defer b.Close()
	items := make([]events.QueueItem, len(backends))
	for i, q := range backends {
		items[i] = events.QueueItem{
			Container: fmt.Sprintf("bench-b%d", i),
			Address:   q.addr,
			Score:     q.weight,
			Weight:    q.weight,
			Category:  events.CategoryLU,
			State:     events.StateActive,
		}
	}
	subject, err := events.QueueSubject(benchApp)
	if err != nil {
		return fmt.Errorf("publish queue: %w", err)
	}
	now := time.Now()
	ev := events.New(fmt.Sprintf("proxybench-%d", now.UnixNano()), now, "proxybench/"+e.host, events.QueueSnapshot{
		App: benchApp, Generation: 1, Items: items,
	})
	// The nats target creates the streams right after its server listens:
	// until then a publish finds no stream, so it is retried for a while.
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := bus.PublishEvent(pctx, b, subject, ev)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("publish queue: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
