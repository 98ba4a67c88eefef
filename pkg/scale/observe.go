package scale

import (
	"slices"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
)

// Observe applies the facts of in to the state without deciding anything.
// A scaler rebuilding its state after a restart observes the recorded facts
// (and applies the recorded decisions with ApplyDecision) before it steps.
func (s *State) Observe(p Params, in Input) error {
	if err := s.check(p, in); err != nil {
		return err
	}
	s.observe(&in)
	return nil
}

func (s *State) observe(in *Input) {
	if s.Now.IsZero() {
		// The first check comes one CheckPeriod after the first input, so the
		// workers that already exist are seen before anything is decided.
		s.LastCheck = in.Time
	}
	if in.Time.After(s.Now) {
		s.Now = in.Time
	}
	switch in.Kind {
	case InputScore:
		s.observeScore(&in.Score)
	case InputLifecycle:
		s.observeLifecycle(&in.Lifecycle)
	case InputProxy:
		s.observeProxy(&in.Proxy)
	}
}

// adopt records a worker first heard of through a fact: it exists, whoever
// started it, so it counts (and raises Desired if needed).
func (s *State) adopt(name string, ph Phase) *Worker {
	now := s.Now
	w := Worker{Name: name, Phase: ph, CreatedAt: now}
	switch ph {
	case PhaseReady:
		w.ReadyAt = now
		s.resetTrend()
	case PhaseSundown:
		w.SundownAt = now
	}
	i := s.insert(w)
	s.raiseDesired()
	return &s.Workers[i]
}

func (s *State) observeScore(sc *events.Score) {
	i, ok := s.find(sc.Container)
	var w *Worker
	if !ok {
		ph := PhaseInit
		if sc.Inputs.ProbeOK {
			ph = PhaseReady
		}
		w = s.adopt(sc.Container, ph)
	} else {
		w = &s.Workers[i]
	}
	if w.Phase == PhaseFailed || w.Phase == PhaseRemoved {
		return
	}
	s.setScore(w, sc.Overall)
	w.Category = sc.Category
	// A successful probe is readiness (DESIGN: ready = a probe succeeded),
	// whether or not the ready fact has arrived yet.
	if w.starting() && sc.Inputs.ProbeOK {
		s.becomeReady(w)
	}
}

func (s *State) becomeReady(w *Worker) {
	s.setPhase(w, PhaseReady)
	w.ReadyAt = s.Now
	s.StartFailures = 0
	s.resetTrend()
}

// resetTrend forgets the mean-score series: the mean of another set of
// workers is another series, and a slope across the change would be an artefact.
func (s *State) resetTrend() {
	s.Trend = s.Trend[:0]
	s.TrendSlope, s.TrendFit = 0, false
}

func (s *State) observeLifecycle(l *events.Lifecycle) {
	i, ok := s.find(l.Container)
	if !ok {
		switch l.Phase {
		case events.PhaseCreated, events.PhaseStarted:
			s.adopt(l.Container, PhaseInit)
		case events.PhaseReady:
			s.adopt(l.Container, PhaseReady)
		case events.PhaseSundown, events.PhaseDrained:
			w := s.adopt(l.Container, PhaseSundown)
			w.Drained = l.Phase == events.PhaseDrained
		case events.PhaseDied, events.PhaseFailed:
			// Its container may still exist: adopt it as failed so it is removed.
			w := s.adopt(l.Container, PhaseFailed)
			w.FailedAt, w.Cause = s.Now, cause(l)
		case events.PhaseRemoved:
			s.insert(Worker{Name: l.Container, Phase: PhaseRemoved, CreatedAt: s.Now, RemovedAt: s.Now})
		}
		return
	}
	w := &s.Workers[i]
	if w.Phase == PhaseRemoved {
		return
	}
	switch l.Phase {
	case events.PhaseCreated, events.PhaseStarted:
		if w.Phase == PhaseRequested {
			s.setPhase(w, PhaseInit)
		}
	case events.PhaseReady:
		if w.starting() {
			s.becomeReady(w)
		}
	case events.PhaseSundown:
		// Someone else drained a live worker (an operator): it leaves, and
		// as Desired is unchanged a replacement is started.
		if w.live() {
			s.sundown(w)
		}
	case events.PhaseDrained:
		if w.Phase == PhaseSundown {
			w.Drained = true
		}
	case events.PhaseDied, events.PhaseFailed:
		if !w.RemoveAt.IsZero() {
			// Dying is what a removal does to a running container.
			if l.Phase == events.PhaseDied {
				return
			}
			// The removal itself failed: ask again.
			w.RemoveAt = time.Time{}
			if w.Phase == PhaseSundown {
				s.setPhase(w, PhaseFailed)
				w.FailedAt, w.Cause = s.Now, cause(l)
			}
			return
		}
		if w.Phase == PhaseFailed {
			return
		}
		s.fail(w, cause(l))
	case events.PhaseRemoved:
		if w.Phase == PhaseReady {
			s.resetTrend()
		}
		s.setPhase(w, PhaseRemoved)
		w.RemovedAt, w.InFlight = s.Now, nil
	}
}

