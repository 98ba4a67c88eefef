package bus

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// health is what the Bus knows about its connection.
type health struct {
	mu        sync.Mutex
	downSince time.Time
	lastErr   error
	closed    bool
}

// up marks the connection up and returns since when it had been down.
func (h *health) up() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	since := h.downSince
	h.downSince, h.lastErr = time.Time{}, nil
	return since
}

// down marks the connection down since now unless it already was; err, if
// not nil, becomes the last error.
func (h *health) down(now time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downSince.IsZero() {
		h.downSince = now
	}
	if err != nil {
		h.lastErr = err
	}
}

func (h *health) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
}

// err describes the outage. The disconnect callback runs asynchronously: when
// it has not run yet, the outage is taken to start now, with the
// connection's own last error.
func (h *health) err(url string, closed bool, now time.Time, connErr error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if closed || h.closed {
		return fmt.Errorf("nats at %s: %w", url, ErrClosed)
	}
	since, last := h.downSince, h.lastErr
	if since.IsZero() {
		since = now
	}
	if last == nil {
		last = connErr
	}
	if last == nil {
		last = errors.New("none reported")
	}
	return fmt.Errorf("nats at %s: %w: disconnected since %s (%s ago): last error: %w",
		url, ErrUnavailable, since.Format(time.RFC3339), now.Sub(since).Round(time.Second), last)
}
