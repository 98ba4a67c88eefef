package cache

import (
	"testing"
	"time"
)

func TestCacheability(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	httpDate := func(d time.Duration) string { return now.Add(d).Format("Mon, 02 Jan 2006 15:04:05 GMT") }
	anyPath := DefaultConfig()
	anyPath.Extensions = nil
	noDefault := DefaultConfig()
	noDefault.DefaultTTL = 0
	tests := []struct {
		name       string
		method     string
		path       string
		reqHeader  Header
		status     int
		respHeader Header
		cfg        *Config
		wantTTL    time.Duration
		wantOK     bool
		wantReason string
	}{
		// Method and path filter.
		{name: "POST", method: "POST", respHeader: hdr("Cache-Control", "max-age=60"), wantReason: ReasonMethod},
		{name: "PUT", method: "PUT", wantReason: ReasonMethod},
		{name: "HEAD is cached", method: "HEAD", respHeader: hdr("Cache-Control", "max-age=60"), wantTTL: time.Minute, wantOK: true, wantReason: ReasonMaxAge},
		{name: "non-static path", path: "/api/users", respHeader: hdr("Cache-Control", "max-age=60"), wantReason: ReasonPath},
		{name: "extension is case-insensitive", path: "/img/A.PNG", wantTTL: time.Hour, wantOK: true, wantReason: ReasonDefaultTTL},
		{name: "jpeg", path: "/x.jpeg", wantTTL: time.Hour, wantOK: true, wantReason: ReasonDefaultTTL},
		{name: "extension must end the path", path: "/app.js.map", wantReason: ReasonPath},
		{name: "empty list allows any path", path: "/api/users", cfg: &anyPath, respHeader: hdr("Cache-Control", "max-age=60"), wantTTL: time.Minute, wantOK: true, wantReason: ReasonMaxAge},

		// Default TTL: the prototype's 3600 s for static files without freshness.
		{name: "static without headers gets the default TTL", wantTTL: time.Hour, wantOK: true, wantReason: ReasonDefaultTTL},
		{name: "public without max-age gets the default TTL", respHeader: hdr("Cache-Control", "public"), wantTTL: time.Hour, wantOK: true, wantReason: ReasonDefaultTTL},
		{name: "default TTL off", cfg: &noDefault, wantReason: ReasonNoFreshness},
		{name: "404 without freshness is not cached", status: 404, wantReason: ReasonNoFreshness},
		{name: "404 with max-age is", status: 404, respHeader: hdr("Cache-Control", "max-age=30"), wantTTL: 30 * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "301 gets the default TTL", status: 301, wantTTL: time.Hour, wantOK: true, wantReason: ReasonDefaultTTL},
		{name: "206 never", status: 206, respHeader: hdr("Cache-Control", "max-age=60"), wantReason: ReasonStatus},
		{name: "500 never", status: 500, respHeader: hdr("Cache-Control", "max-age=60"), wantReason: ReasonStatus},
		{name: "302 never", status: 302, respHeader: hdr("Cache-Control", "max-age=60"), wantReason: ReasonStatus},

		// Cache-Control on the response.
		{name: "max-age", respHeader: hdr("Cache-Control", "public, max-age=120"), wantTTL: 2 * time.Minute, wantOK: true, wantReason: ReasonMaxAge},
		{name: "s-maxage wins over max-age", respHeader: hdr("Cache-Control", "max-age=120, s-maxage=30"), wantTTL: 30 * time.Second, wantOK: true, wantReason: ReasonSMaxAge},
		{name: "quoted value and odd case", respHeader: hdr("cache-control", `Max-Age="45"`), wantTTL: 45 * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "directives over several lines", respHeader: hdr("Cache-Control", "public", "Cache-Control", "max-age=10"), wantTTL: 10 * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "repeated max-age: shortest", respHeader: hdr("Cache-Control", "max-age=100, max-age=10"), wantTTL: 10 * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "max-age=0 is stale", respHeader: hdr("Cache-Control", "max-age=0"), wantReason: ReasonStale},
		{name: "invalid max-age is stale", respHeader: hdr("Cache-Control", "max-age=soon"), wantReason: ReasonStale},
		{name: "huge max-age capped at 2^31 s", respHeader: hdr("Cache-Control", "max-age=99999999999999999999"), wantTTL: (1 << 31) * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "no-store", respHeader: hdr("Cache-Control", "max-age=60, no-store"), wantReason: ReasonNoStore},
		{name: "private", respHeader: hdr("Cache-Control", "private, max-age=60"), wantReason: ReasonPrivate},
		{name: "no-cache", respHeader: hdr("Cache-Control", "no-cache"), wantReason: ReasonNoCache},
		{name: "qualified no-cache", respHeader: hdr("Cache-Control", `no-cache="Set-Cookie", max-age=60`), wantReason: ReasonNoCache},
		{name: "Pragma no-cache without Cache-Control", respHeader: hdr("Pragma", "no-cache"), wantReason: ReasonNoCache},
		{name: "Pragma ignored with Cache-Control", respHeader: hdr("Pragma", "no-cache", "Cache-Control", "max-age=5"), wantTTL: 5 * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "unknown directives ignored", respHeader: hdr("Cache-Control", "immutable, max-age=5, stale-while-revalidate=30"), wantTTL: 5 * time.Second, wantOK: true, wantReason: ReasonMaxAge},

		// Set-Cookie and Vary.
		{name: "Set-Cookie never", respHeader: hdr("Cache-Control", "public, max-age=60", "Set-Cookie", "id=1"), wantReason: ReasonSetCookie},
		{name: "Vary Accept-Encoding", respHeader: hdr("Vary", "Accept-Encoding", "Cache-Control", "max-age=60"), wantTTL: time.Minute, wantOK: true, wantReason: ReasonMaxAge},
		{name: "Vary accept-encoding listed twice", respHeader: hdr("Vary", "accept-encoding, Accept-Encoding"), wantTTL: time.Hour, wantOK: true, wantReason: ReasonDefaultTTL},
		{name: "Vary star", respHeader: hdr("Vary", "*"), wantReason: ReasonVary},
		{name: "Vary Cookie", respHeader: hdr("Vary", "Accept-Encoding, Cookie"), wantReason: ReasonVary},
		{name: "Vary on a second line", respHeader: hdr("Vary", "Accept-Encoding", "Vary", "User-Agent"), wantReason: ReasonVary},

		// The request.
		{name: "request no-store", reqHeader: hdr("Cache-Control", "no-store"), wantReason: ReasonRequestNoStore},
		{name: "request no-cache still stores", reqHeader: hdr("Cache-Control", "no-cache"), wantTTL: time.Hour, wantOK: true, wantReason: ReasonDefaultTTL},
		{name: "Authorization", reqHeader: hdr("Authorization", "Bearer x"), respHeader: hdr("Cache-Control", "max-age=60"), wantReason: ReasonAuthorization},
		{name: "Authorization with public", reqHeader: hdr("authorization", "Bearer x"), respHeader: hdr("Cache-Control", "public, max-age=60"), wantTTL: time.Minute, wantOK: true, wantReason: ReasonMaxAge},
		{name: "Authorization with s-maxage", reqHeader: hdr("Authorization", "Bearer x"), respHeader: hdr("Cache-Control", "s-maxage=60"), wantTTL: time.Minute, wantOK: true, wantReason: ReasonSMaxAge},
		{name: "Authorization with must-revalidate", reqHeader: hdr("Authorization", "Bearer x"), respHeader: hdr("Cache-Control", "must-revalidate, max-age=60"), wantTTL: time.Minute, wantOK: true, wantReason: ReasonMaxAge},

		// Expires, Date and Age.
		{name: "Expires minus Date", respHeader: hdr("Date", httpDate(-10*time.Second), "Expires", httpDate(50*time.Second)), wantTTL: time.Minute, wantOK: true, wantReason: ReasonExpires},
		{name: "Expires minus now without Date", respHeader: hdr("Expires", httpDate(50*time.Second)), wantTTL: 50 * time.Second, wantOK: true, wantReason: ReasonExpires},
		{name: "Expires in the past", respHeader: hdr("Expires", httpDate(-time.Second)), wantReason: ReasonStale},
		{name: "invalid Expires is stale", respHeader: hdr("Expires", "0"), wantReason: ReasonStale},
		{name: "obsolete RFC 850 date", respHeader: hdr("Expires", now.Add(30*time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT")), wantTTL: 30 * time.Second, wantOK: true, wantReason: ReasonExpires},
		{name: "asctime date", respHeader: hdr("Expires", now.Add(30*time.Second).Format("Mon Jan _2 15:04:05 2006")), wantTTL: 30 * time.Second, wantOK: true, wantReason: ReasonExpires},
		{name: "max-age wins over Expires", respHeader: hdr("Expires", httpDate(time.Hour), "Cache-Control", "max-age=5"), wantTTL: 5 * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "Age is subtracted", respHeader: hdr("Cache-Control", "max-age=60", "Age", "20"), wantTTL: 40 * time.Second, wantOK: true, wantReason: ReasonMaxAge},
		{name: "Age beyond max-age is stale", respHeader: hdr("Cache-Control", "max-age=60", "Age", "60"), wantReason: ReasonStale},
		{name: "Age also counts against the default TTL", respHeader: hdr("Age", "600"), wantTTL: 50 * time.Minute, wantOK: true, wantReason: ReasonDefaultTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method, path, status, cfg := tt.method, tt.path, tt.status, DefaultConfig()
			if method == "" {
				method = "GET"
			}
			if path == "" {
				path = "/static/logo.png"
			}
			if status == 0 {
				status = 200
			}
			if tt.cfg != nil {
				cfg = *tt.cfg
			}
			req := Request{Method: []byte(method), Path: []byte(path)}
			if tt.reqHeader != nil {
				req.Header = tt.reqHeader
			}
			resp := Response{Status: status}
			if tt.respHeader != nil {
				resp.Header = tt.respHeader
			}
			ttl, ok, reason := Cacheability(req, resp, now, cfg)
			if ttl != tt.wantTTL || ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("Cacheability = %s, %v, %q; want %s, %v, %q", ttl, ok, reason, tt.wantTTL, tt.wantOK, tt.wantReason)
			}
		})
	}
}
