package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// deadAddr is a loopback address nothing listens on.
func deadAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	echo := startBackend(t, "echo", echoHandler)
	cfg := testConfig()
	cfg.Proxy.Timeout = 300 * time.Millisecond
	cfg.Proxy.MaxBodySize = 1000
	p := startProxy(t, Options{Config: cfg})
	addr := strings.TrimPrefix(p.url, "http://")

	bigHeader := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"
	tests := []struct {
		name   string
		queue  *events.QueueSnapshot
		raw    string
		status int
		check  func(t *testing.T, h http.Header, body string)
	}{
		{name: "no queue yet: 503 with JSON and Retry-After", raw: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 503,
			check: func(t *testing.T, h http.Header, body string) {
				var e struct{ Error, App string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.App != testApp || e.Error == "" {
					t.Errorf("body %q: %v", body, err)
				}
				if h.Get("Retry-After") == "" || h.Get("Content-Type") != "application/json" {
					t.Errorf("headers %v", h)
				}
			}},
		{name: "only SUNDOWN workers: 503", queue: ptr(queueOf(2, echo.item(events.StateSundown))),
			raw: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 503},
		{name: "worker too slow: 504", queue: ptr(queueOf(3, slow.item(events.StateActive))),
			raw: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 504},
		{name: "no worker reachable: 502", queue: ptr(queueOf(4, events.QueueItem{Container: "gone", Address: deadAddr(t), Weight: 50, State: events.StateActive})),
			raw: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 502},
		{name: "body over the limit by Content-Length: 413", queue: ptr(queueOf(5, echo.item(events.StateActive))),
			raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n" + strings.Repeat("x", 1001), status: 413},
		{name: "body at the limit passes", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 1000), status: 200},
		{name: "chunked body over the limit: 413",
			raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + strings.Repeat("x", 1000) + "\r\n1\r\ny\r\n0\r\n\r\n", status: 413},
		{name: "expect 100-continue over the limit: 413 before the body",
			raw: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n", status: 413},
		{name: "header over 16 KiB: 431", raw: bigHeader, status: 431},
		{name: "garbage: 400", raw: "BLAH\r\n\r\n", status: 400},
		{name: "CONNECT: 405", raw: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", status: 405},
		{name: "bad header line: 400", raw: "GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n", status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.queue != nil {
				p.applyQueue(t, *tc.queue)
			}
			resp, body, err := rawExchange(addr, tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.check != nil {
				tc.check(t, resp.Header, body)
			}
		})
	}
	if got := p.metric(t, "rb_proxy_rejected_total", "reason", "header_too_large"); got != 1 {
		t.Errorf("rb_proxy_rejected_total{reason=header_too_large} = %v", got)
	}
}

func ptr[T any](v T) *T { return &v }

// TestAnswerWhileClientStillSends: a client that sends a large refused body
// (or header) in one go reads the proxy's answer, not a closed connection.
// (The lingering close that protects the answer from a reset matters most
// off loopback, where Linux here delivers the answer either way.)
func TestAnswerWhileClientStillSends(t *testing.T) {
	t.Parallel()
	echo := startBackend(t, "echo", echoHandler)
	cfg := testConfig()
	cfg.Proxy.MaxBodySize = 1 << 10
	p := startProxy(t, Options{Config: cfg})
	p.applyQueue(t, queueOf(1, echo.item(events.StateActive)))
	addr := strings.TrimPrefix(p.url, "http://")
	tests := []struct {
		name   string
		head   string
		rest   int
		status int
	}{
		{name: "8 MB body after a too large Content-Length", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 8388608\r\n\r\n", rest: 8 << 20, status: 413},
		{name: "8 MB of header", head: "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", rest: 8 << 20, status: 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			go func() {
				io.WriteString(c, tc.head)
				_, _ = io.Copy(c, io.LimitReader(repeatByte('x'), int64(tc.rest)))
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
