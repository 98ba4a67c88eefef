package ctl

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/services/gateway"
)

// queueWatch prints the current queue of every app (or one), then each change.
func (r *runner) queueWatch(ctx context.Context, args []string) int {
	var c common
	fs := r.flags(&c)
	n := fs.Int("n", 0, "stop after printing this many queues (0: until interrupted)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: until interrupted)")
	pos, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) > 1 {
		return r.fail(ExitUsage, "one app at most, got %q", pos)
	}
	filter := events.PrefixQueue + ">"
	if len(pos) == 1 {
		if filter, err = events.QueueSubject(pos[0]); err != nil {
			return r.fail(ExitUsage, "app %q: %v", pos[0], err)
		}
	}
	b, err := r.connect(ctx, c)
	if err != nil {
		return r.fail(exitFor(err), "%v", err)
	}
	defer b.Close()
	wctx, cancel := withTimeout(ctx, *timeout)
	defer cancel()
	printed := 0
	fmt.Fprintf(r.io.Stderr, "%s: following %s (Ctrl-C to stop)\n", r.name, filter)
	err = b.Watch(wctx, events.StreamQueue, []string{filter}, true, func(m bus.Msg) {
		ev, err := events.Decode[events.QueueSnapshot](m.Data)
		if err != nil {
			fmt.Fprintf(r.io.Stderr, "%s: skipping %s seq %d: %v\n", r.name, m.Subject, m.Sequence, err)
			return
		}
		r.printQueue(ev)
		if printed++; *n > 0 && printed >= *n {
			cancel()
		}
	})
	if err != nil {
		return r.fail(ExitFailure, "%v", err)
	}
	return ExitOK
}

func (r *runner) printQueue(ev events.Event[events.QueueSnapshot]) {
	q := ev.Data
	var active, starting, sundown int
	var total float64
	for _, it := range q.Items {
		switch it.State {
		case events.StateSundown:
			sundown++
		case events.StateInit:
			starting++
			total += it.Weight
		default:
			active++
			total += it.Weight
		}
	}
	fmt.Fprintf(r.io.Stdout, "%s  %s  generation %d: %d workers (%d active, %d starting, %d draining)\n",
		ev.Time.Local().Format(time.TimeOnly), q.App, q.Generation, len(q.Items), active, starting, sundown)
	if len(q.Items) == 0 {
		return
	}
	tw := tabwriter.NewWriter(r.io.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tWORKER\tSTATE\tCAT\tSCORE\tWEIGHT\tSHARE\tADDRESS")
	for i, it := range gateway.SortQueue(q.Items) {
		share := "-"
		if it.State != events.StateSundown && total > 0 {
			share = fmt.Sprintf("%.0f%%", 100*it.Weight/total)
		}
		cat := it.Category
		if it.State == events.StateSundown {
			cat = events.CategorySundown
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, it.Container, it.State, cat, f1(it.Score), f1(it.Weight), share, it.Address)
	}
	_ = tw.Flush()
}
