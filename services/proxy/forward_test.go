package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// seen is what the echo backend saw of a request.
type seen struct {
	Method     string              `json:"method"`
	RequestURI string              `json:"request_uri"`
	Host       string              `json:"host"`
	Proto      string              `json:"proto"`
	Header     map[string][]string `json:"header"`
	BodyLen    int64               `json:"body_len"`
	BodySHA    string              `json:"body_sha"`
	Chunked    bool                `json:"chunked"`
}

// echoHandler answers what it saw as JSON; /download?n=N&chunked=1 answers
// N pattern bytes instead.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/download" {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		_, _ = io.Copy(w, pattern(n))
		return
	}
	h := sha256.New()
	n, _ := io.Copy(h, r.Body)
	s := seen{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Proto: r.Proto, Header: r.Header,
		BodyLen: n, BodySHA: hex.EncodeToString(h.Sum(nil)), Chunked: len(r.TransferEncoding) > 0}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

// patternReader yields a byte pattern that depends on the position in the
// stream only.
type patternReader struct{ off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	for i := range p {
		o := r.off + int64(i)
		p[i] = byte(o*7 + o>>9)
	}
	r.off += int64(len(p))
	return len(p), nil
}

func pattern(n int64) io.Reader { return io.LimitReader(&patternReader{}, n) }

func shaOf(r io.Reader) (int64, string) {
	h := sha256.New()
	n, _ := io.Copy(h, r)
	return n, hex.EncodeToString(h.Sum(nil))
}

