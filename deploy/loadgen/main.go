// Command loadgen sends a bounded, open-loop HTTP load: requests at a fixed
// rate to one URL until a request count or a duration is reached, whichever
// comes first, then prints a summary and exits. It is the demo load of the
// dev stack (`task load`, the compose profile "load") and the load of the
// end-to-end test; it uses only the standard library so it runs anywhere,
// including an image FROM scratch.
//
//	loadgen -url http://127.0.0.1:2548/work?cpu_ms=20 -rate 20 -duration 60s
//
// A request fails when it gets a transport error or a status of 400 or more.
// Failures in the first -warmup are reported apart: the e2e test asks for zero
// failures after warm-up (-max-failures 0). When every one of -concurrency
// slots is busy at a send time the request is not sent and counts as skipped
// (the client, not the server, is the bottleneck). Answers are tallied by
// their X-Worker-Name header, so the summary shows how the load was spread.
//
// Exit codes: 0 done and failures after warm-up ≤ -max-failures (or
// -max-failures < 0), 1 more failures than that, 2 bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailures = 1
	exitUsage    = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the load and reports; it returns the exit code. A
// signal (ctx done) ends the load early and still prints the summary.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:2548/work?cpu_ms=20", "URL to send requests to")
	fs.StringVar(&cfg.Method, "method", http.MethodGet, "HTTP method")
	fs.Float64Var(&cfg.Rate, "rate", 20, "requests per second (0.1 to 100000)")
	fs.IntVar(&cfg.Requests, "n", 0, "stop after this many requests (0: only -duration bounds the run)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "stop after this long (1ms to 24h)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "failures in this first part of the run are reported apart")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "requests in flight at most (1 to 100000)")
	maxFailures := fs.Int64("max-failures", -1, "exit 1 when more requests than this fail after warm-up (-1: never)")
	progress := fs.Duration("progress", 5*time.Second, "print progress to stderr this often (0: never)")
	asJSON := fs.Bool("json", false, "print the summary as JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return exitUsage
	}
	g := New(cfg, time.Now)
	if *progress > 0 {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go g.Progress(pctx, *progress, stderr)
	}
	res := g.Run(ctx)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "loadgen: write summary:", err)
			return exitFailures
		}
	} else {
		res.WriteText(stdout)
	}
	if *maxFailures >= 0 && res.Failed > *maxFailures {
		fmt.Fprintf(stderr, "loadgen: %d requests failed after warm-up, more than -max-failures %d\n", res.Failed, *maxFailures)
		return exitFailures
	}
	return exitOK
}
