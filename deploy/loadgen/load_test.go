package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newServer starts a test server with h and closes it at cleanup.
func newServer(tb testing.TB, h http.HandlerFunc) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

func okConfig(url string) Config {
	return Config{URL: url, Method: http.MethodGet, Rate: 200, Duration: 10 * time.Second,
		Timeout: 5 * time.Second, Concurrency: 64}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // substring; "" = valid
	}{
		{name: "valid", change: func(*Config) {}},
		{name: "relative url", change: func(c *Config) { c.URL = "/work" }, wantErr: "-url"},
		{name: "ftp url", change: func(c *Config) { c.URL = "ftp://x/y" }, wantErr: "-url"},
		{name: "rate zero", change: func(c *Config) { c.Rate = 0 }, wantErr: "-rate"},
		{name: "negative count", change: func(c *Config) { c.Requests = -1 }, wantErr: "-n"},
		{name: "unbounded duration", change: func(c *Config) { c.Duration = 0 }, wantErr: "-duration"},
		{name: "too long", change: func(c *Config) { c.Duration = 25 * time.Hour }, wantErr: "-duration"},
		{name: "negative warmup", change: func(c *Config) { c.Warmup = -time.Second }, wantErr: "-warmup"},
		{name: "no timeout", change: func(c *Config) { c.Timeout = 0 }, wantErr: "-timeout"},
		{name: "no concurrency", change: func(c *Config) { c.Concurrency = 0 }, wantErr: "-concurrency"},
		{name: "every problem at once", change: func(c *Config) { c.Rate = 0; c.Concurrency = 0 }, wantErr: "-concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := okConfig("http://127.0.0.1:1/work")
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	mixed := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		w.Header().Set("X-Worker-Name", []string{"worker-a", "worker-b"}[n%2])
		if r.URL.Query().Get("fail") == "odd" && n%2 == 1 {
			http.Error(w, "boom", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()

	tests := []struct {
		name             string
		cfg              func() Config
		wantSent         int64
		wantOK           int64
		wantFailed       int64
		wantFailedWarmup int64
		wantWorkers      int
		wantErrKind      string
	}{
		{name: "count bound, all answered", cfg: func() Config {
			c := okConfig(mixed.URL + "/work")
			c.Requests = 40
			return c
		}, wantSent: 40, wantOK: 40, wantWorkers: 2},
		{name: "5xx fail after warm-up", cfg: func() Config {
			c := okConfig(mixed.URL + "/work?fail=odd")
			c.Requests = 20
			return c
		}, wantSent: 20, wantOK: 10, wantFailed: 10, wantWorkers: 2},
		{name: "5xx inside warm-up count apart", cfg: func() Config {
			c := okConfig(mixed.URL + "/work?fail=odd")
			c.Requests, c.Warmup = 20, time.Hour
			return c
		}, wantSent: 20, wantOK: 10, wantFailedWarmup: 10, wantWorkers: 2},
		{name: "connection refused", cfg: func() Config {
			c := okConfig(refusedURL)
			c.Requests = 5
			return c
		}, wantSent: 5, wantFailed: 5, wantErrKind: "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := New(tt.cfg(), time.Now).Run(context.Background())
			if res.Sent != tt.wantSent || res.OK != tt.wantOK || res.Failed != tt.wantFailed ||
				res.FailedWarmup != tt.wantFailedWarmup || res.Skipped != 0 {
				t.Fatalf("sent/ok/failed/failed_warmup/skipped = %d/%d/%d/%d/%d, want %d/%d/%d/%d/0",
					res.Sent, res.OK, res.Failed, res.FailedWarmup, res.Skipped,
					tt.wantSent, tt.wantOK, tt.wantFailed, tt.wantFailedWarmup)
			}
			if len(res.Workers) != tt.wantWorkers {
				t.Errorf("workers = %v, want %d distinct", res.Workers, tt.wantWorkers)
			}
			if tt.wantErrKind != "" && res.Errors[tt.wantErrKind] != tt.wantSent {
				t.Errorf("errors = %v, want %d of kind %s", res.Errors, tt.wantSent, tt.wantErrKind)
			}
		})
	}
}

func TestRunDurationBound(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {})
	c := okConfig(srv.URL)
	c.Rate, c.Duration = 100, 300*time.Millisecond
	start := time.Now()
	res := New(c, time.Now).Run(context.Background())
	// 100/s for 0.3 s: sends at 0, 10, ..., 290 ms.
	if res.Sent != 30 || res.OK != 30 {
		t.Fatalf("sent/ok = %d/%d, want 30/30", res.Sent, res.OK)
	}
	if el := time.Since(start); el < 290*time.Millisecond || el > 5*time.Second {
		t.Fatalf("run took %s, want about 0.3 s", el)
	}
}

func TestRunSkipsWhenSlotsAreBusy(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var started atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := okConfig(srv.URL)
	c.Requests, c.Concurrency, c.Rate = 10, 2, 1000
	g := New(c, time.Now)
	done := make(chan Result, 1)
	go func() { done <- g.Run(context.Background()) }()
	// Ten send times pass in 10 ms: both slots are taken, the other eight
	// are skipped; then let the two requests finish.
	for started.Load() < 2 || g.skipped.Load() < 8 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	res := <-done
	if res.Sent != 2 || res.Skipped != 8 || res.OK != 2 {
		t.Fatalf("sent/skipped/ok = %d/%d/%d, want 2/8/2", res.Sent, res.Skipped, res.OK)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {})
	c := okConfig(srv.URL)
	c.Rate, c.Duration = 50, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := New(c, time.Now).Run(ctx)
	if res.Sent < 1 || res.Sent > 12 || res.Failed != 0 {
		t.Fatalf("sent/failed = %d/%d, want 1..12/0 after 0.2 s at 50/s", res.Sent, res.Failed)
	}
}

func TestMainExitCodes(t *testing.T) {
	t.Parallel()
	good := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Worker-Name", "worker-1")
	})
	bad := newServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "ok, text", args: []string{"-url", good.URL, "-n", "5", "-rate", "500", "-max-failures", "0"},
			wantCode: exitOK, wantOut: "failed=0\n"},
		{name: "failures above the bound", args: []string{"-url", bad.URL, "-n", "3", "-rate", "500", "-max-failures", "0"},
			wantCode: exitFailures, wantOut: "status=503:3\n"},
		{name: "failures, no bound", args: []string{"-url", bad.URL, "-n", "3", "-rate", "500"},
			wantCode: exitOK, wantOut: "failed=3\n"},
		{name: "failures in warm-up only", args: []string{"-url", bad.URL, "-n", "3", "-rate", "500", "-warmup", "1h", "-max-failures", "0"},
			wantCode: exitOK, wantOut: "failed_warmup=3\n"},
		{name: "bad flag value", args: []string{"-url", good.URL, "-rate", "0"}, wantCode: exitUsage},
		{name: "unknown flag", args: []string{"-nope"}, wantCode: exitUsage},
		{name: "stray argument", args: []string{"-url", good.URL, "extra"}, wantCode: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run(context.Background(), append(tt.args, "-progress", "0"), &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("stdout %q, want it to contain %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestMainJSON(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Worker-Name", "worker-9")
	})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-url", srv.URL, "-n", "4", "-rate", "500", "-json", "-progress", "0"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
	if res.Sent != 4 || res.OK != 4 || res.Workers["worker-9"] != 4 || res.Status["200"] != 4 {
		t.Fatalf("result %+v, want 4 sent and answered by worker-9 with 200", res)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram: want quantile 0")
	}
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{name: "median", q: 0.5, want: 50 * time.Millisecond},
		{name: "p90", q: 0.9, want: 90 * time.Millisecond},
		{name: "max", q: 1, want: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if got < tt.want || float64(got) > 1.06*float64(tt.want) {
			t.Errorf("%s: quantile(%g) = %s, want %s to +6 %%", tt.name, tt.q, got, tt.want)
		}
	}
}
