package replayctl

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/replay"
	"github.com/rustybalancer/rb/services/scorer"
)

// replayFlags are `rb replay`'s flags.
type replayFlags struct {
	src        source
	file       string
	model      string
	sets       []string
	configFile string
	sweeps     []string
	out        string
	top        int
	flapWindow time.Duration
	start      time.Duration
	remove     time.Duration
	drain      time.Duration
	timeline   bool
	holds      bool
	verify     bool
}

const replayUsage = `usage: rb replay [-since 10m | -from T [-to T] | -seq A:B | -file F] [-model conserve-demand|as-recorded]
                 [-set VAR=VALUE]... [-config overrides.yaml] [-sweep VAR=FROM:TO:STEP | -sweep VAR=V1,V2]... [-out DIR]

Without overrides, replays the recording with its recorded config and facts and compares the decisions
with the recorded ones, byte for byte. With -set or -config, replays one what-if. With -sweep, replays
the grid on all cores, ranks it, and writes CSV, JSON and an SVG plot to -out. See docs/replay.md.

`

func (f *replayFlags) register(fs *flag.FlagSet) {
	f.src.register(fs)
	fs.StringVar(&f.file, "file", "", "read this export `FILE` (from rb export) instead of JetStream")
	fs.StringVar(&f.model, "model", string(replay.ModelConserveDemand), "load `MODEL` of a what-if: conserve-demand (the recorded total load spread over the replay's workers) or as-recorded (each worker's recorded usage)")
	fs.Func("set", "override `VAR=VALUE` for the whole replay (repeatable; a runtime variable)", func(v string) error {
		f.sets = append(f.sets, v)
		return nil
	})
	fs.StringVar(&f.configFile, "config", "", "overrides from a YAML `FILE` of VAR: value pairs (-set wins)")
	fs.Func("sweep", "sweep `VAR=FROM:TO:STEP` or VAR=V1,V2,... (repeatable: the grid of every combination)", func(v string) error {
		f.sweeps = append(f.sweeps, v)
		return nil
	})
	fs.StringVar(&f.out, "out", "", "write report.csv, report.json and workers.svg to `DIR` (a sweep's default: rb-replay-<time>)")
	fs.IntVar(&f.top, "top", 3, "plot the best `N` candidates against the recording")
	fs.DurationVar(&f.flapWindow, "flap-window", replay.DefaultFlapWindow, "a scale-up and a scale-down closer than this are a flap")
	fs.DurationVar(&f.start, "start-delay", 0, "what-if: a new worker is ready this long after its decision (default: the recording's median)")
	fs.DurationVar(&f.remove, "remove-delay", 0, "what-if: a removal completes this long after its decision (default: the recording's median)")
	fs.DurationVar(&f.drain, "drain-delay", 0, "what-if: a SUNDOWN worker is drained this long after its scale-down (default: the recording's median with proxy reports, else the candidate's own rule; negative: off)")
	fs.BoolVar(&f.timeline, "timeline", true, "print the decision timeline (of the best candidate in a sweep)")
	fs.BoolVar(&f.holds, "holds", false, "include hold decisions in the timeline")
	fs.BoolVar(&f.verify, "verify", false, "exit 1 when a replay with the recorded config does not reproduce the recorded decisions")
}

// replay is `rb replay`.
func (c *cmd) replay(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(c.io.Stderr)
	var f replayFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), replayUsage)
		fs.PrintDefaults()
	}
	if done, code := c.parse(fs, args); done {
		return code
	}
	return c.exit(c.doReplay(ctx, &f))
}

