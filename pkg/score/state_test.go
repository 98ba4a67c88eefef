package score_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rustybalancer/rb/pkg/score"
)

// restore round-trips st through JSON as the scorer's snapshot does.
func restore(t testing.TB, st *score.State) *score.State {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("encode state: %v", err)
	}
	var back score.State
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("decode state %s: %v", data, err)
	}
	again, err := json.Marshal(&back)
	if err != nil {
		t.Fatalf("encode restored state: %v", err)
	}
	if string(again) != string(data) {
		t.Fatalf("state changed in a round trip:\n%s\n%s", data, again)
	}
	return &back
}

// TestStateRestoreContinues restarts after every sample of the scenario: the
// rest of the scores must equal, bit for bit, those of an uninterrupted run.
func TestStateRestoreContinues(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	samples := scenario()
	want := run(p, samples)
	for cut := range len(samples) + 1 {
		st := score.NewState(p)
		for _, s := range samples[:cut] {
			st.Update(p, s)
		}
		st = restore(t, st)
		for i, s := range samples[cut:] {
			if got := st.Update(p, s); got != want[cut+i] {
				t.Fatalf("restart after %d samples: sample %d scored\n%+v\nwant\n%+v", cut, cut+i, got, want[cut+i])
			}
		}
	}
}

// TestStateRestoreNoJumpTo100 is the acceptance: after an outage and a
// restart the availability continues from where it was, not from 100.
func TestStateRestoreNoJumpTo100(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := score.NewState(p)
	for range 10 {
		st.Update(p, probe(false, 5))
	}
	before := st.Availability() // 100 × 0.8^10 = 10.737
	st = restore(t, st)
	if st.Availability() != before || before > 11 {
		t.Fatalf("availability after restore %v, before %v (want equal, about 10.7)", st.Availability(), before)
	}
	if got := st.Update(p, probe(false, 5)); !near(got.Availability, 0.8*before) {
		t.Fatalf("next availability %v, want 0.8 × %v", got.Availability, before)
	}
}

func TestStateJSONForm(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	p.HistorySize = 3
	st := score.NewState(p)
	for _, secs := range []float64{0.004, 0.003, 0.003, 0.005, 0.002} {
		st.Update(p, probe(true, secs))
	}
	st.Update(p, probe(false, 5))
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var w map[string]any
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}
	// History keeps the newest 3 answers, oldest first. The best-times list
	// is not written: it is a function of the history (here [0.003, 0.002]).
	// The failed probe is sample 6 but no answer.
	for key, want := range map[string]string{
		"history_seconds":    "[0.003 0.005 0.002]",
		"samples":            "6",
		"best_times_seconds": "null",
	} {
		if got := fmtAny(w[key]); got != want {
			t.Errorf("%s = %s, want %s (state %s)", key, got, want, data)
		}
	}
}

func fmtAny(v any) string {
	b, _ := json.Marshal(v)
	return strings.NewReplacer(",", " ").Replace(string(b))
}

func TestStateUnmarshalRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		json string
		want string
	}{
		{"negative history", `{"history_seconds":[0.1,-1],"best_times_seconds":[],"threshold_seconds":0.5,"availability_ema":50,"samples":2}`, "history_seconds[1]: -1"},
		{"huge history time", `{"history_seconds":[1e300],"threshold_seconds":0.5,"availability_ema":50,"samples":2}`, "history_seconds[0]: 1e+300"},
		{"EMA over 100", `{"history_seconds":[],"best_times_seconds":[],"threshold_seconds":0.5,"availability_ema":101,"samples":2}`, "availability_ema: 101"},
		{"negative threshold", `{"history_seconds":[],"best_times_seconds":[],"threshold_seconds":-1,"availability_ema":50,"samples":2}`, "threshold_seconds: -1"},
		{"not an object", `[1,2]`, "decode score state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var st score.State
			err := json.Unmarshal([]byte(tt.json), &st)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Unmarshal(%s) error = %v, want one containing %q", tt.json, err, tt.want)
			}
		})
	}
}

// TestStateOldFormDecodes: a snapshot written before the best-times list
// became a function of the history (it carried "best_times_seconds") still
// decodes, and scores as the same history without the list.
func TestStateOldFormDecodes(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	const hist = `"history_seconds":[0.004,0.002,0.003],"threshold_seconds":0.6,"availability_ema":80,"samples":4`
	var old, now score.State
	if err := json.Unmarshal([]byte(`{"best_times_seconds":[0.0001],`+hist+`}`), &old); err != nil {
		t.Fatalf("decode old form: %v", err)
	}
	if err := json.Unmarshal([]byte(`{`+hist+`}`), &now); err != nil {
		t.Fatal(err)
	}
	// best-times list over [0.004, 0.002, 0.003, 0.002]: [0.004, 0.002], best 0.003
	a, b := old.Update(p, probe(true, 0.002)), now.Update(p, probe(true, 0.002))
	if a != b || !near(a.Inputs.BestSecs, 0.003) {
		t.Fatalf("old form scored %+v, new form %+v; want equal, best 0.003", a.Inputs, b.Inputs)
	}
}

// TestStateResize restores a snapshot under a different HISTORY_SIZE and
// BEST_TIME_WINDOW: the newest entries are kept and scoring goes on.
func TestStateResize(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := score.NewState(p)
	for i := range 30 {
		st.Update(p, probe(true, 0.001*float64(30-i))) // ever faster: every time a new best
	}
	st = restore(t, st)

	small := p
	small.HistorySize, small.BestTimeWindow, small.ProbeResolution = 2, 1, 0
	// history keeps [0.002, 0.001]; then 0.0005: history [0.001, 0.0005], its
	// best-times list [0.001, 0.0005], of which the newest 1 counts: 0.0005
	got := st.Update(small, probe(true, 0.0005))
	if got.Inputs.HistoryLen != 2 || !near(got.Inputs.BestSecs, 0.0005) {
		t.Fatalf("after shrinking: history %d best %v, want 2 and 0.0005", got.Inputs.HistoryLen, got.Inputs.BestSecs)
	}
	big := p
	big.HistorySize, big.BestTimeWindow, big.ProbeResolution = 50, 50, 0
	// history [0.001, 0.0005, 0.0004]; list [0.001, 0.0005, 0.0004], mean 0.0019/3
	got = st.Update(big, probe(true, 0.0004))
	if got.Inputs.HistoryLen != 3 || !near(got.Inputs.BestSecs, 0.0019/3) {
		t.Fatalf("after growing: history %d best %v, want 3 and %v", got.Inputs.HistoryLen, got.Inputs.BestSecs, 0.0019/3)
	}
}

func TestStateZeroSamplesRestoresAsNew(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	st := restore(t, score.NewState(p))
	want := score.NewState(p).Update(p, probe(true, 0.001))
	if got := st.Update(p, probe(true, 0.001)); got != want {
		t.Fatalf("restored empty state scored %+v, want %+v", got, want)
	}
	var zero score.State
	if _, err := json.Marshal(zero); err != nil {
		t.Fatalf("encode zero State: %v", err)
	}
}
