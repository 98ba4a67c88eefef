package scale

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
)

// Phase is where a worker is in its life, as the scaler sees it.
type Phase string

// Worker phases. Requested and Init are "starting": they are not capacity yet.
// Ready is the prototype's LU/MU/HU (the category is kept beside the phase).
// Failed workers wait for their removal; Removed ones are kept a while as
// tombstones so late facts cannot bring them back.
const (
	PhaseRequested Phase = "requested"
	PhaseInit      Phase = "INIT"
	PhaseReady     Phase = "ready"
	PhaseSundown   Phase = "SUNDOWN"
	PhaseFailed    Phase = "failed"
	PhaseRemoved   Phase = "removed"
)

// tombstoneTTL is how long a removed worker's name is remembered.
const tombstoneTTL = 10 * time.Minute

// removeRetry is how long a removal may stay unconfirmed (no removed fact)
// before the remove decision is issued again. Removal is idempotent.
const removeRetry = time.Minute

// ProxyInFlight is one proxy's last word about one worker.
type ProxyInFlight struct {
	Proxy    string    `json:"proxy"`
	InFlight int64     `json:"in_flight"`
	At       time.Time `json:"at"`
}

// Worker is the scaler's record of one worker.
type Worker struct {
	Name  string `json:"name"`
	Phase Phase  `json:"phase"`
	// Score is the last overall score; Scored says whether one arrived.
	Score    float64         `json:"score"`
	Scored   bool            `json:"scored,omitempty"`
	Category events.Category `json:"category,omitempty"`
	// CreatedAt is when the worker was requested (or first seen).
	CreatedAt time.Time `json:"created_at"`
	ReadyAt   time.Time `json:"ready_at,omitzero"`
	SundownAt time.Time `json:"sundown_at,omitzero"`
	FailedAt  time.Time `json:"failed_at,omitzero"`
	// Cause says why the worker failed.
	Cause string `json:"cause,omitempty"`
	// Drained is set by a drained lifecycle fact.
	Drained bool `json:"drained,omitempty"`
	// RemoveAt is when its removal was decided (zero: not yet).
	RemoveAt  time.Time `json:"remove_at,omitzero"`
	RemovedAt time.Time `json:"removed_at,omitzero"`
	// BusyAt is the last time any proxy reported requests in flight to it.
	BusyAt time.Time `json:"busy_at,omitzero"`
	// InFlight holds each proxy's last report about it, sorted by proxy.
	InFlight []ProxyInFlight `json:"in_flight,omitempty"`
}

// live says whether the worker counts towards the desired number.
func (w *Worker) live() bool {
	return w.Phase == PhaseRequested || w.Phase == PhaseInit || w.Phase == PhaseReady
}

func (w *Worker) starting() bool { return w.Phase == PhaseRequested || w.Phase == PhaseInit }

// ProxySeen is what the scaler knows about one proxy.
type ProxySeen struct {
	ID              string    `json:"id"`
	IntervalSeconds float64   `json:"interval_seconds"`
	LastReport      time.Time `json:"last_report"`
}

// TrendPoint is one sample of the ready workers' mean score.
type TrendPoint struct {
	At   time.Time `json:"at"`
	Mean float64   `json:"mean"`
}

