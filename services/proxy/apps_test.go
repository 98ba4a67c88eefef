package proxy

import (
	"bufio"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/balance"
)

// TestSlowStart: workers of a proxy's first queue take their full share at
// once (except INIT ones); a worker listed later, or INIT, ramps up over
// RB_SLOW_START from when the proxy first saw it.
func TestSlowStart(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	cfg := testConfig()
	cfg.Proxy.SlowStart = 10 * time.Second
	s, err := New(Options{Config: cfg, Logger: quietLogger(), Metrics: prometheus.NewRegistry(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.closeCache)
	item := func(name string, state events.State) events.QueueItem {
		return events.QueueItem{Container: name, Address: name + ":80", Weight: 50, State: state}
	}
	// share picks `name` out of 20,000 weighted picks at `at`.
	share := func(name string, at time.Time) float64 {
		r := s.dflt.route.Load()
		pk := r.table.Picker(balance.PolicyWeighted)
		rnd := rand.New(rand.NewPCG(1, 2))
		n := 0
		for range 20000 {
			b, err := pk.Pick(rnd, at.UnixNano())
			if err != nil {
				t.Fatal(err)
			}
			if b.ID == name {
				n++
			}
		}
		return float64(n) / 20000
	}
	if err := s.apply(s.dflt, queueOf(1, item("a", events.StateActive), item("i", events.StateInit)), true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		worker string
		at     time.Duration
		lo, hi float64
	}{
		{name: "first queue, ACTIVE: full share", worker: "a", at: 0, lo: 0.85, hi: 0.95},
		{name: "first queue, INIT: ramping", worker: "i", at: 0, lo: 0.05, hi: 0.15},
		{name: "first queue, INIT after the window: full share", worker: "i", at: 11 * time.Second, lo: 0.45, hi: 0.55},
	}
	for _, tc := range tests {
		if got := share(tc.worker, now.Add(tc.at)); got < tc.lo || got > tc.hi {
			t.Errorf("%s: share %.3f, want [%.2f, %.2f]", tc.name, got, tc.lo, tc.hi)
		}
	}
	now = now.Add(20 * time.Second)
	if err := s.apply(s.dflt, queueOf(2, item("a", events.StateActive), item("i", events.StateActive), item("n", events.StateActive)), true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		worker string
		at     time.Duration
		lo, hi float64
	}{
		{name: "listed later: ramping", worker: "n", at: 0, lo: 0.02, hi: 0.08},
		{name: "listed later, half way", worker: "n", at: 5 * time.Second, lo: 0.16, hi: 0.24},
		{name: "listed later, after the window", worker: "n", at: 11 * time.Second, lo: 0.30, hi: 0.37},
		{name: "known worker: unchanged", worker: "a", at: 0, lo: 0.45, hi: 0.52},
	} {
		if got := share(tc.worker, now.Add(tc.at)); got < tc.lo || got > tc.hi {
			t.Errorf("%s: share %.3f, want [%.2f, %.2f]", tc.name, got, tc.lo, tc.hi)
		}
	}
}

func TestHopByHop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{name: "Connection", key: "connection", want: true},
		{name: "Keep-Alive", key: "Keep-Alive", want: true},
		{name: "TE", key: "te", want: true},
		{name: "Trailer", key: "Trailer", want: true},
		{name: "Upgrade", key: "UPGRADE", want: true},
		{name: "Expect", key: "Expect", want: true},
		{name: "Proxy-Authorization", key: "Proxy-Authorization", want: true},
		{name: "Proxy-Connection", key: "proxy-connection", want: true},
		{name: "Transfer-Encoding: fasthttp re-frames", key: "Transfer-Encoding", want: false},
		{name: "end-to-end", key: "Authorization", want: false},
		{name: "prefix only", key: "Proxy-", want: false},
		{name: "look-alike", key: "Trailers", want: false},
	}
	for _, tc := range tests {
		if got := hopByHop([]byte(tc.key)); got != tc.want {
			t.Errorf("%s: hopByHop(%q) = %v", tc.name, tc.key, got)
		}
	}
}

func TestStripRequest(t *testing.T) {
	t.Parallel()
	var req fasthttp.Request
	raw := "GET / HTTP/1.0\r\nHost: h\r\nConnection: close, X-A, Upgrade\r\nX-A: 1\r\nX-B: 2\r\nUpgrade: websocket\r\nTE: trailers\r\n\r\n"
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	stripRequest(&req.Header, false)
	out := req.Header.String()
	for _, gone := range []string{"X-A", "Upgrade", "Te", "Connection"} {
		if strings.Contains(out, gone+":") {
			t.Errorf("%s left in\n%s", gone, out)
		}
	}
	if !strings.Contains(out, "X-B: 2") || !strings.HasPrefix(out, "GET / HTTP/1.1\r\n") {
		t.Errorf("request after stripping:\n%s", out)
	}
}

func TestReadChunkSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		line    string
		want    int64
		wantErr bool
	}{
		{name: "hex", line: "1a\r\n", want: 26},
		{name: "upper case", line: "FF\r\n", want: 255},
		{name: "extension", line: "3;name=value\r\n", want: 3},
		{name: "bare LF", line: "0\n", want: 0},
		{name: "no digits", line: "\r\n", wantErr: true},
		{name: "bad byte", line: "1g\r\n", wantErr: true},
		{name: "too large", line: "fffffffffffffffffff\r\n", wantErr: true},
		{name: "cut short", line: "12", wantErr: true},
	}
	for _, tc := range tests {
		got, err := readChunkSize(bufio.NewReader(strings.NewReader(tc.line)))
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("%s: readChunkSize(%q) = %d, %v", tc.name, tc.line, got, err)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	var r requestIDs
	r.init(0x0123456789abcdef)
	a, b := string(r.append(nil)), string(r.append(nil))
	if a != "fedcba98-000000000001" || b != "fedcba98-000000000002" {
		t.Fatalf("ids %q %q", a, b)
	}
}
