package scale

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Params)
		// want are substrings of the error; none means valid.
		want []string
	}{
		{name: "defaults", change: func(*Params) {}},
		{name: "critical not below high", change: func(p *Params) { p.Critical = 55 },
			want: []string{"CRITICAL_LOAD_THRESHOLD=55 must be below HIGH_LOAD_THRESHOLD=55"}},
		{name: "high not below low", change: func(p *Params) { p.High = 90 },
			want: []string{"HIGH_LOAD_THRESHOLD=90 must be below LOW_LOAD_THRESHOLD=80"}},
		{name: "threshold out of range", change: func(p *Params) { p.Low = 120 },
			want: []string{"LOW_LOAD_THRESHOLD=120, want a score in 0..100"}},
		{name: "min zero", change: func(p *Params) { p.Min = 0 }, want: []string{"DEFAULT_CONTAINER=0, want ≥ 1"}},
		{name: "max below min", change: func(p *Params) { p.Max = 3 },
			want: []string{"MAX_CONTAINERS=3 must be ≥ DEFAULT_CONTAINER=5"}},
		{name: "step zero", change: func(p *Params) { p.Step = 0 }, want: []string{"SCALE_STEP=0, want ≥ 1"}},
		{name: "negative duration", change: func(p *Params) { p.Cooldown = -time.Second },
			want: []string{"COOLDOWN_PERIOD=-1s, want a duration ≥ 0"}},
		{name: "trend window too short", change: func(p *Params) { p.TrendHorizon = time.Minute; p.TrendWindow = time.Second },
			want: []string{"RB_TREND_WINDOW=1s, want ≥ 3s when RB_TREND_HORIZON is set"}},
		{name: "every problem at once", change: func(p *Params) { p.Step = 0; p.Min = 0; p.DrainGrace = -1 },
			want: []string{"SCALE_STEP", "DEFAULT_CONTAINER", "RB_DRAIN_GRACE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := DefaultParams()
			tc.change(&p)
			err := p.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("Validate() = %v, want ErrInvalidParams", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Validate() = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestStepRejects(t *testing.T) {
	t.Parallel()
	good := scoreOf("w1", 50, true)
	otherApp, tooHigh := good, good
	otherApp.App = "other"
	tooHigh.Overall = 101
	tests := []struct {
		name  string
		state *State
		p     func(*Params)
		in    Input
		want  error
	}{
		{name: "other app", in: ScoreInput(t0, otherApp), want: ErrOtherApp},
		{name: "no event time", in: ScoreInput(time.Time{}, good), want: ErrBadInput},
		{name: "score out of range", in: ScoreInput(t0, tooHigh), want: ErrBadInput},
		{name: "no container", in: LifecycleInput(t0, events.Lifecycle{App: app, Phase: events.PhaseReady}), want: ErrBadInput},
		{name: "unknown kind", in: Input{Kind: 99, Time: t0}, want: ErrBadInput},
		{name: "state without app", state: &State{}, in: Tick(t0), want: ErrNoAppName},
		{name: "unusable params", p: func(p *Params) { p.Max = 0 }, in: Tick(t0), want: ErrInvalidParams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.state
			if s == nil {
				s = NewState(app)
			}
			p := testParams()
			if tc.p != nil {
				tc.p(&p)
			}
			before := *s
			ds, err := s.Step(p, tc.in)
			if !errors.Is(err, tc.want) || ds != nil {
				t.Fatalf("Step = %v, %v; want nil, %v", ds, err, tc.want)
			}
			if !s.Now.Equal(before.Now) || len(s.Workers) != len(before.Workers) {
				t.Fatal("a rejected input changed the state")
			}
		})
	}
}

func TestWorkerNames(t *testing.T) {
	t.Parallel()
	// The name is part of the decision on the wire: pin it.
	if got := workerName("shop", t0, 0); got != workerName("shop", t0, 0) || !strings.HasPrefix(got, "shop-") || len(got) != len("shop-")+8 {
		t.Fatalf("workerName = %q, want shop-<8 hex>, stable", got)
	}
	seen := map[string]bool{}
	for k := uint64(0); k < 1000; k++ {
		n := workerName("shop", t0, k)
		if seen[n] {
			t.Fatalf("name %s repeats within 1000", n)
		}
		seen[n] = true
	}
	if workerName("shop", t0, 0) == workerName("shop", t0.Add(time.Nanosecond), 0) || workerName("a", t0, 0)[2:] == workerName("b", t0, 0)[2:] {
		t.Fatal("names do not depend on time and app")
	}
	// Names already taken are skipped.
	s := NewState(app)
	s.Now = t0
	first := s.newWorkers(1, t0)
	second := s.newWorkers(1, t0)
	if first[0] == second[0] {
		t.Fatalf("same name issued twice: %s", first[0])
	}
}