// State is everything the scaler knows about one app. It is plain data:
// encode it as JSON to keep it, decode it to go on exactly where it was.
// Slices are kept sorted by name so nothing depends on map order. Change it
// only through Step, Observe and ApplyDecision (or decode or Clone it): a
// running tally of the workers is kept beside the exported fields.
type State struct {
	App string `json:"app"`
	// Now is the engine's clock: the latest event time seen.
	Now time.Time `json:"now"`
	// Desired is the number of live (starting or ready) workers the app should
	// have: the prototype's DEFAULT_CONTAINER counter in Redis.
	Desired int `json:"desired"`
	// LastCheck is the last scaling check; LastScale the last scale-up or
	// scale-down (the cooldown); LastReplace the last replacement.
	LastCheck   time.Time `json:"last_check,omitzero"`
	LastScale   time.Time `json:"last_scale,omitzero"`
	LastReplace time.Time `json:"last_replace,omitzero"`
	// UpSince and DownSince are when the scale-up and scale-down conditions
	// started to hold without a break (zero: not holding).
	UpSince   time.Time `json:"up_since,omitzero"`
	DownSince time.Time `json:"down_since,omitzero"`
	// StartFailures counts workers in a row that failed before being ready;
	// LastStartFailure is when the last one did (the replacement backoff).
	StartFailures    int       `json:"start_failures,omitempty"`
	LastStartFailure time.Time `json:"last_start_failure,omitzero"`
	// Hold is the key of the last hold decision, so a hold is told once.
	Hold    string       `json:"hold,omitempty"`
	Workers []Worker     `json:"workers"`
	Proxies []ProxySeen  `json:"proxies,omitempty"`
	Trend   []TrendPoint `json:"trend,omitempty"`
	// TrendSlope is the least-squares slope (score points per second) of the
	// closed points of Trend, refitted when a point closes; TrendFit says
	// whether there were enough points to fit.
	TrendSlope float64 `json:"trend_slope,omitempty"`
	TrendFit   bool    `json:"trend_fit,omitempty"`

	// agg is derived from Workers and not encoded; see agg.
	agg agg
}

// agg is the tally of the workers, kept up to date as they change so a step
// costs O(log n) rather than a pass over every worker. It is derived: a
// decoded State starts without it and counts once. Scores are summed in
// fixed point (see fixedOne), so the sum is exact and does not depend on the order
// of updates: a recount gives the same mean as the running sum.
type agg struct {
	ok bool
	// critLevel is the CRITICAL_LOAD_THRESHOLD critical was counted against.
	critLevel                                 float64
	ready, starting, sundown, failed, removed int
	// critical counts the ready workers scoring below critLevel.
	critical int
	sum      int64
}

// fixedOne is the fixed-point unit of the score sum: a millionth of a point,
// so the sum is exact and the mean of decimal scores prints as expected.
const fixedOne = 1e6

func fixed(v float64) int64 { return int64(math.Round(v * fixedOne)) }

func (a *agg) add(w *Worker, sign int) {
	switch w.Phase {
	case PhaseRequested, PhaseInit:
		a.starting += sign
	case PhaseSundown:
		a.sundown += sign
	case PhaseFailed:
		a.failed += sign
	case PhaseRemoved:
		a.removed += sign
	case PhaseReady:
		a.ready += sign
		v := w.score()
		a.sum += int64(sign) * fixed(v)
		if v < a.critLevel {
			a.critical += sign
		}
	}
}

func (a *agg) total() int { return a.ready + a.starting + a.sundown + a.failed + a.removed }

// counted returns the tally, recounting it if it is missing, was taken
// against another critical threshold, or the workers were changed from outside.
func (s *State) counted(critical float64) *agg {
	if !s.agg.ok || s.agg.critLevel != critical || s.agg.total() != len(s.Workers) {
		s.agg = agg{ok: true, critLevel: critical}
		for i := range s.Workers {
			s.agg.add(&s.Workers[i], 1)
		}
	}
	return &s.agg
}

// setPhase and setScore change a worker and keep the tally right.
func (s *State) setPhase(w *Worker, ph Phase) {
	s.agg.add(w, -1)
	w.Phase = ph
	s.agg.add(w, 1)
}

func (s *State) setScore(w *Worker, v float64) {
	s.agg.add(w, -1)
	w.Score, w.Scored = v, true
	s.agg.add(w, 1)
}

// score is the worker's last score, or the prototype's INIT score 100 before
// its first one.
func (w *Worker) score() float64 {
	if !w.Scored {
		return 100
	}
	return w.Score
}

// NewState returns the empty state of an app.
func NewState(app string) *State {
	return &State{App: app, Workers: []Worker{}}
}

