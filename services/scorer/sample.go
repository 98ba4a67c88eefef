package scorer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// errWrongSubject marks a Sample whose subject does not name its own app and
// container: a producer bug, dead-lettered like a malformed Sample.
var errWrongSubject = errors.New("sample does not match its subject")

// handleSample is the consumer's handler: decode, apply, publish (without
// waiting for the ack: see publish.go). A Sample that cannot be scored is
// returned as a permanent error (dead letter queue); a Score that could not
// be sent as a plain error (redelivery, which sends the same Score again).
func (s *Service) handleSample(ctx context.Context, m bus.Msg) error {
	s.m.samples.Inc()
	ev, err := s.decodeSample(m)
	if err != nil {
		kind := rejectKind(err)
		s.m.rejected.WithLabelValues(kind).Inc()
		s.logOnce("sample/"+kind, "sample rejected, moved to the dead letter queue",
			"subject", m.Subject, "seq", m.Sequence, "err", err)
		return err
	}
	out, publish := s.apply(m.Sequence, m.Time, ev)
	if !publish {
		s.m.skipped.Inc()
		return nil
	}
	if err := s.publishAsync(ctx, ev.Data.Container, m.Sequence, m.Time, out); err != nil {
		s.m.publishErrors.Inc()
		return fmt.Errorf("score of sample %s: %w", ev.ID, err)
	}
	return nil
}

// decodeSample decodes m and checks that it belongs on its subject; errors
// wrap bus.ErrPermanent.
func (s *Service) decodeSample(m bus.Msg) (events.Event[events.Sample], error) {
	ev, err := bus.DecodeEvent[events.Sample](m)
	if err != nil {
		return ev, err
	}
	toks, err := events.Tokens(events.PrefixStats, m.Subject)
	if err != nil || len(toks) != 2 || toks[0] != ev.Data.App || toks[1] != ev.Data.Container || ev.Data.App != s.app {
		return ev, fmt.Errorf("%w: %w: app %q container %q on %s (this scorer: app %q)",
			bus.ErrPermanent, errWrongSubject, ev.Data.App, ev.Data.Container, m.Subject, s.app)
	}
	return ev, nil
}

// rejectKind names why a Sample was rejected, for the metric and the
// once-per-kind log.
func rejectKind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{events.ErrMalformed, "malformed"},
		{events.ErrSchema, "schema"},
		{events.ErrWrongKind, "wrong_kind"},
		{events.ErrMissingMeta, "missing_meta"},
		{events.ErrInvalid, "invalid"},
		{errWrongSubject, "wrong_subject"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

// apply scores the Sample stored at seq (at stored) unless its container has
// applied it already, and returns the Score event to publish. For a Sample
// applied before it returns the Score again when that one may not have been
// published, else false.
func (s *Service) apply(seq uint64, stored time.Time, ev events.Event[events.Sample]) (events.Event[events.Score], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containerLocked(ev.Data.Container)
	if seq <= c.seq {
		if seq == c.seq && c.hasPending {
			return c.pending, true
		}
		return events.Event[events.Score]{}, false
	}
	sc := c.st.Update(s.params, ev.Data)
	sc.SampleID = ev.ID
	out := events.New(ScoreID(ev.ID), ev.Time, s.source, sc)
	c.pending, c.hasPending = out, true
	s.appliedLocked(c, seq, stored, ev.Time)
	return out, true
}

// applySilently applies a Sample read while restoring: its Score was
// published by an earlier run (or is not wanted), so it is not published.
func (s *Service) applySilently(seq uint64, stored time.Time, ev events.Event[events.Sample]) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containerLocked(ev.Data.Container)
	if seq <= c.seq {
		return false
	}
	c.st.Update(s.params, ev.Data)
	c.hasPending = false
	s.appliedLocked(c, seq, stored, ev.Time)
	return true
}

func (s *Service) containerLocked(name string) *container {
	c := s.ctrs[name]
	if c == nil {
		c = &container{}
		s.ctrs[name] = c
		s.m.containers.Set(float64(len(s.ctrs)))
	}
	return c
}

func (s *Service) appliedLocked(c *container, seq uint64, stored, at time.Time) {
	c.seq, c.last = seq, at
	if seq > s.applied {
		s.applied, s.appliedTime = seq, stored
	}
	if at.After(s.newest) {
		s.newest = at
	}
	s.dirty = true
}

// forget drops a container's state.
func (s *Service) forget(name, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ctrs[name]; !ok {
		return
	}
	delete(s.ctrs, name)
	s.dirty = true
	s.m.containers.Set(float64(len(s.ctrs)))
	s.m.forgotten.WithLabelValues(reason).Inc()
	s.log.Debug("container state forgotten", "container", name, "reason", reason)
}

// forgetIdle drops the containers that have sent no Sample for idleTimeout,
// measured against the newest Sample event time (not the clock: a scorer
// catching up on old Samples must not forget what it is reading).
func (s *Service) forgetIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, c := range s.ctrs {
		if s.newest.Sub(c.last) > s.idleTimeout {
			delete(s.ctrs, name)
			n++
		}
	}
	if n > 0 {
		s.dirty = true
		s.m.containers.Set(float64(len(s.ctrs)))
		s.m.forgotten.WithLabelValues("idle").Add(float64(n))
		s.log.Debug("idle container states forgotten", "count", n, "idle_timeout", s.idleTimeout)
	}
}
