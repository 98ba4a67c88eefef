package balance

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var allPolicies = []Policy{PolicyP2C, PolicyWeighted, PolicyRoundRobin, PolicyLeastConn}

func TestSundownNeverPicked(t *testing.T) {
	t.Parallel()
	bs := []Backend{
		{ID: "a", Weight: 100, State: Sundown},
		{ID: "b", Weight: 1},
		{ID: "c", Weight: 100, State: Sundown},
		{ID: "d", Weight: 2, State: Init},
	}
	table, err := NewTable(bs, nil, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Sundown backends are still in the table, for in-flight reporting.
	if got := len(table.Backends()); got != 4 {
		t.Fatalf("Backends() has %d entries, want 4", got)
	}
	if got := table.Eligible(); got != 2 {
		t.Errorf("Eligible() = %d, want 2", got)
	}
	for _, policy := range allPolicies {
		r := seeded(11)
		for i := range 20_000 {
			b, err := table.Picker(policy).Pick(r, testNow+int64(i))
			if err != nil {
				t.Fatalf("%s: %v", policy, err)
			}
			if b.State == Sundown {
				t.Fatalf("%s picked SUNDOWN backend %s", policy, b.ID)
			}
		}
	}
}

func TestNoBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		backends []Backend
	}{
		{name: "empty table", backends: nil},
		{name: "all sundown", backends: []Backend{{ID: "a", Weight: 50, State: Sundown}, {ID: "b", Weight: 50, State: Sundown}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			table, err := NewTable(tt.backends, nil, DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, policy := range allPolicies {
				if b, err := table.Picker(policy).Pick(seeded(1), testNow); !errors.Is(err, ErrNoBackend) {
					t.Errorf("%s: Pick = %v, %v; want ErrNoBackend", policy, b, err)
				}
			}
		})
	}
}

// TestSlowStartRamps: a backend added at t0 next to three old ones of the
// same weight gets the floor share at t0, about half its share at half the
// window and its full share after it.
func TestSlowStartRamps(t *testing.T) {
	t.Parallel()
	opts := DefaultOptions() // 10 s window, 10 % floor
	added := testNow
	bs := []Backend{
		{ID: "old0", Weight: 50}, {ID: "old1", Weight: 50}, {ID: "old2", Weight: 50},
		{ID: "new", Weight: 50, State: Init, Added: added},
	}
	table, err := NewTable(bs, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Expected share of the new backend with ramp factor f: f / (3 + f).
	tests := []struct {
		name string
		at   time.Duration
		f    float64
	}{
		{name: "at creation: floor", at: 0, f: 0.1},
		{name: "within floor", at: 500 * time.Millisecond, f: 0.1},
		{name: "half way", at: 5 * time.Second, f: 0.5},
		{name: "end of window", at: 10 * time.Second, f: 1},
		{name: "long after", at: time.Hour, f: 1},
	}
	const n = 40_000
	for _, policy := range allPolicies {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%s", policy, tt.name), func(t *testing.T) {
				t.Parallel()
				now := added + int64(tt.at)
				counts := countPicks(t, table.Picker(policy), seeded(21), now, n, 4)
				got := float64(counts[3]) / n
				want := tt.f / (3 + tt.f)
				if policy == PolicyRoundRobin {
					// A skipped turn goes to the next backend: the new one
					// keeps f of its quarter.
					want = tt.f / 4
				}
				if d := got - want; d > 0.02 || d < -0.02 {
					t.Errorf("share of new backend = %.4f, want %.4f ± 0.02 (counts %v)", got, want, counts)
				}
			})
		}
	}
}

