package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// sendN sends exactly n GET requests to url over conns keep-alive
// connections (closed loop) and returns how many were not answered 200.
func sendN(ctx context.Context, url string, n, conns int) (failed int64, elapsed time.Duration, err error) {
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	if err := uri.Parse(nil, []byte(url)); err != nil {
		return 0, 0, fmt.Errorf("send to %s: %w", url, err)
	}
	c := &fasthttp.HostClient{Addr: string(uri.Host()), MaxConns: conns, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	var next, bad atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				if err := c.Do(req, resp); err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if resp.StatusCode() != fasthttp.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return bad.Load(), time.Since(start), fmt.Errorf("send to %s: %w", url, ctx.Err())
	}
	if e, ok := firstErr.Load().(error); ok && bad.Load() > int64(n)/100 {
		return bad.Load(), time.Since(start), fmt.Errorf("send to %s: %d of %d failed, first: %w", url, bad.Load(), n, e)
	}
	return bad.Load(), time.Since(start), nil
}

// efficiency is the prototype paper's distribution efficiency
// η = min(r_i/w_i) / max(r_i/w_i): 1 when every backend got exactly its
// weight's share.
func efficiency(counts []int64, weights []float64) (float64, error) {
	if len(counts) != len(weights) || len(counts) == 0 {
		return 0, errors.New("efficiency: counts and weights differ in length or are empty")
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, c := range counts {
		if weights[i] <= 0 {
			return 0, fmt.Errorf("efficiency: weight %g is not positive", weights[i])
		}
		v := float64(c) / weights[i]
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi == 0 {
		return 0, errors.New("efficiency: no request counted")
	}
	return lo / hi, nil
}

// formatWeights prints {100,50,25,5}.
func formatWeights(w []float64) string {
	parts := make([]string, len(w))
	for i, v := range w {
		parts[i] = fmt.Sprintf("%g", v)
	}
	return "{" + strings.Join(parts, ",") + "}"
}
