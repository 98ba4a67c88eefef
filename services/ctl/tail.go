package ctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rustybalancer/rb/events"
)

// defaultTailSubjects are what the system decides: scaling, lifecycle,
// config and queue changes (samples, scores and proxy reports come every
// second; ask for them with -subject).
var defaultTailSubjects = []string{events.PrefixScale + ">", events.PrefixLifecycle + ">", events.PrefixConfig + ">", events.PrefixQueue + ">"}

// tailBuffer bounds the messages waiting to be printed; past it NATS drops
// messages for this client and the command says so.
const tailBuffer = 4096

// eventsTail prints the messages on the subjects as they are published.
func (r *runner) eventsTail(ctx context.Context, args []string) int {
	var c common
	fs := r.flags(&c)
	var subjects multiFlag
	fs.Var(&subjects, "subject", "subject to follow, with wildcards (repeatable or comma list; default "+strings.Join(defaultTailSubjects, ",")+")")
	n := fs.Int("n", 0, "stop after this many messages (0: until interrupted)")
	asJSON := fs.Bool("json", false, "print each message's JSON as received, one per line")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: until interrupted)")
	pos, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) > 0 {
		return r.fail(ExitUsage, "unexpected arguments %q (use -subject)", pos)
	}
	if len(subjects) == 0 {
		subjects = defaultTailSubjects
	}
	b, err := r.connect(ctx, c)
	if err != nil {
		return r.fail(exitFor(err), "%v", err)
	}
	defer b.Close()
	ch := make(chan *nats.Msg, tailBuffer)
	nc := b.Conn()
	for _, s := range subjects {
		sub, err := nc.ChanSubscribe(s, ch)
		if err != nil {
			return r.fail(ExitUsage, "subscribe to %q: %v", s, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if err := nc.FlushTimeout(connectTimeout); err != nil {
		return r.fail(ExitFailure, "subscribe: %v", err)
	}
	fmt.Fprintf(r.io.Stderr, "%s: following %s (Ctrl-C to stop)\n", r.name, strings.Join(subjects, ", "))
	wctx, cancel := withTimeout(ctx, *timeout)
	defer cancel()
	printed := 0
	for {
		select {
		case <-wctx.Done():
			return ExitOK
		case m := <-ch:
			if *asJSON {
				fmt.Fprintf(r.io.Stdout, "%s\n", strings.TrimSpace(string(m.Data)))
			} else {
				fmt.Fprintln(r.io.Stdout, describe(m.Subject, m.Data))
			}
			if printed++; *n > 0 && printed >= *n {
				return ExitOK
			}
		}
	}
}

// describe is one line about a message: time, subject, kind and a summary.
func describe(subject string, data []byte) string {
	meta, err := events.PeekMeta(data)
	if err != nil || meta.Kind == "" {
		return fmt.Sprintf("%s  %s  (not an event) %s", time.Now().Format("15:04:05.000"), subject, clip(string(data), 200))
	}
	return fmt.Sprintf("%s  %s  %s  %s", meta.Time.Local().Format("15:04:05.000"), subject, meta.Kind, summary(meta.Kind, data))
}

func summary(kind events.Kind, data []byte) string {
	bad := func(err error) string { return "(invalid: " + err.Error() + ")" }
	switch kind {
	case events.KindSample:
		ev, err := events.Decode[events.Sample](data)
		if err != nil {
			return bad(err)
		}
		s := ev.Data
		probe := "probe failed"
		if s.ProbeOK {
			probe = fmt.Sprintf("probe %.1f ms", s.ProbeSeconds*1000)
		}
		return fmt.Sprintf("%s cpu %.1f%% mem %.0f/%.0f MiB net rx %.1f tx %.1f kB/s, %s", s.Container, s.CPUPercent,
			float64(s.MemUsage)/(1<<20), float64(s.MemLimit)/(1<<20), s.NetRxBps/1e3, s.NetTxBps/1e3, probe)
	case events.KindScore:
		ev, err := events.Decode[events.Score](data)
		if err != nil {
			return bad(err)
		}
		s := ev.Data
		return fmt.Sprintf("%s overall %.1f %s (cpu %.1f, mem %.1f, net %.1f, avail %.1f)", s.Container, s.Overall, s.Category,
			s.CPU, s.Memory, s.Network, s.Availability)
	case events.KindDecision:
		ev, err := events.Decode[events.Decision](data)
		if err != nil {
			return bad(err)
		}
		d := ev.Data
		out := fmt.Sprintf("%s %d → %d: %s", d.Action, d.From, d.To, d.Reason)
		if len(d.Targets) > 0 {
			out += " [" + strings.Join(d.Targets, ", ") + "]"
		}
		return out
	case events.KindLifecycle:
		ev, err := events.Decode[events.Lifecycle](data)
		if err != nil {
			return bad(err)
		}
		l := ev.Data
		out := l.Container + " " + string(l.Phase)
		if l.Reason != "" {
			out += ": " + l.Reason
		}
		if l.Error != "" {
			out += ": " + l.Error
		}
		return out
	case events.KindQueue:
		ev, err := events.Decode[events.QueueSnapshot](data)
		if err != nil {
			return bad(err)
		}
		parts := make([]string, len(ev.Data.Items))
		for i, it := range ev.Data.Items {
			cat := it.Category
			if it.State == events.StateSundown {
				cat = events.CategorySundown
			}
			parts[i] = fmt.Sprintf("%s %.1f %s", it.Container, it.Score, cat)
		}
		return fmt.Sprintf("generation %d: %d workers (%s)", ev.Data.Generation, len(parts), strings.Join(parts, ", "))
	case events.KindProxyReport:
		ev, err := events.Decode[events.ProxyReport](data)
		if err != nil {
			return bad(err)
		}
		p := ev.Data
		var inflight int64
		var req, errs uint64
		for _, b := range p.Backends {
			inflight += b.InFlight
			req += b.Requests
			errs += b.Errors
		}
		rate := func(n uint64) float64 {
			if p.IntervalSeconds <= 0 {
				return 0
			}
			return float64(n) / p.IntervalSeconds
		}
		return fmt.Sprintf("%s: %d backends, %d in flight, %.1f req/s, %.1f err/s", p.ProxyID, len(p.Backends), inflight, rate(req), rate(errs))
	case events.KindConfigChanged:
		ev, err := events.Decode[events.ConfigChanged](data)
		if err != nil {
			return bad(err)
		}
		cc := ev.Data
		parts := make([]string, len(cc.Changed))
		for i, k := range cc.Changed {
			if v, ok := cc.Values[k]; ok {
				parts[i] = k + "=" + v
			} else {
				parts[i] = k + " removed"
			}
		}
		out := fmt.Sprintf("version %d: %s", cc.Version, strings.Join(parts, ", "))
		if cc.By != "" {
			out += " (by " + cc.By + ")"
		}
		return out
	}
	return clip(string(data), 200)
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
