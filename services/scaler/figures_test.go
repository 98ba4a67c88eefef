package scaler_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/services/scaler"
)

var figures = flag.Bool("figures", false, "measure the scaler's latency figures against the real engine (slow)")

// TestFigures measures, on the real engine: threshold crossing → decision,
// decision → worker ready (Docker create+start, then first successful probe),
// last in-flight report of 0 for a SUNDOWN worker → removal, and the rebuild
// of the state from a long decision log. Run:
//
//	go test ./services/scaler -run TestFigures -figures -v
func TestFigures(t *testing.T) {
	if !*figures {
		t.Skip("figures are measured with -figures")
	}
	e := newEnv(t)

	t.Run("scale up and drain", func(t *testing.T) {
		app := e.newApp(t, "fig")
		f := e.newFleet(t, app, 70)
		cfg := e.config(app)
		cfg.Scaling.Max = 4
		cfg.Scaling.CheckPeriod = 0 // evaluate at every event: what is left is the pipeline
		cfg.Scaling.DrainGrace = 2 * time.Second
		cfg.Scaling.Cooldown = 3 * time.Second // scale-downs apart, so each drain is measured alone
		r := e.start(t, cfg, nil, "")
		waitFor(t, "1 ready worker", func() bool { return len(f.ready()) == 1 })

		var cross, total, created, probed []time.Duration
		for round := range 3 {
			time.Sleep(cfg.Scaling.Cooldown) // the crossing, not the cooldown, is measured
			f.setLoad(30)
			waitFor(t, "a scale-up", func() bool { return len(f.decisions(events.ActionScaleUp)) >= round+2 })
			up := f.decisions(events.ActionScaleUp)[round+1]
			f.mu.Lock()
			crossed := f.crossedAt
			f.mu.Unlock()
			cross = append(cross, up.at.Sub(crossed))
			name := up.decision.Targets[0]
			f.setLoad(70)
			waitFor(t, "the new worker ready", func() bool { return len(f.facts(name, events.PhaseReady)) == 1 })
			ready := f.facts(name, events.PhaseReady)[0]
			made := f.facts(name, events.PhaseCreated)[0]
			total = append(total, ready.meta.Time.Sub(up.meta.Time))
			created = append(created, made.meta.Time.Sub(up.meta.Time))
			probed = append(probed, ready.meta.Time.Sub(made.meta.Time))
			waitFor(t, "every worker ready", func() bool { return len(f.ready()) == round+2 })
		}
		createStart, probe := histogram(t, r.reg, "rb_scaler_worker_start_seconds", "create_start"), histogram(t, r.reg, "rb_scaler_worker_start_seconds", "probe")

		f.setInFlight(2, f.ready()...)
		f.setLoad(95)
		var toDecision, toRemoved []time.Duration
		for round := range 3 {
			waitFor(t, "a scale-down", func() bool { return len(f.decisions(events.ActionScaleDown)) >= round+1 })
			victim := f.decisions(events.ActionScaleDown)[round].decision.Targets[0]
			time.Sleep(500 * time.Millisecond)
			f.setInFlight(0, victim)
			waitFor(t, "the victim removed", func() bool { return len(f.facts(victim, events.PhaseRemoved)) == 1 })
			f.mu.Lock()
			zero := f.zeroAt[victim]
			f.mu.Unlock()
			var rm seen
			for _, s := range f.decisions(events.ActionRemove) {
				if s.decision.Targets[0] == victim {
					rm = s
				}
			}
			removed := f.facts(victim, events.PhaseRemoved)[0]
			toDecision = append(toDecision, rm.meta.Time.Sub(zero))
			toRemoved = append(toRemoved, removed.meta.Time.Sub(zero))
		}
		t.Logf("FIGURE threshold crossing → decision received (SCALE_CHECK_PERIOD 0): %s", durs(cross))
		t.Logf("FIGURE decision → worker ready (ready fact time − decision time): %s", durs(total))
		t.Logf("FIGURE   decision → created fact (Docker create+start done): %s; created → ready fact (first successful TCP probe): %s", durs(created), durs(probed))
		t.Logf("FIGURE   scaler histograms: Docker create+start %s; start → first successful TCP probe %s", createStart, probe)
		t.Logf("FIGURE first 0-in-flight report of a SUNDOWN worker → remove decision (RB_DRAIN_GRACE 2s, reports every 100ms): %s", durs(toDecision))
		t.Logf("FIGURE first 0-in-flight report of a SUNDOWN worker → removed fact (stop+remove done): %s", durs(toRemoved))
	})

	t.Run("rebuild from a long decision log", func(t *testing.T) {
		app := e.newApp(t, "fig")
		const workers = 4000
		js := e.bus.JetStream()
		base := time.Now().Add(-24 * time.Hour)
		n := 0
		for i := range workers {
			name := fmt.Sprintf("%s-%08x", app, i)
			for k, ph := range []events.Phase{events.PhaseCreated, events.PhaseReady, events.PhaseSundown, events.PhaseDrained, events.PhaseRemoved} {
				at := base.Add(time.Duration(i)*10*time.Second + time.Duration(k)*time.Second)
				ev := events.New(fmt.Sprintf("%s-%s", name, ph), at, "scaler/history", events.Lifecycle{App: app, Container: name, Phase: ph})
				data, err := events.Encode(ev)
				if err != nil {
					t.Fatal(err)
				}
				subj, _ := events.LifecycleSubject(app, name)
				if _, err := js.PublishAsync(subj, data); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(waitTimeout):
			t.Fatal("history not stored")
		}
		cfg := e.config(app)
		begin := time.Now()
		r := e.start(t, cfg, nil, "")
		waitFor(t, "the rebuild", func() bool { return gauge(t, r.reg, "rb_scaler_rebuild_messages") == float64(n) })
		took := time.Since(begin)
		t.Logf("FIGURE rebuild of %d lifecycle facts (%d workers) from the whole RB_DECISIONS log, start to acting: %s (%.0f messages/s)",
			n, workers, took.Round(time.Millisecond), float64(n)/took.Seconds())
		r.stop(t)
		sn, err := scaler.LoadSnapshot(context.Background(), e.store, app)
		if err != nil {
			t.Fatal(err)
		}
		begin = time.Now()
		r = e.start(t, cfg, nil, "")
		waitFor(t, "the restart", func() bool {
			return gauge(t, r.reg, "rb_scaler_rebuild_messages") >= 0 && r.svc.Leader() && gauge(t, r.reg, "rb_scaler_desired_workers") >= 1
		})
		t.Logf("FIGURE restart from the snapshot at seq %d (%d workers in the state, %d messages after it): start to acting: %s",
			sn.Seq, len(sn.State.Workers), int(gauge(t, r.reg, "rb_scaler_rebuild_messages")), time.Since(begin).Round(time.Millisecond))
		r.stop(t)
	})
}

func durs(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("[%s] (n=%d, median %s)", strings.Join(parts, " "), len(s), s[len(s)/2].Round(time.Millisecond))
}

// histogram summarises one labelled histogram of reg: count and mean.
func histogram(tb testing.TB, reg *prometheus.Registry, name, label string) string {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					h := m.GetHistogram()
					if h.GetSampleCount() == 0 {
						return "no samples"
					}
					return fmt.Sprintf("mean %s over %d", time.Duration(h.GetSampleSum()/float64(h.GetSampleCount())*float64(time.Second)).Round(time.Millisecond), h.GetSampleCount())
				}
			}
		}
	}
	return "not found"
}