// rawExchange sends raw bytes to addr and returns the response (read with
// net/http), or an error.
func rawExchange(addr, raw string) (*http.Response, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, "", err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func TestForwardRequestIntact(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "echo", echoHandler)
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	addr := strings.TrimPrefix(p.url, "http://")

	tests := []struct {
		name  string
		raw   string
		check func(t *testing.T, s seen)
	}{
		{
			name: "path and query unnormalised",
			raw:  "GET /a/b%20c//d/../e?x=1&y=%2F&z&x=2 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
			check: func(t *testing.T, s seen) {
				if s.RequestURI != "/a/b%20c//d/../e?x=1&y=%2F&z&x=2" || s.Method != "GET" || s.Host != "shop.example" {
					t.Errorf("got %s %s host %s", s.Method, s.RequestURI, s.Host)
				}
			},
		},
		{
			name: "end-to-end headers kept, hop-by-hop dropped",
			raw: "DELETE /r HTTP/1.1\r\nHost: h\r\nX-Custom: v1\r\nX-Multi: a\r\nX-Multi: b\r\nCookie: k=v\r\n" +
				"Authorization: Bearer t\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n" +
				"TE: trailers\r\nProxy-Authorization: Basic x\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n\r\n",
			check: func(t *testing.T, s seen) {
				h := http.Header(s.Header)
				if h.Get("X-Custom") != "v1" || strings.Join(h.Values("X-Multi"), ",") != "a,b" || h.Get("Cookie") != "k=v" || h.Get("Authorization") != "Bearer t" {
					t.Errorf("end-to-end headers changed: %v", h)
				}
				for _, k := range []string{"X-Secret", "Keep-Alive", "Te", "Proxy-Authorization", "Proxy-Connection", "Upgrade", "Connection"} {
					if v := h.Values(k); len(v) > 0 {
						t.Errorf("hop-by-hop %s reached the worker: %q", k, v)
					}
				}
				if s.Method != "DELETE" || s.Proto != "HTTP/1.1" {
					t.Errorf("got %s %s", s.Method, s.Proto)
				}
			},
		},
		{
			name: "forwarded headers added, request id kept",
			raw:  "GET / HTTP/1.1\r\nHost: shop.example:8080\r\nX-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: https\r\nX-Request-Id: keep-me\r\n\r\n",
			check: func(t *testing.T, s seen) {
				h := http.Header(s.Header)
				if got := h.Get("X-Forwarded-For"); got != "10.1.2.3, 127.0.0.1" {
					t.Errorf("X-Forwarded-For %q", got)
				}
				if h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != "shop.example:8080" || h.Get("X-Request-Id") != "keep-me" {
					t.Errorf("forwarded headers %v", h)
				}
			},
		},
		{
			name: "HTTP/1.0 without Host",
			raw:  "GET /old HTTP/1.0\r\n\r\n",
			check: func(t *testing.T, s seen) {
				if s.RequestURI != "/old" || s.Host == "" {
					t.Errorf("got %s host %q", s.RequestURI, s.Host)
				}
			},
		},
		{
			name: "small body with Content-Length",
			raw:  "PUT /b HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
			check: func(t *testing.T, s seen) {
				if s.BodyLen != 5 || s.BodySHA != sha256hex("hello") || http.Header(s.Header).Get("Content-Type") != "text/plain" {
					t.Errorf("body %d %s, header %v", s.BodyLen, s.BodySHA, s.Header)
				}
			},
		},
		{
			name: "chunked body",
			raw:  "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\n\r\n",
			check: func(t *testing.T, s seen) {
				if s.BodyLen != 5 || s.BodySHA != sha256hex("hello") || !s.Chunked {
					t.Errorf("body %d %s chunked %v", s.BodyLen, s.BodySHA, s.Chunked)
				}
			},
		},
		{
			name: "expect 100-continue answered by the proxy",
			raw:  "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
			check: func(t *testing.T, s seen) {
				if s.BodyLen != 2 || len(http.Header(s.Header).Values("Expect")) > 0 {
					t.Errorf("body %d, header %v", s.BodyLen, s.Header)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := rawExchange(addr, tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var s seen
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			tc.check(t, s)
		})
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestForwardRequestIDGenerated(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "echo", echoHandler)
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	c := client()
	ids := map[string]bool{}
	for range 5 {
		_, _, body := get(t, c, p.url+"/")
		var s seen
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		id := http.Header(s.Header).Get("X-Request-Id")
		if len(id) != 21 || ids[id] {
			t.Fatalf("request id %q (seen before: %v)", id, ids[id])
		}
		ids[id] = true
	}
}

func TestForwardResponseIntact(t *testing.T) {
	t.Parallel()
	// A raw worker, to control every header byte of the answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					switch req.URL.Path {
					case "/hop":
						io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-End: e\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"+
							"Connection: X-Back-Secret\r\nX-Back-Secret: s\r\nKeep-Alive: timeout=3\r\nProxy-Authenticate: Basic\r\nUpgrade: foo\r\n\r\nok")
					case "/close":
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nc")
						return
					case "/chunked":
						io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nX-T: 1\r\n\r\n")
					case "/eof":
						io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil close")
						return
					case "/nocontent":
						io.WriteString(c, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
					case "/interim":
						io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfin")
					}
				}
			}()
		}
	}()
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, events.QueueItem{Container: "raw", Address: ln.Addr().String(), Weight: 50, State: events.StateActive}))
	c := client()
	tests := []struct {
		name, path string
		status     int
		body       string
		check      func(t *testing.T, h http.Header)
	}{
		{name: "hop-by-hop dropped, end-to-end kept", path: "/hop", status: 201, body: "ok", check: func(t *testing.T, h http.Header) {
			if h.Get("X-End") != "e" || len(h.Values("Set-Cookie")) != 2 || h.Get("Date") != "Mon, 01 Jan 2024 00:00:00 GMT" {
				t.Errorf("end-to-end headers changed: %v", h)
			}
			for _, k := range []string{"X-Back-Secret", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
				if h.Get(k) != "" {
					t.Errorf("hop-by-hop %s reached the client", k)
				}
			}
			if h.Get("Content-Type") != "" {
				t.Errorf("the proxy added a Content-Type: %q", h.Get("Content-Type"))
			}
		}},
		{name: "worker's Connection: close stays with the worker", path: "/close", status: 200, body: "c", check: func(t *testing.T, h http.Header) {
			if h.Get("Connection") == "close" {
				t.Error("the worker's Connection: close reached the client")
			}
		}},
		{name: "chunked answer re-framed", path: "/chunked", status: 200, body: "abcdefg"},
		{name: "close-delimited answer", path: "/eof", status: 200, body: "until close"},
		{name: "no content", path: "/nocontent", status: 204, body: ""},
		{name: "interim answers skipped", path: "/interim", status: 200, body: "fin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // twice: the pooled connection must still be usable
				code, h, body := get(t, c, p.url+tc.path)
				if code != tc.status || body != tc.body {
					t.Fatalf("got %d %q, want %d %q", code, body, tc.status, tc.body)
				}
				if tc.check != nil {
					tc.check(t, h)
				}
			}
		})
	}
}

