package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Probe modes (RB_PROBE).
const (
	// ProbeTCP measures the time to open a TCP connection, as the prototype did.
	ProbeTCP = "tcp"
	// ProbeHTTP measures a GET of the probe path; 2xx and 3xx answers are up.
	ProbeHTTP = "http"
)

// ErrProbeTimeout is wrapped by a probe that got no answer within its timeout.
var ErrProbeTimeout = errors.New("no answer within the probe timeout")

// maxProbeBody bounds what an HTTP probe reads of an answer's body; the rest
// is dropped with the connection (probes do not keep connections alive).
const maxProbeBody = 64 << 10

// ProbeResult is the outcome of one probe.
type ProbeResult struct {
	// OK is true when the worker answered in time (and, for HTTP, with 2xx/3xx).
	OK bool
	// Latency is the time to the answer, or to the failure.
	Latency time.Duration
	// Err says why the probe failed; nil when OK.
	Err error
}

// Prober checks that a worker answers on its address. It is safe for
// concurrent use; each probe opens its own connection, so the latency it
// measures includes the connect, as a new client would see it.
type Prober struct {
	mode    string
	path    string
	timeout time.Duration
	dialer  *net.Dialer
	client  *http.Client
}

// NewProber returns a prober for mode ProbeTCP or ProbeHTTP; path (absolute,
// may carry a query) is the URL path of HTTP probes. Every probe is bounded
// by timeout.
func NewProber(mode, path string, timeout time.Duration) (*Prober, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("new prober: timeout %v: want > 0 (RB_PROBE_TIMEOUT)", timeout)
	}
	p := &Prober{mode: mode, path: path, timeout: timeout, dialer: &net.Dialer{}}
	switch mode {
	case ProbeTCP:
	case ProbeHTTP:
		if path == "" || path[0] != '/' {
			return nil, fmt.Errorf("new prober: path %q: want an absolute path such as /healthz (RB_PROBE_PATH)", path)
		}
		p.client = &http.Client{
			Transport: &http.Transport{
				// Workers are reached directly on Docker networks: never
				// through an HTTP proxy named in the environment.
				Proxy:                  nil,
				DialContext:            p.dialer.DialContext,
				DisableKeepAlives:      true,
				DisableCompression:     true,
				MaxResponseHeaderBytes: 64 << 10,
			},
			// A redirect is an answer; following it would probe something else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	default:
		return nil, fmt.Errorf("new prober: mode %q: want %q or %q (RB_PROBE)", mode, ProbeTCP, ProbeHTTP)
	}
	return p, nil
}

// Mode returns the probe mode, ProbeTCP or ProbeHTTP.
func (p *Prober) Mode() string { return p.mode }

// Probe probes the worker at addr (host:port) once. A failure is a result,
// never a panic; when ctx ends first the result carries ctx's error.
func (p *Prober) Probe(ctx context.Context, addr string) ProbeResult {
	start := time.Now() // before the deadline is set: a timeout's latency is ≥ timeout
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var err error
	if p.mode == ProbeHTTP {
		err = p.get(pctx, addr)
	} else {
		err = p.connect(pctx, addr)
	}
	res := ProbeResult{OK: err == nil, Latency: time.Since(start)}
	if err != nil {
		if ctx.Err() == nil && (pctx.Err() != nil || isTimeout(err)) {
			// Our deadline, not the caller's, whatever the dial reported (it
			// may see the deadline a moment before the context's timer fires).
			err = fmt.Errorf("%s probe %s: %w (%v)", p.mode, addr, ErrProbeTimeout, p.timeout)
		}
		res.Err = err
	}
	return res
}

func (p *Prober) connect(ctx context.Context, addr string) error {
	conn, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("tcp probe %s: %w", addr, err)
	}
	_ = conn.Close()
	return nil
}

func (p *Prober) get(ctx context.Context, addr string) error {
	url := "http://" + addr + p.path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("http probe %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "rb-collector")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	// Read (a bounded part of) the body, so the latency covers the answer.
	_, rerr := io.CopyN(io.Discard, resp.Body, maxProbeBody)
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("http probe %s: status %s", url, resp.Status)
	}
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return fmt.Errorf("http probe %s: read answer: %w", url, rerr)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}
