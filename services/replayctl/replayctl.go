// Package replayctl holds `rb export` and `rb replay`: the command-line side
// of pkg/replay. Both are NATS clients of a running system (RB_NATS_URL,
// default nats://127.0.0.1:4222) and never start an embedded server; replay
// can also read an export file instead.
//
// The parameters a replay runs with come from the same mapping as the live
// services' (services/scorer.Params, services/scaler.Params) applied to the
// base configuration (the environment, RB_CONFIG_FILE), corrected by what
// the recorded decisions say the scaler used, with the recorded config
// changes and the overrides (--set, --config, --sweep) on top.
// docs/replay.md is the user's guide.
package replayctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/replay"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/services/scaler"
	"github.com/rustybalancer/rb/services/scorer"
)

// Exit codes, as rb's.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2 // bad arguments, configuration or overrides
)

// DefaultNATSURL is where the commands look for NATS when RB_NATS_URL is empty.
const DefaultNATSURL = bus.DefaultClientURL

// DefaultWarmup is how much of the streams before the range is read to
// rebuild the state the range starts from (at least the scorer's rebuild
// window with the default parameters, 66 s, and a few scaling checks).
const DefaultWarmup = 2 * time.Minute

// connectTimeout bounds connecting to NATS.
const connectTimeout = 10 * time.Second

// Commands names the commands Main runs, for rb's usage message.
var Commands = []string{"export", "replay"}

// IO is where a command reads its environment and writes its output.
type IO struct {
	Lookup func(string) (string, bool)
	Stdout io.Writer
	Stderr io.Writer
	// Now is the wall clock, for --since and the default output directory
	// (nil: time.Now).
	Now func() time.Time
}

// Params maps a configuration to parameters exactly as the live scorer and
// scaler do.
func Params(c config.Config) (score.Params, scale.Params) {
	return scorer.Params(c), scaler.Params(c)
}

// Main runs `rb export` or `rb replay` (args[0]) and returns the exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	if stdio.Now == nil {
		stdio.Now = time.Now
	}
	c := &cmd{io: stdio}
	if len(args) == 0 {
		fmt.Fprintln(stdio.Stderr, "usage: rb export|replay [flags] (-h for the flags)")
		return ExitUsage
	}
	c.name = "rb " + args[0]
	switch args[0] {
	case "export":
		return c.export(ctx, args[1:])
	case "replay":
		return c.replay(ctx, args[1:])
	}
	fmt.Fprintf(stdio.Stderr, "rb: unknown command %q; want export or replay\n", args[0])
	return ExitUsage
}

// cmd carries what both commands need.
type cmd struct {
	io   IO
	name string
}

// usageError is a bad argument: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exit prints err and returns its exit code.
func (c *cmd) exit(err error) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(c.io.Stderr, "%s: %v\n", c.name, err)
	var ue usageError
	var ce *config.Error
	if errors.As(err, &ue) || errors.As(err, &ce) || errors.Is(err, replay.ErrBadOverride) || errors.Is(err, replay.ErrBadSweep) {
		return ExitUsage
	}
	return ExitFailure
}

// source are the flags that say what to read.
type source struct {
	natsURL  string
	app      string
	since    time.Duration
	from, to string
	seq      string
	streams  string
	warmup   time.Duration
}

func (s *source) register(fs *flag.FlagSet) {
	fs.StringVar(&s.natsURL, "nats-url", "", "NATS server URL (default RB_NATS_URL, else "+DefaultNATSURL+"); never an embedded server")
	fs.StringVar(&s.app, "app", "", "the app (default APP_IDENTIFIER)")
	fs.Func("since", "read the last `DURATION` (e.g. 10m, 1h)", func(v string) error {
		d, err := config.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a duration such as 10m")
		}
		s.since = d
		return nil
	})
	fs.StringVar(&s.from, "from", "", "read from this `RFC3339` time")
	fs.StringVar(&s.to, "to", "", "read up to this `RFC3339` time (default: what the streams hold now)")
	fs.StringVar(&s.seq, "seq", "", "read this `FROM:TO` range of RB_STATS sequences (the other streams by the times they span)")
	fs.StringVar(&s.streams, "streams", "", "streams to read, comma separated (default "+strings.Join(replay.DefaultStreams(), ",")+
		", the last two when the server has them): RB_PROXY makes drain decisions exact, RB_SCORES the order the scaler saw its inputs in")
	fs.DurationVar(&s.warmup, "warmup", DefaultWarmup, "also read this much before the range, to rebuild the state it starts from (not measured)")
}

