package replay

import (
	"math"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/scale"
)

// Summary measures one replay (or the recording) over the replay proper.
type Summary struct {
	// Seconds is the length of the replay proper in whole seconds.
	Seconds int64 `json:"seconds"`
	// ScaleUps and ScaleDowns count the scaling decisions; Replaces,
	// Removes and Holds the others.
	ScaleUps   int `json:"scale_ups"`
	ScaleDowns int `json:"scale_downs"`
	Replaces   int `json:"replaces"`
	Removes    int `json:"removes"`
	Holds      int `json:"holds"`
	// Flaps counts reversals: a scale-up after a scale-down, or the other way
	// round, within the flap window.
	Flaps int `json:"flaps"`
	// WorkerSeconds is the cost: the sum over every second of the worker
	// containers running (starting, ready, SUNDOWN, or failed and not yet
	// removed). MeanWorkers is it divided by Seconds.
	WorkerSeconds int64   `json:"worker_seconds"`
	MeanWorkers   float64 `json:"mean_workers"`
	PeakWorkers   int     `json:"peak_workers"`
	// RiskSeconds counts the seconds with a ready worker's score below
	// CRITICAL or the ready workers' mean below HIGH (the recorded config's
	// thresholds, the same for every candidate); CriticalSeconds and
	// HighSeconds count each condition alone.
	RiskSeconds     int64 `json:"risk_seconds"`
	CriticalSeconds int64 `json:"critical_seconds"`
	HighSeconds     int64 `json:"high_seconds"`
}

// Delta is a candidate's Summary minus the recording's.
type Delta struct {
	ScaleUps      int   `json:"scale_ups"`
	ScaleDowns    int   `json:"scale_downs"`
	Flaps         int   `json:"flaps"`
	WorkerSeconds int64 `json:"worker_seconds"`
	PeakWorkers   int   `json:"peak_workers"`
	RiskSeconds   int64 `json:"risk_seconds"`
}

// Minus returns s − o.
func (s Summary) Minus(o Summary) Delta {
	return Delta{
		ScaleUps: s.ScaleUps - o.ScaleUps, ScaleDowns: s.ScaleDowns - o.ScaleDowns, Flaps: s.Flaps - o.Flaps,
		WorkerSeconds: s.WorkerSeconds - o.WorkerSeconds, PeakWorkers: s.PeakWorkers - o.PeakWorkers,
		RiskSeconds: s.RiskSeconds - o.RiskSeconds,
	}
}

// meter samples the scaling state once per second of event time: the state
// in force at each whole second is counted for that second.
type meter struct {
	on         bool
	first      int64
	next, end  int64
	high, crit float64

	series                 []int32
	seconds, cost          int64
	risk, critSec, highSec int64
	peak                   int
}

func newMeter(start, end int64, high, crit float64) meter {
	first := (start + int64(time.Second) - 1) / int64(time.Second) * int64(time.Second)
	n := max((end-first)/int64(time.Second)+1, 0)
	return meter{on: true, first: first, next: first, end: end, high: high, crit: crit, series: make([]int32, 0, n)}
}

// advance counts the seconds before t with the state as it is: a second
// is counted with every input up to and including its own time.
func (m *meter) advance(st *scale.State, t int64) {
	if !m.on {
		return
	}
	for m.next < t && m.next <= m.end {
		m.account(st)
		m.next += int64(time.Second)
	}
}

func (m *meter) account(st *scale.State) {
	workers, ready, crit := 0, 0, false
	var sum int64
	for i := range st.Workers {
		w := &st.Workers[i]
		if w.Phase == scale.PhaseRemoved {
			continue
		}
		workers++
		if w.Phase != scale.PhaseReady {
			continue
		}
		ready++
		v := 100.0 // the INIT score before a worker's first one
		if w.Scored {
			v = w.Score
		}
		// Fixed point, as pkg/scale sums scores: exact and order-free.
		sum += int64(math.Round(v * 1e6))
		if v < m.crit {
			crit = true
		}
	}
	m.series = append(m.series, int32(workers))
	m.seconds++
	m.cost += int64(workers)
	m.peak = max(m.peak, workers)
	if ready == 0 {
		return
	}
	high := float64(sum)/1e6/float64(ready) < m.high
	if crit {
		m.critSec++
	}
	if high {
		m.highSec++
	}
	if crit || high {
		m.risk++
	}
}

// flaps counts the reversals of direction between consecutive scaling
// decisions closer than window.
func flaps(ds []Decided, window time.Duration) int {
	n := 0
	var last Decided
	have := false
	for _, d := range ds {
		if d.Action != events.ActionScaleUp && d.Action != events.ActionScaleDown {
			continue
		}
		if have && d.Action != last.Action && d.Time.Sub(last.Time) <= window {
			n++
		}
		last, have = d, true
	}
	return n
}

func (r *runner) result(c Candidate) *Result {
	m := &r.met
	s := Summary{
		Seconds: m.seconds, WorkerSeconds: m.cost, PeakWorkers: m.peak,
		RiskSeconds: m.risk, CriticalSeconds: m.critSec, HighSeconds: m.highSec,
		Flaps: flaps(r.decisions, r.p.opt.FlapWindow),
	}
	if m.seconds > 0 {
		s.MeanWorkers = float64(m.cost) / float64(m.seconds)
	}
	for _, d := range r.decisions {
		switch d.Action {
		case events.ActionScaleUp:
			s.ScaleUps++
		case events.ActionScaleDown:
			s.ScaleDowns++
		case events.ActionReplace:
			s.Replaces++
		case events.ActionRemove:
			s.Removes++
		case events.ActionHold:
			s.Holds++
		}
	}
	res := &Result{Candidate: c, Summary: s, Decisions: r.decisions, Start: fromNanos(m.first), Workers: m.series}
	if len(r.skipped) > 0 {
		res.Skipped = r.skipped
	}
	return res
}
