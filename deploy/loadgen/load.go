package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config bounds one run.
type Config struct {
	URL         string
	Method      string
	Rate        float64       // requests per second
	Requests    int           // 0: unbounded by count
	Duration    time.Duration // always bounded
	Warmup      time.Duration
	Timeout     time.Duration
	Concurrency int
}

// Validate reports every bad field at once.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("-url %q: want an absolute http:// or https:// URL", c.URL))
	}
	if c.Method == "" {
		errs = append(errs, errors.New("-method: empty"))
	}
	if c.Rate < 0.1 || c.Rate > 100000 {
		errs = append(errs, fmt.Errorf("-rate %g: want 0.1 to 100000 requests per second", c.Rate))
	}
	if c.Requests < 0 {
		errs = append(errs, fmt.Errorf("-n %d: want 0 (no count bound) or more", c.Requests))
	}
	if c.Duration < time.Millisecond || c.Duration > 24*time.Hour {
		errs = append(errs, fmt.Errorf("-duration %s: want 1ms to 24h", c.Duration))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("-warmup %s: want 0 or more", c.Warmup))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout %s: want more than 0", c.Timeout))
	}
	if c.Concurrency < 1 || c.Concurrency > 100000 {
		errs = append(errs, fmt.Errorf("-concurrency %d: want 1 to 100000", c.Concurrency))
	}
	return errors.Join(errs...)
}

// Generator runs one bounded load. Its counters are safe to read while it
// runs (Progress does).
type Generator struct {
	cfg    Config
	now    func() time.Time
	client *http.Client

	sent, ok, failed, failedWarmup, skipped atomic.Int64

	mu       sync.Mutex
	status   map[int]int64
	errKinds map[string]int64
	errFirst map[string]string
	workers  map[string]int64
	latency  histogram
}

// New returns a generator for cfg (already validated); now is the clock
// that decides send times and what falls in the warm-up.
func New(cfg Config, now func() time.Time) *Generator {
	tr := &http.Transport{
		Proxy:               nil, // straight to the target, whatever the environment says
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &Generator{
		cfg:      cfg,
		now:      now,
		client:   &http.Client{Transport: tr, Timeout: cfg.Timeout},
		status:   map[int]int64{},
		errKinds: map[string]int64{},
		errFirst: map[string]string{},
		workers:  map[string]int64{},
	}
}

// Run sends requests at cfg.Rate until cfg.Requests were sent, cfg.Duration
// passed or ctx is done, waits for the requests in flight, and returns the
// summary.
func (g *Generator) Run(ctx context.Context) Result {
	start := g.now()
	deadline := start.Add(g.cfg.Duration)
	// Requests in flight finish (each within its timeout) when the run ends
	// early: a stopped load is not a failed request.
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(g.cfg.Timeout))
	defer cancel()
	interval := time.Duration(float64(time.Second) / g.cfg.Rate)
	slots := make(chan struct{}, g.cfg.Concurrency)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
loop:
	for i := 0; g.cfg.Requests == 0 || i < g.cfg.Requests; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(deadline) {
			break
		}
		if d := at.Sub(g.now()); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break loop
		}
		select {
		case slots <- struct{}{}:
		default:
			g.skipped.Add(1)
			continue
		}
		g.sent.Add(1)
		wg.Add(1)
		go func(warm bool) {
			defer wg.Done()
			defer func() { <-slots }()
			g.one(rctx, warm)
		}(g.now().Sub(start) < g.cfg.Warmup)
	}
	wg.Wait()
	return g.result(g.now().Sub(start))
}

// one sends one request and records its outcome.
func (g *Generator) one(ctx context.Context, warm bool) {
	t0 := g.now()
	req, err := http.NewRequestWithContext(ctx, g.cfg.Method, g.cfg.URL, nil)
	if err != nil {
		g.fail(warm, 0, err)
		return
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.fail(warm, 0, err)
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		g.fail(warm, 0, fmt.Errorf("read body: %w", err))
		return
	}
	lat := g.now().Sub(t0)
	worker := resp.Header.Get("X-Worker-Name")
	g.mu.Lock()
	g.status[resp.StatusCode]++
	g.latency.add(lat)
	if worker != "" {
		g.workers[worker]++
	}
	g.mu.Unlock()
	if resp.StatusCode >= 400 {
		g.fail(warm, resp.StatusCode, nil)
		return
	}
	g.ok.Add(1)
}

