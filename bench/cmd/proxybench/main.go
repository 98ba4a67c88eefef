// Command proxybench compares the rb proxy with HAProxy and NGINX on
// loopback, over the same backends, as issue 4's figures ask:
//
//  1. throughput and latency under wrk (closed loop), interleaved rounds,
//     each figure also as a ratio to one backend reached directly;
//  2. distribution efficiency η of the weighted policy over 100,000
//     requests, counted at the backends;
//  3. open-loop latency (vegeta) over heterogeneous backends, three fast
//     and one slow, and the share of requests the slow one gets.
//
// The backends run in this process; the proxies are child processes pinned
// to their own CPUs (taskset), stopped by their pid when the bench ends or
// fails. bench/run.sh builds everything and runs this with the right CPU
// placement; the report is printed and written as markdown to -out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	rb, wrk, haproxy, nginx, vegeta, redisServer string
	proxyCPUs                                    string
	out                                          string
	parts                                        map[string]bool
	command, rbVersion, placement                string

	wrkThreads, wrkConns   int
	wrkDuration, wrkWarmup time.Duration
	rounds                 int

	etaRequests, etaConns int

	hetRates               []int
	hetTargets             map[string]bool
	hetDuration, hetWarmup time.Duration
	fast, slow             time.Duration

	redis bool
	// rbCPUProfile is a directory: rb (built from bench/cmd/rbprof) writes a
	// CPU profile per target there.
	rbCPUProfile string
}

// env is one bench run: its config, temp dir and children.
type env struct {
	cfg      config
	dir      string
	procs    *procs
	log      *slog.Logger
	host     string
	redisURL string
}

func main() {
	os.Exit(run())
}

func run() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "proxybench-")
	if err != nil {
		log.Error("make temp dir", "err", err)
		return 1
	}
	host, _ := os.Hostname()
	e := &env{cfg: cfg, dir: dir, procs: &procs{}, log: log, host: host}
	rep, err := e.run(ctx)
	if serr := e.procs.StopAll(); serr != nil {
		log.Warn("stop children", "err", serr)
	}
	if err != nil {
		log.Error("bench failed; logs kept", "dir", dir, "err", err)
		return 1
	}
	_ = os.RemoveAll(dir)
	md := rep.markdown()
	fmt.Print(md)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			log.Error("write report", "err", err)
			return 1
		}
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			log.Error("write report", "err", err)
			return 1
		}
		log.Info("report written", "path", cfg.out)
	}
	return 0
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("proxybench", flag.ContinueOnError)
	fs.StringVar(&c.rb, "rb", "", "rb binary (required for the rb rows)")
	fs.StringVar(&c.wrk, "wrk", "wrk", "wrk binary")
	fs.StringVar(&c.haproxy, "haproxy", "/usr/sbin/haproxy", "haproxy binary")
	fs.StringVar(&c.nginx, "nginx", "/usr/sbin/nginx", "nginx binary")
	fs.StringVar(&c.vegeta, "vegeta", "vegeta", "vegeta binary")
	fs.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server binary (with -redis)")
	fs.BoolVar(&c.redis, "redis", false, "start a redis-server on a free port for rb (without it rb is given a Redis URL nothing listens on)")
	fs.StringVar(&c.rbCPUProfile, "rb-cpuprofile", "", "directory for a CPU profile per rb target (needs -rb built from bench/cmd/rbprof)")
	fs.StringVar(&c.proxyCPUs, "proxy-cpus", "0", "CPU list (taskset -c) for the proxies under test; empty: no pinning")
	fs.StringVar(&c.out, "out", "", "markdown report file")
	parts := fs.String("parts", "wrk,eta,het", "parts to run: wrk, eta, het")
	fs.StringVar(&c.command, "command", "", "the command line to quote in the report")
	fs.StringVar(&c.rbVersion, "rb-version", "", "rb version to quote in the report")
	fs.StringVar(&c.placement, "placement", "", "how the load generators and backends are placed, for the report")
	fs.IntVar(&c.wrkThreads, "wrk-threads", 2, "wrk -t")
	fs.IntVar(&c.wrkConns, "wrk-conns", 64, "wrk -c")
	fs.DurationVar(&c.wrkDuration, "wrk-duration", 10*time.Second, "wrk -d of each measured run")
	fs.DurationVar(&c.wrkWarmup, "wrk-warmup", 2*time.Second, "unmeasured wrk run before each measured one")
	fs.IntVar(&c.rounds, "rounds", 2, "interleaved wrk rounds")
	fs.IntVar(&c.etaRequests, "eta-requests", 100000, "requests per weight set")
	fs.IntVar(&c.etaConns, "eta-conns", 32, "connections of the η load")
	rates := fs.String("het-rates", "1000,3000", "open-loop rates (req/s)")
	hetTargets := fs.String("het-targets", strings.Join(hetTargetKeys, ","), "targets of the heterogeneous part")
	fs.DurationVar(&c.hetDuration, "het-duration", 15*time.Second, "measured vegeta attack per target and rate")
	fs.DurationVar(&c.hetWarmup, "het-warmup", 2*time.Second, "unmeasured attack at the same rate before each measured one")
	fs.DurationVar(&c.fast, "fast", 2*time.Millisecond, "sleep of the fast backends")
	fs.DurationVar(&c.slow, "slow", 20*time.Millisecond, "sleep of the slow backend")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		switch p = strings.TrimSpace(p); p {
		case "wrk", "eta", "het":
			c.parts[p] = true
		case "":
		default:
			return c, fmt.Errorf("-parts: unknown part %q (want wrk, eta, het)", p)
		}
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return c, fmt.Errorf("-het-rates: %q is not a positive rate", r)
		}
		c.hetRates = append(c.hetRates, n)
	}
	c.hetTargets = map[string]bool{}
	for _, t := range strings.Split(*hetTargets, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !slices.Contains(hetTargetKeys, t) {
			return c, fmt.Errorf("-het-targets: unknown target %q (want some of %s)", t, strings.Join(hetTargetKeys, ","))
		}
		c.hetTargets[t] = true
	}
	var errs []error
	if c.rounds < 1 || c.wrkConns < 1 || c.wrkThreads < 1 || c.wrkThreads > c.wrkConns {
		errs = append(errs, errors.New("-rounds, -wrk-conns and -wrk-threads must be positive, threads ≤ conns"))
	}
	if c.wrkDuration < time.Second || c.hetDuration < time.Second {
		errs = append(errs, errors.New("-wrk-duration and -het-duration must be at least 1s"))
	}
	if c.etaRequests < 1 || c.etaConns < 1 {
		errs = append(errs, errors.New("-eta-requests and -eta-conns must be positive"))
	}
	return c, errors.Join(errs...)
}

