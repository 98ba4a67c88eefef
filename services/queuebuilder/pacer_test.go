package queuebuilder

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func TestPacerDue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		steps  func(p *pacer)
		want   time.Time
		wantOK bool
		// wantFirst, when set, is the first change the next publish carries.
		wantFirst time.Time
	}{
		{name: "nothing changed", steps: func(*pacer) {}, wantOK: false},
		{name: "first change ever: at once", steps: func(p *pacer) { p.changed(ms(7)) }, want: ms(7), wantOK: true},
		{name: "change long after the last publish: at once",
			steps: func(p *pacer) { p.changed(ms(0)); p.start(ms(0)); p.changed(ms(80)) }, want: ms(80), wantOK: true},
		{name: "change inside the window: when the window ends",
			steps: func(p *pacer) { p.changed(ms(0)); p.start(ms(0)); p.changed(ms(10)) }, want: ms(50), wantOK: true},
		{name: "more changes do not move it",
			steps: func(p *pacer) { p.changed(ms(0)); p.start(ms(0)); p.changed(ms(10)); p.changed(ms(40)) }, want: ms(50), wantOK: true},
		{name: "change during a publish: one window after its start",
			steps: func(p *pacer) { p.changed(ms(0)); p.start(ms(3)); p.changed(ms(4)) }, want: ms(53), wantOK: true},
		{name: "skipped changes leave no publish and keep the window",
			steps: func(p *pacer) { p.changed(ms(0)); p.start(ms(0)); p.changed(ms(10)); p.skip(); p.changed(ms(20)) }, want: ms(50), wantOK: true},
		{name: "failed publish waits for its retry, keeping its first change",
			steps: func(p *pacer) {
				p.changed(ms(5))
				first := p.start(ms(5))
				p.failed(first, ms(105))
			}, want: ms(105), wantOK: true},
		{name: "a failure after newer changes keeps the older first change",
			steps: func(p *pacer) {
				p.changed(ms(5))
				first := p.start(ms(5))
				p.changed(ms(6))
				p.failed(first, ms(6))
			}, want: ms(55), wantOK: true, wantFirst: ms(5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &pacer{window: 50 * time.Millisecond}
			tc.steps(p)
			got, ok := p.due()
			if ok != tc.wantOK || (ok && !got.Equal(tc.want)) {
				t.Fatalf("due() = %v, %v; want %v, %v", got.Sub(t0), ok, tc.want.Sub(t0), tc.wantOK)
			}
			if !tc.wantFirst.IsZero() && !p.first.Equal(tc.wantFirst) {
				t.Fatalf("first change %v, want %v", p.first.Sub(t0), tc.wantFirst.Sub(t0))
			}
		})
	}
}

// TestPacerProperties drives the pacer with random change times and a
// publisher that starts each publish when it is due (plus a random delay
// from the machine), and checks the two promises: publishes start at least
// one window apart, and every change is carried by a publish that starts
// within one window (plus that delay) of it.
func TestPacerProperties(t *testing.T) {
	t.Parallel()
	const window = 50 * time.Millisecond
	for seed := range uint64(200) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		var changes []time.Time
		at := t0
		for range 1 + rnd.IntN(300) {
			at = at.Add(time.Duration(rnd.ExpFloat64() * float64(time.Duration(1+rnd.IntN(30))*time.Millisecond)))
			changes = append(changes, at)
		}
		p := &pacer{window: window}
		var starts []time.Time
		carried := make([]time.Time, len(changes)) // the publish start that carried each change
		pending := []int{}
		i := 0
		lag := time.Duration(rnd.IntN(3)) * time.Millisecond // the machine's delay of the next publish
		for i < len(changes) || len(pending) > 0 {
			due, ok := p.due()
			if i < len(changes) && (!ok || changes[i].Before(due.Add(lag))) {
				p.changed(changes[i])
				pending = append(pending, i)
				i++
				continue
			}
			now := due.Add(lag)
			if first := p.start(now); !first.Equal(changes[pending[0]]) {
				t.Fatalf("seed %d: publish carries first change %v, want %v", seed, first.Sub(t0), changes[pending[0]].Sub(t0))
			}
			starts = append(starts, now)
			for _, c := range pending {
				carried[c] = now
			}
			pending = pending[:0]
			lag = time.Duration(rnd.IntN(3)) * time.Millisecond
		}
		for k := 1; k < len(starts); k++ {
			if gap := starts[k].Sub(starts[k-1]); gap < window {
				t.Fatalf("seed %d: publishes %d and %d start %v apart, want ≥ %v", seed, k-1, k, gap, window)
			}
		}
		for c, at := range changes {
			if d := carried[c].Sub(at); d < 0 || d > window+2*time.Millisecond {
				t.Fatalf("seed %d: change %d published after %v, want ≤ %v", seed, c, d, window)
			}
		}
		if !slices.IsSortedFunc(starts, func(a, b time.Time) int { return a.Compare(b) }) {
			t.Fatalf("seed %d: publishes out of order", seed)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{name: "first", failures: 1, want: 100 * time.Millisecond},
		{name: "doubles", failures: 3, want: 400 * time.Millisecond},
		{name: "capped", failures: 100, want: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := retryDelay(100*time.Millisecond, time.Second, tc.failures); got != tc.want {
				t.Fatalf("retryDelay(%d) = %v, want %v", tc.failures, got, tc.want)
			}
		})
	}
}
