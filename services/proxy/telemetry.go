package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/balance"
)

// report publishes every app's ProxyReport each ReportInterval until ctx is
// done. Reports are built while NATS is down too (they settle departed
// backends) but only published once it is connected.
func (s *Service) report(ctx context.Context) {
	t := time.NewTicker(s.opts.ReportInterval)
	defer t.Stop()
	last := s.now()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		interval := now.Sub(last)
		last = now
		ref := s.bus.Load()
		for _, name := range s.appNames {
			s.refreshUnknown(s.apps[name])
			rep, ok := s.buildReport(s.apps[name], now, interval)
			if !ok || ref == nil {
				continue
			}
			err := s.publishReport(ctx, ref.b, rep, now)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				s.m.reports.WithLabelValues("error").Inc()
				if !failing {
					s.log.Warn("proxy report not published; retrying every interval", "app", name, "err", err)
				}
				failing = true
			default:
				s.m.reports.WithLabelValues("ok").Inc()
				if failing {
					s.log.Info("proxy reports published again", "app", name)
				}
				failing = false
			}
		}
	}
}

// buildReport is the app's report at now: every backend of its route and
// every departed backend, with requests and errors since the last report.
// A departed backend is reported once more with 0 in flight, then dropped.
func (s *Service) buildReport(a *appState, now time.Time, interval time.Duration) (events.ProxyReport, bool) {
	r := a.route.Load()
	a.mu.Lock()
	defer a.mu.Unlock()
	if r == nil {
		return events.ProxyReport{}, false
	}
	nowNs := now.UnixNano()
	rep := events.ProxyReport{
		App: a.name, ProxyID: s.opts.ID, IntervalSeconds: interval.Seconds(), QueueGeneration: r.gen,
		Backends: make([]events.BackendReport, 0, len(r.states)+len(a.departed)),
	}
	next := make(map[*balance.Stats]reported, len(r.states)+len(a.departed))
	add := func(id, addr string, state events.State, st *balance.Stats) {
		snap := st.Snapshot()
		prev := a.reported[st]
		if snap.EjectedUntil != prev.ejectedUntil && snap.EjectedUntil > 0 {
			s.m.ejections.Inc()
		}
		next[st] = reported{requests: snap.Requests, errors: snap.Errors, ejectedUntil: snap.EjectedUntil}
		rep.Backends = append(rep.Backends, events.BackendReport{
			Container: id, Address: addr, State: state,
			InFlight:       max(snap.InFlight, 0),
			Requests:       snap.Requests - prev.requests,
			Errors:         snap.Errors - prev.errors,
			LatencySeconds: snap.Latency.Seconds(),
			Ejected:        st.Ejected(nowNs),
		})
	}
	for i, b := range r.table.Backends() {
		add(b.ID, b.Address, r.states[i], b.Stats())
	}
	kept := a.departed[:0]
	for _, d := range a.departed {
		add(d.id, d.addr, events.StateSundown, d.stats)
		if d.stats.InFlight() > 0 {
			kept = append(kept, d)
		}
	}
	dropped := len(kept) < len(a.departed)
	clear(a.departed[len(kept):])
	a.departed = kept
	if dropped {
		a.dropUnusedPools(r)
	}
	a.reported = next
	return rep, true
}

// publishReport publishes rep on rb.proxy.<app>.<proxy-id>, waiting at most
// one interval for the stream's ack.
func (s *Service) publishReport(ctx context.Context, b Bus, rep events.ProxyReport, now time.Time) error {
	subj, err := events.ProxySubject(rep.App, rep.ProxyID)
	if err != nil {
		return fmt.Errorf("publish proxy report: %w", err)
	}
	ev := events.New(fmt.Sprintf("%s-%s-%d", rep.App, rep.ProxyID, now.UnixNano()), now, "proxy/"+rep.ProxyID, rep)
	data, err := events.Encode(ev)
	if err != nil {
		return fmt.Errorf("publish proxy report: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.ReportInterval)
	defer cancel()
	return b.Publish(pctx, subj, ev.ID, data)
}

// refreshUnknown rebuilds the app's table when some worker has never
// answered while others have. A table prices a worker without an answer at
// the median latency known when it was built (1 ms when none was); after
// the first table of a proxy that guess can stay above what the workers
// really take (on a LAN, well under 1 ms), and p2c would never try the
// unknown worker under light load. Rebuilding sets the guess to the median
// of what is known now (the Stats, shared by both tables, keep everything
// else). It stops once every worker has answered.
func (s *Service) refreshUnknown(a *appState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.route.Load()
	if r == nil {
		return
	}
	known, unknown := false, false
	for _, b := range r.table.Backends() {
		if b.State == balance.Sundown {
			continue
		}
		if b.Stats().Snapshot().Latency > 0 {
			known = true
		} else {
			unknown = true
		}
	}
	if !known || !unknown {
		return
	}
	in := make([]balance.Backend, len(r.table.Backends()))
	for i, b := range r.table.Backends() {
		in[i] = balance.Backend{ID: b.ID, Address: b.Address, Weight: b.Weight, State: b.State, Added: b.Added}
	}
	t, err := balance.NewTable(in, r.table, s.balOpts)
	if err != nil {
		return
	}
	a.route.Store(&route{table: t, pools: r.pools, states: r.states, gen: r.gen})
}
