package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// health is what the store last learned about Redis, from Run's checks and
// from every operation.
type health struct {
	mu        sync.Mutex
	checked   bool // anything learned yet
	ok        bool
	downSince time.Time
	lastErr   error
}

func (h *health) up() {
	h.mu.Lock()
	h.checked, h.ok, h.downSince, h.lastErr = true, true, time.Time{}, nil
	h.mu.Unlock()
}

func (h *health) down(now time.Time, err error) {
	h.mu.Lock()
	if h.ok || !h.checked {
		h.downSince = now
	}
	h.checked, h.ok, h.lastErr = true, false, err
	h.mu.Unlock()
}

// Health returns nil when the last contact with Redis (a health check or any
// operation) succeeded, and otherwise an error wrapping ErrUnavailable that
// says since when Redis has been unreachable and why. It does no I/O.
func (s *Store) Health() error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	switch {
	case !s.health.checked:
		return fmt.Errorf("redis at %s: %w: not checked yet", s.addr, ErrUnavailable)
	case s.health.ok:
		return nil
	default:
		return fmt.Errorf("redis at %s: %w: unreachable since %s: %w",
			s.addr, ErrUnavailable, s.health.downSince.Format(time.RFC3339), s.health.lastErr)
	}
}

// Run checks Redis with PING until ctx is cancelled, then returns nil. While
// Redis is up it checks every CheckInterval. When a check fails it retries
// after MinBackoff, doubling the delay after each failure up to MaxBackoff, and
// logs one warning per failed check (with the error and the next delay); the
// first successful check after that logs the recovery once. Run is meant to
// be called once per Store.
func (s *Store) Run(ctx context.Context) error {
	var (
		downSince time.Time // zero while up
		failures  int
		backoff   = s.opts.MinBackoff
		timer     = time.NewTimer(0)
	)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}

		err := s.ping(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			if !downSince.IsZero() {
				s.logger.Info("redis reachable again",
					"addr", s.addr, "down_for", s.opts.Now().Sub(downSince), "failed_checks", failures)
			}
			downSince, failures, backoff = time.Time{}, 0, s.opts.MinBackoff
			timer.Reset(s.opts.CheckInterval)
			continue
		}

		if downSince.IsZero() {
			downSince = s.opts.Now()
		}
		failures++
		delay := backoff
		s.logger.Warn("redis unreachable",
			"addr", s.addr, "err", err, "failed_checks", failures, "retry_in", delay,
			"down_since", downSince)
		backoff = min(2*backoff, s.opts.MaxBackoff)
		timer.Reset(delay)
	}
}

// ping runs one PING bounded by OpTimeout and records the outcome.
func (s *Store) ping(ctx context.Context) error {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.result(ctx, s.rdb.Ping(octx).Err()); err != nil {
		return fmt.Errorf("ping redis at %s: %w", s.addr, err)
	}
	return nil
}
