package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// maxWorkMS bounds cpu_ms and sleep_ms so that one request cannot hold a
// worker for longer than ten seconds.
const maxWorkMS = 10000

// newHandler returns the worker's routes. name identifies the worker in every
// answer (body and X-Worker-Name header) so that tests behind a balancer can
// tell which backend answered.
func newHandler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) { handleWork(w, r, name) })
	mux.HandleFunc("/static/", handleStatic)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "%s %s %s\n", name, r.Method, r.URL.Path)
	})
	return withName(name, mux)
}

func withName(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Worker-Name", name)
		next.ServeHTTP(w, r)
	})
}

// workResult is the JSON answer of /work.
type workResult struct {
	Name    string `json:"name"`
	CPUMS   int    `json:"cpu_ms"`
	SleepMS int    `json:"sleep_ms"`
}

func handleWork(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	cpuMS, err := boundedMS(q.Get("cpu_ms"))
	if err != nil {
		http.Error(w, "cpu_ms: "+err.Error(), http.StatusBadRequest)
		return
	}
	sleepMS, err := boundedMS(q.Get("sleep_ms"))
	if err != nil {
		http.Error(w, "sleep_ms: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	burnCPU(ctx, time.Duration(cpuMS)*time.Millisecond)
	if sleepMS > 0 {
		t := time.NewTimer(time.Duration(sleepMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if ctx.Err() != nil {
		// The client is gone; nobody reads an answer.
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(workResult{Name: name, CPUMS: cpuMS, SleepMS: sleepMS})
}

// boundedMS parses an optional millisecond count in [0, maxWorkMS].
func boundedMS(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxWorkMS {
		return 0, fmt.Errorf("want an integer from 0 to %d, got %q", maxWorkMS, s)
	}
	return n, nil
}

// burnCPU spins on one core for d, or until ctx is done. The busy loop reads
// the monotonic clock so that the cost is wall time on a free core, which is
// what a CPU-bound request looks like to the collector.
func burnCPU(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	start := time.Now()
	var x uint64
	for i := 0; ; i++ {
		for j := 0; j < 1000; j++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if time.Since(start) >= d {
			break
		}
		if i%256 == 0 && ctx.Err() != nil {
			break
		}
	}
	sink(x)
}

// sink keeps the compiler from removing the busy loop.
//
//go:noinline
func sink(uint64) {}

// handleStatic answers every /static/ path with a small body that depends
// only on the path, so every worker gives the same bytes and the same ETag
// and a shared cache may serve any of them. http.ServeContent handles
// If-None-Match (304), HEAD and Range.
func handleStatic(w http.ResponseWriter, r *http.Request) {
	body := []byte("static content for " + r.URL.Path + "\n")
	sum := sha256.Sum256(body)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
