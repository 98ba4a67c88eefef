package proxy

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/rustybalancer/rb/events"
)

// memConn is a client connection in memory: the server reads in, then EOF
// (the client finished sending), and what it writes is kept.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2548} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// memProxy is a proxy (not running: requests are served one connection at a
// time with ServeConn) in front of an in-memory fasthttp worker answering
// 200 "ok".
func memProxy(tb testing.TB, cfg func(*Options)) *Service {
	tb.Helper()
	backendLn := fasthttputil.NewInmemoryListener()
	// The worker accepts larger headers than the proxy (which adds a few),
	// so that every request the proxy forwards is one a worker can read.
	worker := &fasthttp.Server{ReadBufferSize: 64 << 10, Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("ok")
	}}
	go func() { _ = worker.Serve(backendLn) }()
	tb.Cleanup(func() { _ = worker.Shutdown() })
	opts := Options{
		Config:  testConfig(),
		Logger:  quietLogger(),
		Metrics: prometheus.NewRegistry(),
		Dial:    func(string, time.Duration) (net.Conn, error) { return backendLn.Dial() },
	}
	opts.Config.Proxy.Timeout = 2 * time.Second
	opts.Config.Proxy.MaxBodySize = 1 << 20
	if cfg != nil {
		cfg(&opts)
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.closeCache)
	if err := s.apply(s.dflt, queueOf(1, events.QueueItem{Container: "mem", Address: "worker:80", Weight: 50, State: events.StateActive}), true); err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzRequest feeds raw bytes to the proxy as one client connection: it
// must not panic, and every first answer is the worker's 200 (a request it
// could forward) or a 4xx, never a 5xx.
//
//	go test ./services/proxy -run '^$' -fuzz FuzzRequest -fuzztime 60s
func FuzzRequest(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a?b=c HTTP/1.0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"GET http://other.example/x HTTP/1.1\r\nHost: h\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / HTTP/9.9\r\nHost: h\r\n\r\n",
		"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-Bad: a\x00b\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-A, , ,\r\nX-A: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n",
		"GET /" + strings.Repeat("a", 20<<10) + " HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
		"",
		"\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	s := memProxy(f, nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &memConn{in: bytes.NewReader(in)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.server.ServeConn(c)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection still served after 10 s: %q", trim(in))
		}
		out := c.out.Bytes()
		if len(out) == 0 {
			return
		}
		status, ok := firstStatus(out)
		if !ok {
			t.Fatalf("answer is not HTTP: %q", trim(out))
		}
		if status != 200 && (status < 400 || status > 499) {
			t.Fatalf("status %d for %q: %q", status, trim(in), trim(out))
		}
		if n := counterValue(s.m.panics); n > 0 {
			t.Fatalf("panicked on %q", trim(in))
		}
	})
}

func firstStatus(out []byte) (int, bool) {
	out = bytes.TrimPrefix(out, []byte("HTTP/1.1 100 Continue\r\n\r\n"))
	if !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) || len(out) < 12 {
		return 0, false
	}
	n, err := strconv.Atoi(string(out[9:12]))
	return n, err == nil
}

func trim(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
