package bus

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHealthErr(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	eof := errors.New("EOF")
	tests := []struct {
		name      string
		setup     func(*health)
		closed    bool
		connErr   error
		wantIs    error
		wantParts []string
	}{
		{name: "down, callback ran", setup: func(h *health) { h.down(now.Add(-90*time.Second), eof) },
			wantIs: ErrUnavailable, wantParts: []string{"disconnected since 2026-01-02T03:02:35Z (1m30s ago)", "last error: EOF"}},
		{name: "reconnect attempt failed later", setup: func(h *health) {
			h.down(now.Add(-time.Minute), eof)
			h.down(now, errors.New("connection refused"))
		}, wantIs: ErrUnavailable, wantParts: []string{"since 2026-01-02T03:03:05Z", "last error: connection refused"}},
		{name: "callback not run yet", setup: func(*health) {}, connErr: eof,
			wantIs: ErrUnavailable, wantParts: []string{"disconnected since 2026-01-02T03:04:05Z (0s ago)", "last error: EOF"}},
		{name: "nothing known", setup: func(*health) {},
			wantIs: ErrUnavailable, wantParts: []string{"last error: none reported"}},
		{name: "closed connection", setup: func(*health) {}, closed: true, wantIs: ErrClosed},
		{name: "closed by callback", setup: func(h *health) { h.close() }, wantIs: ErrClosed},
		{name: "up again", setup: func(h *health) { h.down(now.Add(-time.Minute), eof); h.up() }, connErr: eof,
			wantIs: ErrUnavailable, wantParts: []string{"(0s ago)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h health
			tt.setup(&h)
			err := h.err("nats://x:4222", tt.closed, now, tt.connErr)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
			for _, p := range tt.wantParts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("err = %q, want it to contain %q", err, p)
				}
			}
		})
	}
}
