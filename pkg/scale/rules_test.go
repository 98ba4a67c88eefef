package scale

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// want describes one expected decision.
type want struct {
	action  events.Action
	from    int
	to      int
	targets []string // exact names, or nil to check only the count
	n       int      // number of targets when targets is nil
	reason  []string // substrings the reason must contain
}

func TestRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		params func(*Params)
		// run drives the world and returns the decisions to judge.
		run   func(w *world) []events.Decision
		want  []want
		check func(t *testing.T, w *world)
	}{
		{
			name: "empty app starts DEFAULT_CONTAINER workers at its first check",
			run: func(w *world) []events.Decision {
				if ds := w.tick(); len(ds) != 0 {
					w.tb.Fatalf("decided at the first input: %+v", ds)
				}
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionScaleUp, from: 0, to: 5, n: 5, reason: []string{"desired 0 < DEFAULT_CONTAINER 5"}}},
			check: func(t *testing.T, w *world) {
				if got := len(w.names(PhaseRequested)); got != 5 || w.s.Desired != 5 {
					t.Fatalf("requested %d, desired %d; want 5 and 5", got, w.s.Desired)
				}
			},
		},
		{
			name: "existing workers are adopted during the first check period, nothing is created",
			run:  func(w *world) []events.Decision { return w.start(5, 70) },
			want: nil,
			check: func(t *testing.T, w *world) {
				if w.s.Desired != 5 || len(w.names(PhaseReady)) != 5 {
					t.Fatalf("desired %d ready %v", w.s.Desired, w.names(PhaseReady))
				}
			},
		},
		{
			name: "mean below HIGH scales up by SCALE_STEP",
			run:  func(w *world) []events.Decision { return w.start(5, 41.2) },
			want: []want{{action: events.ActionScaleUp, from: 5, to: 6, n: 1, reason: []string{"mean score 41.2 < HIGH_LOAD_THRESHOLD 55 for 10s", "SCALE_STEP 1"}}},
		},
		{
			name: "one worker below CRITICAL scales up though the mean is fine",
			run: func(w *world) []events.Decision {
				w.score("w1", 90)
				w.score("w2", 90)
				w.score("w3", 90)
				w.score("w4", 12)
				return w.wait(10 * time.Second).tick()
			},
			params: func(p *Params) { p.Min = 4 },
			want:   []want{{action: events.ActionScaleUp, from: 4, to: 5, n: 1, reason: []string{"worker w4 score 12.0 < CRITICAL_LOAD_THRESHOLD 20"}}},
		},
		{
			name:   "scale-up adds min(SCALE_STEP, MAX − desired)",
			params: func(p *Params) { p.Step = 3; p.Max = 7 },
			run:    func(w *world) []events.Decision { return w.start(5, 30) },
			want:   []want{{action: events.ActionScaleUp, from: 5, to: 7, n: 2}},
		},
		{
			name:   "at MAX_CONTAINERS a scale-up is held, and the hold is told once",
			params: func(p *Params) { p.Max = 5 },
			run: func(w *world) []events.Decision {
				ds := w.start(5, 30)
				ds = append(ds, w.wait(10*time.Second).tick()...)
				return append(ds, w.wait(10*time.Second).tick()...)
			},
			want: []want{{action: events.ActionHold, from: 5, to: 5, reason: []string{"desired 5 = MAX_CONTAINERS 5"}}},
		},
		{
			name: "a scale-up still starting blocks the next one",
			run: func(w *world) []events.Decision {
				w.start(5, 30)
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionHold, reason: []string{"1 workers still starting"}}},
		},
		{
			name: "starting workers are not capacity: the mean is over ready workers only",
			run: func(w *world) []events.Decision {
				w.start(5, 50) // scale-up to 6
				w.fact(w.names(PhaseRequested)[0], events.PhaseCreated)
				w.scoreNoProbe(w.names(PhaseInit)[0], 100) // scored but not ready
				w.wait(10 * time.Second).tick()
				w.readyAll(100)
				return w.wait(10 * time.Second).tick()
			},
			want: nil, // (5×50 + 100)/6 = 58.3 ≥ 55: no scale-up once the new one is ready
			check: func(t *testing.T, w *world) {
				hold := only(w.all, events.ActionHold)
				if len(hold) != 1 || hold[0].Inputs.MeanScore != 50 || hold[0].Inputs.Starting != 1 {
					t.Fatalf("want one hold on mean 50 with 1 starting, got %+v", hold)
				}
			},
		},
		{
			name:   "cooldown blocks a second scale-up",
			params: func(p *Params) { p.Cooldown = 30 * time.Second },
			run: func(w *world) []events.Decision {
				w.start(5, 30)
				w.readyAll(30)
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionHold, reason: []string{"< COOLDOWN_PERIOD 30s"}}},
		},
		{
			name:   "scale-up window: the condition must hold for the whole window",
			params: func(p *Params) { p.ScaleUpWindow = 25 * time.Second },
			run: func(w *world) []events.Decision {
				w.start(5, 30) // t=10: window starts at t=0
				w.wait(10 * time.Second).scoreAll(30)
				w.wait(time.Second).scoreAll(70) // a break at t=21
				w.wait(time.Second).scoreAll(30) // holds again from t=22
				w.wait(18 * time.Second).tick()  // t=40: 18 s < 25 s
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionScaleUp, from: 5, to: 6, n: 1, reason: []string{"for 28s"}}},
			check: func(t *testing.T, w *world) {
				if holds := only(w.all, events.ActionHold); len(holds) != 1 || !strings.Contains(holds[0].Reason, "RB_SCALE_UP_WINDOW 25s") {
					t.Fatalf("want one window hold, got %+v", holds)
				}
			},
		},
		{
			name:   "mean above LOW sundowns the highest score, never a starting worker",
			params: func(p *Params) { p.Min = 3 },
			run: func(w *world) []events.Decision {
				w.score("w1", 90)
				w.score("w2", 95)
				w.score("w3", 95)
				w.score("w4", 85)
				w.fact("w5", events.PhaseCreated) // INIT: score 100, never a victim
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionScaleDown, from: 5, to: 4, targets: []string{"w2"},
				reason: []string{"mean score 91.2 > LOW_LOAD_THRESHOLD 80", "SUNDOWN w2", "mean after removal 88.3"}}},
			check: func(t *testing.T, w *world) {
				if w.phase("w2") != PhaseSundown || w.phase("w5") != PhaseInit {
					t.Fatalf("w2 %s w5 %s", w.phase("w2"), w.phase("w5"))
				}
			},
		},
		{
			name:   "scale-down never goes below DEFAULT_CONTAINER",
			params: func(p *Params) { p.Min = 5; p.Step = 3 },
			run: func(w *world) []events.Decision {
				ds := w.start(6, 95)
				return only(append(ds, w.wait(10*time.Second).tick()...), events.ActionScaleDown, events.ActionHold)
			},
			want: []want{
				{action: events.ActionScaleDown, from: 6, to: 5, targets: []string{"w1"}},
				{action: events.ActionHold, reason: []string{"desired 5 = DEFAULT_CONTAINER 5"}},
			},
		},
		{
			name:   "scale-down window: held until the condition held for the window",
			params: func(p *Params) { p.ScaleDownWindow = 30 * time.Second; p.Min = 1 },
			run: func(w *world) []events.Decision {
				ds := w.start(3, 95)                                // t=10
				ds = append(ds, w.wait(10*time.Second).tick()...)   // t=20
				return append(ds, w.wait(10*time.Second).tick()...) // t=30: held since t=0
			},
			want: []want{
				{action: events.ActionHold, reason: []string{"not yet RB_SCALE_DOWN_WINDOW 30s"}},
				{action: events.ActionScaleDown, from: 3, to: 2, targets: []string{"w1"}, reason: []string{"for 30s"}},
			},
		},
		{
			name:   "scale-in guard: no scale-down that would push the mean below HIGH",
			params: func(p *Params) { p.Min = 1; p.High = 55; p.Low = 60 },
			run:    func(w *world) []events.Decision { return w.start(2, 70) }, // 70 → 40 on one worker
			want:   []want{{action: events.ActionHold, reason: []string{"mean would fall to 40.0 < HIGH_LOAD_THRESHOLD 55", "RB_SCALE_IN_GUARD"}}},
		},
		{
			name:   "scale-in guard off: the same scale-down happens",
			params: func(p *Params) { p.Min = 1; p.High = 55; p.Low = 60; p.ScaleInGuard = false },
			run:    func(w *world) []events.Decision { return w.start(2, 70) },
			want:   []want{{action: events.ActionScaleDown, from: 2, to: 1, targets: []string{"w1"}}},
		},
		{
			name:   "trend: a falling mean projected below HIGH scales up early",
			params: func(p *Params) { p.TrendHorizon = 30 * time.Second; p.CheckPeriod = 20 * time.Second },
			run:    fallingMean,
			want:   []want{{action: events.ActionScaleUp, from: 5, to: 6, n: 1, reason: []string{"mean score 61.0 projected to", "RB_TREND_HORIZON) < HIGH_LOAD_THRESHOLD 55"}}},
			check: func(t *testing.T, w *world) {
				in := w.all[0].Inputs
				if in.MeanScore != 61 || in.ProjectedMean > 35 || in.ProjectedMean < 25 {
					t.Fatalf("mean %v projected %v, want 61 and about 30", in.MeanScore, in.ProjectedMean)
				}
			},
		},
		{
			name:   "trend off: the same falling mean does nothing yet",
			params: func(p *Params) { p.CheckPeriod = 20 * time.Second },
			run:    fallingMean,
			want:   nil,
		},
		{
			name:   "a worker that died is removed and replaced at once, cooldown or not",
			params: func(p *Params) { p.Cooldown = time.Minute },
			run: func(w *world) []events.Decision {
				w.start(5, 30) // scale-up: cooldown running
				w.readyAll(60)
				return w.wait(time.Second).fact("w3", events.PhaseDied)
			},
			want: []want{
				{action: events.ActionRemove, from: 6, to: 6, targets: []string{"w3"}, reason: []string{"worker w3 died: removing"}},
				{action: events.ActionReplace, from: 5, to: 6, n: 1, reason: []string{"5 live workers < desired 6"}},
			},
		},
		{
			name: "start failures in a row back off the replacement (RB_REPLACE_BACKOFF)",
			run: func(w *world) []events.Decision {
				w.start(5, 30) // scale-up to 6
				name := w.names(PhaseRequested)[0]
				ds := w.fact(name, events.PhaseFailed)           // t=10, 1st start failure: backoff 5 s
				ds = append(ds, w.wait(4*time.Second).tick()...) // too early
				ds = append(ds, w.wait(time.Second).tick()...)   // t=15: replaced
				// t=16, 2nd start failure: the next replacement waits 10 s.
				return append(ds, w.wait(time.Second).fact(w.names(PhaseRequested)[0], events.PhaseFailed)...)
			},
			want: []want{
				{action: events.ActionRemove, n: 1, reason: []string{"failed"}},
				{action: events.ActionReplace, from: 5, to: 6, n: 1, reason: []string{"1 start failures in a row, backoff 5s"}},
				{action: events.ActionRemove, n: 1},
			},
			check: func(t *testing.T, w *world) {
				if w.s.StartFailures != 2 {
					t.Fatalf("start failures %d, want 2", w.s.StartFailures)
				}
				if ds := only(w.wait(9*time.Second).tick(), events.ActionReplace, events.ActionScaleUp); len(ds) != 0 {
					t.Fatalf("replaced or scaled 9 s after the 2nd failure: %+v", ds)
				}
				ds := w.wait(time.Second).tick()
				if len(only(ds, events.ActionReplace)) != 1 || !strings.Contains(ds[0].Reason, "backoff 10s") {
					t.Fatalf("want the second replacement after 10 s, got %+v", ds)
				}
			},
		},
		{
			name:   "a worker never ready within RB_READY_TIMEOUT is failed, removed and replaced",
			params: func(p *Params) { p.ReadyTimeout = 30 * time.Second; p.ReplaceBackoff = 0 },
			run: func(w *world) []events.Decision {
				w.start(5, 30)
				stuck := w.names(PhaseRequested)[0]
				w.fact(stuck, events.PhaseStarted)
				w.wait(29 * time.Second).tick()
				return w.wait(time.Second).tick()
			},
			want: []want{
				{action: events.ActionRemove, n: 1, reason: []string{"not ready 30s after it was requested (RB_READY_TIMEOUT 30s)"}},
				{action: events.ActionReplace, from: 5, to: 6, n: 1},
			},
		},
		{
			name:   "SUNDOWN is removed once every live proxy reported 0 in flight for RB_DRAIN_GRACE",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.report("px-a", "")
				w.report("px-b", "")
				w.start(2, 95) // sundowns w1 at t=10
				var ds []events.Decision
				ds = append(ds, w.report("px-a", "w1=2")...)
				ds = append(ds, w.report("px-b", "w1=0")...)
				ds = append(ds, w.wait(time.Second).report("px-a", "w1=1")...) // t=11: last busy
				ds = append(ds, w.report("px-b", "")...)
				ds = append(ds, w.wait(time.Second).report("px-a", "")...) // t=12: idle 1 s
				ds = append(ds, w.report("px-b", "")...)
				ds = append(ds, w.wait(time.Second).report("px-a", "")...) // t=13: idle 2 s
				return ds
			},
			want: []want{{action: events.ActionRemove, targets: []string{"w1"}, reason: []string{"drained: 2 live proxies report 0 in flight for 2s (RB_DRAIN_GRACE 2s)"}}},
		},
		{
			name:   "a silent proxy does not hold a drain once gone (RB_PROXY_GONE_INTERVALS)",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.report("px-a", "")
				w.report("px-b", "")
				w.start(2, 95) // t=10
				w.report("px-a", "w1=0")
				w.report("px-b", "w1=5") // px-b then falls silent
				var ds []events.Decision
				for i := 0; i < 4; i++ {
					ds = append(ds, w.wait(time.Second).report("px-a", "")...)
				}
				return ds // px-b is gone after 3 s of silence (t=14 > 13)
			},
			want: []want{{action: events.ActionRemove, targets: []string{"w1"}, reason: []string{"drained: 1 live proxies"}}},
		},
		{
			name:   "RB_DRAIN_TIMEOUT removes a SUNDOWN worker that never drains",
			params: func(p *Params) { p.Min = 1; p.DrainTimeout = 20 * time.Second },
			run: func(w *world) []events.Decision {
				w.start(2, 95) // t=10
				var ds []events.Decision
				for i := 0; i < 20; i++ {
					ds = append(ds, w.report("px-a", "w1=3")...)
					w.wait(time.Second)
				}
				return only(append(ds, w.report("px-a", "w1=3")...), events.ActionRemove)
			},
			want: []want{{action: events.ActionRemove, targets: []string{"w1"}, reason: []string{"not drained after 20s (RB_DRAIN_TIMEOUT 20s; px-a reports 3 in flight)"}}},
		},
		{
			name:   "with no proxy at all a SUNDOWN worker is drained after the grace",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.start(2, 95)
				ds := w.wait(time.Second).tick()
				return append(ds, w.wait(time.Second).tick()...)
			},
			want: []want{{action: events.ActionRemove, targets: []string{"w1"}, reason: []string{"no live proxy, 2s since SUNDOWN"}}},
		},
		{
			name:   "a drained fact removes at once",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.report("px-a", "")
				w.start(2, 95)
				w.report("px-a", "w1=4")
				return w.fact("w1", events.PhaseDrained)
			},
			want: []want{{action: events.ActionRemove, targets: []string{"w1"}, reason: []string{"drained (lifecycle fact)"}}},
		},
		{
			name:   "an unconfirmed removal is asked again after a minute, a died fact during removal is not a failure",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.start(2, 95)
				w.wait(2 * time.Second).tick() // removal decided
				ds := w.fact("w1", events.PhaseDied)
				ds = append(ds, w.wait(59*time.Second).tick()...)
				return only(append(ds, w.wait(time.Second).tick()...), events.ActionRemove)
			},
			want: []want{{action: events.ActionRemove, targets: []string{"w1"}, reason: []string{"not confirmed after 1m0s"}}},
		},
		{
			name:   "a failed removal is asked again at once",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.start(2, 95)
				w.wait(2 * time.Second).tick()
				return w.fact("w1", events.PhaseFailed)
			},
			want: []want{{action: events.ActionRemove, targets: []string{"w1"}, reason: []string{"worker w1 failed"}}},
		},
		{
			name:   "a removed worker is gone: late facts and scores do not bring it back",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.start(2, 95)
				w.wait(2 * time.Second).tick()
				ds := w.fact("w1", events.PhaseRemoved)
				ds = append(ds, w.score("w1", 99)...)
				return append(ds, w.fact("w1", events.PhaseReady)...)
			},
			want: nil,
			check: func(t *testing.T, w *world) {
				if w.phase("w1") != PhaseRemoved || w.s.Desired != 1 || w.s.Counts().Live != 1 {
					t.Fatalf("w1 %s desired %d counts %+v", w.phase("w1"), w.s.Desired, w.s.Counts())
				}
				w.wait(tombstoneTTL).tick()
				if _, ok := w.s.Worker("w1"); ok {
					t.Fatal("tombstone kept past its TTL")
				}
			},
		},
		{
			name: "a live worker removed behind the scaler's back is replaced",
			run: func(w *world) []events.Decision {
				w.start(5, 70)
				return w.fact("w2", events.PhaseRemoved)
			},
			want: []want{{action: events.ActionReplace, from: 4, to: 5, n: 1}},
		},
		{
			name: "an operator's SUNDOWN of a live worker drains it and starts a replacement",
			run: func(w *world) []events.Decision {
				w.start(5, 70)
				return w.fact("w2", events.PhaseSundown)
			},
			want: []want{{action: events.ActionReplace, from: 4, to: 5, n: 1}},
		},
		{
			name: "MAX_CONTAINERS lowered: desired comes down to it",
			run: func(w *world) []events.Decision {
				w.start(8, 70)
				w.p.Max = 6
				w.p.Min = 2
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionScaleDown, from: 8, to: 6, targets: []string{"w1", "w2"}, reason: []string{"desired 8 > MAX_CONTAINERS 6"}}},
		},
		{
			name: "DEFAULT_CONTAINER raised: desired goes up to it",
			run: func(w *world) []events.Decision {
				w.start(5, 70)
				w.p.Min = 7
				w.p.Max = 9
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionScaleUp, from: 5, to: 7, n: 2, reason: []string{"desired 5 < DEFAULT_CONTAINER 7"}}},
		},
		{
			name:   "victims: highest score first, ties by name",
			params: func(p *Params) { p.Min = 2; p.Step = 3 },
			run: func(w *world) []events.Decision {
				w.score("w4", 97)
				w.score("w2", 99)
				w.score("w3", 99)
				w.score("w1", 90)
				w.score("w5", 96)
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionScaleDown, from: 5, to: 2, targets: []string{"w2", "w3", "w4"}}},
		},
		{
			name:   "the last ready worker is never sundowned while others start",
			params: func(p *Params) { p.Min = 1 },
			run: func(w *world) []events.Decision {
				w.score("w1", 99)
				w.fact("w2", events.PhaseCreated)
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionHold, reason: []string{"no ready worker can be sundowned"}}},
		},
		{
			name:   "scale-down with a replacement pending only lowers desired",
			params: func(p *Params) { p.Min = 2; p.ReplaceBackoff = time.Hour },
			run: func(w *world) []events.Decision {
				w.score("w1", 99)
				w.score("w2", 99)
				w.fact("w3", events.PhaseStarted)
				w.wait(time.Second).fact("w3", events.PhaseFailed) // start failure: replacement waits an hour
				return w.wait(10 * time.Second).tick()
			},
			want: []want{{action: events.ActionScaleDown, from: 3, to: 2, targets: nil, n: 0, reason: []string{"no worker to sundown"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testParams()
			if tc.params != nil {
				tc.params(&p)
			}
			w := newWorld(t, p)
			got := tc.run(w)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d decisions, want %d:\n%s", len(got), len(tc.want), dump(got))
			}
			for i, wd := range tc.want {
				d := got[i]
				if d.Action != wd.action {
					t.Fatalf("decision %d: action %s, want %s:\n%s", i, d.Action, wd.action, dump(got))
				}
				if wd.from != 0 || wd.to != 0 {
					if d.From != wd.from || d.To != wd.to {
						t.Fatalf("decision %d: %d → %d, want %d → %d:\n%s", i, d.From, d.To, wd.from, wd.to, dump(got))
					}
				}
				if wd.targets != nil {
					if strings.Join(d.Targets, ",") != strings.Join(wd.targets, ",") {
						t.Fatalf("decision %d: targets %v, want %v", i, d.Targets, wd.targets)
					}
				} else if wd.n != 0 && len(d.Targets) != wd.n {
					t.Fatalf("decision %d: %d targets %v, want %d", i, len(d.Targets), d.Targets, wd.n)
				}
				for _, sub := range wd.reason {
					if !strings.Contains(d.Reason, sub) {
						t.Fatalf("decision %d: reason %q lacks %q", i, d.Reason, sub)
					}
				}
				if err := d.Validate(); err != nil {
					t.Fatalf("decision %d invalid: %v", i, err)
				}
			}
			if tc.check != nil {
				tc.check(t, w)
			}
		})
	}
}

func dump(ds []events.Decision) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("  ")
		b.WriteString(string(d.Action))
		b.WriteString(" ")
		b.WriteString(strings.Join(d.Targets, ","))
		b.WriteString(": ")
		b.WriteString(d.Reason)
		b.WriteString("\n")
	}
	return b.String()
}

// fallingMean scores five workers from 80 down by one point a second for 19 s
// (a slope of −1/s) and ticks at 20 s, the first check.
func fallingMean(w *world) []events.Decision {
	var ds []events.Decision
	for i := 0; i < 20; i++ {
		for j := 1; j <= 5; j++ {
			ds = append(ds, w.score(fmt.Sprintf("w%d", j), 80-float64(i))...)
		}
		w.wait(time.Second)
	}
	return append(ds, w.tick()...)
}
