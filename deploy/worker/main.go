// Command worker is the demo backend that RustyBalancer starts, probes and
// balances: a static binary (standard library only) that runs in an image
// FROM scratch.
//
// It listens on $PORT (default 8080) and answers:
//
//	/                      text/plain "<name> <method> <path>"
//	/work?cpu_ms=N&sleep_ms=M
//	                       burns N ms of CPU, then sleeps M ms (each 0..10000),
//	                       answers JSON {"name","cpu_ms","sleep_ms"}
//	/static/<anything>     small body, Cache-Control: public, max-age=3600, ETag
//	/healthz               200 "ok"
//
// Every answer carries X-Worker-Name. The name is $WORKER_NAME, else the
// hostname (the container ID in Docker). `worker -health` probes /healthz on
// the local port and exits 0 or 1, for HEALTHCHECK in an image without a shell.
// SIGTERM or SIGINT stops accepting connections and lets requests in flight
// finish (up to 10 s).
//
// Build it static for the scratch image:
//
//	CGO_ENABLED=0 go build -o deploy/worker/worker ./deploy/worker
//	docker build -t rb-worker deploy/worker
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const (
	defaultPort     = 8080
	shutdownTimeout = 10 * time.Second
	healthTimeout   = 2 * time.Second
)

func main() {
	health := flag.Bool("health", false, "probe http://127.0.0.1:$PORT/healthz and exit 0 when it answers 200")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	port, err := portFromEnv(os.Getenv("PORT"))
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		os.Exit(2)
	}
	if *health {
		if err := probe(port); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	name := os.Getenv("WORKER_NAME")
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			logger.Error("no WORKER_NAME and no hostname", "err", err)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		logger.Error("listen", "port", port, "err", err)
		os.Exit(1)
	}
	if err := serve(ctx, logger, ln, name); err != nil {
		logger.Error("worker stopped", "err", err)
		os.Exit(1)
	}
}

// portFromEnv reads PORT: empty means the default, anything else must be a
// TCP port number.
func portFromEnv(s string) (int, error) {
	if s == "" {
		return defaultPort, nil
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("PORT=%q: want a TCP port from 1 to 65535", s)
	}
	return p, nil
}

// serve answers on ln until ctx is done, then shuts down gracefully: no new
// connections, requests in flight finish (up to shutdownTimeout).
func serve(ctx context.Context, logger *slog.Logger, ln net.Listener, name string) error {
	srv := &http.Server{
		Handler:           newHandler(name),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("worker listening", "name", name, "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("worker shutting down", "name", name)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// probe is the container health check: GET /healthz on the local port.
func probe(port int) error {
	c := &http.Client{Timeout: healthTimeout}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health probe: status %d", resp.StatusCode)
	}
	return nil
}
