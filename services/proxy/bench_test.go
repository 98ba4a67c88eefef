package proxy

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/rustybalancer/rb/events"
)

// benchWorker is an in-memory fasthttp worker: /small answers 13 bytes,
// /4k 4 KiB, /stream 64 KiB chunked, /a.css 13 bytes cacheable for a minute;
// it echoes the length of a POST body.
func benchWorker(tb testing.TB) *fasthttputil.InmemoryListener {
	tb.Helper()
	ln := fasthttputil.NewInmemoryListener()
	small, big, huge := []byte("Hello, World!"), bytes.Repeat([]byte("x"), 4<<10), bytes.Repeat([]byte("y"), 64<<10)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain")
		switch string(ctx.Path()) {
		case "/4k":
			ctx.SetBody(big)
		case "/stream":
			ctx.SetBodyStream(bytes.NewReader(huge), -1)
		case "/a.css":
			ctx.Response.Header.Set("Cache-Control", "max-age=60")
			ctx.SetBody(small)
		default:
			if ctx.IsPost() {
				var b [20]byte
				ctx.SetBody(strconv.AppendInt(b[:0], int64(len(ctx.PostBody())), 10))
				return
			}
			ctx.SetBody(small)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return ln
}

// benchProxy runs a proxy on an in-memory listener in front of worker, and
// returns a client for it.
func benchProxy(tb testing.TB, worker *fasthttputil.InmemoryListener) *fasthttp.HostClient {
	tb.Helper()
	ln := fasthttputil.NewInmemoryListener()
	s, err := New(Options{
		Config:   testConfig(),
		Logger:   quietLogger(),
		Metrics:  prometheus.NewRegistry(),
		Listener: ln,
		Dial:     func(string, time.Duration) (net.Conn, error) { return worker.Dial() },
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.apply(s.dflt, queueOf(1,
		events.QueueItem{Container: "w1", Address: "w1:80", Weight: 80, State: events.StateActive},
		events.QueueItem{Container: "w2", Address: "w2:80", Weight: 60, State: events.StateActive},
	), true); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return inmemClient(ln)
}

func inmemClient(ln *fasthttputil.InmemoryListener) *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: "proxy", Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConns: 1024}
}

// BenchmarkProxy measures the request path end to end over in-memory
// connections: client → proxy → worker → proxy → client. allocs/op counts
// every allocation of the process (client and worker are fasthttp, which
// allocate nothing once warm), so it is the proxy's. "direct" is the same
// client talking to the worker, the baseline the proxy's time adds to.
//
//	go test ./services/proxy -run '^$' -bench Proxy -benchmem -cpu 1,2
func BenchmarkProxy(b *testing.B) {
	worker := benchWorker(b)
	proxied := benchProxy(b, worker)
	direct := inmemClient(worker)
	post := bytes.Repeat([]byte("p"), 1<<10)
	cases := []struct {
		name   string
		client *fasthttp.HostClient
		method string
		uri    string
		body   []byte
	}{
		{name: "direct GET 13B", client: direct, uri: "/small"},
		{name: "GET 13B", client: proxied, uri: "/small"},
		{name: "GET 4KiB", client: proxied, uri: "/4k"},
		{name: "POST 1KiB", client: proxied, method: fasthttp.MethodPost, uri: "/small", body: post},
		{name: "GET 64KiB chunked (streamed)", client: proxied, uri: "/stream"},
		{name: "GET cache hit", client: proxied, uri: "/a.css"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			uri := "http://shop.example" + tc.uri
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				// The client keeps its buffers: what is allocated is the proxy's.
				resp.KeepBodyBuffer, req.KeepBodyBuffer = true, true
				for pb.Next() {
					req.SetRequestURI(uri)
					if tc.method != "" {
						req.Header.SetMethod(tc.method)
						req.SetBodyRaw(tc.body)
					}
					if err := tc.client.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != 200 {
						b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
					}
				}
			})
		})
	}
}

// BenchmarkProxyTCP is BenchmarkProxy's small GET over loopback TCP, the
// way the proxy runs: each request costs the system calls of two
// connections.
//
//	go test ./services/proxy -run '^$' -bench ProxyTCP -benchmem -cpu 1,2
func BenchmarkProxyTCP(b *testing.B) {
	worker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("Hello, World!") }}
	go func() { _ = srv.Serve(worker) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Config: testConfig(), Logger: quietLogger(), Metrics: prometheus.NewRegistry(), Listener: ln})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.apply(s.dflt, queueOf(1, events.QueueItem{Container: "w1", Address: worker.Addr().String(), Weight: 80, State: events.StateActive}), true); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	for _, tc := range []struct{ name, addr string }{{"direct", worker.Addr().String()}, {"proxied", ln.Addr().String()}} {
		b.Run(tc.name, func(b *testing.B) {
			c := &fasthttp.HostClient{Addr: tc.addr, MaxConns: 1024}
			uri := "http://" + tc.addr + "/small"
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(uri)
				for pb.Next() {
					if err := c.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != 200 {
						b.Fatalf("status %d", resp.StatusCode())
					}
				}
			})
		})
	}
}
