package balance

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentPicksAndSwaps runs picks, Begin/Done and probes on several
// goroutines while another swaps tables built from the previous one, as the
// proxy does (run with -race). Every Begin has its Done, so in-flight counts
// must end at zero, and the request counters must add up.
func TestConcurrentPicksAndSwaps(t *testing.T) {
	t.Parallel()
	bs := []Backend{{ID: "a", Weight: 50}, {ID: "b", Weight: 30}, {ID: "c", Weight: 20, State: Init, Added: testNow}}
	first, err := NewTable(bs, nil, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[Table]
	current.Store(first)
	const workers, perWorker = 4, 5000
	var picks atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			next := bs
			if i%2 == 1 {
				next = []Backend{{ID: "a", Weight: 60}, {ID: "b", Weight: 40, State: Sundown}, {ID: "c", Weight: 20}}
			}
			table, err := NewTable(next, current.Load(), DefaultOptions())
			if err != nil {
				t.Error(err)
				return
			}
			table.ObserveProbe("a", 100*time.Microsecond, testNow)
			current.Store(table)
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.NewPCG(uint64(w), 1)
			for i := range perWorker {
				table := current.Load()
				now := testNow + int64(i)*int64(time.Microsecond)
				b, err := table.Picker(allPolicies[i%len(allPolicies)]).Pick(r, now)
				if err != nil {
					t.Error(err)
					return
				}
				b.Stats().Begin()
				picks.Add(1)
				status := 200
				if i%97 == 0 {
					status = 503
				}
				b.Stats().Done(time.Duration(1+i%5)*time.Millisecond, status, false, now+1)
			}
		}()
	}
	wg.Wait()
	<-done
	var requests uint64
	for _, b := range current.Load().Backends() {
		s := b.Stats().Snapshot()
		if s.InFlight != 0 {
			t.Errorf("%s: %d in flight at the end, want 0", b.ID, s.InFlight)
		}
		requests += s.Requests
	}
	if requests != uint64(picks.Load()) {
		t.Errorf("requests counted %d, picks %d", requests, picks.Load())
	}
}