func TestForwardBodies(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "echo", echoHandler)
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	c := client()
	// 50 MB: TestForwardLargeBodiesStream.
	sizes := []int64{0, 1, 8 << 10, 8<<10 + 1, 64 << 10, 64<<10 + 1, 1 << 20, 1<<20 + 1}
	for _, n := range sizes {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("upload %d chunked=%v", n, chunked), func(t *testing.T) {
				var body io.Reader = pattern(n)
				wantLen, wantSHA := shaOf(pattern(n))
				req, _ := http.NewRequest(http.MethodPost, p.url+"/up", body)
				if chunked {
					req.ContentLength = -1
					req.Body = io.NopCloser(body)
				} else {
					req.ContentLength = n
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var s seen
				if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
					t.Fatal(err)
				}
				if s.BodyLen != wantLen || s.BodySHA != wantSHA {
					t.Fatalf("worker got %d bytes %s, want %d %s", s.BodyLen, s.BodySHA, wantLen, wantSHA)
				}
			})
			t.Run(fmt.Sprintf("download %d chunked=%v", n, chunked), func(t *testing.T) {
				url := fmt.Sprintf("%s/download?n=%d", p.url, n)
				if chunked {
					url += "&chunked=1"
				}
				resp, err := c.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				gotLen, gotSHA := shaOf(resp.Body)
				wantLen, wantSHA := shaOf(pattern(n))
				if resp.StatusCode != 200 || gotLen != wantLen || gotSHA != wantSHA {
					t.Fatalf("got %d: %d bytes %s, want %d %s", resp.StatusCode, gotLen, gotSHA, wantLen, wantSHA)
				}
			})
		}
	}
}

// TestForwardLargeBodiesStream: a 50 MB upload (with Content-Length) and a
// 50 MB chunked download pass intact, and moving them allocates far less
// than 50 MB in this process (proxy, worker and client together): the
// bodies stream. Not parallel, so that the allocation count is its own.
func TestForwardLargeBodiesStream(t *testing.T) {
	b := startBackend(t, "echo", echoHandler)
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	c := client()
	const n = 50 << 20
	wantLen, wantSHA := shaOf(pattern(n))
	get(t, c, p.url+"/download?n=1024") // warm up connections and pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest(http.MethodPost, p.url+"/up", pattern(n))
	req.ContentLength = n
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var s seen
	err = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if err != nil || s.BodyLen != wantLen || s.BodySHA != wantSHA {
		t.Fatalf("upload: the worker got %d bytes %s (%v), want %d %s", s.BodyLen, s.BodySHA, err, wantLen, wantSHA)
	}
	resp, err = c.Get(fmt.Sprintf("%s/download?n=%d&chunked=1", p.url, n))
	if err != nil {
		t.Fatal(err)
	}
	gotLen, gotSHA := shaOf(resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if gotLen != wantLen || gotSHA != wantSHA || len(resp.TransferEncoding) == 0 {
		t.Fatalf("download: %d bytes %s (chunked %v), want %d %s", gotLen, gotSHA, resp.TransferEncoding, wantLen, wantSHA)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("moving 2 × 50 MB allocated %d MB: a body was buffered", alloc>>20)
	}
}

func TestForwardStreamedResponseReleasesConnection(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "echo", echoHandler)
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	c := client()
	for range 5 {
		resp, err := c.Get(p.url + "/download?n=3000000&chunked=1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r := p.apps[testApp].route.Load()
	hc := r.pools[0].hc
	waitFor(t, 2*time.Second, "streams done", func() bool { return p.apps[testApp].inFlight() == 0 })
	if n := hc.ConnsCount(); n != 1 {
		t.Fatalf("%d connections to the worker after 5 sequential streamed answers, want 1 (reused)", n)
	}
	st := r.table.Backends()[0].Stats().Snapshot()
	if st.Requests != 5 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A client that goes away mid-body: the worker's connection is closed,
	// the request accounted.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /download?n=50000000 HTTP/1.1\r\nHost: h\r\n\r\n")
	buf := make([]byte, 64<<10)
	if _, err := io.ReadAtLeast(conn, buf, len(buf)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitFor(t, 5*time.Second, "the abandoned stream accounted", func() bool {
		return p.apps[testApp].inFlight() == 0 && r.table.Backends()[0].Stats().Snapshot().Requests == 6
	})
	if bytes.Contains(buf, []byte("HTTP/1.1 200")) == false {
		t.Fatalf("no 200 answer: %q", buf[:64])
	}
}
