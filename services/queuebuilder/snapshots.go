package queuebuilder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rustybalancer/rb/pkg/store"
)

// SnapshotKind is the store's snapshot kind of the queue: the proxy reads
// store.GetSnapshot(ctx, SnapshotKind, app) when it starts without NATS.
const SnapshotKind = "queue"

// Retry delays of the Redis writes while Redis is unreachable.
const (
	snapshotRetryBase = 250 * time.Millisecond
	snapshotRetryMax  = 5 * time.Second
)

// SnapshotStore is the part of the Redis store the queue builder uses;
// *store.Store implements it. Errors wrapping store.ErrUnavailable are
// retried; others drop the write.
type SnapshotStore interface {
	GetSnapshot(ctx context.Context, kind, app string) (store.Snapshot, error)
	PutSnapshot(ctx context.Context, kind, app string, version uint64, data []byte) (bool, error)
}

var _ SnapshotStore = (*store.Store)(nil)

// pendingSnap is the newest snapshot of one app not yet written.
type pendingSnap struct {
	gen  uint64
	data []byte
}

// snapshotWriter writes the last published queue of each app to Redis, off
// the publishing path: only the newest snapshot of an app is kept, and while
// Redis is down the writes are retried with backoff.
type snapshotWriter struct {
	store  SnapshotStore
	logger *slog.Logger
	m      *metrics

	mu        sync.Mutex
	pending   map[string]pendingSnap
	downSince time.Time // first failed attempt of the current outage
	lastErr   error
	refused   map[string]bool // apps whose write failed for good, logged once
	wake      chan struct{}
}

func newSnapshotWriter(st SnapshotStore, logger *slog.Logger, m *metrics) *snapshotWriter {
	return &snapshotWriter{store: st, logger: logger, m: m, pending: map[string]pendingSnap{}, refused: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// put queues data as the snapshot of app at generation gen, replacing an
// older one still waiting.
func (w *snapshotWriter) put(app string, gen uint64, data []byte) {
	w.mu.Lock()
	if cur, ok := w.pending[app]; !ok || cur.gen < gen {
		w.pending[app] = pendingSnap{gen: gen, data: data}
	}
	w.m.snapsPending.Set(float64(len(w.pending)))
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// health reports the snapshots Redis is behind on, while it cannot be reached.
func (w *snapshotWriter) health() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.downSince.IsZero() || len(w.pending) == 0 {
		return nil
	}
	return fmt.Errorf("queue snapshot of %d app(s) not written to redis since %s (retrying; NATS publishing goes on): %w",
		len(w.pending), w.downSince.Format(time.RFC3339), w.lastErr)
}

// run writes until ctx is done.
func (w *snapshotWriter) run(ctx context.Context) {
	failures := 0
	for {
		if w.writeAll(ctx) {
			failures = 0
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			continue
		}
		failures++
		t := time.NewTimer(retryDelay(snapshotRetryBase, snapshotRetryMax, failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// writeAll writes every pending snapshot, and reports false when Redis was
// unreachable (what could not be written stays pending).
func (w *snapshotWriter) writeAll(ctx context.Context) bool {
	w.mu.Lock()
	apps := make([]string, 0, len(w.pending))
	for app := range w.pending {
		apps = append(apps, app)
	}
	w.mu.Unlock()
	slices.Sort(apps)
	for _, app := range apps {
		w.mu.Lock()
		p, ok := w.pending[app]
		w.mu.Unlock()
		if !ok {
			continue
		}
		stored, err := w.store.PutSnapshot(ctx, SnapshotKind, app, p.gen, p.data)
		if ctx.Err() != nil {
			return true
		}
		if errors.Is(err, store.ErrUnavailable) {
			w.mu.Lock()
			if w.downSince.IsZero() {
				w.downSince = time.Now()
				w.logger.Warn("redis unavailable: queue snapshots will be written when it is back", "app", app, "generation", p.gen, "err", err)
			}
			w.lastErr = err
			w.mu.Unlock()
			w.m.snapshots.WithLabelValues("unavailable").Inc()
			return false
		}
		switch {
		case err != nil:
			// Not an outage (an app name Redis keys cannot carry): retrying
			// cannot help, and every publish of the app would fail the same.
			w.m.snapshots.WithLabelValues("error").Inc()
			w.mu.Lock()
			first := !w.refused[app]
			w.refused[app] = true
			w.mu.Unlock()
			if first {
				w.logger.Error("queue snapshot not written to redis (logged once per app)", "app", app, "generation", p.gen, "err", err)
			}
		case !stored:
			w.m.snapshots.WithLabelValues("stale").Inc()
			w.logger.Warn("redis holds a newer queue snapshot; this one was not written", "app", app, "generation", p.gen)
		default:
			w.m.snapshots.WithLabelValues("ok").Inc()
		}
		w.mu.Lock()
		if cur := w.pending[app]; cur.gen == p.gen {
			delete(w.pending, app)
		}
		if err == nil && !w.downSince.IsZero() {
			w.logger.Info("redis reachable again: queue snapshots written", "down_for", time.Since(w.downSince).Round(time.Millisecond))
			w.downSince, w.lastErr = time.Time{}, nil
		}
		w.m.snapsPending.Set(float64(len(w.pending)))
		w.mu.Unlock()
	}
	return true
}

// retryDelay is base doubled per failure after the first, at most max.
func retryDelay(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
