package replay

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/config"
)

// rampLoad is heavy (0.95: score 52.5, below HIGH 55) for the first minute,
// light (0.1: score 95, above LOW 80) after, whatever the number of workers:
// what an as-recorded replay assumes.
func rampLoad(at time.Time, _ string, _ int) float64 {
	if at.Sub(t0) < time.Minute {
		return 0.95
	}
	return 0.1
}

// spreadLoad is a fixed total demand of 0.95 workers' worth, shared evenly:
// what a conserve-demand replay assumes.
func spreadLoad(_ time.Time, _ string, ready int) float64 { return 0.95 / float64(max(ready, 1)) }

func prepare(tb testing.TB, rec *Recording, base config.Config, opt Options) *Prepared {
	tb.Helper()
	opt.Base, opt.Params = base, testParams
	p, err := Prepare(rec, opt)
	if err != nil {
		tb.Fatalf("prepare: %v", err)
	}
	return p
}

func actions(rs []Decided, skipHolds bool) string {
	var parts []string
	for _, d := range rs {
		if skipHolds && d.Action == events.ActionHold {
			continue
		}
		parts = append(parts, string(d.Action)+" "+strconv.Itoa(d.From)+"→"+strconv.Itoa(d.To))
	}
	return strings.Join(parts, ", ")
}

func TestFaithfulReproducesTheLiveDecisions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		base    func(testing.TB) config.Config
		load    loadFunc
		initial []string
		dur     time.Duration
		// configAt changes the config mid-run, when set.
		configAt time.Duration
		want     string
	}{
		{
			name: "up to the maximum, down to the minimum",
			base: testConfig, load: rampLoad, initial: []string{"shop-seed0001"}, dur: 3 * time.Minute,
			want: "scale_up 1→2, scale_up 2→3, hold 3→3, scale_down 3→2, remove 2→2, scale_down 2→1, remove 1→1, hold 1→1",
		},
		{
			name: "a config change in the middle",
			base: testConfig, load: rampLoad, initial: []string{"shop-seed0001"}, dur: 2 * time.Minute, configAt: 15 * time.Second,
			want: "scale_up 1→2, hold 2→2, scale_down 2→1, remove 1→1, hold 1→1",
		},
		{
			// The scaler starts the first worker at its first check, on a
			// tick: nothing in the recording comes before that decision.
			name: "from no worker at all",
			base: testConfig, load: rampLoad, dur: 2 * time.Minute,
			want: "scale_up 0→1, scale_up 1→2, scale_up 2→3, hold 3→3, scale_down 3→2, remove 2→2, scale_down 2→1, remove 1→1, hold 1→1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := tt.base(t)
			sim := newLiveSim(t, base, tt.load, tt.initial...)
			if tt.configAt > 0 {
				sim.setConfig(t0.Add(tt.configAt), 7, map[string]string{"DEFAULT_CONTAINER": "1", "MAX_CONTAINERS": "2"})
			}
			msgs := sim.run(tt.dur)
			rec := recordingOf(t, msgs)
			if n := rec.Count(events.KindDecision); n != decisionsOf(msgs) || n == 0 {
				t.Fatalf("recording holds %d decisions, %d published", n, decisionsOf(msgs))
			}
			p := prepare(t, rec, base, Options{})
			if got := actions(p.Actual().Decisions, false); got != tt.want {
				t.Fatalf("recorded decisions:\n got %s\nwant %s", got, tt.want)
			}
			res, cmp, err := p.Faithful(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !cmp.Equal {
				t.Fatalf("replay differs after %d of %d decisions (%d replayed):\nrecorded %s\nreplayed %s",
					cmp.Identical, cmp.Recorded, cmp.Replayed, cmp.FirstRecorded, cmp.FirstReplayed)
			}
			if res.Summary != p.Actual().Summary {
				t.Errorf("summary of the faithful replay %+v, of the recording %+v", res.Summary, p.Actual().Summary)
			}
		})
	}
}