// Clone returns a deep copy of s, for replays that fork a state.
func (s *State) Clone() *State {
	c := *s
	c.Workers = slices.Clone(s.Workers)
	for i := range c.Workers {
		c.Workers[i].InFlight = slices.Clone(c.Workers[i].InFlight)
	}
	c.Proxies = slices.Clone(s.Proxies)
	c.Trend = slices.Clone(s.Trend)
	return &c
}

// Worker returns the record of the named worker.
func (s *State) Worker(name string) (Worker, bool) {
	i, ok := s.find(name)
	if !ok {
		return Worker{}, false
	}
	w := s.Workers[i]
	w.InFlight = slices.Clone(w.InFlight)
	return w, true
}

// Counts are the numbers of workers by role.
type Counts struct {
	// Live is starting + ready: what Desired counts.
	Live     int
	Ready    int
	Starting int
	Sundown  int
}

// Counts returns the numbers of workers by role.
func (s *State) Counts() Counts {
	var c Counts
	for i := range s.Workers {
		switch s.Workers[i].Phase {
		case PhaseRequested, PhaseInit:
			c.Starting++
		case PhaseReady:
			c.Ready++
		case PhaseSundown:
			c.Sundown++
		}
	}
	c.Live = c.Ready + c.Starting
	return c
}

// find is a binary search by name; by hand, because slices.BinarySearchFunc
// would copy a (large) Worker per comparison.
func (s *State) find(name string) (int, bool) {
	lo, hi := 0, len(s.Workers)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.Workers[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.Workers) && s.Workers[lo].Name == name
}

// insert adds a worker in name order and returns its index; the caller has
// checked it is not there.
func (s *State) insert(w Worker) int {
	i, _ := s.find(w.Name)
	s.Workers = slices.Insert(s.Workers, i, w)
	s.agg.add(&s.Workers[i], 1)
	return i
}

func (s *State) findProxy(id string) (int, bool) {
	return slices.BinarySearchFunc(s.Proxies, id, func(p ProxySeen, id string) int { return strings.Compare(p.ID, id) })
}

// proxyGone says whether a proxy has been silent too long to hold up a drain.
func proxyGone(p Params, px *ProxySeen, now time.Time) bool {
	iv := time.Duration(px.IntervalSeconds * float64(time.Second))
	if iv <= 0 {
		iv = time.Second
	}
	return now.Sub(px.LastReport) > time.Duration(p.ProxyGoneIntervals)*iv
}

// raiseDesired keeps Desired ≥ the live count after workers were adopted.
func (s *State) raiseDesired() {
	if c := s.Counts(); c.Live > s.Desired {
		s.Desired = c.Live
	}
}

// prune drops tombstones older than tombstoneTTL and proxies that are gone,
// with their in-flight entries.
func (s *State) prune(p Params, now time.Time, tombstones bool) {
	if tombstones {
		// By index, not slices.DeleteFunc: a Worker is large to copy per call.
		j := 0
		for i := range s.Workers {
			if w := &s.Workers[i]; w.Phase == PhaseRemoved && now.Sub(w.RemovedAt) >= tombstoneTTL {
				s.agg.add(w, -1)
				continue
			}
			if i != j {
				s.Workers[j] = s.Workers[i]
			}
			j++
		}
		clear(s.Workers[j:])
		s.Workers = s.Workers[:j]
	}
	gone := false
	for i := range s.Proxies {
		if proxyGone(p, &s.Proxies[i], now) {
			gone = true
		}
	}
	if !gone {
		return
	}
	var ids []string
	s.Proxies = slices.DeleteFunc(s.Proxies, func(px ProxySeen) bool {
		if proxyGone(p, &px, now) {
			ids = append(ids, px.ID)
			return true
		}
		return false
	})
	for i := range s.Workers {
		w := &s.Workers[i]
		w.InFlight = slices.DeleteFunc(w.InFlight, func(e ProxyInFlight) bool { return slices.Contains(ids, e.Proxy) })
	}
}
