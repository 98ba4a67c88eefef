package collector

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/runtime"
)

// Docker actions that are lifecycle facts.
const (
	actionStart   = "start"
	actionDie     = "die"
	actionDestroy = "destroy"
	healthPrefix  = "health_status:"
)

// lifecycleFact is a fact to publish, with the subject it goes to.
type lifecycleFact struct {
	subject string
	event   events.Event[events.Lifecycle]
	queued  time.Time
}

// factFrom maps a Docker event of a managed container to the lifecycle fact
// it states, and reports false for an action that states none (create,
// stop, kill, pause, ...: they change nothing a consumer acts on, or are
// followed by one that does). address is where the container answers, if known.
//
// The id is the container's name, the event's time in Unix nanoseconds and
// the phase: the same Docker event, seen again when the collector re-reads
// the engine's history after a reconnect, gives the same id, and the
// stream drops the duplicate.
func factFrom(app, source string, ev runtime.Event, address string) (events.Event[events.Lifecycle], bool) {
	l := events.Lifecycle{App: app, Container: ev.Name, ContainerID: ev.ID, Address: address}
	if l.Container == "" {
		l.Container = ev.ID
	}
	switch {
	case ev.Action == actionStart:
		l.Phase = events.PhaseStarted
	case ev.Action == actionDie:
		l.Phase = events.PhaseDied
		if ev.ExitCode != "" {
			l.Reason = "exit code " + ev.ExitCode
		}
	case ev.Action == actionDestroy:
		l.Phase = events.PhaseRemoved
		l.Address = ""
	case strings.HasPrefix(ev.Action, healthPrefix):
		l.Phase = events.PhaseHealth
		l.Reason = strings.TrimSpace(strings.TrimPrefix(ev.Action, healthPrefix))
	default:
		return events.Event[events.Lifecycle]{}, false
	}
	id := fmt.Sprintf("%s-%d-%s", l.Container, ev.Time.UnixNano(), l.Phase)
	return events.New(id, ev.Time, source, l), true
}

// enqueueFact hands a fact to the publishing goroutine without blocking the
// event loop; when the queue is full (NATS down for long) the fact is
// dropped and counted.
func (s *Service) enqueueFact(ev events.Event[events.Lifecycle]) {
	subj, err := events.LifecycleSubject(ev.Data.App, ev.Data.Container)
	if err != nil {
		s.metrics.publishErrors.WithLabelValues(kindLifecycle).Inc()
		s.logger.Error("lifecycle subject", "container", ev.Data.Container, "err", err)
		return
	}
	select {
	case s.facts <- lifecycleFact{subject: subj, event: ev, queued: s.now()}:
	default:
		s.metrics.publishErrors.WithLabelValues(kindLifecycle).Inc()
		s.logger.Error("lifecycle queue full; fact dropped", "container", ev.Data.Container, "phase", ev.Data.Phase, "id", ev.ID)
	}
}

// publishFacts publishes lifecycle facts in order until ctx is done. A fact
// that fails is retried with backoff (its id makes a retry safe) for up to
// factRetryFor, then dropped: the facts behind it must not wait forever.
func (s *Service) publishFacts(ctx context.Context) {
	for {
		var f lifecycleFact
		select {
		case <-ctx.Done():
			return
		case f = <-s.facts:
		}
		for attempt := 1; ; attempt++ {
			pctx, cancel := context.WithTimeout(ctx, factPublishTimeout)
			err := publishEvent(pctx, s.pub, f.subject, f.event)
			cancel()
			if err == nil {
				s.metrics.published.WithLabelValues(kindLifecycle).Inc()
				s.logger.Debug("lifecycle fact", "container", f.event.Data.Container, "phase", f.event.Data.Phase, "reason", f.event.Data.Reason)
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.metrics.publishErrors.WithLabelValues(kindLifecycle).Inc()
			if s.now().Sub(f.queued) >= factRetryFor {
				s.logger.Error("lifecycle fact not published; dropped", "container", f.event.Data.Container,
					"phase", f.event.Data.Phase, "id", f.event.ID, "err", err)
				break
			}
			delay := backoff(s.cfg.RetryBase, s.cfg.RetryMax, attempt)
			s.logger.Warn("lifecycle fact not published; retrying", "container", f.event.Data.Container, "err", err, "retry_in", delay)
			if !sleep(ctx, delay) {
				return
			}
		}
	}
}

// publishEvent encodes and publishes one event with its id as the dedupe
// id; ctx bounds the wait for the ack.
func publishEvent[T events.Payload](ctx context.Context, pub Publisher, subject string, ev events.Event[T]) error {
	data, err := events.Encode(ev)
	if err != nil {
		return fmt.Errorf("publish on %s: %w", subject, err)
	}
	if err := pub.Publish(ctx, subject, ev.ID, data); err != nil {
		return fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	return nil
}
