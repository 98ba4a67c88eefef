package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Vegeta's bounds. The timeout bounds how long a request may hang; the
// worker cap (far above the ~60 requests in flight that 3,000 req/s of 2-20
// ms answers need) keeps a starved load generator from snowballing into
// thousands of connections, from which a run does not recover. When it is
// reached, vegeta sends late and the achieved rate (sent/s) drops.
const (
	vegetaTimeout    = 5 * time.Second
	vegetaMaxWorkers = 512
)

// vegetaResult summarises one open-loop vegeta attack.
type vegetaResult struct {
	Requests int
	// Rate is the achieved request rate: requests over the span from the
	// first to the last request sent.
	Rate           float64
	OK             int // 2xx answers
	P50, P99, P999 time.Duration
	Max            time.Duration
}

// runVegeta attacks url at rate req/s for d (open loop: requests are sent on
// schedule whether or not earlier ones have answered) and summarises every
// request's latency from vegeta's CSV encoding.
func runVegeta(ctx context.Context, bin, dir, name string, rate int, d time.Duration, url string) (vegetaResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+60*time.Second)
	defer cancel()
	targets := filepath.Join(dir, name+".targets")
	if err := os.WriteFile(targets, []byte("GET "+url+"\n"), 0o644); err != nil {
		return vegetaResult{}, fmt.Errorf("vegeta %s: %w", name, err)
	}
	bin64 := filepath.Join(dir, name+".bin")
	attack := exec.CommandContext(ctx, bin, "attack",
		"-targets", targets, "-rate", fmt.Sprintf("%d/1s", rate), "-duration", d.String(),
		"-timeout", vegetaTimeout.String(), "-max-workers", strconv.Itoa(vegetaMaxWorkers),
		"-max-body", "0", "-http2=false", "-output", bin64)
	if out, err := attack.CombinedOutput(); err != nil {
		return vegetaResult{}, fmt.Errorf("vegeta attack %s: %w\n%s", name, err, out)
	}
	csvPath := filepath.Join(dir, name+".csv")
	encode := exec.CommandContext(ctx, bin, "encode", "--to", "csv", "--output", csvPath, bin64)
	if out, err := encode.CombinedOutput(); err != nil {
		return vegetaResult{}, fmt.Errorf("vegeta encode %s: %w\n%s", name, err, out)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		return vegetaResult{}, fmt.Errorf("vegeta %s: %w", name, err)
	}
	defer f.Close()
	r, err := parseVegetaCSV(f)
	if err != nil {
		return r, fmt.Errorf("vegeta %s: %w", name, err)
	}
	// The raw results are large and summarised now.
	_ = os.Remove(bin64)
	_ = os.Remove(csvPath)
	return r, nil
}

// parseVegetaCSV reads vegeta's CSV results (timestamp ns, code, latency ns,
// bytes out, bytes in, error, body, attack, seq, method, url, headers).
// Latencies of failed requests count too: a timeout is a slow answer.
func parseVegetaCSV(r io.Reader) (vegetaResult, error) {
	var res vegetaResult
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var lat []time.Duration
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("parse results: %w", err)
		}
		if len(rec) < 6 {
			return res, fmt.Errorf("parse results: %d columns, want at least 6", len(rec))
		}
		ts, err1 := strconv.ParseInt(rec[0], 10, 64)
		code, err2 := strconv.Atoi(rec[1])
		ns, err3 := strconv.ParseInt(rec[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return res, fmt.Errorf("parse results %q: %w", strings.Join(rec[:3], ","), err)
		}
		first, last = min(first, ts), max(last, ts)
		lat = append(lat, time.Duration(ns))
		if code >= 200 && code < 300 && rec[5] == "" {
			res.OK++
		}
	}
	if len(lat) == 0 {
		return res, errors.New("parse results: no request")
	}
	res.Requests = len(lat)
	if span := time.Duration(last - first); span > 0 && len(lat) > 1 {
		res.Rate = float64(len(lat)-1) / span.Seconds()
	}
	slices.Sort(lat)
	res.P50, res.P99, res.P999 = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 0.999)
	res.Max = lat[len(lat)-1]
	return res, nil
}

// percentile is the nearest-rank percentile of sorted values: the smallest
// value with at least q of the values at or below it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
