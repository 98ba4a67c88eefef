package proxy

import (
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/rustybalancer/rb/events"
)

func TestCache(t *testing.T) {
	t.Parallel()
	var hits syncSet
	b := startBackend(t, "c", func(w http.ResponseWriter, r *http.Request) {
		hits.add(r.Method + " " + r.URL.Path + " " + r.Header.Get("Accept-Encoding"))
		h := w.Header()
		h.Set("Content-Type", "text/css")
		switch r.URL.Path {
		case "/s/maxage.css", "/api/maxage", "/s/head.css", "/s/nocache-req.css", "/s/enc.css":
			h.Set("Cache-Control", "max-age=60")
		case "/s/nostore.css":
			h.Set("Cache-Control", "no-store")
		case "/s/private.css":
			h.Set("Cache-Control", "private, max-age=60")
		case "/s/cookie.css":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Set-Cookie", "s=1")
		case "/s/vary.css":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "Cookie")
		case "/s/expired.css":
			h.Set("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
		case "/s/plain.css":
			// no freshness: the prototype's default TTL for static files
		}
		io.WriteString(w, "body of "+r.URL.Path)
	})
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	c := client()
	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		want     []string // X-Cache of consecutive requests
		backends int      // requests that reached the worker
	}{
		{name: "max-age cached", path: "/s/maxage.css", want: []string{"MISS", "HIT", "HIT"}, backends: 1},
		{name: "no freshness, static extension: default TTL", path: "/s/plain.css", want: []string{"MISS", "HIT"}, backends: 1},
		{name: "no-store", path: "/s/nostore.css", want: []string{"MISS", "MISS"}, backends: 2},
		{name: "private", path: "/s/private.css", want: []string{"MISS", "MISS"}, backends: 2},
		{name: "Set-Cookie", path: "/s/cookie.css", want: []string{"MISS", "MISS"}, backends: 2},
		{name: "Vary on another header", path: "/s/vary.css", want: []string{"MISS", "MISS"}, backends: 2},
		{name: "expired", path: "/s/expired.css", want: []string{"MISS", "MISS"}, backends: 2},
		{name: "path filter: not a cache request", path: "/api/maxage", want: []string{"", ""}, backends: 2},
		{name: "HEAD keyed apart from GET", method: http.MethodHead, path: "/s/maxage.css", want: []string{"MISS", "HIT"}, backends: 1},
		{name: "request no-cache skips the lookup", path: "/s/nocache-req.css", header: map[string]string{"Cache-Control": "no-cache"}, want: []string{"MISS", "MISS"}, backends: 2},
		{name: "Accept-Encoding in the key (gzip)", path: "/s/enc.css", header: map[string]string{"Accept-Encoding": "gzip"}, want: []string{"MISS", "HIT"}, backends: 1},
		{name: "Accept-Encoding in the key (br)", path: "/s/enc.css", header: map[string]string{"Accept-Encoding": "br"}, want: []string{"MISS", "HIT"}, backends: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			for i, want := range tc.want {
				req, _ := http.NewRequest(method, p.url+tc.path, nil)
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if got := resp.Header.Get("X-Cache"); got != want || resp.StatusCode != 200 {
					t.Fatalf("request %d: %d X-Cache %q, want %q", i, resp.StatusCode, got, want)
				}
				wantBody := "body of " + tc.path
				if method == http.MethodHead {
					wantBody = ""
				}
				if string(body) != wantBody || resp.Header.Get("Content-Type") != "text/css" {
					t.Fatalf("request %d: body %q, Content-Type %q", i, body, resp.Header.Get("Content-Type"))
				}
				if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len("body of "+tc.path)) {
					t.Fatalf("request %d: Content-Length %q", i, cl)
				}
				if want == "HIT" {
					if age, err := strconv.Atoi(resp.Header.Get("Age")); err != nil || age < 0 || age > 5 {
						t.Fatalf("hit with Age %q", resp.Header.Get("Age"))
					}
					if resp.Header.Get("X-Backend") != "c" {
						t.Fatalf("hit lost the worker's headers: %v", resp.Header)
					}
				}
			}
			if got := hits.get(method + " " + tc.path + " " + tc.header["Accept-Encoding"]); got != tc.backends {
				t.Fatalf("the worker got %d requests, want %d", got, tc.backends)
			}
		})
	}
	if p.metric(t, "rb_proxy_cache_hits_total") == 0 || p.metric(t, "rb_proxy_cache_entries") == 0 {
		t.Error("cache metrics not counted")
	}
}

// TestCacheHitNeedsNoBackend: a hit is answered even when the app has no
// worker left.
func TestCacheHitNeedsNoBackend(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "c", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "logo")
	})
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	c := client()
	get(t, c, p.url+"/logo.png")
	b.kill()
	p.applyQueue(t, queueOf(2))
	for range 3 {
		code, h, body := get(t, c, p.url+"/logo.png")
		if code != 200 || body != "logo" || h.Get("X-Cache") != "HIT" {
			t.Fatalf("got %d %q %v", code, body, h)
		}
	}
	if code, _, _ := get(t, c, p.url+"/other.png"); code != 503 {
		t.Fatalf("a miss without workers: %d", code)
	}
}