// overrides reads -config and -set into one map (-set wins).
func (f *replayFlags) overrides() (map[string]string, error) {
	out := map[string]string{}
	if f.configFile != "" {
		b, err := os.ReadFile(f.configFile)
		if err != nil {
			return nil, usagef("-config: %v", err)
		}
		var raw map[string]any
		if err := yaml.Unmarshal(b, &raw); err != nil {
			return nil, usagef("-config %s: %v", f.configFile, err)
		}
		for k, v := range raw {
			switch v.(type) {
			case map[string]any, []any:
				return nil, usagef("-config %s: %s: want a scalar value (the file is flat VAR: value pairs)", f.configFile, k)
			case nil:
				out[strings.ToUpper(k)] = ""
			default:
				out[strings.ToUpper(k)] = fmt.Sprint(v)
			}
		}
	}
	for _, s := range f.sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usagef("-set %q: want VAR=VALUE", s)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

func (c *cmd) doReplay(ctx context.Context, f *replayFlags) error {
	model := replay.Model(f.model)
	if !slices.Contains(replay.Models(), model) {
		return usagef("-model %q: want one of %v", f.model, replay.Models())
	}
	if f.top < 0 {
		return usagef("-top %d: want ≥ 0", f.top)
	}
	set, err := f.overrides()
	if err != nil {
		return err
	}
	var axes []replay.Axis
	for _, s := range f.sweeps {
		a, err := replay.ParseAxis(s)
		if err != nil {
			return err
		}
		if _, dup := set[a.Var]; dup || slices.ContainsFunc(axes, func(b replay.Axis) bool { return b.Var == a.Var }) {
			return usagef("-sweep %s: the variable is already set or swept", a.Var)
		}
		axes = append(axes, a)
	}
	cfg, err := c.baseConfig()
	if err != nil {
		return err
	}
	base := *cfg
	// Bad overrides fail before anything is read, naming the variable.
	if err := checkOverrides(base, set, axes); err != nil {
		return err
	}
	app := f.src.app
	if _, set := c.io.Lookup("APP_IDENTIFIER"); app == "" && !set && f.file != "" {
		// A file knows its app; the environment does not say another.
		if meta, err := replay.ReadMeta(f.file); err == nil && meta != nil && meta.App != "" {
			app = meta.App
		}
	}
	if app == "" {
		app = base.App
	}
	base.App = app

	rec, measureFrom, err := c.load(ctx, f, &base)
	if err != nil {
		return err
	}
	if err := rec.Check(); err != nil {
		return err
	}
	base, notes := replay.InferBase(rec, base, Params)
	for _, n := range notes {
		fmt.Fprintf(c.io.Stderr, "%s: note: %s\n", c.name, n)
	}
	if len(notes) > 0 {
		if err := checkOverrides(base, set, axes); err != nil {
			return err
		}
	}
	begin := c.io.Now()
	p, err := replay.Prepare(rec, replay.Options{
		Base: base, Params: Params, Model: model, MeasureFrom: measureFrom, Complete: rec.Meta != nil && rec.Meta.Complete,
		FlapWindow: f.flapWindow,
		StartDelay: f.start, RemoveDelay: f.remove, DrainDelay: f.drain, IdleTimeout: scorer.DefaultIdleTimeout,
	})
	if err != nil {
		return err
	}
	for _, n := range p.Notes() {
		fmt.Fprintf(c.io.Stderr, "%s: note: %s\n", c.name, n)
	}
	fmt.Fprintf(c.io.Stderr, "%s: app %s: %d samples, %d decisions, %d lifecycle facts, %d config changes, %d proxy reports; %s → %s; prepared in %s\n",
		c.name, app, len(rec.Samples), rec.Count("decision"), rec.Count("lifecycle"), rec.Count("config_changed"), rec.Count("proxy_report"),
		p.Start().Format(time.RFC3339), p.End().Format(time.RFC3339), c.io.Now().Sub(begin).Round(time.Millisecond))
	for reason, n := range rec.Skipped {
		if reason != "score (recomputed from samples)" {
			fmt.Fprintf(c.io.Stderr, "%s: note: skipped %d: %s\n", c.name, n, reason)
		}
	}
	switch {
	case len(axes) > 0:
		return c.sweep(ctx, f, p, set, axes)
	case len(set) > 0:
		return c.whatIf(ctx, f, p, replay.CandidateOf(set, nil))
	}
	return c.faithful(ctx, f, p)
}

// checkOverrides validates the fixed overrides, and every value of every
// swept variable: a value no combination of the grid accepts is a bad
// override, named with the reason of its first combination. (Single
// combinations that do not validate are skipped later, with a note.)
func checkOverrides(base config.Config, set map[string]string, axes []replay.Axis) error {
	if err := replay.Validate(base, Params, set); err != nil {
		return err
	}
	if len(axes) == 0 {
		return nil
	}
	type value struct{ v, a string }
	valid := map[value]bool{}
	firstErr := map[value]error{}
	for _, c := range replay.Grid(set, axes) {
		err := replay.Validate(base, Params, c.Set)
		for _, a := range axes {
			k := value{a: a.Var, v: c.Set[a.Var]}
			if err == nil {
				valid[k] = true
			} else if firstErr[k] == nil {
				firstErr[k] = err
			}
		}
	}
	for _, a := range axes {
		for _, v := range a.Values {
			if k := (value{a: a.Var, v: v}); !valid[k] {
				return fmt.Errorf("-sweep %s=%s: %w", a.Var, v, firstErr[k])
			}
		}
	}
	return nil
}

// load reads the recording and says where the replay proper starts.
func (c *cmd) load(ctx context.Context, f *replayFlags, base *config.Config) (*replay.Recording, time.Time, error) {
	begin := c.io.Now()
	defer func() {
		fmt.Fprintf(c.io.Stderr, "%s: read in %s\n", c.name, c.io.Now().Sub(begin).Round(time.Millisecond))
	}()
	if f.file != "" {
		if f.src.seq != "" {
			return nil, time.Time{}, usagef("-seq reads JetStream; with -file give -from/-to or -since")
		}
		rec, err := replay.ReadFile(ctx, f.file, base.App)
		if err != nil {
			return nil, time.Time{}, err
		}
		var from time.Time
		if rec.Meta != nil {
			from = rec.Meta.From
		}
		// -since with a file counts back from its last event.
		_, last := rec.Span()
		r, err := f.src.rangeOf(last)
		if err != nil {
			return nil, time.Time{}, err
		}
		if !r.From.IsZero() {
			from = r.From
		}
		if !r.To.IsZero() {
			rec.TrimAfter(r.To)
		}
		return rec, from, nil
	}
	r, err := f.src.rangeOf(c.io.Now())
	if err != nil {
		return nil, time.Time{}, err
	}
	streams, err := f.src.streamList()
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := c.connect(ctx, base, f.src.natsURL)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer b.Close()
	rec, err := replay.Fetch(ctx, b.JetStream(), base.App, streams, r)
	if err != nil {
		return nil, time.Time{}, err
	}
	return rec, rec.Meta.From, nil
}

// faithful replays with the recorded config and facts and compares.
func (c *cmd) faithful(ctx context.Context, f *replayFlags, p *replay.Prepared) error {
	pr := startProgress(c.io.Stderr, isTerminal(c.io.Stderr), "replay", int64(p.Measured()), c.io.Now)
	res, cmp, err := p.Faithful(ctx, pr.add)
	pr.finish()
	if err != nil {
		return err
	}
	w := c.io.Stdout
	if f.timeline {
		fmt.Fprintln(w, "decisions of the replay:")
		if err := replay.WriteTimeline(w, res.Decisions, f.holds); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	switch {
	case cmp.Equal:
		fmt.Fprintf(w, "the replay with the recorded config reproduces all %d recorded decisions, byte for byte\n\n", cmp.Recorded)
	case cmp.Actions.Equal:
		fmt.Fprintf(w, "the replay with the recorded config reproduces all %d recorded scaling actions (scale-ups, scale-downs, replaces, removes) byte for byte;\n"+
			"a hold differs (the first difference is decision %d of %d; a hold's reason times its condition to the nanosecond):\n  recorded: %s\n  replayed: %s\n(see docs/replay.md, \"When a replay differs\")\n\n",
			cmp.Actions.Recorded, cmp.Identical+1, cmp.Recorded, orNone(cmp.FirstRecorded), orNone(cmp.FirstReplayed))
	default:
		fmt.Fprintf(w, "the replay differs from the recording: %d of %d recorded decisions reproduced before the first difference (%d replayed)\n  recorded: %s\n  replayed: %s\n(see docs/replay.md, \"When a replay differs\")\n\n",
			cmp.Identical, cmp.Recorded, cmp.Replayed, orNone(cmp.FirstRecorded), orNone(cmp.FirstReplayed))
	}
	rep := p.NewReport(replay.Rank([]*replay.Result{res}, p.Actual().Summary))
	if err := rep.WriteTable(w); err != nil {
		return err
	}
	if f.out != "" {
		if err := c.writeOutputs(f.out, rep, f.top); err != nil {
			return err
		}
	}
	if f.verify && !cmp.Equal {
		return fmt.Errorf("the replay does not reproduce the recorded decisions")
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// whatIf replays one candidate.
func (c *cmd) whatIf(ctx context.Context, f *replayFlags, p *replay.Prepared, cand replay.Candidate) error {
	pr := startProgress(c.io.Stderr, isTerminal(c.io.Stderr), "replay", int64(p.Measured()), c.io.Now)
	res, err := p.Run(ctx, cand, pr.add)
	pr.finish()
	if err != nil {
		return err
	}
	w := c.io.Stdout
	if f.timeline {
		fmt.Fprintf(w, "decisions of %s:\n", cand.Name)
		if err := replay.WriteTimeline(w, res.Decisions, f.holds); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	c.printDelays(p)
	rep := p.NewReport(replay.Rank([]*replay.Result{res}, p.Actual().Summary))
	if err := rep.WriteTable(w); err != nil {
		return err
	}
	if f.out != "" {
		return c.writeOutputs(f.out, rep, f.top)
	}
	return nil
}

func (c *cmd) printDelays(p *replay.Prepared) {
	d := p.Delays()
	drain := d.DrainFrom
	if !strings.HasPrefix(drain, "no proxy") && !strings.HasPrefix(drain, "flag: no") {
		drain = fmt.Sprintf("requests in flight %s after SUNDOWN (%s), then RB_DRAIN_GRACE", d.Drain.Round(time.Millisecond), d.DrainFrom)
	}
	fmt.Fprintf(c.io.Stderr, "%s: simulated: ready %s after a scale-up (%s), removed %s after a remove (%s); drain: %s\n",
		c.name, d.Start.Round(time.Millisecond), d.StartFrom, d.Remove.Round(time.Millisecond), d.RemoveFrom, drain)
}

// sweep replays the grid on all cores and ranks it.
func (c *cmd) sweep(ctx context.Context, f *replayFlags, p *replay.Prepared, set map[string]string, axes []replay.Axis) error {
	cands, skipped := validGrid(p, set, axes)
	for _, s := range skipped {
		fmt.Fprintf(c.io.Stderr, "%s: note: skipped %s\n", c.name, s)
	}
	if len(cands) == 0 {
		return usagef("no candidate of the sweep is valid")
	}
	c.printDelays(p)
	workers := runtime.GOMAXPROCS(0)
	fmt.Fprintf(c.io.Stderr, "%s: %d candidates on %d cores\n", c.name, len(cands), workers)
	pr := startProgress(c.io.Stderr, isTerminal(c.io.Stderr), "sweep", int64(p.Measured())*int64(len(cands)), c.io.Now)
	results, err := p.RunAll(ctx, cands, workers, pr.add)
	pr.finish()
	if err != nil {
		return err
	}
	rep := p.NewReport(replay.Rank(results, p.Actual().Summary))
	w := c.io.Stdout
	if err := rep.WriteTable(w); err != nil {
		return err
	}
	if f.timeline && len(rep.Candidates) > 0 {
		best := rep.Candidates[0].Result
		fmt.Fprintf(w, "\ndecisions of the best candidate, %s:\n", best.Candidate.Name)
		if err := replay.WriteTimeline(w, best.Decisions, f.holds); err != nil {
			return err
		}
	}
	out := f.out
	if out == "" {
		out = "rb-replay-" + c.io.Now().UTC().Format("20060102-150405")
	}
	return c.writeOutputs(out, rep, f.top)
}

// validGrid is the sweep's grid without the combinations that do not
// validate together (HIGH above LOW, say), which are named. The candidate
// equal to the recorded config, if any, says so in its name.
func validGrid(p *replay.Prepared, set map[string]string, axes []replay.Axis) ([]replay.Candidate, []string) {
	var ok []replay.Candidate
	var skipped []string
	for _, cand := range replay.Grid(set, axes) {
		if err := p.Validate(cand); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", cand.Name, err))
			continue
		}
		if p.IsRecorded(cand) {
			cand.Name += " (= recorded)"
		}
		ok = append(ok, cand)
	}
	return ok, skipped
}

// writeOutputs writes the CSV, JSON and SVG of a report into dir.
func (c *cmd) writeOutputs(dir string, rep *replay.Report, top int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	files := []struct {
		name  string
		write func(f *os.File) error
	}{
		{"report.csv", func(f *os.File) error { return rep.WriteCSV(f) }},
		{"report.json", func(f *os.File) error { return rep.WriteJSON(f) }},
		{"workers.svg", func(f *os.File) error { return rep.PlotBest(f, top) }},
	}
	var paths []string
	for _, fl := range files {
		path := filepath.Join(dir, fl.name)
		fh, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		err = fl.write(fh)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	fmt.Fprintf(c.io.Stdout, "\nwrote %s\n", strings.Join(paths, ", "))
	return nil
}