func TestSlowStartInitWithoutAddedStaysAtFloor(t *testing.T) {
	t.Parallel()
	table, err := NewTable([]Backend{{ID: "a", Weight: 50}, {ID: "b", Weight: 50, State: Init}}, nil, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	counts := countPicks(t, table.Picker(PolicyWeighted), seeded(2), testNow, 20_000, 2)
	if got, want := float64(counts[1])/20_000, 0.1/1.1; got < want-0.01 || got > want+0.01 {
		t.Errorf("INIT backend without Added: share %.4f, want %.4f", got, want)
	}
	off := DefaultOptions()
	off.SlowStart = 0
	table, err = NewTable([]Backend{{ID: "a", Weight: 50}, {ID: "b", Weight: 50, State: Init, Added: testNow}}, nil, off)
	if err != nil {
		t.Fatal(err)
	}
	counts = countPicks(t, table.Picker(PolicyWeighted), seeded(2), testNow, 20_000, 2)
	if got := float64(counts[1]) / 20_000; got < 0.49 || got > 0.51 {
		t.Errorf("slow start off: share %.4f, want 0.5", got)
	}
}

func TestEjection(t *testing.T) {
	t.Parallel()
	sec := int64(time.Second)
	tests := []struct {
		name string
		// outcomes are fed to w0 at testNow, one Done each.
		outcomes    []outcome
		wantEjected bool
		wantUntil   int64
	}{
		{name: "connect error ejects", outcomes: []outcome{{connErr: true}}, wantEjected: true, wantUntil: testNow + 5*sec},
		{name: "four 5xx do not", outcomes: repeat(outcome{status: 502}, 4)},
		{name: "five 5xx do", outcomes: repeat(outcome{status: 502}, 5), wantEjected: true, wantUntil: testNow + 5*sec},
		{name: "a success breaks the streak", outcomes: append(append(repeat(outcome{status: 500}, 4), outcome{status: 200}), repeat(outcome{status: 500}, 4)...)},
		{name: "4xx is not an error", outcomes: repeat(outcome{status: 404}, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			table := newTestTable(t, DefaultOptions(), 50, 50)
			s := table.Backends()[0].Stats()
			for _, o := range tt.outcomes {
				s.Begin()
				s.Done(time.Millisecond, o.status, o.connErr, testNow)
			}
			if got := s.Ejected(testNow); got != tt.wantEjected {
				t.Fatalf("Ejected = %v, want %v", got, tt.wantEjected)
			}
			if !tt.wantEjected {
				return
			}
			if got := s.Snapshot().EjectedUntil; got != tt.wantUntil {
				t.Errorf("EjectedUntil = %+d ns from now, want %+d", got-testNow, tt.wantUntil-testNow)
			}
			for _, policy := range allPolicies {
				counts := countPicks(t, table.Picker(policy), seeded(4), testNow+sec, 2000, 2)
				if counts[0] != 0 {
					t.Errorf("%s picked the ejected backend %d times", policy, counts[0])
				}
				// After the period it is back.
				counts = countPicks(t, table.Picker(policy), seeded(4), tt.wantUntil, 2000, 2)
				if counts[0] == 0 {
					t.Errorf("%s never picks the backend after its ejection ended", policy)
				}
			}
			if s.InFlight() != 0 {
				t.Errorf("InFlight = %d after every Done, want 0", s.InFlight())
			}
		})
	}
}

type outcome struct {
	status  int
	connErr bool
}

func repeat(o outcome, n int) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// TestEjectionBackoff: consecutive ejections double from 5 s up to 60 s; a
// success after an ejection ended resets the sequence.
func TestEjectionBackoff(t *testing.T) {
	t.Parallel()
	table := newTestTable(t, DefaultOptions(), 50)
	s := table.Backends()[0].Stats()
	now := testNow
	for _, want := range []time.Duration{5, 10, 20, 40, 60, 60} {
		s.Begin()
		s.Done(0, 0, true, now)
		until := s.Snapshot().EjectedUntil
		if got := time.Duration(until - now); got != want*time.Second {
			t.Fatalf("ejection %d: period %s, want %s", s.Snapshot().Ejections, got, want*time.Second)
		}
		// A second connect error during the ejection does not extend it.
		s.Begin()
		s.Done(0, 0, true, now+1)
		if got := s.Snapshot().EjectedUntil; got != until {
			t.Fatalf("connect error while ejected moved the end by %s", time.Duration(got-until))
		}
		now = until
	}
	// A success while still ejected (an old in-flight request) keeps the
	// count; one after the end resets it.
	s.Begin()
	s.Done(0, 0, true, now)
	s.Begin()
	s.Done(time.Millisecond, 200, false, now+1)
	if got := s.Snapshot().Ejections; got != 7 {
		t.Fatalf("Ejections after a success during ejection = %d, want 7", got)
	}
	now = s.Snapshot().EjectedUntil
	s.Begin()
	s.Done(time.Millisecond, 200, false, now)
	if got := s.Snapshot().Ejections; got != 0 {
		t.Fatalf("Ejections after a success = %d, want 0", got)
	}
	s.Begin()
	s.Done(0, 0, true, now)
	if got := time.Duration(s.Snapshot().EjectedUntil - now); got != 5*time.Second {
		t.Errorf("period after reset = %s, want 5s", got)
	}
}

// TestAllEjectedFallsBack: when every backend is ejected, picks go to the one
// ejected longest ago instead of failing.
func TestAllEjectedFallsBack(t *testing.T) {
	t.Parallel()
	table := newTestTable(t, DefaultOptions(), 50, 50, 50)
	for i, at := range []int64{testNow + 2, testNow, testNow + 1} {
		s := table.Backends()[i].Stats()
		s.Begin()
		s.Done(0, 0, true, at)
	}
	for _, policy := range allPolicies {
		for range 100 {
			b, err := table.Picker(policy).Pick(seeded(6), testNow+3)
			if err != nil {
				t.Fatalf("%s: %v", policy, err)
			}
			if b.ID != "w1" {
				t.Fatalf("%s picked %s, want w1 (ejected longest ago)", policy, b.ID)
			}
		}
	}
}

func TestPickExcept(t *testing.T) {
	t.Parallel()
	old := newTestTable(t, DefaultOptions(), 50, 50, 50)
	// The retry may run on a newer table than the first attempt.
	table, err := NewTable([]Backend{{ID: "w2", Weight: 50}, {ID: "w0", Weight: 50}, {ID: "w1", Weight: 50}}, old, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	exclude := old.Lookup("w1")
	for _, policy := range allPolicies {
		r := seeded(8)
		seen := map[string]int{}
		for range 3000 {
			b, err := table.Picker(policy).PickExcept(r, testNow, exclude)
			if err != nil {
				t.Fatalf("%s: %v", policy, err)
			}
			seen[b.ID]++
		}
		if seen["w1"] != 0 || seen["w0"] == 0 || seen["w2"] == 0 {
			t.Errorf("%s: picks %v, want w0 and w2 only", policy, seen)
		}
	}
	single := newTestTable(t, DefaultOptions(), 50)
	for _, policy := range allPolicies {
		only := &single.Backends()[0]
		if b, err := single.Picker(policy).PickExcept(seeded(1), testNow, only); !errors.Is(err, ErrNoBackend) {
			t.Errorf("%s: PickExcept of the only backend = %v, %v; want ErrNoBackend", policy, b, err)
		}
	}
}

// TestStatsSurviveNewTable: counters, latency and ejection carry over to a
// new table for the same IDs; new IDs start fresh; a removed ID's Stats stay
// with the old table only.
func TestStatsSurviveNewTable(t *testing.T) {
	t.Parallel()
	first, err := NewTable([]Backend{{ID: "a", Weight: 50}, {ID: "b", Weight: 50}}, nil, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	a := first.Lookup("a").Stats()
	a.Begin()
	a.Begin()
	a.Done(7*time.Millisecond, 200, false, testNow)
	b := first.Lookup("b").Stats()
	b.Begin()
	b.Done(0, 0, true, testNow)
	second, err := NewTable([]Backend{{ID: "c", Weight: 10}, {ID: "a", Weight: 90, State: Sundown}}, first, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if second.Lookup("a").Stats() != a {
		t.Fatal("a has new Stats in the new table")
	}
	got := second.Lookup("a").Stats().Snapshot()
	if got.InFlight != 1 || got.Requests != 1 || got.Latency != 7*time.Millisecond {
		t.Errorf("a's snapshot = %+v, want 1 in flight, 1 request, 7ms", got)
	}
	if second.Lookup("b") != nil {
		t.Error("b still in the new table")
	}
	if c := second.Lookup("c").Stats().Snapshot(); c != (Snapshot{}) {
		t.Errorf("new backend c has stats %+v", c)
	}
	if second.Lookup("a").Index() != 1 || second.Lookup("c").Index() != 0 {
		t.Error("Index does not follow the input order")
	}
	// Done on a Backend of the old table still lands in the shared Stats.
	first.Lookup("a").Stats().Done(time.Millisecond, 200, false, testNow+1)
	if got := second.Lookup("a").Stats().InFlight(); got != 0 {
		t.Errorf("in flight after the old table's Done = %d, want 0", got)
	}
	third, err := NewTable([]Backend{{ID: "b", Weight: 50}}, second, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if third.Lookup("b").Stats() == b {
		t.Error("b came back with the Stats of a table it was not in")
	}
}

func TestNewTableErrors(t *testing.T) {
	t.Parallel()
	bad := DefaultOptions()
	bad.Tau = 0
	tests := []struct {
		name     string
		backends []Backend
		opts     Options
	}{
		{name: "duplicate ID", backends: []Backend{{ID: "a"}, {ID: "a"}}, opts: DefaultOptions()},
		{name: "empty ID", backends: []Backend{{Address: "10.0.0.1:80"}}, opts: DefaultOptions()},
		{name: "invalid options", opts: bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewTable(tt.backends, nil, tt.opts); err == nil {
				t.Error("NewTable succeeded, want an error")
			}
		})
	}
	// A failed build leaves the previous table's shared Stats alone.
	prev, err := NewTable([]Backend{{ID: "a", Weight: 50}}, nil, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTable([]Backend{{ID: "a", Added: testNow}, {ID: "a"}}, prev, DefaultOptions()); err == nil {
		t.Fatal("NewTable with a duplicate ID succeeded")
	}
	if ramping(prev.Lookup("a").Stats(), testNow) {
		t.Error("failed NewTable changed the slow start of the previous table's backend")
	}
}

// TestDeterministic: the same seed, table and times give the same picks.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	run := func() []int {
		table := newTestTable(t, DefaultOptions(), 90, 10, 40, 70, 30)
		var out []int
		for _, policy := range allPolicies {
			r := seeded(99)
			p := table.Picker(policy)
			for i := range 500 {
				now := testNow + int64(i)*int64(time.Millisecond)
				b, err := p.Pick(r, now)
				if err != nil {
					t.Fatal(err)
				}
				b.Stats().Begin()
				if i%3 == 0 {
					b.Stats().Done(time.Duration(1+b.Index())*time.Millisecond, 200, false, now)
				}
				out = append(out, b.Index())
			}
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("pick %d differs between runs: %d vs %d", i, a[i], b[i])
		}
	}
}

func TestRoundRobinCycles(t *testing.T) {
	t.Parallel()
	table := newTestTable(t, DefaultOptions(), 1, 100, 50)
	p := table.Picker(PolicyRoundRobin)
	for i := range 9 {
		b, err := p.Pick(seeded(1), testNow)
		if err != nil {
			t.Fatal(err)
		}
		if b.Index() != i%3 {
			t.Fatalf("pick %d = %d, want %d", i, b.Index(), i%3)
		}
	}
}

func TestLeastConn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		n        int
		inflight func(i int) int
		// wantMax is the highest in-flight count a pick may have;
		// wantAtMin the share of picks with the table's least count.
		wantMax   int64
		wantAtMin float64
		// wantSpread: ties must be broken over at least this many backends.
		wantSpread int
	}{
		{name: "exact: least wins", n: 10, inflight: func(i int) int { return 5 - min(i, 5) + boolInt(i == 7) }, wantMax: 0, wantAtMin: 1, wantSpread: 4},
		{name: "exact: ties random", n: 8, inflight: func(int) int { return 2 }, wantMax: 2, wantAtMin: 1, wantSpread: 8},
		// Best of 16 uniform samples: 0 in flight with probability
		// 1 - 0.9^16 = 0.81, 5 or more with 0.5^16.
		{name: "sampled: picks among the least loaded", n: 1000, inflight: func(i int) int { return i % 10 }, wantMax: 4, wantAtMin: 0.75, wantSpread: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			weights := make([]float64, tt.n)
			for i := range weights {
				weights[i] = 50
			}
			table := newTestTable(t, DefaultOptions(), weights...)
			least := int64(-1)
			for i := range tt.n {
				for range tt.inflight(i) {
					table.Backends()[i].Stats().Begin()
				}
				if in := int64(tt.inflight(i)); least < 0 || in < least {
					least = in
				}
			}
			r := seeded(13)
			seen := map[int]bool{}
			atMin := 0
			const picks = 2000
			for range picks {
				b, err := table.Picker(PolicyLeastConn).Pick(r, testNow)
				if err != nil {
					t.Fatal(err)
				}
				in := b.Stats().InFlight()
				if in > tt.wantMax {
					t.Fatalf("picked %s with %d in flight, want <= %d", b.ID, in, tt.wantMax)
				}
				if in == least {
					atMin++
				}
				seen[b.Index()] = true
			}
			if got := float64(atMin) / picks; got < tt.wantAtMin {
				t.Errorf("share of picks with the least in flight = %.3f, want >= %.3f", got, tt.wantAtMin)
			}
			if len(seen) < tt.wantSpread {
				t.Errorf("picks spread over %d backends, want >= %d", len(seen), tt.wantSpread)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