func (g *Generator) fail(warm bool, status int, err error) {
	if warm {
		g.failedWarmup.Add(1)
	} else {
		g.failed.Add(1)
	}
	if err == nil {
		return // the status is counted already
	}
	kind := errKind(err)
	g.mu.Lock()
	g.errKinds[kind]++
	if _, seen := g.errFirst[kind]; !seen {
		g.errFirst[kind] = err.Error()
	}
	g.mu.Unlock()
}

// errKind names the class of a transport error for the summary.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	default:
		return "other"
	}
}

// Progress prints one line every period until ctx is done.
func (g *Generator) Progress(ctx context.Context, period time.Duration, w io.Writer) {
	t := time.NewTicker(period)
	defer t.Stop()
	var lastSent int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := g.sent.Load()
		g.mu.Lock()
		workers := len(g.workers)
		p50 := g.latency.quantile(0.5)
		g.mu.Unlock()
		fmt.Fprintf(w, "loadgen: sent=%d (%.1f/s) ok=%d failed=%d failed_warmup=%d skipped=%d workers_seen=%d p50=%s\n",
			sent, float64(sent-lastSent)/period.Seconds(), g.ok.Load(), g.failed.Load(), g.failedWarmup.Load(),
			g.skipped.Load(), workers, p50)
		lastSent = sent
	}
}

// Result is the summary of a run.
type Result struct {
	URL     string  `json:"url"`
	Seconds float64 `json:"seconds"`
	Sent    int64   `json:"sent"`
	OK      int64   `json:"ok"`
	// Failed counts failures after the warm-up; FailedWarmup those in it.
	Failed       int64             `json:"failed"`
	FailedWarmup int64             `json:"failed_warmup"`
	Skipped      int64             `json:"skipped"`
	Status       map[string]int64  `json:"status"`
	Errors       map[string]int64  `json:"errors,omitempty"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	Workers      map[string]int64  `json:"workers"`
	LatencyMS    Latency           `json:"latency_ms"`
}

// Latency quantiles in milliseconds (histogram buckets: about 5 % wide).
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func (g *Generator) result(elapsed time.Duration) Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := Result{
		URL: g.cfg.URL, Seconds: elapsed.Seconds(),
		Sent: g.sent.Load(), OK: g.ok.Load(), Failed: g.failed.Load(), FailedWarmup: g.failedWarmup.Load(),
		Skipped: g.skipped.Load(),
		Status:  map[string]int64{}, Workers: map[string]int64{},
	}
	for s, n := range g.status {
		r.Status[fmt.Sprint(s)] = n
	}
	for w, n := range g.workers {
		r.Workers[w] = n
	}
	if len(g.errKinds) > 0 {
		r.Errors, r.ErrorSamples = map[string]int64{}, map[string]string{}
		for k, n := range g.errKinds {
			r.Errors[k] = n
			r.ErrorSamples[k] = g.errFirst[k]
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.LatencyMS = Latency{
		P50: ms(g.latency.quantile(0.5)), P90: ms(g.latency.quantile(0.9)),
		P99: ms(g.latency.quantile(0.99)), Max: ms(g.latency.max),
	}
	return r
}

// WriteText prints the summary as key=value lines, one fact a line, so a
// shell can grep it.
func (r Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "url=%s\nseconds=%.1f\nsent=%d\nok=%d\nfailed=%d\nfailed_warmup=%d\nskipped=%d\n",
		r.URL, r.Seconds, r.Sent, r.OK, r.Failed, r.FailedWarmup, r.Skipped)
	fmt.Fprintf(w, "status=%s\n", joinCounts(r.Status))
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "errors=%s\n", joinCounts(r.Errors))
		for _, k := range sortedKeys(r.ErrorSamples) {
			fmt.Fprintf(w, "error_sample_%s=%s\n", k, r.ErrorSamples[k])
		}
	}
	fmt.Fprintf(w, "workers=%d\nby_worker=%s\n", len(r.Workers), joinCounts(r.Workers))
	fmt.Fprintf(w, "latency_ms_p50=%.1f\nlatency_ms_p90=%.1f\nlatency_ms_p99=%.1f\nlatency_ms_max=%.1f\n",
		r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max)
}

func joinCounts(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
