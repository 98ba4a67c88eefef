package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestPickProperty builds random tables (sizes, states, odd weights, slow
// start, ejections, loads, latencies) and checks for every policy that a
// pick is a backend of the table, never SUNDOWN, never the excluded one,
// ejected only when no other is usable, and ErrNoBackend exactly when no
// candidate exists.
func TestPickProperty(t *testing.T) {
	t.Parallel()
	world := rand.New(rand.NewPCG(2024, 7))
	weights := []float64{0, 1, 50, 100, -5, 250, nan(), 1e-9}
	for round := range 300 {
		n := world.IntN(80)
		if round%50 == 0 {
			n = 100 + world.IntN(200) // least-conn's sampled mode
		}
		bs := make([]Backend, n)
		for i := range bs {
			bs[i] = Backend{ID: fmt.Sprintf("r%d-%d", round, i), Weight: weights[world.IntN(len(weights))], State: State(world.IntN(3))}
			if world.IntN(4) == 0 {
				bs[i].Added = testNow - int64(world.IntN(20))*int64(time.Second)
			}
		}
		table, err := NewTable(bs, nil, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		members := map[*Backend]bool{}
		for i := range table.Backends() {
			b := &table.Backends()[i]
			members[b] = true
			s := b.Stats()
			for range world.IntN(3) {
				s.Begin()
			}
			switch world.IntN(5) {
			case 0:
				s.Eject(testNow - int64(world.IntN(3))*int64(time.Second))
			case 1:
				s.Begin()
				s.Done(time.Duration(1+world.IntN(50))*time.Millisecond, 200, false, testNow-int64(world.IntN(5e9)))
			}
		}
		var exclude *Backend
		if n > 0 && world.IntN(2) == 0 {
			exclude = &table.Backends()[world.IntN(n)]
		}
		// What the answer may be.
		var candidates, usableCount int
		for i := range table.Backends() {
			b := &table.Backends()[i]
			if b.State == Sundown || b == exclude {
				continue
			}
			candidates++
			if !b.Stats().Ejected(testNow) {
				usableCount++
			}
		}
		for _, policy := range allPolicies {
			r := seeded(uint64(round))
			for range 50 {
				b, err := table.Picker(policy).PickExcept(r, testNow, exclude)
				if candidates == 0 {
					if !errors.Is(err, ErrNoBackend) {
						t.Fatalf("round %d %s: no candidate, got %v, %v", round, policy, b, err)
					}
					continue
				}
				switch {
				case err != nil:
					t.Fatalf("round %d %s: %v with %d candidates", round, policy, err, candidates)
				case !members[b]:
					t.Fatalf("round %d %s: picked %p, not a backend of the table", round, policy, b)
				case b.State == Sundown:
					t.Fatalf("round %d %s: picked SUNDOWN %s", round, policy, b.ID)
				case b == exclude:
					t.Fatalf("round %d %s: picked the excluded %s", round, policy, b.ID)
				case usableCount > 0 && b.Stats().Ejected(testNow):
					t.Fatalf("round %d %s: picked ejected %s while %d are usable", round, policy, b.ID, usableCount)
				}
			}
		}
	}
}
