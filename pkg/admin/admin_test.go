package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func start(t *testing.T) (*Server, string) {
	t.Helper()
	s := New("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	addr, err := s.Addr(wctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, addr.String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	s, addr := start(t)
	var redisDown, notReady atomic.Bool
	s.AddHealth("redis", func() error {
		if redisDown.Load() {
			return errors.New("redis unreachable since 12:00")
		}
		return nil
	})
	s.AddReady("proxy-table", func() error {
		if notReady.Load() {
			return errors.New("no queue yet")
		}
		return nil
	})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_test_total", Help: "test"})
	s.Registry().MustRegister(c)
	c.Add(3)

	tests := []struct {
		name       string
		down, nrdy bool
		path       string
		code       int
		body       string
	}{
		{name: "healthy", path: "/healthz", code: 200, body: `"status":"ok"`},
		{name: "ready", path: "/readyz", code: 200, body: `"proxy-table":"ok"`},
		{name: "not ready is still healthy", nrdy: true, path: "/healthz", code: 200, body: `"redis":"ok"`},
		{name: "not ready", nrdy: true, path: "/readyz", code: 503, body: "no queue yet"},
		{name: "unhealthy", down: true, path: "/healthz", code: 503, body: "redis unreachable"},
		{name: "unhealthy is not ready", down: true, path: "/readyz", code: 503, body: "redis unreachable"},
		{name: "metrics", path: "/metrics", code: 200, body: "rb_test_total 3"},
	}
	for _, tc := range tests {
		redisDown.Store(tc.down)
		notReady.Store(tc.nrdy)
		code, body := get(t, "http://"+addr+tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: GET %s = %d %q, want %d containing %q", tc.name, tc.path, code, body, tc.code, tc.body)
		}
	}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	s, addr := start(t)
	var down atomic.Bool
	s.AddHealth("nats", func() error {
		if down.Load() {
			return errors.New("disconnected")
		}
		return nil
	})
	ctx := context.Background()
	port := addr[strings.LastIndex(addr, ":"):]
	if err := Probe(ctx, port); err != nil { // ":port" is probed on loopback
		t.Fatalf("healthy probe: %v", err)
	}
	down.Store(true)
	if err := Probe(ctx, addr); err == nil || !strings.Contains(err.Error(), "disconnected") {
		t.Fatalf("unhealthy probe = %v", err)
	}
	if err := Probe(ctx, "nonsense"); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestListenError(t *testing.T) {
	t.Parallel()
	_, addr := start(t)
	s := New(addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "RB_ADMIN_ADDR") {
		t.Fatalf("Run on a taken port = %v", err)
	}
}
