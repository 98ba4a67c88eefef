package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rustybalancer/rb/pkg/admin"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/services/ctl"
	"github.com/rustybalancer/rb/services/replayctl"
)

// Exit codes of rb.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2 // bad flags or configuration
)

// IO is where a command reads its environment and writes its output.
type IO struct {
	Lookup func(string) (string, bool)
	Stdout io.Writer
	Stderr io.Writer
}

// Main runs the rb command line: subcommands, the informational flags, or
// the selected targets until ctx is done. It returns the process exit code;
// main only handles signals and exits.
func Main(ctx context.Context, args []string, io IO, version string) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "version":
			fmt.Fprintln(io.Stdout, "rb", Version(version))
			return ExitOK
		case "status", "queue", "config", "events":
			return ctl.Main(ctx, args, ctl.IO{Lookup: io.Lookup, Stdout: io.Stdout, Stderr: io.Stderr})
		case "export", "replay":
			return replayctl.Main(ctx, args, replayctl.IO{Lookup: io.Lookup, Stdout: io.Stdout, Stderr: io.Stderr})
		default:
			fmt.Fprintf(io.Stderr, "rb: unknown command %q; commands: version, %s, %s (run `rb -h` for flags)\n", args[0],
				strings.Join(ctl.Commands, ", "), strings.Join(replayctl.Commands, ", "))
			return ExitUsage
		}
	}
	fs := flag.NewFlagSet("rb", flag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	target := fs.String("target", TargetAll, "targets to run: all, or a comma list (see -list-targets)")
	listTargets := fs.Bool("list-targets", false, "list the targets and exit")
	verify := fs.Bool("verify-config", false, "validate the configuration for the selected targets and exit (2 when invalid)")
	printCfg := fs.Bool("print-config", false, "print the effective configuration (secrets redacted) and exit")
	health := fs.Bool("health", false, "probe this configuration's admin listener /healthz; exit 0 when healthy, 1 otherwise")
	loader := config.NewLoader(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.Stderr, "rb: unexpected arguments %q\n", fs.Args())
		return ExitUsage
	}
	if *listTargets {
		for _, t := range Targets() {
			fmt.Fprintf(io.Stdout, "%-14s %s\n", t.Name, t.Help)
		}
		return ExitOK
	}
	targets, err := Resolve(*target)
	if err != nil {
		fmt.Fprintln(io.Stderr, "rb:", err)
		return ExitUsage
	}
	cfg, err := loader.Load(io.Lookup)
	if err != nil {
		fmt.Fprintln(io.Stderr, "rb:", err)
		return ExitUsage
	}
	// What the selected targets cannot run without is checked for running
	// and -verify-config, not for -print-config and -health.
	var requireErr error
	for _, t := range targets {
		if rerr := cfg.Require(t.Require...); len(t.Require) > 0 && rerr != nil {
			requireErr = fmt.Errorf("target %s: %w", t.Name, rerr)
			break
		}
	}
	if requireErr != nil && !*printCfg && !*health {
		fmt.Fprintln(io.Stderr, "rb:", requireErr)
		return ExitUsage
	}
	switch {
	case *verify:
		fmt.Fprintln(io.Stdout, "configuration is valid")
		return ExitOK
	case *printCfg:
		if err := cfg.Print(io.Stdout); err != nil {
			return ExitFailure
		}
		return ExitOK
	case *health:
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := admin.Probe(pctx, cfg.Admin.Addr); err != nil {
			fmt.Fprintln(io.Stderr, "rb: unhealthy:", err)
			return ExitFailure
		}
		fmt.Fprintln(io.Stdout, "healthy")
		return ExitOK
	}
	logger := NewLogger(cfg.Log, io.Stderr)
	// go-redis logs through a process-wide logger; route it once, here, so an
	// outage is reported by the store's own once-per-backoff-step lines.
	redis.SetLogger(store.DriverLogger{Logger: logger.With("component", "redis-driver")})
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	logger.Info("rb starting", "version", Version(version), "targets", strings.Join(names, ","), "app", cfg.App)
	d := &Deps{Config: cfg, Logger: logger, Admin: admin.New(cfg.Admin.Addr, logger.With("component", "admin")), Version: version}
	if err := Run(ctx, d, targets); err != nil {
		logger.Error("rb stopped with an error", "err", err)
		return ExitFailure
	}
	logger.Info("rb stopped")
	return ExitOK
}

// NewLogger builds the process logger from the log config.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Version is the build's version: the one set at link time, else the module's
// or VCS revision from the build info.
func Version(linked string) string {
	if linked != "" {
		return linked
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
