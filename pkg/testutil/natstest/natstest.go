// Package natstest runs real NATS JetStream servers in the test process.
//
// Each server listens on a free loopback port and keeps its streams in
// tb.TempDir(); tb.Cleanup shuts it down. Restart brings a server back on the
// same port and store, which lets a test watch clients ride out an outage.
package natstest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// Start starts an embedded JetStream server on a free loopback port with a
// temporary store and returns its client URL. The server is shut down when
// the test ends.
func Start(tb testing.TB) (string, *bus.Server) {
	tb.Helper()
	return StartWith(tb, bus.Options{})
}

// StartWith is Start with options, e.g. credentials the server requires.
// Empty Listen and StoreDir default to a free loopback port and tb.TempDir().
func StartWith(tb testing.TB, opts bus.Options) (string, *bus.Server) {
	tb.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:-1"
	}
	if opts.StoreDir == "" {
		opts.StoreDir = tb.TempDir()
	}
	srv := start(tb, opts)
	return srv.ClientURL(), srv
}

// Restart shuts srv down (if it still runs) and starts a new server on the
// same address and store, so JetStream state survives. The new server is
// shut down when the test ends.
func Restart(tb testing.TB, srv *bus.Server) *bus.Server {
	tb.Helper()
	srv.Shutdown()
	return start(tb, srv.Options())
}

func start(tb testing.TB, opts bus.Options) *bus.Server {
	tb.Helper()
	srv, err := bus.EmbeddedServer(context.Background(), opts, Logger(tb))
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(srv.Shutdown)
	return srv
}

// Connect connects a Bus to url with every stream of events/ ensured (default
// limits); it is closed when the test ends.
func Connect(tb testing.TB, url string) *bus.Bus {
	tb.Helper()
	return ConnectWith(tb, bus.Options{URL: url, Streams: events.Streams(events.DefaultStreamLimits())})
}

// ConnectWith connects a Bus with opts; it is closed when the test ends.
func ConnectWith(tb testing.TB, opts bus.Options) *bus.Bus {
	tb.Helper()
	b, err := bus.Connect(context.Background(), opts, Logger(tb))
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// Logger returns a logger that writes warnings and errors to the test log
// (shown when the test fails or with -v) and goes quiet once the test has
// finished, so late logs from server goroutines cannot fail the run.
func Logger(tb testing.TB) *slog.Logger {
	tb.Helper()
	w := &testWriter{tb: tb}
	// Cleanups run last-registered first: what is started after this call
	// (servers, buses) is stopped before the writer goes quiet.
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter passes lines to tb.Log until closed.
type testWriter struct {
	mu     sync.Mutex
	tb     testing.TB
	closed bool
}

var _ io.Writer = (*testWriter)(nil)

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
