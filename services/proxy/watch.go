package proxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/balance"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/store"
)

// Retry delays of the background reads (Redis at a cold start, watches).
const (
	retryBase = 500 * time.Millisecond
	retryMax  = 10 * time.Second
)

// coldStart serves from Redis until NATS speaks: for each app it reads the
// runtime config and the queue snapshot the queue builder keeps, retrying
// while Redis is unreachable and the app has no route from NATS yet.
func (s *Service) coldStart(ctx context.Context) {
	st := s.opts.Store
	if st == nil {
		return
	}
	var wg sync.WaitGroup
	for _, name := range s.appNames {
		a := s.apps[name]
		wg.Go(func() {
			s.loadConfig(ctx, a)
			for delay := retryBase; ctx.Err() == nil; delay = min(2*delay, retryMax) {
				if s.loadSnapshot(ctx, a) {
					return
				}
				a.mu.Lock()
				done := a.fromNATS
				a.mu.Unlock()
				if done {
					return
				}
				sleep(ctx, delay)
			}
		})
	}
	wg.Wait()
}

// loadSnapshot applies an app's queue snapshot from Redis unless a queue
// came from NATS meanwhile. It reports false when Redis should be asked
// again (unreachable).
func (s *Service) loadSnapshot(ctx context.Context, a *appState) bool {
	snap, err := s.opts.Store.GetSnapshot(ctx, SnapshotKind, a.name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.log.Info("no queue snapshot in Redis; waiting for rb.queue."+a.name, "app", a.name)
		return true
	case errors.Is(err, store.ErrStale):
		// The store's last read: still the best there is.
	case err != nil:
		s.warnOnce("snapshot-unavailable/"+a.name, "queue snapshot not read from Redis; retrying until NATS or Redis answers", "app", a.name, "err", err)
		return false
	}
	ev, err := events.Decode[events.QueueSnapshot](snap.Data)
	if err != nil || ev.Data.App != a.name {
		s.log.Warn("queue snapshot in Redis ignored", "app", a.name, "snapshot_app", ev.Data.App, "err", err)
		return true
	}
	a.mu.Lock()
	fromNATS := a.fromNATS
	a.mu.Unlock()
	if fromNATS {
		return true
	}
	if err := s.apply(a, ev.Data, false); err != nil {
		s.log.Warn("queue snapshot in Redis ignored", "app", a.name, "err", err)
		return true
	}
	s.log.Info("serving the queue snapshot from Redis until NATS delivers the queue", "app", a.name, "generation", ev.Data.Generation, "stored_at", snap.At)
	return true
}

// loadConfig applies the app's runtime config from Redis, if any.
func (s *Service) loadConfig(ctx context.Context, a *appState) {
	ac, err := s.opts.Store.GetConfig(ctx, a.name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return
	case errors.Is(err, store.ErrStale):
	case err != nil:
		s.warnOnce("config-unavailable/"+a.name, "runtime config not read from Redis; using the process's own until rb.config."+a.name+" says otherwise", "app", a.name, "err", err)
		return
	}
	if ac.Version > 0 {
		s.applyConfig(a, ac.Version, ac.Values, "redis")
	}
}

// follow connects to NATS (blocking until it can) and then follows the
// apps' queues and runtime config until ctx is done.
func (s *Service) follow(ctx context.Context) {
	if s.opts.Connect == nil {
		return
	}
	b, err := s.opts.Connect(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("no NATS connection: the proxy serves without queue updates", "err", err)
		}
		return
	}
	s.bus.Store(&busRef{b})
	var queues, configs []string
	for _, name := range s.appNames {
		q, err1 := events.QueueSubject(name)
		c, err2 := events.ConfigSubject(name)
		if err := errors.Join(err1, err2); err != nil {
			s.log.Error("app cannot be followed on NATS", "app", name, "err", err)
			continue
		}
		queues, configs = append(queues, q), append(configs, c)
	}
	if len(queues) == 0 {
		return
	}
	started := s.now()
	var wg sync.WaitGroup
	wg.Go(func() {
		s.watchLoop(ctx, events.StreamQueue, func() error {
			return b.Watch(ctx, events.StreamQueue, queues, true, s.onQueue)
		})
	})
	wg.Go(func() {
		s.watchLoop(ctx, events.StreamDecisions, func() error {
			return b.Watch(ctx, events.StreamDecisions, configs, true, func(m bus.Msg) { s.onConfig(m, started) })
		})
	})
	wg.Wait()
}

// watchLoop runs a watch again after a failure (the bus's own watch rides
// out NATS outages; this covers a refused consumer), until ctx is done.
func (s *Service) watchLoop(ctx context.Context, stream string, run func() error) {
	for delay := retryBase; ; delay = min(2*delay, retryMax) {
		err := run()
		if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
			return
		}
		s.log.Warn("watch failed; retrying", "stream", stream, "err", err, "retry_in", delay)
		sleep(ctx, delay)
	}
}

// onQueue applies a queue event from NATS.
func (s *Service) onQueue(m bus.Msg) {
	ev, err := events.Decode[events.QueueSnapshot](m.Data)
	if err != nil {
		s.m.queueEvents.WithLabelValues("invalid").Inc()
		s.warnOnce("queue-invalid", "queue event ignored (logged once)", "subject", m.Subject, "seq", m.Sequence, "err", err)
		return
	}
	a := s.apps[ev.Data.App]
	if a == nil {
		s.m.queueEvents.WithLabelValues("ignored").Inc()
		s.warnOnce("queue-app/"+m.Subject, "queue event for another app ignored", "subject", m.Subject, "app", ev.Data.App)
		return
	}
	if err := s.apply(a, ev.Data, true); err != nil {
		s.m.queueEvents.WithLabelValues("invalid").Inc()
		s.log.Warn("queue event ignored", "subject", m.Subject, "seq", m.Sequence, "err", err)
		return
	}
	s.m.queueEvents.WithLabelValues("applied").Inc()
}

// onConfig applies an app's runtime config change. The last event kept in
// the stream comes first and is applied only when newer than what Redis
// gave; later ones always are.
func (s *Service) onConfig(m bus.Msg, started time.Time) {
	ev, err := events.Decode[events.ConfigChanged](m.Data)
	if err != nil {
		s.warnOnce("config-invalid", "config event ignored (logged once)", "subject", m.Subject, "seq", m.Sequence, "err", err)
		return
	}
	a := s.apps[ev.Data.App]
	if a == nil {
		return
	}
	a.mu.Lock()
	current := a.cfgVersion
	a.mu.Unlock()
	if ev.Data.Version <= current && m.Time.Before(started) {
		return
	}
	s.applyConfig(a, ev.Data.Version, ev.Data.Values, "rb.config")
}

// applyConfig sets the app's policy from its runtime values (the process's
// own config with them applied); invalid values are refused as a whole.
func (s *Service) applyConfig(a *appState, version int64, values map[string]string, from string) {
	cfg, err := s.base.WithRuntime(values)
	var p balance.Policy
	if err == nil {
		p, err = balance.ParsePolicy(cfg.Proxy.Policy)
	}
	if err != nil {
		s.m.configRefused.Inc()
		s.log.Warn("runtime config refused; keeping the current policy", "app", a.name, "version", version, "from", from, "err", err)
		return
	}
	a.mu.Lock()
	a.cfgVersion = max(a.cfgVersion, version)
	a.mu.Unlock()
	if old := balance.Policy(a.policy.Swap(uint32(p))); old != p {
		s.log.Info("balance policy changed", "app", a.name, "from_policy", old.String(), "policy", p.String(), "version", version, "source", from)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
