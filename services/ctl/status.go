package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/services/gateway"
)

// statusSources are the last messages `rb status` reads: the current queue,
// the latest score of each worker, the latest decision (desired count) and
// lifecycle fact, and each proxy's last report.
var statusSources = []gateway.ReadRequest{
	{Stream: events.StreamQueue, Filters: []string{events.PrefixQueue + ">"}, LastPerSubject: true},
	{Stream: events.StreamScores, Filters: []string{events.PrefixScore + ">"}, LastPerSubject: true},
	{Stream: events.StreamDecisions, Filters: []string{events.PrefixScale + ">", events.PrefixLifecycle + ">"}, LastPerSubject: true},
	{Stream: events.StreamProxy, Filters: []string{events.PrefixProxy + ">"}, LastPerSubject: true},
}

// status prints every app and its workers, as the gateway sees them.
func (r *runner) status(ctx context.Context, args []string) int {
	var c common
	fs := r.flags(&c)
	app := fs.String("app", "", "only this app")
	asJSON := fs.Bool("json", false, "print JSON (apps and workers) instead of tables")
	pos, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) > 0 {
		return r.fail(ExitUsage, "unexpected arguments %q (use -app APP)", pos)
	}
	b, err := r.connect(ctx, c)
	if err != nil {
		return r.fail(exitFor(err), "%v", err)
	}
	defer b.Close()
	view := gateway.NewView(gateway.ViewOptions{}, time.Now)
	skipped := 0
	for _, src := range statusSources {
		if *app != "" {
			src.Filters = appFilters(src.Filters, *app)
		}
		rctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := gateway.ReadStream(rctx, b.JetStream(), src, func(m bus.Msg) {
			if _, err := view.Apply(m); err != nil {
				skipped++
			}
		})
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return r.fail(ExitFailure, "stream %s does not exist: has any rb service run against this NATS?", src.Stream)
		case err != nil && ctx.Err() != nil:
			return ExitOK // interrupted
		case err != nil:
			return r.fail(ExitFailure, "%v", err)
		}
	}
	apps := view.Apps()
	if *asJSON {
		type appWorkers struct {
			gateway.AppSummary
			WorkerList []gateway.Worker `json:"worker_list"`
		}
		out := []appWorkers{}
		for _, a := range apps {
			ws, _ := view.Workers(a.App)
			out = append(out, appWorkers{AppSummary: a, WorkerList: ws})
		}
		enc := json.NewEncoder(r.io.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return r.fail(ExitFailure, "%v", err)
		}
		return ExitOK
	}
	if len(apps) == 0 {
		what := "any app"
		if *app != "" {
			what = "app " + *app
		}
		fmt.Fprintf(r.io.Stdout, "no events of %s yet (nothing on rb.queue.*, rb.score.*, rb.scale.*, rb.proxy.*)\n", what)
		return ExitOK
	}
	tw := tabwriter.NewWriter(r.io.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tWORKERS\tACTIVE\tSTARTING\tDRAINING\tDESIRED\tMEAN SCORE\tREQ/S\tERR/S\tIN FLIGHT\tQUEUE GEN\tUPDATED")
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.App, a.Workers, a.Active, a.Starting, a.Sundown,
			optInt(a.Desired), optFloat(a.MeanScore), proxyNum(a.Proxies, a.RequestRate), proxyNum(a.Proxies, a.ErrorRate),
			proxyInt(a.Proxies, a.InFlight), a.QueueGeneration, ago(a.UpdatedAt))
	}
	if err := tw.Flush(); err != nil {
		return r.fail(ExitFailure, "%v", err)
	}
	for _, a := range apps {
		ws, _ := view.Workers(a.App)
		fmt.Fprintf(r.io.Stdout, "\n%s: %d workers\n", a.App, len(ws))
		if len(ws) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(r.io.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER\tSTATE\tCAT\tOVERALL\tCPU\tMEM\tNET\tAVAIL\tSHARE\tIN FLIGHT\tREQ/S\tADDRESS\tLATEST")
		for _, w := range ws {
			state := string(w.State)
			if !w.OnQueue {
				state = "(off queue)"
			}
			cpu, mem, net, avail, overall := "-", "-", "-", "-", strconv.FormatFloat(w.Score, 'f', 1, 64)
			if s := w.Scores; s != nil {
				cpu, mem, net, avail, overall = f1(s.CPU), f1(s.Memory), f1(s.Network), f1(s.Availability), f1(s.Overall)
			}
			share := "-"
			if w.State != events.StateSundown && w.OnQueue {
				share = fmt.Sprintf("%.0f%%", 100*w.Share)
			}
			latest := "-"
			if w.Phase != "" {
				latest = string(w.Phase) + " " + ago(w.PhaseAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", w.Container, state, w.Category, overall, cpu, mem, net, avail,
				share, w.InFlight, f1(w.RequestRate), dash(w.Address), latest)
		}
		if err := tw.Flush(); err != nil {
			return r.fail(ExitFailure, "%v", err)
		}
	}
	if skipped > 0 {
		fmt.Fprintf(r.io.Stderr, "%s: skipped %d messages that are not valid events\n", r.name, skipped)
	}
	return ExitOK
}

// appFilters narrows stream filters ("rb.score.>") to one app.
func appFilters(filters []string, app string) []string {
	tok, err := events.EscapeToken(app)
	if err != nil {
		return filters
	}
	out := make([]string, len(filters))
	for i, f := range filters {
		prefix := f[:len(f)-1] // without ">"
		if prefix == events.PrefixQueue || prefix == events.PrefixScale || prefix == events.PrefixConfig {
			out[i] = prefix + tok
		} else {
			out[i] = prefix + tok + ".>"
		}
	}
	return out
}

func f1(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func optInt(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

func optFloat(p *float64) string {
	if p == nil {
		return "-"
	}
	return f1(*p)
}

func proxyNum(proxies int, v float64) string {
	if proxies == 0 {
		return "-"
	}
	return f1(v)
}

func proxyInt(proxies int, v int64) string {
	if proxies == 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago says how long ago t was, coarsely.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02 15:04")
}
