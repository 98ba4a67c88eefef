package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler("worker-1a2b3c4d"))
	t.Cleanup(srv.Close)

	tests := []struct {
		name        string
		method      string
		path        string
		header      map[string]string
		wantStatus  int
		wantType    string
		wantBody    string // substring
		wantHeaders map[string]string
	}{
		{name: "root names worker, method and path", method: http.MethodGet, path: "/a/b?x=1",
			wantStatus: 200, wantType: "text/plain; charset=utf-8", wantBody: "worker-1a2b3c4d GET /a/b\n"},
		{name: "root with POST", method: http.MethodPost, path: "/",
			wantStatus: 200, wantBody: "worker-1a2b3c4d POST /\n"},
		{name: "healthz", method: http.MethodGet, path: "/healthz", wantStatus: 200, wantBody: "ok\n"},
		{name: "work without parameters", method: http.MethodGet, path: "/work",
			wantStatus: 200, wantType: "application/json", wantBody: `{"name":"worker-1a2b3c4d","cpu_ms":0,"sleep_ms":0}`},
		{name: "work burns and sleeps", method: http.MethodGet, path: "/work?cpu_ms=3&sleep_ms=2",
			wantStatus: 200, wantBody: `{"name":"worker-1a2b3c4d","cpu_ms":3,"sleep_ms":2}`},
		{name: "work cpu_ms over bound", method: http.MethodGet, path: "/work?cpu_ms=10001",
			wantStatus: 400, wantBody: "cpu_ms: want an integer from 0 to 10000"},
		{name: "work sleep_ms negative", method: http.MethodGet, path: "/work?sleep_ms=-1",
			wantStatus: 400, wantBody: "sleep_ms:"},
		{name: "work cpu_ms not a number", method: http.MethodGet, path: "/work?cpu_ms=lots",
			wantStatus: 400, wantBody: `cpu_ms: want an integer from 0 to 10000, got "lots"`},
		{name: "static is cacheable", method: http.MethodGet, path: "/static/app.css",
			wantStatus: 200, wantBody: "static content for /static/app.css\n",
			wantHeaders: map[string]string{"Cache-Control": "public, max-age=3600"}},
		{name: "every answer names the worker", method: http.MethodGet, path: "/static/x.png",
			wantStatus: 200, wantHeaders: map[string]string{"X-Worker-Name": "worker-1a2b3c4d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantBody)
			}
			for k, v := range tt.wantHeaders {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestStaticETag(t *testing.T) {
	t.Parallel()
	// Two workers with different names give the same ETag for a path, so a
	// shared cache may revalidate against any of them.
	a := httptest.NewServer(newHandler("a"))
	t.Cleanup(a.Close)
	b := httptest.NewServer(newHandler("b"))
	t.Cleanup(b.Close)

	get := func(base, path, inm string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		return do(t, req)
	}
	ra, _ := get(a.URL, "/static/logo.png", "")
	rb, _ := get(b.URL, "/static/logo.png", "")
	other, _ := get(a.URL, "/static/other.png", "")
	etag := ra.Header.Get("ETag")
	if etag == "" || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag = %q, want a quoted strong validator", etag)
	}
	if rb.Header.Get("ETag") != etag {
		t.Errorf("ETag differs between workers: %q vs %q", etag, rb.Header.Get("ETag"))
	}
	if other.Header.Get("ETag") == etag {
		t.Errorf("two paths share ETag %q", etag)
	}
	notModified, body := get(b.URL, "/static/logo.png", etag)
	if notModified.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("If-None-Match: status %d body %q, want 304 and no body", notModified.StatusCode, body)
	}
}

func TestWorkTakesItsTime(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newHandler("w"))
	t.Cleanup(srv.Close)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/work?cpu_ms=30&sleep_ms=20", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, body := do(t, req)
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got workResult
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	if got != (workResult{Name: "w", CPUMS: 30, SleepMS: 20}) {
		t.Errorf("result = %+v", got)
	}
	if elapsed < 50*time.Millisecond {
		t.Errorf("answered after %v, want at least 50ms of work", elapsed)
	}
}

func TestPortFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{name: "default", in: "", want: 8080},
		{name: "set", in: "9000", want: 9000},
		{name: "zero", in: "0", wantErr: true},
		{name: "too big", in: "65536", wantErr: true},
		{name: "not a number", in: "http", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := portFromEnv(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("portFromEnv(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "PORT") {
				t.Errorf("error %q does not name PORT", err)
			}
		})
	}
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	if _, err := io.Copy(&sb, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp, sb.String()
}

func TestServeShutsDownGracefully(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &notifyListener{Listener: inner, read: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	served := make(chan error, 1)
	go func() { served <- serve(ctx, logger, ln, "w") }()
	base := "http://" + ln.Addr().String()

	// A request in flight when the signal comes must still be answered.
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get(base + "/work?sleep_ms=300")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{status: resp.StatusCode, body: string(b), err: err}
	}()
	// Stop only once the server has read the slow request.
	select {
	case <-ln.read:
	case a := <-answered:
		t.Fatalf("request ended before shutdown: %+v", a)
	}
	cancel()

	a := <-answered
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, `"sleep_ms":300`) {
		t.Errorf("in-flight request: status %d body %q err %v, want 200 with the work result", a.status, a.body, a.err)
	}
	if err := <-served; err != nil {
		t.Errorf("serve returned %v, want nil after a graceful shutdown", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("listener still accepts connections after shutdown")
	}
}

// notifyListener closes read when a connection first delivers bytes to the
// server, that is when a request is in flight.
type notifyListener struct {
	net.Listener
	read chan struct{}
	once sync.Once
}

func (l *notifyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &notifyConn{Conn: c, l: l}, nil
}

type notifyConn struct {
	net.Conn
	l *notifyListener
}

func (c *notifyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.l.once.Do(func() { close(c.l.read) })
	}
	return n, err
}
