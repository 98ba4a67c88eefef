package score

import (
	"encoding/json"
	"fmt"
)

// State is one container's scoring memory: the availability history, the
// dynamic threshold, the availability EMA and the number of samples seen.
// Its buffers are allocated once, so Update does not allocate.
//
// The best-times list is not kept apart: it is a function of the history
// (see bestTime), so a fast answer counts only while it is in the history.
//
// The zero State is ready to use (the first Update starts it like NewState).
// A State round-trips through JSON exactly, so a scorer can snapshot it and,
// after a restart, continue with the same next score.
// A State is not safe for concurrent use.
type State struct {
	history   ring    // answered probe times in seconds (at least the resolution), oldest first
	threshold float64 // dynamic response-time threshold in seconds
	ema       float64 // availability score, 0..100
	samples   uint64
	ready     bool // set by NewState, UnmarshalJSON or the first Update
}

// NewState returns the state of a container that has not been sampled yet:
// availability 100, threshold ThresholdStart, empty history.
func NewState(p Params) *State {
	st := &State{}
	st.reset(p)
	return st
}

// Samples is the number of samples this state has scored.
func (st *State) Samples() uint64 { return st.samples }

// Availability is the current availability score (the EMA), 0..100.
func (st *State) Availability() float64 {
	if !st.ready {
		return 100
	}
	return st.ema
}

func (st *State) reset(p Params) {
	*st = State{
		history:   newRing(p.HistorySize),
		threshold: p.ThresholdStart,
		ema:       100,
		ready:     true,
	}
}

// fit prepares the state for p: initialises a zero State, and resizes the
// history, keeping the newest entries, when a restored state or a
// configuration change brought a different HistorySize. It allocates only
// in those cases.
func (st *State) fit(p Params) {
	if !st.ready {
		st.reset(p)
		return
	}
	if len(st.history.buf) != p.HistorySize {
		st.history = st.history.resized(p.HistorySize)
	}
}

// stateJSON is the wire form of State; the history is written oldest first,
// so the form does not depend on where the ring happens to start. Snapshots
// of an older form with "best_times_seconds" still decode: the field is
// ignored, the best time being a function of the history now.
type stateJSON struct {
	History   []float64 `json:"history_seconds"`
	Threshold float64   `json:"threshold_seconds"`
	EMA       float64   `json:"availability_ema"`
	Samples   uint64    `json:"samples"`
}

// MarshalJSON implements json.Marshaler.
func (st State) MarshalJSON() ([]byte, error) {
	if !st.ready || st.samples == 0 {
		// Nothing scored yet: UnmarshalJSON turns this back into a zero State,
		// which the first Update starts from its own Params.
		return json.Marshal(stateJSON{History: []float64{}, EMA: 100})
	}
	return json.Marshal(stateJSON{
		History:   st.history.slice(),
		Threshold: st.threshold,
		EMA:       st.ema,
		Samples:   st.samples,
	})
}

// UnmarshalJSON implements json.Unmarshaler. It rejects values no Update can
// have produced (negative times, an EMA outside 0..100), so a corrupt snapshot
// is an error rather than a wrong score. The history's size is adjusted to
// the Params on the next Update.
func (st *State) UnmarshalJSON(data []byte) error {
	var w stateJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("decode score state: %w", err)
	}
	for i, v := range w.History {
		if v < 0 || v > maxProbeTimeout {
			return fmt.Errorf("decode score state: history_seconds[%d]: %v, want 0..%v", i, v, maxProbeTimeout)
		}
	}
	if w.Threshold < 0 || w.Threshold > maxProbeTimeout {
		return fmt.Errorf("decode score state: threshold_seconds: %v, want 0..%v", w.Threshold, maxProbeTimeout)
	}
	if w.EMA < 0 || w.EMA > 100 {
		return fmt.Errorf("decode score state: availability_ema: %v, want 0..100", w.EMA)
	}
	if w.Samples == 0 {
		// A state that has scored nothing is the initial state, whatever the
		// other fields say.
		*st = State{}
		return nil
	}
	*st = State{
		history:   ringOf(w.History),
		threshold: w.Threshold,
		ema:       w.EMA,
		samples:   w.Samples,
		ready:     true,
	}
	return nil
}

// ring is a fixed-capacity FIFO of float64: when full, a push drops the oldest.
type ring struct {
	buf  []float64
	head int // index of the oldest entry
	n    int // entries in use
}

func newRing(size int) ring { return ring{buf: make([]float64, size)} }

// ringOf returns a full ring holding vs, oldest first (an empty ring for none).
func ringOf(vs []float64) ring {
	buf := make([]float64, len(vs))
	copy(buf, vs)
	return ring{buf: buf, n: len(vs)}
}

func (r *ring) push(v float64) {
	if len(r.buf) == 0 {
		return
	}
	if r.n < len(r.buf) {
		r.buf[(r.head+r.n)%len(r.buf)] = v
		r.n++
		return
	}
	r.buf[r.head] = v
	r.head = (r.head + 1) % len(r.buf)
}

// at returns the i-th oldest entry.
func (r *ring) at(i int) float64 { return r.buf[(r.head+i)%len(r.buf)] }

// meanOf returns the mean of the entries i in [from, to), oldest first, so
// that the result does not depend on where the ring starts (a restored ring
// starts at 0). An empty range has mean 0.
func (r *ring) meanOf(from, to int) float64 {
	if to <= from {
		return 0
	}
	// Walk with a wrapping index rather than at(i): no division per entry.
	sum, j, size := 0.0, (r.head+from)%len(r.buf), len(r.buf)
	for range to - from {
		sum += r.buf[j]
		if j++; j == size {
			j = 0
		}
	}
	return sum / float64(to-from)
}

func (r *ring) mean() float64 { return r.meanOf(0, r.n) }

// slice returns the entries oldest first in a new slice.
func (r *ring) slice() []float64 {
	out := make([]float64, r.n)
	for i := range out {
		out[i] = r.at(i)
	}
	return out
}

// resized returns a ring of capacity size holding the newest entries of r.
func (r *ring) resized(size int) ring {
	out := newRing(size)
	from := max(r.n-size, 0)
	for i := from; i < r.n; i++ {
		out.push(r.at(i))
	}
	return out
}
