package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rustybalancer/rb/events"
)

const app = "shop"

func score(name string, v float64) events.Score {
	return events.Score{App: app, Container: name, Address: addr(name), Overall: v, Category: categorize(v),
		Inputs: events.ScoreInputs{ProbeOK: true, ProbeSeconds: 0.002}}
}

func fact(name string, ph events.Phase) events.Lifecycle {
	return events.Lifecycle{App: app, Container: name, Phase: ph, Address: addr(name)}
}

func addr(name string) string { return "10.0.0." + strings.TrimPrefix(name, "w") + ":8080" }

// order renders a snapshot as "name:state:weight" for compact comparison.
func order(s events.QueueSnapshot) string {
	var parts []string
	for _, it := range s.Items {
		parts = append(parts, fmt.Sprintf("%s:%s:%g", it.Container, it.State, it.Weight))
	}
	return strings.Join(parts, " ")
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		apply func(b *Builder)
		want  string
	}{
		{
			name:  "empty",
			apply: func(*Builder) {},
			want:  "",
		},
		{
			name: "by score descending, ties by name",
			apply: func(b *Builder) {
				b.ApplyScore(score("w3", 50))
				b.ApplyScore(score("w1", 80))
				b.ApplyScore(score("w4", 50))
				b.ApplyScore(score("w2", 90))
			},
			want: "w2:ACTIVE:90 w1:ACTIVE:80 w3:ACTIVE:50 w4:ACTIVE:50",
		},
		{
			name: "SUNDOWN last with weight 0 whatever its score",
			apply: func(b *Builder) {
				b.ApplyScore(score("w1", 99))
				b.ApplyScore(score("w2", 40))
				b.ApplyScore(score("w3", 10))
				b.ApplyLifecycle(fact("w1", events.PhaseSundown))
			},
			want: "w2:ACTIVE:40 w3:ACTIVE:10 w1:SUNDOWN:0",
		},
		{
			name: "INIT workers score 100 until their first score",
			apply: func(b *Builder) {
				b.ApplyScore(score("w1", 60))
				b.ApplyLifecycle(fact("w2", events.PhaseCreated))
			},
			want: "w2:INIT:100 w1:ACTIVE:60",
		},
		{
			name: "an INIT worker scored without a successful probe stays INIT with its score",
			apply: func(b *Builder) {
				b.ApplyLifecycle(fact("w2", events.PhaseStarted))
				s := score("w2", 30)
				s.Inputs.ProbeOK = false
				b.ApplyScore(s)
			},
			want: "w2:INIT:30",
		},
		{
			name: "ready or a successful probe makes an INIT worker ACTIVE",
			apply: func(b *Builder) {
				b.ApplyLifecycle(fact("w1", events.PhaseCreated))
				b.ApplyLifecycle(fact("w2", events.PhaseCreated))
				b.ApplyLifecycle(fact("w1", events.PhaseReady))
				b.ApplyScore(score("w2", 70))
			},
			want: "w1:ACTIVE:100 w2:ACTIVE:70",
		},
		{
			name: "died, removed and failed workers leave, and late events do not bring them back",
			apply: func(b *Builder) {
				for _, n := range []string{"w1", "w2", "w3", "w4"} {
					b.ApplyScore(score(n, 50))
				}
				b.ApplyLifecycle(fact("w1", events.PhaseDied))
				b.ApplyLifecycle(fact("w2", events.PhaseRemoved))
				b.ApplyLifecycle(fact("w3", events.PhaseFailed))
				b.ApplyScore(score("w1", 80))
				b.ApplyLifecycle(fact("w2", events.PhaseReady))
			},
			want: "w4:ACTIVE:50",
		},
		{
			name: "a worker without a known address is not listed until it has one",
			apply: func(b *Builder) {
				b.ApplyLifecycle(events.Lifecycle{App: app, Container: "w1", Phase: events.PhaseCreated})
				b.ApplyLifecycle(events.Lifecycle{App: app, Container: "w2", Phase: events.PhaseCreated})
				b.ApplyScore(score("w2", 70))
			},
			want: "w2:ACTIVE:70",
		},
		{
			name: "another app's events stay in its own queue",
			apply: func(b *Builder) {
				b.ApplyScore(score("w1", 70))
				other := score("w2", 90)
				other.App = "blog"
				b.ApplyScore(other)
			},
			want: "w1:ACTIVE:70",
		},
		{
			name: "the score's category is carried, missing ones are derived",
			apply: func(b *Builder) {
				s := score("w1", 65)
				s.Category = ""
				b.ApplyScore(s)
			},
			want: "w1:ACTIVE:65",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := NewBuilder()
			tc.apply(b)
			snap := b.Snapshot(app)
			if got := order(snap); got != tc.want {
				t.Fatalf("queue %q, want %q", got, tc.want)
			}
			if err := snap.Validate(); err != nil {
				t.Fatalf("snapshot invalid: %v", err)
			}
			for _, it := range snap.Items {
				want := categorize(it.Score)
				switch it.State {
				case events.StateInit:
					want = events.CategoryInit
				case events.StateSundown:
					want = events.CategorySundown
				}
				if it.Category != want {
					t.Fatalf("%s category %s, want %s", it.Container, it.Category, want)
				}
				if it.Address != addr(it.Container) || it.ProbeSeconds < 0 {
					t.Fatalf("%s address %q probe %v", it.Container, it.Address, it.ProbeSeconds)
				}
			}
		})
	}
}

