package scale

import (
	"fmt"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// logged is one entry of the recorded streams: a fact or a decision.
type logged struct {
	at       time.Time
	in       *Input
	decision *events.Decision
}

func TestRebuildFromLog(t *testing.T) {
	t.Parallel()
	for seed := uint64(200); seed < 215; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			sm := newSim(t, seed, 8)
			var log []logged
			sm.onStep = func(in Input, ds []events.Decision) {
				if in.Kind != InputTick {
					log = append(log, logged{at: in.Time, in: &in})
				}
				for i := range ds {
					log = append(log, logged{at: sm.s.Now, decision: &ds[i]})
				}
			}
			sm.run()
			if len(log) == 0 {
				t.Fatal("empty log")
			}
			re := NewState(app)
			for _, e := range log {
				var err error
				if e.in != nil {
					err = re.Observe(sm.p, *e.in)
				} else {
					err = re.ApplyDecision(e.at, *e.decision)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got, want := re, sm.s
			// The live state saw ticks the log does not hold.
			if err := re.Observe(sm.p, Tick(want.Now)); err != nil {
				t.Fatal(err)
			}
			if got.Desired != want.Desired || !got.LastScale.Equal(want.LastScale) || !got.LastReplace.Equal(want.LastReplace) ||
				got.StartFailures != want.StartFailures {
				t.Fatalf("rebuilt desired %d last scale %s last replace %s failures %d; live %d %s %s %d",
					got.Desired, got.LastScale, got.LastReplace, got.StartFailures, want.Desired, want.LastScale, want.LastReplace, want.StartFailures)
			}
			if len(got.Workers) != len(want.Workers) {
				t.Fatalf("rebuilt %d workers, live %d", len(got.Workers), len(want.Workers))
			}
			for i, g := range got.Workers {
				w := want.Workers[i]
				if g.Name != w.Name || g.Phase != w.Phase || !g.SundownAt.Equal(w.SundownAt) || !g.RemoveAt.Equal(w.RemoveAt) {
					t.Fatalf("worker %d rebuilt %+v, live %+v", i, g, w)
				}
			}
		})
	}
}

func TestRebuildKeepsCooldown(t *testing.T) {
	t.Parallel()
	p := testParams()
	p.Cooldown = time.Minute
	w := newWorld(t, p)
	w.start(5, 30) // scale-up at t=10
	d := only(w.all, events.ActionScaleUp)[0]
	re := NewState(app)
	for i := 1; i <= 5; i++ {
		if err := re.Observe(p, ScoreInput(t0, scoreOf(fmt.Sprintf("w%d", i), 30, true))); err != nil {
			t.Fatal(err)
		}
	}
	if err := re.ApplyDecision(t0.Add(10*time.Second), d); err != nil {
		t.Fatal(err)
	}
	if err := re.Observe(p, LifecycleInput(t0.Add(11*time.Second), events.Lifecycle{App: app, Container: d.Targets[0], Phase: events.PhaseReady})); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{30 * time.Second, 69 * time.Second} {
		ds, err := re.Step(p, Tick(t0.Add(at)))
		if err != nil {
			t.Fatal(err)
		}
		if len(only(ds, events.ActionScaleUp)) != 0 {
			t.Fatalf("scaled up %s after a restart inside the cooldown: %+v", at, ds)
		}
	}
	ds, err := re.Step(p, Tick(t0.Add(80*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if len(only(ds, events.ActionScaleUp)) != 1 || re.Desired != 7 {
		t.Fatalf("after the cooldown: %+v, desired %d; want a scale-up to 7", ds, re.Desired)
	}
}
