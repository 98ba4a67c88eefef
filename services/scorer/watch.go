package scorer

import (
	"context"
	"errors"
	"fmt"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/store"
)

// loadRuntimeConfig applies the app's runtime config from Redis, if any. A
// Redis that is down leaves the process's own config; a stale value (the
// store's last read) is used, with a warning.
func (s *Service) loadRuntimeConfig(ctx context.Context) {
	ac, err := s.store.GetConfig(ctx, s.app)
	switch {
	case errors.Is(err, store.ErrStale):
		s.log.Warn("redis unavailable, using the last runtime config read", "version", ac.Version, "err", err)
	case err != nil:
		s.log.Warn("runtime config not read, using the process's own until rb.config."+s.app+" says otherwise", "err", err)
		return
	}
	if ac.Version > 0 {
		s.applyConfig(ac.Version, ac.Values, "redis")
	}
}

// watchConfig follows rb.config.<app>. The last event kept in the stream
// comes first; it is applied only if newer than what Redis gave (it may be
// the same change). Events published after the watch started are applied
// whatever their version: they are the latest word, even after Redis lost
// its counter. (The stream's clock is compared with ours: with a skew, an
// event published within it of the start is applied only if newer, as the
// replayed one.)
func (s *Service) watchConfig(ctx context.Context) error {
	started := s.now()
	err := s.bus.Watch(ctx, events.StreamDecisions, []string{s.configSubject}, true, func(m bus.Msg) {
		ev, err := events.Decode[events.ConfigChanged](m.Data)
		if err != nil {
			s.m.badEvents.WithLabelValues("config_changed").Inc()
			s.logOnce("config/"+rejectKind(err), "config event ignored", "subject", m.Subject, "seq", m.Sequence, "err", err)
			return
		}
		if ev.Data.App != s.app {
			return
		}
		s.mu.Lock()
		current := s.cfgVersion
		s.mu.Unlock()
		if ev.Data.Version <= current && m.Time.Before(started) {
			return
		}
		s.applyConfig(ev.Data.Version, ev.Data.Values, "rb.config")
	})
	if err != nil {
		return fmt.Errorf("watch %s: %w", s.configSubject, err)
	}
	return nil
}

// applyConfig switches to the score parameters of the process's config with
// values (the app's runtime overrides) applied; invalid values are logged and
// the current parameters kept. The next Sample is scored with them.
func (s *Service) applyConfig(version int64, values map[string]string, from string) {
	cfg, err := s.base.WithRuntime(values)
	p := Params(cfg)
	if err == nil {
		err = p.Validate()
	}
	if err != nil {
		s.m.configRefused.Inc()
		s.log.Warn("runtime config refused, keeping the current score parameters", "version", version, "from", from, "err", err)
		return
	}
	s.mu.Lock()
	old := s.params
	s.params, s.cfgVersion = p, version
	s.mu.Unlock()
	s.m.configVersion.Set(float64(version))
	if old != p {
		s.log.Info("score parameters changed", "version", version, "from", from)
	}
}

// watchLifecycle follows rb.lifecycle.<app>.> from now on and forgets the
// state of a container that was removed or died. Facts missed while the
// scorer was down are covered by the idle timeout.
func (s *Service) watchLifecycle(ctx context.Context) error {
	err := s.bus.Watch(ctx, events.StreamDecisions, []string{s.lifeFilter}, false, func(m bus.Msg) {
		ev, err := events.Decode[events.Lifecycle](m.Data)
		if err != nil {
			s.m.badEvents.WithLabelValues("lifecycle").Inc()
			s.logOnce("lifecycle/"+rejectKind(err), "lifecycle event ignored", "subject", m.Subject, "seq", m.Sequence, "err", err)
			return
		}
		if ev.Data.App != s.app {
			return
		}
		switch ev.Data.Phase {
		case events.PhaseRemoved, events.PhaseDied:
			s.forget(ev.Data.Container, string(ev.Data.Phase))
		}
	})
	if err != nil {
		return fmt.Errorf("watch %s: %w", s.lifeFilter, err)
	}
	return nil
}