// run runs the parts asked for, in order.
func (e *env) run(ctx context.Context) (*report, error) {
	rep := &report{cfg: e.cfg, start: time.Now()}
	rep.machine = machineNote()
	rep.versions = e.versions(ctx)
	if e.cfg.redis {
		if err := e.startRedis(ctx); err != nil {
			return nil, err
		}
	} else {
		// Nothing listens there: rb runs without Redis, as the bench's
		// proxy path needs none, and never touches another Redis.
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		e.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	}
	if e.cfg.parts["wrk"] {
		if err := e.throughput(ctx, rep); err != nil {
			return nil, fmt.Errorf("throughput: %w", err)
		}
	}
	if e.cfg.parts["eta"] {
		if err := e.distribution(ctx, rep); err != nil {
			return nil, fmt.Errorf("distribution: %w", err)
		}
	}
	if e.cfg.parts["het"] {
		if err := e.heterogeneous(ctx, rep); err != nil {
			return nil, fmt.Errorf("heterogeneous backends: %w", err)
		}
	}
	rep.end = time.Now()
	rep.loadEnd = loadAvg() + ", CPU pressure " + psiAvg60()
	return rep, nil
}

// startRedis runs a redis-server without persistence on a free port.
func (e *env) startRedis(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(e.dir, "redis-")
	if err != nil {
		return fmt.Errorf("start redis: %w", err)
	}
	p, err := startProc("redis", "", dir, baseEnv(), e.cfg.redisServer,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return err
	}
	e.procs.add(p)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := p.waitDial(ctx, addr, 10*time.Second); err != nil {
		return err
	}
	e.redisURL = "redis://" + addr + "/0"
	return nil
}
