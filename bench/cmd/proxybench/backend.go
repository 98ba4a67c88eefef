package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// backendBody is what every backend answers: the same small body for all,
// so the proxies move the same bytes.
var backendBody = []byte("rb proxy bench backend: 64 bytes of body, the same for everyone\n")

// backend is a loopback fasthttp server that sleeps a fixed time per request
// and counts the requests it answers, so request shares are counted at the
// backends, not inferred from the proxies.
type backend struct {
	name  string
	delay time.Duration
	ln    net.Listener
	srv   *fasthttp.Server
	hits  atomic.Int64
	busy  atomic.Int64 // requests in the handler
	done  chan error
}

// startBackend listens on a free loopback port and serves until Close.
func startBackend(name string, delay time.Duration, log *slog.Logger) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for backend %s: %w", name, err)
	}
	b := &backend{name: name, delay: delay, ln: ln, done: make(chan error, 1)}
	b.srv = &fasthttp.Server{
		Handler:               b.handle,
		Name:                  "bench",
		NoDefaultServerHeader: true,
		ReadTimeout:           time.Minute,
		IdleTimeout:           time.Minute,
		Logger:                fasthttpLogger{log.With("backend", name)},
	}
	go func() { b.done <- b.srv.Serve(ln) }()
	return b, nil
}

func (b *backend) handle(ctx *fasthttp.RequestCtx) {
	b.hits.Add(1)
	b.busy.Add(1)
	defer b.busy.Add(-1)
	if b.delay > 0 {
		time.Sleep(b.delay)
	}
	ctx.SetContentType("text/plain")
	ctx.SetBody(backendBody)
}

// Addr is the backend's host:port.
func (b *backend) Addr() string { return b.ln.Addr().String() }

// Close stops the server; idle keep-alive connections are closed too.
func (b *backend) Close(ctx context.Context) error {
	if err := b.srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("stop backend %s: %w", b.name, err)
	}
	return <-b.done
}

// backendSet is the backends of one part of the bench.
type backendSet []*backend

// startBackends starts one backend per delay, named b0, b1, ...
func startBackends(delays []time.Duration, log *slog.Logger) (backendSet, error) {
	var set backendSet
	for i, d := range delays {
		b, err := startBackend(fmt.Sprintf("b%d", i), d, log)
		if err != nil {
			set.Close()
			return nil, err
		}
		set = append(set, b)
	}
	return set, nil
}

// Addrs lists the backends' host:port.
func (s backendSet) Addrs() []string {
	out := make([]string, len(s))
	for i, b := range s {
		out[i] = b.Addr()
	}
	return out
}

// Reset zeroes the request counters.
func (s backendSet) Reset() {
	for _, b := range s {
		b.hits.Store(0)
	}
}

// Hits returns the request counters, in backend order.
func (s backendSet) Hits() []int64 {
	out := make([]int64, len(s))
	for i, b := range s {
		out[i] = b.hits.Load()
	}
	return out
}

// WaitIdle waits until no backend is handling a request (up to timeout),
// so one run's stragglers do not load the next.
func (s backendSet) WaitIdle(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		busy := int64(0)
		for _, b := range s {
			busy += b.busy.Load()
		}
		if busy == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close stops every backend (within 5 s).
func (s backendSet) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range s {
		_ = b.Close(ctx)
	}
}

// fasthttpLogger routes fasthttp's own messages to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...))
}
