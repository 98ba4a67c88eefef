package scaler_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	rt "github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/dockertest"
	"github.com/rustybalancer/rb/services/scaler"
)

// TestScaler runs the scaler against the real Docker engine, JetStream and
// Redis. The image, network, NATS and Redis are shared; each subtest has its
// own app.
func TestScaler(t *testing.T) {
	e := newEnv(t)

	t.Run("load scales to max, idle drains back to min", func(t *testing.T) {
		t.Parallel()
		app := e.newApp(t, "up")
		// Containers the scaler must never touch: one without labels on the
		// same network, one labelled for another app.
		strangers := map[string]string{
			"unlabelled": dockertest.Run(t, dockertest.RunSpec{Image: e.image, Network: e.network}),
			"other app":  dockertest.Run(t, dockertest.RunSpec{Image: e.image, Network: e.network, Labels: map[string]string{rt.LabelApp: app + "x"}}),
		}
		startedAt := map[string]string{}
		for what, id := range strangers {
			j, err := e.cli.ContainerInspect(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			startedAt[what] = j.State.StartedAt
		}

		f := e.newFleet(t, app, 30) // mean 30 < HIGH 55: load
		cfg := e.config(app)
		r := e.start(t, cfg, nil, "")

		waitFor(t, "3 ready workers", func() bool { return len(f.ready()) == 3 })
		names := e.runningNames(t, app)
		if len(names) != 3 {
			t.Fatalf("running containers %v, want 3", names)
		}
		for _, c := range e.containers(t, app) {
			if c.Labels[rt.LabelApp] != app || c.Labels[rt.LabelLegacy] != app {
				t.Errorf("%s labels %v, want %s=%s and %s=%s", c.Name, c.Labels, rt.LabelApp, app, rt.LabelLegacy, app)
			}
			if c.IPs[e.network] == "" {
				t.Errorf("%s is not on network %s: %v", c.Name, e.network, c.IPs)
			}
			if !strings.HasPrefix(c.Name, app+"-") || len(c.Name) != len(app)+9 {
				t.Errorf("worker name %q, want %s-<8 hex>", c.Name, app)
			}
		}
		ups := f.decisions(events.ActionScaleUp)
		if len(ups) != 3 {
			t.Fatalf("%d scale-up decisions, want 3 (0→1 to DEFAULT_CONTAINER, then 1→2, 2→3 on load)", len(ups))
		}
		first := ups[0].decision
		if first.From != 0 || first.To != 1 || !strings.Contains(first.Reason, "DEFAULT_CONTAINER 1") {
			t.Errorf("first scale-up %d→%d %q, want 0→1 naming DEFAULT_CONTAINER 1", first.From, first.To, first.Reason)
		}
		for i, s := range ups[1:] {
			d := s.decision
			if d.From != i+1 || d.To != i+2 || len(d.Targets) != 1 {
				t.Errorf("scale-up %d: %d→%d targets %v", i+2, d.From, d.To, d.Targets)
			}
			if !strings.Contains(d.Reason, "mean score 30.0 < HIGH_LOAD_THRESHOLD 55") {
				t.Errorf("scale-up reason %q does not name the rule and its numbers", d.Reason)
			}
			in := d.Inputs
			if in.MeanScore != 30 || in.Ready != i+1 || in.Min != 1 || in.Max != 3 || in.HighThreshold != 55 || in.LowThreshold != 80 {
				t.Errorf("scale-up inputs %+v", in)
			}
			if !slices.Contains(names, d.Targets[0]) {
				t.Errorf("scale-up target %s is not a running container (%v)", d.Targets[0], names)
			}
			if got := f.facts(d.Targets[0], events.PhaseCreated); len(got) != 1 {
				t.Errorf("%d created facts for %s, want 1", len(got), d.Targets[0])
			}
		}
		if n, ok, err := e.store.Desired(t.Context(), app); err != nil || !ok || n != 3 {
			t.Errorf("desired in Redis = %d (set %v, err %v), want 3", n, ok, err)
		}
		waitFor(t, "3 container records in Redis", func() bool {
			recs, err := e.store.ListContainers(t.Context(), app)
			return err == nil && len(recs) == 3
		})
		if got := gauge(t, r.reg, "rb_scaler_lease_held"); got != 1 {
			t.Errorf("rb_scaler_lease_held = %v, want 1", got)
		}

		// The load goes; the proxy still has requests in flight everywhere.
		f.setInFlight(2, names...)
		f.setLoad(95)
		waitFor(t, "a scale-down", func() bool { return len(f.decisions(events.ActionScaleDown)) == 1 })
		down := f.decisions(events.ActionScaleDown)[0].decision
		victim := down.Targets[0]
		if down.From != 3 || down.To != 2 || !strings.Contains(down.Reason, "LOW_LOAD_THRESHOLD 80") || down.Inputs.MeanScore != 95 {
			t.Errorf("scale-down %d→%d %q inputs %+v", down.From, down.To, down.Reason, down.Inputs)
		}
		waitFor(t, "the sundown fact", func() bool { return len(f.facts(victim, events.PhaseSundown)) == 1 })
		// Busy: well past RB_DRAIN_GRACE, it must still be there.
		time.Sleep(4 * cfg.Scaling.DrainGrace)
		if got := f.facts(victim, events.PhaseRemoved); len(got) != 0 || !slices.Contains(e.runningNames(t, app), victim) {
			t.Fatalf("SUNDOWN worker %s removed while the proxy reports requests in flight", victim)
		}
		f.setInFlight(0, names...)
		waitFor(t, "the SUNDOWN worker removed", func() bool { return len(f.facts(victim, events.PhaseRemoved)) == 1 })
		if got := f.facts(victim, events.PhaseDrained); len(got) != 1 {
			t.Errorf("%d drained facts for %s, want 1", len(got), victim)
		}
		if slices.Contains(e.runningNames(t, app), victim) {
			t.Errorf("removed worker %s still runs", victim)
		}

		waitFor(t, "back to 1 worker", func() bool { return len(e.containers(t, app)) == 1 })
		waitFor(t, "desired 1 in Redis", func() bool {
			n, _, err := e.store.Desired(t.Context(), app)
			return err == nil && n == 1
		})
		waitFor(t, "1 container record", func() bool {
			recs, err := e.store.ListContainers(t.Context(), app)
			return err == nil && len(recs) == 1
		})
		for _, s := range f.decisions(events.ActionRemove) {
			d := s.decision
			if !strings.Contains(d.Reason, "drained") || !strings.Contains(d.Reason, "0 in flight") {
				t.Errorf("remove decision %q does not say it drained", d.Reason)
			}
		}
		for what, id := range strangers {
			j, err := e.cli.ContainerInspect(t.Context(), id)
			if err != nil {
				t.Fatalf("%s container: %v", what, err)
			}
			if !j.State.Running || j.State.StartedAt != startedAt[what] {
				t.Errorf("%s container was touched: running %v, started %s (was %s)", what, j.State.Running, j.State.StartedAt, startedAt[what])
			}
		}
	})

	t.Run("a killed worker is replaced", func(t *testing.T) {
		t.Parallel()
		app := e.newApp(t, "kill")
		f := e.newFleet(t, app, 70) // between HIGH and LOW: no scaling
		cfg := e.config(app)
		cfg.Scaling.Min, cfg.Scaling.Max = 2, 2
		e.start(t, cfg, nil, "")
		waitFor(t, "2 ready workers", func() bool { return len(f.ready()) == 2 })
		first := f.ready()

		// Killed, and the collector reports it.
		victim := first[0]
		if err := e.cli.ContainerKill(t.Context(), victim, "KILL"); err != nil {
			t.Fatal(err)
		}
		died := events.New(victim+"-died", time.Now(), "collector/test", events.Lifecycle{App: app, Container: victim, Phase: events.PhaseDied, Reason: "exit code 137"})
		subj, _ := events.LifecycleSubject(app, victim)
		if err := publish(t, e, subj, died); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a replacement ready and the dead one removed", func() bool {
			ready := f.ready()
			return len(ready) == 2 && !slices.Contains(ready, victim) && len(f.facts(victim, events.PhaseRemoved)) > 0
		})
		if reps := f.decisions(events.ActionReplace); len(reps) != 1 || !strings.Contains(reps[0].decision.Reason, "1 live workers < desired 2") {
			t.Errorf("replace decisions %+v", reps)
		}

		// Killed, and nobody says so: the scaler's reconciliation finds it.
		second := f.ready()
		victim = second[0]
		if err := e.cli.ContainerKill(t.Context(), victim, "KILL"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the second kill noticed, replaced and removed", func() bool {
			ready := f.ready()
			return len(ready) == 2 && !slices.Contains(ready, victim) && len(f.facts(victim, events.PhaseRemoved)) > 0
		})
		if got := f.facts(victim, events.PhaseDied); len(got) != 1 || !strings.HasPrefix(got[0].meta.Source, "scaler/") ||
			!strings.Contains(got[0].fact.Reason, "exited") {
			t.Errorf("died facts for %s: %+v, want one by the scaler saying exited", victim, got)
		}
		waitFor(t, "2 containers", func() bool { return len(e.containers(t, app)) == 2 })
		if got := e.runningNames(t, app); len(got) != 2 {
			t.Errorf("running %v, want 2", got)
		}
	})

	for _, tc := range []struct {
		name  string
		gate  gate
		state string // the container's state when the first scaler stopped
	}{
		{name: "scaler stopped right after the decision, before create", gate: gateCreate, state: ""},
		{name: "scaler stopped after create, before start", gate: gateStart, state: "created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := e.newApp(t, "mid")
			f := e.newFleet(t, app, 70)
			cfg := e.config(app)
			g := &gated{Runtime: e.docker, gate: tc.gate, reached: make(chan string, 4)}
			first := e.start(t, cfg, g, "first")
			var name string
			select {
			case name = <-g.reached:
			case <-time.After(waitTimeout):
				t.Fatal("the first scaler never reached the gate")
			}
			first.stop(t)
			ups := f.decisions(events.ActionScaleUp)
			if len(ups) != 1 || !slices.Equal(ups[0].decision.Targets, []string{name}) {
				t.Fatalf("scale-ups before the restart %+v, want one naming %s", ups, name)
			}
			cs := e.containers(t, app)
			switch {
			case tc.state == "" && len(cs) != 0:
				t.Fatalf("containers %v exist before create", cs)
			case tc.state != "" && (len(cs) != 1 || cs[0].Name != name || cs[0].State != tc.state):
				t.Fatalf("containers %+v, want %s %s", cs, name, tc.state)
			}

			e.start(t, cfg, nil, "second")
			waitFor(t, "the decided worker ready", func() bool { return slices.Equal(f.ready(), []string{name}) })
			// A few reconciliations later, still exactly that one.
			time.Sleep(3 * cfg.Scaling.ReconcileInterval)
			if got := e.runningNames(t, app); !slices.Equal(got, []string{name}) {
				t.Fatalf("running %v, want exactly [%s]", got, name)
			}
			if all := e.containers(t, app); len(all) != 1 {
				t.Fatalf("containers %+v, want 1", all)
			}
			if ups := f.decisions(events.ActionScaleUp); len(ups) != 1 {
				t.Errorf("%d scale-up decisions, want 1", len(ups))
			}
			if got := f.facts(name, events.PhaseCreated); len(got) != 1 || !strings.HasSuffix(got[0].meta.Source, "/second") {
				t.Errorf("created facts %+v, want one by the second scaler", got)
			}
		})
	}

	t.Run("alone in the world, quiet ticks still start the minimum", func(t *testing.T) {
		t.Parallel()
		app := e.newApp(t, "quiet")
		// No scores, no proxy reports: only the scaler's own facts.
		f := e.newFleet(t, app, 70, func(f *fleet) { f.silent = true })
		cfg := e.config(app)
		cfg.Scaling.Min = 2
		started := time.Now()
		e.start(t, cfg, nil, "")
		waitFor(t, "2 ready workers", func() bool { return len(f.ready()) == 2 })
		ups := f.decisions(events.ActionScaleUp)
		if len(ups) != 1 || ups[0].decision.To != 2 {
			t.Fatalf("scale-ups %+v, want one to 2", ups)
		}
		// The first input is the term's start tick; the check comes one
		// SCALE_CHECK_PERIOD later, at a quiet tick (a tick gap apart,
		// handed out a gap behind the wall clock).
		if at := ups[0].meta.Time.Sub(started); at < scale.TickGap || at > 10*scale.TickGap {
			t.Errorf("the first scale-up is stamped %s after the start, want at a quiet tick, between %s and %s", at, scale.TickGap, 10*scale.TickGap)
		}
	})

	t.Run("reconciliation adopts an unknown worker and drops a stale record", func(t *testing.T) {
		t.Parallel()
		app := e.newApp(t, "adopt")
		known := app + "-0000aaaa"
		dockertest.Run(t, dockertest.RunSpec{Image: e.image, Network: e.network, Name: known,
			Labels: map[string]string{rt.LabelApp: app}})
		stale := store.ContainerRecord{App: app, Name: app + "-0000bbbb", ID: "gone", State: "ready", Port: 8080, Created: time.Now()}
		if err := e.store.PutContainer(t.Context(), stale); err != nil {
			t.Fatal(err)
		}
		f := e.newFleet(t, app, 70)
		e.start(t, e.config(app), nil, "")
		waitFor(t, "the unknown container adopted and ready", func() bool { return slices.Equal(f.ready(), []string{known}) })
		if got := f.facts(known, events.PhaseStarted); len(got) != 1 || !strings.Contains(got[0].fact.Reason, "adopted") {
			t.Errorf("started facts %+v, want one saying adopted", got)
		}
		waitFor(t, "the stale record dropped and the adopted one written", func() bool {
			recs, err := e.store.ListContainers(t.Context(), app)
			return err == nil && len(recs) == 1 && recs[0].Name == known
		})
		time.Sleep(3 * e.config(app).Scaling.ReconcileInterval)
		if ups := f.decisions(events.ActionScaleUp); len(ups) != 0 {
			t.Errorf("scale-ups %+v: the adopted worker should count towards DEFAULT_CONTAINER", ups)
		}
		if got := e.runningNames(t, app); !slices.Equal(got, []string{known}) {
			t.Errorf("running %v, want [%s]", got, known)
		}
	})

	t.Run("a Docker error is reported as failed, with its text, and retried with backoff", func(t *testing.T) {
		t.Parallel()
		app := e.newApp(t, "fail")
		f := e.newFleet(t, app, 70)
		cfg := e.config(app)
		cfg.Docker.Image = "rb-test-no-such-image:" + app
		e.start(t, cfg, nil, "")
		waitFor(t, "two failed starts and a replacement with backoff", func() bool {
			return len(f.facts("", events.PhaseFailed)) >= 2 && len(f.decisions(events.ActionReplace)) >= 1
		})
		fail := f.facts("", events.PhaseFailed)[0].fact
		if !strings.Contains(strings.ToLower(fail.Error), "no such image") || fail.Reason != "create failed" {
			t.Errorf("failed fact %+v, want Docker's \"No such image\" text", fail)
		}
		rep := f.decisions(events.ActionReplace)[0].decision
		if !strings.Contains(rep.Reason, "start failures in a row") || !strings.Contains(rep.Reason, "RB_REPLACE_BACKOFF") {
			t.Errorf("replace reason %q does not name the backoff", rep.Reason)
		}
		if got := e.containers(t, app); len(got) != 0 {
			t.Errorf("containers %+v exist", got)
		}
	})

	t.Run("runtime config applies live; an invalid one is refused", func(t *testing.T) {
		t.Parallel()
		app := e.newApp(t, "cfg")
		f := e.newFleet(t, app, 70)
		e.start(t, e.config(app), nil, "")
		waitFor(t, "1 ready worker", func() bool { return len(f.ready()) == 1 })

		subj, _ := events.ConfigSubject(app)
		change := func(version int64, values map[string]string) {
			t.Helper()
			ev := events.New(fmt.Sprintf("config-%s-%d", app, version), time.Now(), "gateway/test",
				events.ConfigChanged{App: app, Version: version, Values: values, Changed: slices.Sorted(maps.Keys(values))})
			if err := publish(t, e, subj, ev); err != nil {
				t.Fatal(err)
			}
		}
		change(1, map[string]string{"DEFAULT_CONTAINER": "2"})
		waitFor(t, "a scale-up to the new DEFAULT_CONTAINER", func() bool { return len(f.decisions(events.ActionScaleUp)) == 2 })
		up := f.decisions(events.ActionScaleUp)[1].decision
		if up.From != 1 || up.To != 2 || !strings.Contains(up.Reason, "DEFAULT_CONTAINER 2") || up.Inputs.ConfigVersion != 1 {
			t.Errorf("scale-up %d→%d %q config version %d, want 1→2 under version 1", up.From, up.To, up.Reason, up.Inputs.ConfigVersion)
		}
		waitFor(t, "2 ready workers", func() bool { return len(f.ready()) == 2 })

		// HIGH above LOW: refused, the scaler goes on with version 1.
		change(2, map[string]string{"DEFAULT_CONTAINER": "2", "HIGH_LOAD_THRESHOLD": "90"})
		f.setLoad(30)
		waitFor(t, "a scale-up on load", func() bool { return len(f.decisions(events.ActionScaleUp)) == 3 })
		up = f.decisions(events.ActionScaleUp)[2].decision
		if up.Inputs.ConfigVersion != 1 || up.Inputs.HighThreshold != 55 || up.Inputs.Min != 2 {
			t.Errorf("scale-up after an invalid config: version %d, HIGH %v, min %d; want 1, 55, 2", up.Inputs.ConfigVersion, up.Inputs.HighThreshold, up.Inputs.Min)
		}
	})

	t.Run("one scaler acts; the standby takes over within the lease", func(t *testing.T) {
		t.Parallel()
		app := e.newApp(t, "lease")
		f := e.newFleet(t, app, 70)
		cfg := e.config(app)
		a := e.start(t, cfg, nil, "a")
		b := e.start(t, cfg, nil, "b")
		waitFor(t, "1 ready worker", func() bool { return len(f.ready()) == 1 })
		leader, standby := a, b
		if b.svc.Leader() {
			leader, standby = b, a
		}
		if !leader.svc.Leader() || standby.svc.Leader() {
			t.Fatalf("leaders: a %v, b %v; want exactly one", a.svc.Leader(), b.svc.Leader())
		}
		if gauge(t, standby.reg, "rb_scaler_lease_held") != 0 || gauge(t, leader.reg, "rb_scaler_lease_held") != 1 {
			t.Error("rb_scaler_lease_held does not follow the lease")
		}
		time.Sleep(2 * cfg.Scaling.ReconcileInterval)
		if got := e.containers(t, app); len(got) != 1 {
			t.Fatalf("containers %+v, want 1: both scalers acted", got)
		}
		for _, s := range f.entries() {
			if !strings.HasPrefix(s.meta.Source, "scaler/") {
				continue
			}
			if s.meta.Source != "scaler/"+leader.svc.NodeID() {
				t.Fatalf("the standby published %+v", s)
			}
		}

		stopped := time.Now()
		leader.stop(t)
		waitFor(t, "the standby leading", standby.svc.Leader)
		if took := time.Since(stopped); took > cfg.Scaling.LeaseTTL {
			t.Errorf("takeover took %s, want within the lease TTL %s", took, cfg.Scaling.LeaseTTL)
		}
		// It acts: on load it scales up, and it did not start a duplicate.
		f.setLoad(30)
		waitFor(t, "2 ready workers", func() bool { return len(f.ready()) == 2 })
		if got := e.containers(t, app); len(got) != 2 {
			t.Fatalf("containers %+v, want 2", got)
		}
		ups := f.decisions(events.ActionScaleUp)
		if last := ups[len(ups)-1]; last.meta.Source != "scaler/"+standby.svc.NodeID() {
			t.Errorf("the scale-up after the takeover came from %s", last.meta.Source)
		}

		// Losing the lease stops acting at once.
		f.setLoad(70)
		ctx := context.Background()
		// The leader renews every TTL/3, and may re-acquire the released
		// lease before the intruder gets to it: release and grab until the
		// intruder holds it (the store has no atomic steal).
		waitFor(t, "the intruder to hold the lease", func() bool {
			if err := e.store.ReleaseLease(ctx, "scaler:"+app, standby.svc.NodeID()); err != nil && !errors.Is(err, store.ErrConflict) {
				t.Fatal(err)
			}
			ok, err := e.store.AcquireLease(ctx, "scaler:"+app, "intruder", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		lost := time.Now()
		waitFor(t, "the leader to stop acting", func() bool { return !standby.svc.Leader() })
		// The next renewal (every TTL/3) finds it out.
		if took := time.Since(lost); took > 2*cfg.Scaling.LeaseTTL/3 {
			t.Errorf("the leader stopped %s after losing the lease, want within a renewal period (%s)", took, cfg.Scaling.LeaseTTL/3)
		}
		if err := e.store.ReleaseLease(ctx, "scaler:"+app, "intruder"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the scaler leading again", standby.svc.Leader)
	})
}

// publish publishes ev on subject through the env's bus.
func publish[T events.Payload](tb testing.TB, e *env, subject string, ev events.Event[T]) error {
	tb.Helper()
	data, err := events.Encode(ev)
	if err != nil {
		return err
	}
	return e.bus.Publish(context.Background(), subject, ev.ID, data)
}

// gate says where a gated runtime stops a scaler.
type gate int

const (
	gateCreate gate = iota + 1 // Create blocks before creating
	gateStart                  // Start blocks (the container was created)
)

// gated is the real runtime with one call that blocks until the scaler's
// context ends, which lets a test stop a scaler at an exact point of a
// scale-up, as a crash there would.
type gated struct {
	scaler.Runtime
	gate    gate
	reached chan string
}

func (g *gated) Create(ctx context.Context, spec rt.CreateSpec) (rt.Container, error) {
	if g.gate == gateCreate {
		g.reached <- spec.Name
		<-ctx.Done()
		return rt.Container{}, ctx.Err()
	}
	return g.Runtime.Create(ctx, spec)
}

func (g *gated) Start(ctx context.Context, id string) error {
	if g.gate == gateStart {
		c, err := g.Runtime.Inspect(ctx, id)
		if err != nil {
			return err
		}
		g.reached <- c.Name
		<-ctx.Done()
		return ctx.Err()
	}
	return g.Runtime.Start(ctx, id)
}