func TestLoadModels(t *testing.T) {
	t.Parallel()
	// The recorded scaler could not scale (MAX_CONTAINERS 1): one worker
	// carried a demand of 0.95 for two minutes. What if the maximum had been 3?
	base := testConfig(t)
	base, err := base.WithRuntime(map[string]string{"DEFAULT_CONTAINER": "1", "MAX_CONTAINERS": "1"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := newLiveSim(t, base, spreadLoad, "shop-seed0001").run(2 * time.Minute)
	rec := recordingOf(t, msgs)
	tests := []struct {
		name  string
		model Model
		// as-recorded: every worker at 0.95, so the mean stays at 52.5 < 55
		// and it scales to the maximum; conserve-demand: two workers at
		// 0.475 each score 76, between HIGH and LOW, so one scale-up is enough.
		want string
		peak int
	}{
		{name: "as-recorded", model: ModelAsRecorded, want: "scale_up 1→2, scale_up 2→3", peak: 3},
		{name: "conserve-demand", model: ModelConserveDemand, want: "scale_up 1→2", peak: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := prepare(t, rec, base, Options{Model: tt.model})
			if got := actions(p.Actual().Decisions, false); got != "hold 1→1" {
				t.Fatalf("recorded: %s", got)
			}
			res, err := p.Run(context.Background(), CandidateOf(map[string]string{"MAX_CONTAINERS": "3"}, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := actions(res.Decisions, true); got != tt.want {
				t.Errorf("decisions:\n got %s\nwant %s", got, tt.want)
			}
			if res.Summary.PeakWorkers != tt.peak {
				t.Errorf("peak workers %d, want %d", res.Summary.PeakWorkers, tt.peak)
			}
			if res.Summary.WorkerSeconds <= p.Actual().Summary.WorkerSeconds {
				t.Errorf("cost %d, want more than the recording's %d", res.Summary.WorkerSeconds, p.Actual().Summary.WorkerSeconds)
			}
		})
	}
}

func TestOverridesMoveTheOutcome(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	// The recording's load is per worker, whatever the number of workers:
	// the as-recorded model is the one that describes it.
	rec := recordingOf(t, newLiveSim(t, base, rampLoad, "shop-seed0001").run(3*time.Minute))
	p := prepare(t, rec, base, Options{Model: ModelAsRecorded})
	rec0 := p.Actual().Summary
	tests := []struct {
		name  string
		set   map[string]string
		check func(t *testing.T, s Summary, ds []Decided)
	}{
		{
			name: "the recorded config simulated scales as recorded",
			set:  nil,
			check: func(t *testing.T, s Summary, _ []Decided) {
				if s.ScaleUps != rec0.ScaleUps || s.ScaleDowns != rec0.ScaleDowns || s.PeakWorkers != rec0.PeakWorkers {
					t.Errorf("got %+v, recorded %+v", s, rec0)
				}
			},
		},
		{
			name: "a lower HIGH_LOAD_THRESHOLD scales up less and costs less",
			set:  map[string]string{"HIGH_LOAD_THRESHOLD": "50"},
			check: func(t *testing.T, s Summary, _ []Decided) {
				if s.ScaleUps >= rec0.ScaleUps || s.WorkerSeconds >= rec0.WorkerSeconds {
					t.Errorf("got %d scale-ups and %d worker-s, recorded %d and %d", s.ScaleUps, s.WorkerSeconds, rec0.ScaleUps, rec0.WorkerSeconds)
				}
				if s.RiskSeconds < rec0.RiskSeconds {
					t.Errorf("risk %d s, want at least the recording's %d", s.RiskSeconds, rec0.RiskSeconds)
				}
			},
		},
		{
			name: "a lower MAX_CONTAINERS caps the peak",
			set:  map[string]string{"MAX_CONTAINERS": "2"},
			check: func(t *testing.T, s Summary, _ []Decided) {
				if s.PeakWorkers > 2 || s.ScaleUps != 1 {
					t.Errorf("got peak %d and %d scale-ups, want 2 and 1", s.PeakWorkers, s.ScaleUps)
				}
			},
		},
		{
			name: "a longer COOLDOWN_PERIOD spaces the scaling actions",
			set:  map[string]string{"COOLDOWN_PERIOD": "25s"},
			check: func(t *testing.T, s Summary, ds []Decided) {
				var last time.Time
				n := 0
				for _, d := range ds {
					if d.Action != events.ActionScaleUp && d.Action != events.ActionScaleDown {
						continue
					}
					if n++; !last.IsZero() && d.Time.Sub(last) < 25*time.Second {
						t.Errorf("%s at %s, %s after the last scaling", d.Action, d.Time, d.Time.Sub(last))
					}
					last = d.Time
				}
				if n != rec0.ScaleUps+rec0.ScaleDowns {
					t.Errorf("%d scaling actions, recorded %d", n, rec0.ScaleUps+rec0.ScaleDowns)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := p.Run(context.Background(), CandidateOf(tt.set, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, res.Summary, res.Decisions)
		})
	}
}

func TestBadOverridesNameTheVariable(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{name: "out of range", set: map[string]string{"HIGH_LOAD_THRESHOLD": "150"}, want: "HIGH_LOAD_THRESHOLD"},
		{name: "not a number", set: map[string]string{"COOLDOWN_PERIOD": "soon"}, want: "COOLDOWN_PERIOD"},
		{name: "above LOW", set: map[string]string{"HIGH_LOAD_THRESHOLD": "90"}, want: "HIGH_LOAD_THRESHOLD"},
		{name: "unknown", set: map[string]string{"HIGH_LOAD": "50"}, want: "HIGH_LOAD"},
		{name: "not runtime", set: map[string]string{"HISTORY_SIZE": "5"}, want: "HISTORY_SIZE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(base, testParams, tt.set)
			if !errors.Is(err, ErrBadOverride) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrBadOverride naming %s", err, tt.want)
			}
		})
	}
	if err := Validate(base, testParams, map[string]string{"HIGH_LOAD_THRESHOLD": "50"}); err != nil {
		t.Fatalf("a good override: %v", err)
	}
}

func TestWarmup(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	rec := recordingOf(t, newLiveSim(t, base, rampLoad, "shop-seed0001").run(3*time.Minute))
	tests := []struct {
		name     string
		from     time.Duration
		complete bool
		// equal: the decisions after from must be the recorded ones.
		equal bool
	}{
		{name: "a warm-up stepped from the start of the history reproduces the rest", from: 45 * time.Second, complete: true, equal: true},
		{name: "in the middle of a hold, too", from: 65 * time.Second, complete: true, equal: true},
		// Rebuilt as a restarted scaler rebuilds: the check phase is lost
		// (the live checks come at :x0.5, the rebuilt ones at the first
		// input after the start, :x5.5).
		{name: "a rebuilt warm-up loses the phase of the checks", from: 45 * time.Second, complete: false, equal: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := prepare(t, rec, base, Options{MeasureFrom: t0.Add(tt.from), Complete: tt.complete})
			if len(p.Actual().Decisions) == 0 {
				t.Fatal("no recorded decision after the start")
			}
			for _, d := range p.Actual().Decisions {
				if d.Time.Before(t0.Add(tt.from)) {
					t.Fatalf("recorded decision at %s, before the start", d.Time)
				}
			}
			_, cmp, err := p.Faithful(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cmp.Equal != tt.equal {
				t.Fatalf("equal %v, want %v:\n%s\n%s", cmp.Equal, tt.equal, cmp.FirstRecorded, cmp.FirstReplayed)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	d := func(sec int, a events.Action, reason string) Decided {
		return Decided{Time: t0.Add(time.Duration(sec) * time.Second), Decision: events.Decision{App: testApp, Action: a, Reason: reason}}
	}
	rec := []Decided{d(1, events.ActionScaleUp, "up"), d(2, events.ActionHold, "for 1.5s"), d(3, events.ActionScaleDown, "down")}
	tests := []struct {
		name                string
		replayed            []Decided
		equal, actionsEqual bool
		identical           int
	}{
		{name: "the same", replayed: rec, equal: true, actionsEqual: true, identical: 3},
		{name: "a hold's reason differs", replayed: []Decided{rec[0], d(2, events.ActionHold, "for 1.4s"), rec[2]}, actionsEqual: true, identical: 1},
		{name: "an action's time differs", replayed: []Decided{rec[0], rec[1], d(4, events.ActionScaleDown, "down")}, identical: 2},
		{name: "one missing", replayed: rec[:2], identical: 2},
		{name: "one more", replayed: append(append([]Decided{}, rec...), d(9, events.ActionRemove, "x")), identical: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Compare(rec, tt.replayed)
			if c.Equal != tt.equal || c.Actions.Equal != tt.actionsEqual || c.Identical != tt.identical {
				t.Fatalf("got equal %v, actions equal %v, identical %d", c.Equal, c.Actions.Equal, c.Identical)
			}
			if !c.Equal && c.FirstRecorded == "" && c.FirstReplayed == "" {
				t.Fatal("no first difference shown")
			}
		})
	}
}

func TestDrainsWithProxies(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	sim := newLiveSim(t, base, rampLoad, "shop-seed0001")
	sim.drainFor, sim.sundownAt = 10*time.Second, map[string]time.Time{}
	rec := recordingOf(t, sim.run(3*time.Minute))
	if rec.Count(events.KindProxyReport) == 0 {
		t.Fatal("no proxy report recorded")
	}
	p := prepare(t, rec, base, Options{Model: ModelAsRecorded})
	_, cmp, err := p.Faithful(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal {
		t.Fatalf("faithful replay with proxy reports differs:\n%s\n%s", cmp.FirstRecorded, cmp.FirstReplayed)
	}
	// The recorded drains had requests in flight for 10 s (the last busy
	// report within it, a report a second), then RB_DRAIN_GRACE 2 s: the
	// simulation keeps requests in flight for the part before the grace.
	if d := p.Delays().Drain; d < 9*time.Second || d > 11*time.Second {
		t.Fatalf("simulated time in flight %s, want 9 s to 11 s", d)
	}
	for _, grace := range []string{"2s", "20s"} {
		res, err := p.Run(context.Background(), CandidateOf(map[string]string{"RB_DRAIN_GRACE": grace}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := time.ParseDuration(grace)
		sundown := map[string]time.Time{}
		removes := 0
		for _, d := range res.Decisions {
			switch d.Action {
			case events.ActionScaleDown:
				sundown[d.Targets[0]] = d.Time
			case events.ActionRemove:
				removes++
				took := d.Time.Sub(sundown[d.Targets[0]])
				if took < p.Delays().Drain+g-time.Second || took > p.Delays().Drain+g+2*time.Second {
					t.Errorf("grace %s: %s removed %s after SUNDOWN, want %s + %s (+ a round): %s", grace, d.Targets[0], took, p.Delays().Drain, g, d.Reason)
				}
			}
		}
		if removes == 0 {
			t.Fatalf("grace %s: no removal", grace)
		}
	}
}