// fail marks a worker failed: it leaves the live set (a replacement follows
// when that leaves fewer live workers than desired) and is removed.
func (s *State) fail(w *Worker, why string) {
	switch w.Phase {
	case PhaseRequested, PhaseInit:
		s.StartFailures++
		s.LastStartFailure = s.Now
	case PhaseReady:
		s.resetTrend()
	}
	s.setPhase(w, PhaseFailed)
	w.FailedAt, w.Cause = s.Now, why
}

func (s *State) sundown(w *Worker) {
	if w.Phase == PhaseReady {
		s.resetTrend()
	}
	s.setPhase(w, PhaseSundown)
	w.SundownAt = s.Now
}

func cause(l *events.Lifecycle) string {
	var b strings.Builder
	b.WriteString(string(l.Phase))
	if l.Reason != "" {
		b.WriteString(" (")
		b.WriteString(l.Reason)
		b.WriteString(")")
	}
	if l.Error != "" {
		b.WriteString(": ")
		b.WriteString(l.Error)
	}
	return b.String()
}

func (s *State) observeProxy(r *events.ProxyReport) {
	now := s.Now
	pi, ok := s.findProxy(r.ProxyID)
	if !ok {
		s.Proxies = slices.Insert(s.Proxies, pi, ProxySeen{ID: r.ProxyID})
	}
	s.Proxies[pi].IntervalSeconds = r.IntervalSeconds
	s.Proxies[pi].LastReport = now
	for _, b := range r.Backends {
		if i, ok := s.find(b.Container); ok && s.Workers[i].Phase != PhaseRemoved {
			setInFlight(&s.Workers[i], r.ProxyID, b.InFlight, now)
		}
	}
	// A backend missing from a fresh report has nothing in flight at that
	// proxy: proxies report SUNDOWN backends until their count reaches 0.
	for i := range s.Workers {
		w := &s.Workers[i]
		if w.Phase == PhaseRemoved {
			continue
		}
		if j, ok := findInFlight(w.InFlight, r.ProxyID); !ok || !w.InFlight[j].At.Equal(now) {
			setInFlight(w, r.ProxyID, 0, now)
		}
	}
}

// findInFlight finds a proxy's entry in a worker's sorted list (a handful of
// proxies: a linear scan) and otherwise where it belongs.
func findInFlight(es []ProxyInFlight, proxy string) (int, bool) {
	for i := range es {
		if es[i].Proxy >= proxy {
			return i, es[i].Proxy == proxy
		}
	}
	return len(es), false
}

func setInFlight(w *Worker, proxy string, n int64, now time.Time) {
	j, ok := findInFlight(w.InFlight, proxy)
	if !ok {
		w.InFlight = slices.Insert(w.InFlight, j, ProxyInFlight{Proxy: proxy})
	}
	w.InFlight[j].InFlight, w.InFlight[j].At = n, now
	if n > 0 {
		w.BusyAt = now
	}
}
