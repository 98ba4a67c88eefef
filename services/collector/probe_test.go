package collector

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNewProber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mode    string
		path    string
		timeout time.Duration
		wantErr string
	}{
		{name: "tcp", mode: ProbeTCP, timeout: time.Second},
		{name: "http", mode: ProbeHTTP, path: "/healthz?deep=1", timeout: time.Second},
		{name: "unknown mode", mode: "icmp", timeout: time.Second, wantErr: `mode "icmp"`},
		{name: "relative path", mode: ProbeHTTP, path: "healthz", timeout: time.Second, wantErr: `path "healthz"`},
		{name: "zero timeout", mode: ProbeTCP, wantErr: "timeout 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewProber(tt.mode, tt.path, tt.timeout)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("NewProber = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("NewProber = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestProbeLocal probes servers on loopback: answers, refusals, bad
// statuses and silences, in both modes.
func TestProbeLocal(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "draining", http.StatusServiceUnavailable) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	up := srv.Listener.Addr().String()

	tests := []struct {
		name        string
		mode, path  string
		addr        string
		wantOK      bool
		wantErr     string // substring of the error
		wantTimeout bool
	}{
		{name: "tcp answers", mode: ProbeTCP, addr: up, wantOK: true},
		{name: "tcp refused", mode: ProbeTCP, addr: closedPort(t), wantErr: "connection refused"},
		{name: "tcp no answer in time", mode: ProbeTCP, addr: fullBacklog(t), wantTimeout: true},
		{name: "http 200", mode: ProbeHTTP, path: "/ok", addr: up, wantOK: true},
		{name: "http 302 is up", mode: ProbeHTTP, path: "/moved", addr: up, wantOK: true},
		{name: "http 503 is down", mode: ProbeHTTP, path: "/down", addr: up, wantErr: "status 503"},
		{name: "http 404 is down", mode: ProbeHTTP, path: "/nothing-here", addr: up, wantErr: "status 404"},
		{name: "http refused", mode: ProbeHTTP, path: "/ok", addr: closedPort(t), wantErr: "connection refused"},
		{name: "http no answer in time", mode: ProbeHTTP, path: "/slow", addr: up, wantTimeout: true},
		{name: "http silent listener", mode: ProbeHTTP, path: "/ok", addr: silentListener(t), wantTimeout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewProber(tt.mode, tt.path, timeout)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res := p.Probe(t.Context(), tt.addr)
			elapsed := time.Since(start)
			if res.OK != tt.wantOK {
				t.Fatalf("Probe(%s) OK = %v (err %v), want %v", tt.addr, res.OK, res.Err, tt.wantOK)
			}
			if tt.wantOK {
				if res.Err != nil || res.Latency <= 0 || res.Latency > timeout {
					t.Fatalf("Probe = %+v, want no error and a latency in (0, %v]", res, timeout)
				}
				return
			}
			if res.Err == nil {
				t.Fatal("a failed probe without an error")
			}
			if tt.wantTimeout {
				if !errors.Is(res.Err, ErrProbeTimeout) {
					t.Fatalf("Probe error = %v, want ErrProbeTimeout", res.Err)
				}
				// Honoured: not before the timeout, not much after it.
				if elapsed < timeout || elapsed > timeout+250*time.Millisecond {
					t.Fatalf("timed out after %v, want about %v", elapsed, timeout)
				}
				return
			}
			if !strings.Contains(res.Err.Error(), tt.wantErr) {
				t.Fatalf("Probe error = %v, want it to contain %q", res.Err, tt.wantErr)
			}
			if errors.Is(res.Err, ErrProbeTimeout) {
				t.Fatalf("Probe error = %v: a refusal is not a timeout", res.Err)
			}
		})
	}
}

func TestProbeCancelled(t *testing.T) {
	t.Parallel()
	p, err := NewProber(ProbeTCP, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	res := p.Probe(ctx, fullBacklog(t))
	if res.OK || !errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, ErrProbeTimeout) {
		t.Fatalf("Probe = %+v, want a cancellation, not a timeout", res)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancelled probe returned after %v", d)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// silentListener accepts connections and never writes.
func silentListener(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	tb.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}

// fullBacklog returns a loopback address whose listener never accepts and
// whose accept queue (backlog 0) is already full: Linux drops further SYNs,
// so a connect hangs until its deadline, like a worker frozen solid.
func fullBacklog(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the queue; with backlog 0 one connection completes.
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		tb.Cleanup(func() { _ = c.Close() })
	}
	return addr
}
