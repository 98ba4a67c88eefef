package scale

import (
	"time"

	"github.com/rustybalancer/rb/events"
)

// ApplyDecision applies a decision taken earlier (read back from the decision
// log) to the state, without deciding anything: the desired count, the
// cooldown, the workers it requested and the SUNDOWN and removal timers come
// back. A scaler that lost its state rebuilds it by feeding, in log order,
// the recorded decisions to ApplyDecision and the recorded facts to Observe.
// Windows, holds and the trend series are not in the log: they start afresh.
func (s *State) ApplyDecision(at time.Time, d events.Decision) error {
	if s.App == "" {
		return ErrNoAppName
	}
	if d.App != s.App {
		return ErrOtherApp
	}
	if at.IsZero() {
		return ErrBadInput
	}
	tick := Tick(at)
	s.observe(&tick)
	now := s.Now
	switch d.Action {
	case events.ActionScaleUp, events.ActionScaleDown:
		s.Desired, s.LastScale, s.LastCheck = d.To, now, now
		s.UpSince, s.DownSince, s.Hold = time.Time{}, time.Time{}, ""
	case events.ActionReplace:
		s.LastReplace = now
	}
	for _, name := range d.Targets {
		i, ok := s.find(name)
		switch d.Action {
		case events.ActionScaleUp, events.ActionReplace:
			if !ok {
				s.insert(Worker{Name: name, Phase: PhaseRequested, CreatedAt: now})
			}
		case events.ActionScaleDown:
			if !ok {
				s.insert(Worker{Name: name, Phase: PhaseSundown, CreatedAt: now, SundownAt: now})
			} else if s.Workers[i].live() {
				s.sundown(&s.Workers[i])
			}
		case events.ActionRemove:
			if !ok || s.Workers[i].Phase == PhaseRemoved {
				continue
			}
			if w := &s.Workers[i]; w.live() {
				// Failed by a timer (RB_READY_TIMEOUT), not by a fact.
				s.fail(w, d.Reason)
			}
			s.Workers[i].RemoveAt = now
		}
	}
	return nil
}
