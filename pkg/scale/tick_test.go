package scale

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestTicker(t *testing.T) {
	t.Parallel()
	s := func(secs float64) time.Time { return t0.Add(time.Duration(secs * float64(time.Second))) }
	type op struct {
		quiet bool    // Next(bound) until false, instead of an input
		at    float64 // input time or quiet bound, in seconds after t0
		want  []float64
	}
	tests := []struct {
		name string
		gap  time.Duration
		ops  []op
	}{
		{
			name: "first input has no ticks before it",
			gap:  time.Second,
			ops:  []op{{at: 5}},
		},
		{
			name: "inputs closer than the gap get no ticks",
			gap:  time.Second,
			ops:  []op{{at: 0}, {at: 0.5}, {at: 1.4}, {at: 2.3}},
		},
		{
			name: "a gap of three and a half seconds gets three ticks on the last input's grid",
			gap:  time.Second,
			ops:  []op{{at: 0.25}, {at: 3.75, want: []float64{1.25, 2.25, 3.25}}},
		},
		{
			name: "a tick at exactly the input time is not given (strictly before)",
			gap:  time.Second,
			ops:  []op{{at: 0}, {at: 2, want: []float64{1}}},
		},
		{
			name: "quiet ticks are not repeated before the next input",
			gap:  time.Second,
			ops: []op{
				{at: 0},
				{quiet: true, at: 2.5, want: []float64{1, 2}},
				{quiet: true, at: 2.9},
				{at: 4.5, want: []float64{3, 4}},
				{at: 5, want: nil},
			},
		},
		{
			name: "an input older than the last adds no ticks and keeps the grid",
			gap:  time.Second,
			ops:  []op{{at: 10}, {at: 9}, {at: 12.5, want: []float64{11, 12}}},
		},
		{
			name: "a late input after quiet ticks continues after the last tick handed out",
			gap:  time.Second,
			ops: []op{
				{at: 10},
				{quiet: true, at: 12.2, want: []float64{11, 12}},
				{at: 11.5}, // late: its ticks were handed out already
				{at: 13, want: []float64{12.5}},
			},
		},
		{
			name: "no gap, no ticks",
			gap:  0,
			ops:  []op{{at: 0}, {quiet: true, at: 100}, {at: 200}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := &Ticker{Gap: tc.gap}
			for i, o := range tc.ops {
				var got []float64
				for at, ok := tk.Next(s(o.at)); ok; at, ok = tk.Next(s(o.at)) {
					got = append(got, at.Sub(t0).Seconds())
				}
				if !o.quiet {
					tk.Input(s(o.at))
				}
				if !slices.Equal(got, o.want) {
					t.Fatalf("op %d (%+v): ticks %v, want %v", i, o, got, o.want)
				}
			}
		})
	}
}

// TestTickerLiveEqualsReplay checks the property the live scaler relies on:
// whatever quiet ticks it hands out early (each bound before the next input),
// the ticks stepped before each input are the replay's.
func TestTickerLiveEqualsReplay(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		now := t0
		type entry struct {
			at    time.Time
			ticks []time.Time
		}
		var replay, live []entry
		rt, lt := NewTicker(), NewTicker()
		var pendingLive []time.Time
		for range 200 {
			next := now.Add(time.Duration(rng.Int64N(int64(5 * time.Second))))
			// The live side goes quiet a few times before the input,
			// each bound at or before the input's time.
			for range rng.IntN(3) {
				bound := now.Add(time.Duration(rng.Int64N(int64(next.Sub(now)) + 1)))
				for at, ok := lt.Next(bound); ok; at, ok = lt.Next(bound) {
					pendingLive = append(pendingLive, at)
				}
			}
			var rTicks []time.Time
			for at, ok := rt.Next(next); ok; at, ok = rt.Next(next) {
				rTicks = append(rTicks, at)
			}
			rt.Input(next)
			lTicks := pendingLive
			pendingLive = nil
			for at, ok := lt.Next(next); ok; at, ok = lt.Next(next) {
				lTicks = append(lTicks, at)
			}
			lt.Input(next)
			replay = append(replay, entry{next, rTicks})
			live = append(live, entry{next, lTicks})
			now = next
		}
		for i := range replay {
			if !slices.EqualFunc(replay[i].ticks, live[i].ticks, time.Time.Equal) {
				t.Fatalf("seed %d input %d at %s: replay ticks %v, live %v", seed, i, replay[i].at.Sub(t0), replay[i].ticks, live[i].ticks)
			}
		}
	}
}