func TestWeight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		score      float64
		wantScore  float64
		wantWeight float64
	}{
		{name: "weight is the score", score: 42.5, wantScore: 42.5, wantWeight: 42.5},
		{name: "zero stays zero (the proxy raises it to epsilon)", score: 0, wantScore: 0, wantWeight: 0},
		{name: "above range: weight 1", score: 130, wantScore: 100, wantWeight: 1},
		{name: "below range: weight 1", score: -5, wantScore: 0, wantWeight: 1},
		{name: "NaN: weight 1", score: math.NaN(), wantScore: 0, wantWeight: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := NewBuilder()
			b.ApplyScore(score("w1", tc.score))
			it := b.Snapshot(app).Items[0]
			if it.Score != tc.wantScore || it.Weight != tc.wantWeight {
				t.Fatalf("score %v weight %v, want %v and %v", it.Score, it.Weight, tc.wantScore, tc.wantWeight)
			}
		})
	}
}

func TestGeneration(t *testing.T) {
	t.Parallel()
	b := NewBuilder()
	if s := b.Snapshot(app); s.Generation != 0 || len(s.Items) != 0 || s.Items == nil {
		t.Fatalf("unknown app: %+v, want generation 0 and no items", s)
	}
	steps := []struct {
		name    string
		apply   func() bool
		changed bool
		gen     uint64
	}{
		{name: "first worker", apply: func() bool { return b.ApplyScore(score("w1", 50)) }, changed: true, gen: 1},
		{name: "same score again", apply: func() bool { return b.ApplyScore(score("w1", 50)) }, changed: false, gen: 1},
		{name: "created again for an ACTIVE worker", apply: func() bool { return b.ApplyLifecycle(fact("w1", events.PhaseStarted)) }, changed: false, gen: 1},
		{name: "drained of an unknown worker", apply: func() bool { return b.ApplyLifecycle(fact("w9", events.PhaseDrained)) }, changed: false, gen: 1},
		{name: "new score", apply: func() bool { return b.ApplyScore(score("w1", 60)) }, changed: true, gen: 2},
		{name: "second worker", apply: func() bool { return b.ApplyLifecycle(fact("w2", events.PhaseCreated)) }, changed: true, gen: 3},
		{name: "sundown", apply: func() bool { return b.ApplyLifecycle(fact("w2", events.PhaseSundown)) }, changed: true, gen: 4},
		{name: "sundown again", apply: func() bool { return b.ApplyLifecycle(fact("w2", events.PhaseSundown)) }, changed: false, gen: 4},
		{name: "removed", apply: func() bool { return b.ApplyLifecycle(fact("w2", events.PhaseRemoved)) }, changed: true, gen: 5},
		{name: "removed again", apply: func() bool { return b.ApplyLifecycle(fact("w2", events.PhaseRemoved)) }, changed: false, gen: 5},
		{name: "changed and changed back between snapshots", apply: func() bool {
			return b.ApplyScore(score("w1", 70)) && b.ApplyScore(score("w1", 60))
		}, changed: true, gen: 5},
		{name: "last worker leaves: an empty queue is a change", apply: func() bool { return b.ApplyLifecycle(fact("w1", events.PhaseDied)) }, changed: true, gen: 6},
	}
	for _, st := range steps {
		if got := st.apply(); got != st.changed {
			t.Fatalf("%s: changed = %v, want %v", st.name, got, st.changed)
		}
		s1 := b.Snapshot(app)
		s2 := b.Snapshot(app)
		if s1.Generation != st.gen || s2.Generation != st.gen {
			t.Fatalf("%s: generation %d then %d, want %d", st.name, s1.Generation, s2.Generation, st.gen)
		}
	}
}

func TestSnapshotIsACopy(t *testing.T) {
	t.Parallel()
	b := NewBuilder()
	b.ApplyScore(score("w1", 50))
	s := b.Snapshot(app)
	s.Items[0].Score = 1
	if again := b.Snapshot(app); again.Items[0].Score != 50 || again.Generation != s.Generation {
		t.Fatalf("editing a snapshot changed the builder: %+v", again)
	}
}

