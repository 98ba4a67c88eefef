package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/runtime"
)

// errNotProbed is the probe error of a container whose first probe has not
// finished yet.
var errNotProbed = errors.New("not probed yet")

// errNoPort is the probe error when no worker port is configured.
var errNoPort = errors.New("not probed: TARGET_PORT is not set")

// tracked is one running container the collector follows: its stats stream
// and its probe loop run in their own goroutines until cancel.
type tracked struct {
	id     string
	cancel context.CancelFunc

	mu     sync.Mutex
	c      runtime.Container
	meter  meter
	probe  ProbeResult
	probed bool
}

func (t *tracked) container() runtime.Container {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c
}

func (t *tracked) update(c runtime.Container) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.c = c
}

func (t *tracked) observe(s runtime.StatsSample, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.meter.observe(s, at)
}

func (t *tracked) setProbe(r ProbeResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.probe, t.probed = r, true
}

// sample builds the container's Sample of the tick at now.
func (t *tracked) sample(app, network string, port int, now time.Time, staleAfter time.Duration) events.Sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.meter.tick(now, staleAfter, t.c.CPULimit, t.c.MemLimit)
	s := events.Sample{
		App:           app,
		Container:     t.c.Name,
		ContainerID:   t.c.ID,
		State:         t.c.State,
		WindowSeconds: m.Window.Seconds(),
		CPUPercent:    m.CPU,
		CPULimit:      t.c.CPULimit,
		MemUsage:      m.MemUsage,
		MemLimit:      m.MemLimit,
		NetRxBps:      m.RxBps,
		NetTxBps:      m.TxBps,
	}
	if addr, ok := t.c.Address(network, port); ok && port > 0 {
		s.Address = addr
	}
	switch {
	case !t.probed:
		s.ProbeError = errNotProbed.Error()
	case t.probe.OK:
		s.ProbeOK = true
		s.ProbeSeconds = t.probe.Latency.Seconds()
	default:
		s.ProbeError = t.probe.Err.Error()
	}
	return s
}

// probeLoop probes the container once at once, then once per interval (a
// probe that outlasts the interval delays the next one, never overlaps it).
func (s *Service) probeLoop(ctx context.Context, t *tracked) {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		c := t.container()
		var res ProbeResult
		addr, ok := c.Address(s.cfg.Network, s.cfg.Port)
		switch {
		case s.cfg.Port == 0:
			res = ProbeResult{Err: errNoPort}
		case ok:
			res = s.prober.Probe(ctx, addr)
		default:
			res = ProbeResult{Err: fmt.Errorf("no address for port %d: not on network %q and not published", s.cfg.Port, s.cfg.Network)}
		}
		if ctx.Err() != nil {
			return
		}
		t.setProbe(res)
		switch {
		case res.OK:
			s.metrics.probeSeconds.Observe(res.Latency.Seconds())
		case s.cfg.Port > 0:
			s.metrics.probeFailures.Inc()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// statsLoop follows the container's stats stream, reopening it with backoff
// when it ends while the container is still followed (an engine restart).
func (s *Service) statsLoop(ctx context.Context, t *tracked) {
	for attempt := 1; ; attempt++ {
		opened := s.now()
		samples, errc := s.rt.Stats(ctx, t.id)
		for smp := range samples {
			t.observe(smp, s.now())
		}
		err := <-errc
		if ctx.Err() != nil {
			return
		}
		if s.now().Sub(opened) >= s.cfg.RetryMax {
			attempt = 1 // it ran for a good while: start the backoff afresh
		}
		delay := backoff(s.cfg.RetryBase, s.cfg.RetryMax, attempt)
		s.logger.Debug("stats stream ended; reopening", "container", t.container().Name, "err", err, "retry_in", delay)
		if !sleep(ctx, delay) {
			return
		}
	}
}

// backoff is the delay before attempt n (from 1): base, doubled per attempt,
// at most max.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