// rangeOf turns the flags into a range; now is the wall clock.
func (s *source) rangeOf(now time.Time) (replay.Range, error) {
	r := replay.Range{Warmup: s.warmup, SkipMissing: s.streams == ""}
	if s.warmup < 0 {
		return r, usagef("-warmup %s: want ≥ 0", s.warmup)
	}
	set := 0
	if s.since > 0 {
		set++
		r.From = now.Add(-s.since)
	}
	if s.from != "" {
		set++
		t, err := time.Parse(time.RFC3339Nano, s.from)
		if err != nil {
			return r, usagef("-from %q: want an RFC3339 time such as 2026-11-26T12:00:00Z", s.from)
		}
		r.From = t
	}
	if s.seq != "" {
		set++
		a, b, ok := strings.Cut(s.seq, ":")
		var err1, err2 error
		if ok {
			_, err1 = fmt.Sscan(a, &r.FromSeq)
			_, err2 = fmt.Sscan(b, &r.ToSeq)
		}
		if !ok || err1 != nil || err2 != nil || r.FromSeq == 0 || r.ToSeq < r.FromSeq {
			return r, usagef("-seq %q: want FROM:TO, sequences of RB_STATS with 1 ≤ FROM ≤ TO", s.seq)
		}
	}
	if set > 1 {
		return r, usagef("give one of -since, -from and -seq")
	}
	if s.to != "" {
		if s.seq != "" {
			return r, usagef("-to does not go with -seq")
		}
		t, err := time.Parse(time.RFC3339Nano, s.to)
		if err != nil {
			return r, usagef("-to %q: want an RFC3339 time", s.to)
		}
		if !r.From.IsZero() && !t.After(r.From) {
			return r, usagef("-to %s is not after the start %s", t.Format(time.RFC3339), r.From.Format(time.RFC3339))
		}
		r.To = t
	}
	return r, nil
}

func (s *source) streamList() ([]string, error) {
	if s.streams == "" {
		return replay.DefaultStreams(), nil
	}
	var out []string
	for _, p := range strings.Split(s.streams, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if err := replay.CheckStream(p); err != nil {
				return nil, usagef("-streams: %v", err)
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, usagef("-streams: none given")
	}
	return out, nil
}

// baseConfig loads the configuration from the environment (and
// RB_CONFIG_FILE), as the services load theirs.
func (c *cmd) baseConfig() (*config.Config, error) {
	return config.NewLoader(flag.NewFlagSet("env", flag.ContinueOnError)).Load(c.io.Lookup)
}

// connect connects to NATS as a client.
func (c *cmd) connect(ctx context.Context, cfg *config.Config, url string) (*bus.Bus, error) {
	logger := slog.New(slog.NewTextHandler(c.io.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	b, err := bus.Connect(cctx, bus.ClientOptions(cfg.NATS, url, c.name), logger)
	if err != nil {
		return nil, fmt.Errorf("%w (is rb running? set RB_NATS_URL or -nats-url)", err)
	}
	return b, nil
}

// parse parses the flags; -h prints them and exits 0.
func (c *cmd) parse(fs *flag.FlagSet, args []string) (done bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, ExitOK
		}
		return true, ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.io.Stderr, "%s: unexpected arguments %q\n", c.name, fs.Args())
		return true, ExitUsage
	}
	return false, 0
}

// isTerminal says whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