func TestRestore(t *testing.T) {
	t.Parallel()
	b := NewBuilder()
	b.ApplyScore(score("w1", 50))
	b.ApplyScore(score("w2", 80))
	b.ApplyLifecycle(fact("w3", events.PhaseCreated))
	b.ApplyLifecycle(fact("w2", events.PhaseSundown))
	for i := 0; i < 6; i++ {
		b.ApplyScore(score("w1", float64(40+i)))
		b.Snapshot(app)
	}
	saved := b.Snapshot(app)

	c := NewBuilder()
	c.Restore(saved)
	got := c.Snapshot(app)
	a, _ := json.Marshal(saved)
	z, _ := json.Marshal(got)
	if !bytes.Equal(a, z) {
		t.Fatalf("restored queue differs:\n got %s\nwant %s", z, a)
	}
	if c.ApplyScore(score("w3", 90)); c.Snapshot(app).Generation != saved.Generation+1 {
		t.Fatalf("generation after restore and change: %d, want %d", c.Snapshot(app).Generation, saved.Generation+1)
	}
	if c.ApplyLifecycle(fact("w3", events.PhaseReady)) {
		t.Fatal("ready of an already ACTIVE worker changed the queue")
	}
}

func TestApps(t *testing.T) {
	t.Parallel()
	b := NewBuilder()
	for _, a := range []string{"zeta", "alpha", "mid"} {
		s := score("w1", 50)
		s.App = a
		b.ApplyScore(s)
	}
	if b.ApplyScore(events.Score{Container: "w1"}) || b.ApplyLifecycle(events.Lifecycle{App: app}) {
		t.Fatal("an event without app or container changed a queue")
	}
	if got := b.Apps(); !slices.Equal(got, []string{"alpha", "mid", "zeta"}) {
		t.Fatalf("Apps() = %v", got)
	}
}

// TestRandomSequences applies seeded random event sequences and checks every
// snapshot: valid, ordered, generation grows exactly when the content changes,
// and two builders fed the same events agree byte for byte.
func TestRandomSequences(t *testing.T) {
	t.Parallel()
	phases := []events.Phase{events.PhaseCreated, events.PhaseStarted, events.PhaseReady, events.PhaseHealth,
		events.PhaseSundown, events.PhaseDrained, events.PhaseDied, events.PhaseRemoved, events.PhaseFailed}
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			a, b := NewBuilder(), NewBuilder()
			var last events.QueueSnapshot
			for i := 0; i < 3000; i++ {
				name := fmt.Sprintf("w%d", rng.IntN(40))
				var ca, cb bool
				if rng.IntN(4) == 0 {
					l := fact(name, phases[rng.IntN(len(phases))])
					if rng.IntN(5) == 0 {
						l.Phase = events.PhaseReady // ready more often than death
					}
					ca, cb = a.ApplyLifecycle(l), b.ApplyLifecycle(l)
				} else {
					s := score(name, float64(rng.IntN(21))*5)
					s.Inputs.ProbeOK = rng.IntN(3) > 0
					ca, cb = a.ApplyScore(s), b.ApplyScore(s)
				}
				if ca != cb {
					t.Fatal("two builders disagree on a change")
				}
				if rng.IntN(3) > 0 {
					continue
				}
				sa, sb := a.Snapshot(app), b.Snapshot(app)
				ja, _ := json.Marshal(sa)
				jb, _ := json.Marshal(sb)
				if !bytes.Equal(ja, jb) {
					t.Fatalf("same events, different snapshots:\n%s\n%s", ja, jb)
				}
				if err := sa.Validate(); err != nil {
					t.Fatal(err)
				}
				if !slices.IsSortedFunc(sa.Items, func(a, b events.QueueItem) int { return compare(keyOf(a), keyOf(b)) }) {
					t.Fatalf("not ordered: %s", order(sa))
				}
				same := slices.Equal(sa.Items, last.Items) || (len(sa.Items) == 0 && len(last.Items) == 0)
				switch {
				case same && sa.Generation != last.Generation:
					t.Fatalf("generation %d → %d with the same content", last.Generation, sa.Generation)
				case !same && sa.Generation != last.Generation+1:
					t.Fatalf("generation %d → %d on a change", last.Generation, sa.Generation)
				}
				last = sa
			}
			if last.Generation < 10 {
				t.Fatalf("only %d generations: the sequence does not exercise the builder", last.Generation)
			}
		})
	}
}

func BenchmarkApplyScore(b *testing.B) {
	for _, n := range []int{15, 100} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			q := NewBuilder()
			scores := make([]events.Score, n)
			for i := range scores {
				scores[i] = score(fmt.Sprintf("w%d", i), 50)
				q.ApplyScore(scores[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := &scores[i%n]
				s.Overall = float64(40 + i%30)
				q.ApplyScore(*s)
			}
		})
	}
}

func BenchmarkSnapshot(b *testing.B) {
	q := NewBuilder()
	for i := 0; i < 15; i++ {
		q.ApplyScore(score(fmt.Sprintf("w%d", i), float64(10+i*5)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q.ApplyScore(score("w3", float64(i%100)))
		q.Snapshot(app)
	}
}
