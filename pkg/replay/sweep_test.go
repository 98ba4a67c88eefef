package replay

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAxis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec string
		want []string
		bad  bool
	}{
		{name: "integer range", spec: "HIGH_LOAD_THRESHOLD=45:65:5", want: []string{"45", "50", "55", "60", "65"}},
		{name: "decimals kept", spec: "EMA_ALPHA=0.1:0.3:0.1", want: []string{"0.1", "0.2", "0.3"}},
		{name: "end not on the step", spec: "X=1:10:4", want: []string{"1", "5", "9"}},
		{name: "duration range", spec: "COOLDOWN_PERIOD=5s:20s:5s", want: []string{"5s", "10s", "15s", "20s"}},
		{name: "list", spec: "COOLDOWN_PERIOD=5s, 30s", want: []string{"5s", "30s"}},
		{name: "one value", spec: "SCALE_STEP=2", want: []string{"2"}},
		{name: "backwards", spec: "X=65:45:5", bad: true},
		{name: "zero step", spec: "X=1:2:0", bad: true},
		{name: "not numbers", spec: "X=a:b:c", bad: true},
		{name: "bare seconds are durations", spec: "X=1:5s:2s", want: []string{"1s", "3s", "5s"}},
		{name: "too many", spec: "X=0:100000:1", bad: true},
		{name: "no values", spec: "X=", bad: true},
		{name: "no name", spec: "=1,2", bad: true},
		{name: "no equals", spec: "X", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := ParseAxis(tt.spec)
			if tt.bad {
				if !errors.Is(err, ErrBadSweep) {
					t.Fatalf("got %v, want ErrBadSweep", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(a.Values, tt.want) {
				t.Fatalf("got %v, %v; want %v", a.Values, err, tt.want)
			}
		})
	}
}

func TestGrid(t *testing.T) {
	t.Parallel()
	g := Grid(map[string]string{"SCALE_STEP": "2"}, []Axis{{Var: "A", Values: []string{"1", "2"}}, {Var: "B", Values: []string{"x", "y", "z"}}})
	var names []string
	for _, c := range g {
		names = append(names, c.Name)
		if c.Set["SCALE_STEP"] != "2" {
			t.Errorf("%s lost the fixed override", c.Name)
		}
	}
	want := "A=1 B=x|A=1 B=y|A=1 B=z|A=2 B=x|A=2 B=y|A=2 B=z"
	if got := strings.Join(names, "|"); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestRank(t *testing.T) {
	t.Parallel()
	res := func(name string, cost, risk int64, flaps int) *Result {
		return &Result{Candidate: Candidate{Name: name}, Summary: Summary{WorkerSeconds: cost, RiskSeconds: risk, Flaps: flaps}}
	}
	got := Rank([]*Result{
		res("risky-cheap", 50, 30, 0),
		res("safe-dear", 200, 5, 0),
		res("safe-cheap-flappy", 100, 10, 2),
		res("safe-cheap", 100, 10, 0),
		res("risky-dear", 300, 25, 0),
	}, Summary{RiskSeconds: 10})
	var order []string
	for _, r := range got {
		order = append(order, r.Result.Candidate.Name)
	}
	want := "safe-cheap safe-cheap-flappy safe-dear risky-dear risky-cheap"
	if strings.Join(order, " ") != want {
		t.Fatalf("got %v, want %s", order, want)
	}
	if !got[0].Feasible || got[3].Feasible || got[0].Rank != 1 || got[4].Rank != 5 {
		t.Fatalf("ranks or feasibility wrong: %+v", got)
	}
}

func TestRunAllEqualsOneByOne(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	rec := recordingOf(t, newLiveSim(t, base, spreadLoad, "shop-seed0001").run(2*time.Minute))
	p := prepare(t, rec, base, Options{})
	cands := Grid(nil, []Axis{{Var: "HIGH_LOAD_THRESHOLD", Values: []string{"45", "50", "55", "60"}}, {Var: "COOLDOWN_PERIOD", Values: []string{"5s", "30s"}}})
	all, err := p.RunAll(context.Background(), cands, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cands {
		one, err := p.Run(context.Background(), c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one, all[i]) {
			t.Fatalf("%s: in parallel %+v, alone %+v", c.Name, all[i].Summary, one.Summary)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.RunAll(ctx, cands, 2, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled sweep: %v", err)
	}
}
