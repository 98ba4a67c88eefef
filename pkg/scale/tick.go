package scale

import "time"

// TickGap is the spacing of the ticks synthesised between inputs: the
// resolution of the time-driven rules (ready timeout, drain grace and
// timeout, removal retry, check period) when no event arrives.
const TickGap = time.Second

// Ticker is the tick rule the live scaler and `rb replay` share, so that the
// decisions ticks cause (a drain timeout, a ready timeout) replay exactly:
// ticks are a pure function of the input stream.
//
// The rule: before an input at time t, step Tick(last + k·Gap) for every
// k ≥ 1 with last + k·Gap < t, where last is the latest input time before
// it. The first input has no ticks before it. An input older than last adds
// none and leaves last as it is.
//
// A live scaler whose input has gone quiet hands out the same ticks early,
// through Next with a bound that trails its wall clock; an input arriving
// later with a time after those ticks gets only the ticks not yet handed out,
// so its steps are the replay's. Only an input older than a tick already
// handed out (later than the bound allowed for) makes live and replay differ.
//
// The zero Ticker with Gap set is ready to use; its fields are plain data.
type Ticker struct {
	// Gap is the spacing of the ticks (TickGap); ≤ 0 means no ticks.
	Gap time.Duration `json:"gap"`
	// Last is the latest input time recorded (zero: none yet).
	Last time.Time `json:"last,omitzero"`
	// Ticked is the latest tick handed out (zero: none yet).
	Ticked time.Time `json:"ticked,omitzero"`
}

// NewTicker returns a Ticker with the standard TickGap.
func NewTicker() *Ticker { return &Ticker{Gap: TickGap} }

// Next returns the next tick of the rule strictly before the given time and
// records it as handed out; false when there is none. Before an input at t,
// step every tick Next(t) returns, then call Input(t):
//
//	for at, ok := tk.Next(in.Time); ok; at, ok = tk.Next(in.Time) {
//		st.Step(p, scale.Tick(at))
//	}
//	tk.Input(in.Time)
//	st.Step(p, in)
func (k *Ticker) Next(before time.Time) (time.Time, bool) {
	if k.Gap <= 0 || k.Last.IsZero() {
		return time.Time{}, false
	}
	at := k.Last.Add(k.Gap)
	if !k.Ticked.Before(at) {
		// Ticks up to Ticked were handed out already: the next one on the
		// same grid after it.
		n := k.Ticked.Sub(k.Last)/k.Gap + 1
		at = k.Last.Add(n * k.Gap)
	}
	if !at.Before(before) {
		return time.Time{}, false
	}
	k.Ticked = at
	return at, true
}

// Input records an input at t, after the ticks before it were stepped.
func (k *Ticker) Input(t time.Time) {
	if t.After(k.Last) {
		k.Last = t
	}
}
