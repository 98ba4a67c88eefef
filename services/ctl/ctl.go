// Package ctl holds rb's operator commands: `rb status`, `rb queue watch`,
// `rb config get|set` and `rb events tail`. They are NATS (and, for config,
// Redis) clients of a running system: they never start an embedded server,
// every blocking step has a time limit, and Ctrl-C ends them cleanly.
//
// `rb config set` writes Redis and publishes rb.config.<app> itself, with the
// same code as the gateway's PUT /api/v1/apps/{app}/config
// (gateway.ConfigWriter), so it works without a gateway running and with
// the same validation.
package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
)

// Exit codes, as rb's.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2 // bad arguments or values
)

// DefaultNATSURL is where the commands look for NATS when RB_NATS_URL is empty.
const DefaultNATSURL = bus.DefaultClientURL

// connectTimeout bounds connecting and each one-shot read.
const connectTimeout = 10 * time.Second

// IO is where a command reads its environment and writes its output.
type IO struct {
	Lookup func(string) (string, bool)
	Stdout io.Writer
	Stderr io.Writer
}

// Commands names the commands Main runs, for rb's usage message.
var Commands = []string{"status", "queue", "config", "events"}

// Main runs the operator command args[0] with the rest of args and returns
// the exit code.
func Main(ctx context.Context, args []string, io IO) int {
	if len(args) == 0 {
		fmt.Fprintln(io.Stderr, usage)
		return ExitUsage
	}
	r := &runner{io: io, name: "rb " + args[0]}
	switch args[0] {
	case "status":
		return r.status(ctx, args[1:])
	case "queue":
		if len(args) < 2 || args[1] != "watch" {
			return r.usage("rb queue watch [APP] [-n N] [-timeout D]")
		}
		r.name = "rb queue watch"
		return r.queueWatch(ctx, args[2:])
	case "config":
		if len(args) < 2 {
			return r.usage("rb config get APP | rb config set APP KEY=VALUE...")
		}
		switch args[1] {
		case "get":
			r.name = "rb config get"
			return r.configGet(ctx, args[2:])
		case "set":
			r.name = "rb config set"
			return r.configSet(ctx, args[2:])
		}
		return r.usage("rb config get APP | rb config set APP KEY=VALUE...")
	case "events":
		if len(args) < 2 || args[1] != "tail" {
			return r.usage("rb events tail [-subject S]... [-n N] [-json] [-timeout D]")
		}
		r.name = "rb events tail"
		return r.eventsTail(ctx, args[2:])
	}
	fmt.Fprintf(io.Stderr, "rb: unknown command %q\n%s\n", args[0], usage)
	return ExitUsage
}

const usage = `operator commands (NATS at RB_NATS_URL, default ` + DefaultNATSURL + `):
  rb status [-app APP] [-json]                      apps, workers, scores, desired/actual
  rb queue watch [APP] [-n N] [-timeout D]          print each queue change
  rb config get APP [-json]                         the runtime config: stored overrides and effective values
  rb config set APP KEY=VALUE... [-version N]       validate, store in Redis, publish rb.config.APP (KEY= removes)
  rb events tail [-subject S]... [-n N] [-json]     print events as they come (default: decisions, lifecycle, config, queue)`

// runner carries what every command needs.
type runner struct {
	io   IO
	name string
	cfg  *config.Config
}

func (r *runner) usage(synopsis string) int {
	fmt.Fprintf(r.io.Stderr, "usage: %s\n%s\n", synopsis, usage)
	return ExitUsage
}

func (r *runner) fail(code int, format string, args ...any) int {
	fmt.Fprintf(r.io.Stderr, "%s: %s\n", r.name, fmt.Sprintf(format, args...))
	return code
}

// common are the flags every command takes.
type common struct {
	natsURL string
}

// flags returns a flag set for the command with the common flags.
func (r *runner) flags(c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(r.name, flag.ContinueOnError)
	fs.SetOutput(r.io.Stderr)
	fs.StringVar(&c.natsURL, "nats-url", "", "NATS server URL (default RB_NATS_URL, else "+DefaultNATSURL+")")
	return fs
}

// parse parses args, letting flags and positional arguments mix
// (`rb queue watch shop -n 3`), and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// config loads the configuration from the environment (and RB_CONFIG_FILE).
func (r *runner) config() (*config.Config, error) {
	if r.cfg != nil {
		return r.cfg, nil
	}
	cfg, err := config.NewLoader(flag.NewFlagSet("env", flag.ContinueOnError)).Load(r.io.Lookup)
	if err != nil {
		return nil, err
	}
	r.cfg = cfg
	return cfg, nil
}

// connect connects to NATS as a client; it never starts a server.
func (r *runner) connect(ctx context.Context, c common) (*bus.Bus, error) {
	cfg, err := r.config()
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(r.io.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	b, err := bus.Connect(cctx, bus.ClientOptions(cfg.NATS, c.natsURL, r.name), logger)
	if err != nil {
		return nil, fmt.Errorf("%w (is rb running? set RB_NATS_URL or -nats-url)", err)
	}
	return b, nil
}

// exitFor maps an error to an exit code: bad configuration values are usage errors.
func exitFor(err error) int {
	var ce *config.Error
	if errors.As(err, &ce) {
		return ExitUsage
	}
	return ExitFailure
}

// withTimeout returns ctx limited to d when d > 0.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*m = append(*m, p)
		}
	}
	return nil
}
