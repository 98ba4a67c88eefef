package scale

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
)

// Step applies in to the state and returns the decisions it calls for, in
// the order they were taken, at the state's clock (s.Now after the call).
// It is deterministic: the same params, state and input give the same
// decisions and the same next state. Most steps decide nothing and return nil.
//
// The live scaler and `rb replay` call Step with the same inputs; the scaler
// executes the decisions and feeds their results back as lifecycle facts.
func (s *State) Step(p Params, in Input) ([]events.Decision, error) {
	if err := s.check(p, in); err != nil {
		return nil, err
	}
	s.observe(&in)
	return s.decide(p), nil
}

// tally is the state summed up for one step.
type tally struct {
	live, ready, starting, sundown int
	// mean is over the ready workers' scores; critical counts the ready
	// workers below CRITICAL_LOAD_THRESHOLD.
	mean     float64
	critical int
	// leaving counts the failed and SUNDOWN workers (removal candidates),
	// tombstones the removed ones: the loops over them run only if needed.
	leaving, tombstones int
}

func (s *State) tally(p Params) tally {
	a := s.counted(p.Critical)
	t := tally{ready: a.ready, starting: a.starting, sundown: a.sundown, critical: a.critical,
		leaving: a.sundown + a.failed, tombstones: a.removed}
	t.live = t.ready + t.starting
	if t.ready > 0 {
		t.mean = float64(a.sum) / fixedOne / float64(t.ready)
	}
	return t
}

// minReady is the lowest score among the ready workers and whose it is
// (first by name on a tie); 0 and "" when none is ready.
func (s *State) minReady() (float64, string) {
	lo, name := math.Inf(1), ""
	for i := range s.Workers {
		if w := &s.Workers[i]; w.Phase == PhaseReady && w.score() < lo {
			lo, name = w.score(), w.Name
		}
	}
	if name == "" {
		return 0, ""
	}
	return lo, name
}

// decide runs every rule at the state's clock. The order is fixed: worker
// timers (ready timeout, removal), replacement, then — at most once per
// CheckPeriod — the bounds and the load rules.
func (s *State) decide(p Params) []events.Decision {
	now := s.Now
	var out []events.Decision
	t := s.tally(p)
	if t.tombstones > 0 || len(s.Proxies) > 0 {
		s.prune(p, now, t.tombstones > 0)
	}

	if p.ReadyTimeout > 0 && t.starting > 0 {
		failed := false
		for i := range s.Workers {
			w := &s.Workers[i]
			if age := now.Sub(w.CreatedAt); w.starting() && age >= p.ReadyTimeout {
				s.fail(w, fmt.Sprintf("not ready %s after it was requested (RB_READY_TIMEOUT %s)", age, p.ReadyTimeout))
				failed = true
			}
		}
		if failed {
			t = s.tally(p)
		}
	}
	if t.leaving > 0 {
		out = s.removals(p, t, out)
	}

	// Replace what failed or vanished: Desired is what the app should run.
	if deficit := min(s.Desired, p.Max) - t.live; deficit > 0 {
		if wait := s.replaceBackoff(p); wait == 0 || now.Sub(s.LastStartFailure) >= wait {
			from := t.live
			targets := s.newWorkers(deficit, now)
			reason := fmt.Sprintf("%d live workers < desired %d: starting %s to replace what failed or left", from, s.Desired, strings.Join(targets, ", "))
			if s.StartFailures > 0 {
				reason += fmt.Sprintf(" (%d start failures in a row, backoff %s from RB_REPLACE_BACKOFF %s)", s.StartFailures, wait, p.ReplaceBackoff)
			}
			out = append(out, s.decision(p, t, events.ActionReplace, from, from+deficit, targets, 0, reason))
			s.LastReplace = now
			t = s.tally(p)
		}
	}

	// Conditions are tracked on every step, so a window means "held at every
	// event", not "held at a few checks".
	var pr projection
	up, down := false, false
	if t.ready > 0 {
		pr = projection{Mean: t.mean}
		if p.TrendHorizon > 0 {
			s.recordTrend(p, now, t.mean)
			pr = s.project(p, t.mean)
		}
		eff := min(t.mean, pr.Mean)
		up = eff < p.High || t.critical > 0
		down = !up && eff > p.Low
	}
	s.UpSince = since(s.UpSince, up, now)
	s.DownSince = since(s.DownSince, down, now)

	if now.Sub(s.LastCheck) < p.CheckPeriod {
		return out
	}
	s.LastCheck = now
	if s.Desired < p.Min || s.Desired > p.Max {
		return s.bounds(p, t, out)
	}
	switch {
	case up:
		return s.scaleUp(p, t, pr, out)
	case down:
		return s.scaleDown(p, t, pr, out)
	}
	s.Hold = ""
	return out
}

func since(start time.Time, holds bool, now time.Time) time.Time {
	switch {
	case !holds:
		return time.Time{}
	case start.IsZero():
		return now
	}
	return start
}

func (s *State) cooling(p Params) bool {
	return !s.LastScale.IsZero() && s.Now.Sub(s.LastScale) < p.Cooldown
}

func (s *State) replaceBackoff(p Params) time.Duration {
	if s.StartFailures == 0 || p.ReplaceBackoff == 0 {
		return 0
	}
	return p.ReplaceBackoff << min(s.StartFailures-1, 5)
}

// removals decides the removal of failed workers and of SUNDOWN workers that
// are drained or out of time, and asks again for removals never confirmed.
func (s *State) removals(p Params, t tally, out []events.Decision) []events.Decision {
	now := s.Now
	for i := range s.Workers {
		w := &s.Workers[i]
		var why string
		switch {
		case w.Phase == PhaseRemoved:
			continue
		case !w.RemoveAt.IsZero():
			if age := now.Sub(w.RemoveAt); age >= removeRetry {
				why = fmt.Sprintf("removal of %s not confirmed after %s: asking again", w.Name, age)
			}
		case w.Phase == PhaseFailed:
			why = fmt.Sprintf("worker %s %s: removing its container", w.Name, w.Cause)
		case w.Phase == PhaseSundown:
			why = s.drainReason(p, w)
		}
		if why == "" {
			continue
		}
		w.RemoveAt = now
		out = append(out, s.decision(p, t, events.ActionRemove, s.Desired, s.Desired, []string{w.Name}, 0, why))
	}
	return out
}

// drainReason says why a SUNDOWN worker may be removed now, or "" if not yet.
func (s *State) drainReason(p Params, w *Worker) string {
	now := s.Now
	if w.Drained {
		return fmt.Sprintf("SUNDOWN worker %s drained (lifecycle fact)", w.Name)
	}
	quiet := w.SundownAt
	if w.BusyAt.After(quiet) {
		quiet = w.BusyAt
	}
	live, busy := 0, ""
	for i := range s.Proxies {
		px := &s.Proxies[i]
		if proxyGone(p, px, now) {
			continue
		}
		live++
		j, ok := findInFlight(w.InFlight, px.ID)
		switch {
		case !ok || w.InFlight[j].At.Before(w.SundownAt):
			busy = fmt.Sprintf("%s has not reported since SUNDOWN", px.ID)
		case w.InFlight[j].InFlight > 0:
			busy = fmt.Sprintf("%s reports %d in flight", px.ID, w.InFlight[j].InFlight)
		}
		if busy != "" {
			break
		}
	}
	idle := now.Sub(quiet)
	if busy == "" && idle >= p.DrainGrace {
		if live == 0 {
			return fmt.Sprintf("SUNDOWN worker %s drained: no live proxy, %s since SUNDOWN (RB_DRAIN_GRACE %s)", w.Name, idle, p.DrainGrace)
		}
		return fmt.Sprintf("SUNDOWN worker %s drained: %d live proxies report 0 in flight for %s (RB_DRAIN_GRACE %s)", w.Name, live, idle, p.DrainGrace)
	}
	if age := now.Sub(w.SundownAt); p.DrainTimeout > 0 && age >= p.DrainTimeout {
		if busy == "" {
			busy = fmt.Sprintf("idle only %s", idle)
		}
		return fmt.Sprintf("SUNDOWN worker %s not drained after %s (RB_DRAIN_TIMEOUT %s; %s): removing anyway", w.Name, age, p.DrainTimeout, busy)
	}
	return ""
}

// bounds brings Desired back inside [Min, Max] after the bounds changed.
func (s *State) bounds(p Params, t tally, out []events.Decision) []events.Decision {
	if s.cooling(p) {
		return s.hold(p, t, out, "bounds/cooldown", func() string {
			return fmt.Sprintf("desired %d outside DEFAULT_CONTAINER %d .. MAX_CONTAINERS %d, waiting for COOLDOWN_PERIOD %s", s.Desired, p.Min, p.Max, p.Cooldown)
		})
	}
	if s.Desired < p.Min {
		from := s.Desired
		targets := s.newWorkers(p.Min-from, s.Now)
		d := s.decision(p, t, events.ActionScaleUp, from, p.Min, targets, 0,
			fmt.Sprintf("desired %d < DEFAULT_CONTAINER %d: starting %s", from, p.Min, strings.Join(targets, ", ")))
		s.scaled(p.Min)
		return append(out, d)
	}
	from := s.Desired
	to, victims := s.planDown(t, from-p.Max)
	if to == from {
		return s.hold(p, t, out, "bounds/starting", func() string {
			return fmt.Sprintf("desired %d > MAX_CONTAINERS %d, but no ready worker can be sundowned yet", from, p.Max)
		})
	}
	d := s.decision(p, t, events.ActionScaleDown, from, to, victims, 0,
		fmt.Sprintf("desired %d > MAX_CONTAINERS %d: %s", from, p.Max, sundownText(victims)))
	s.sundownAll(victims)
	s.scaled(to)
	return append(out, d)
}

// upWhy names the scale-up rule that fired, with its numbers.
func (s *State) upWhy(p Params, t tally, pr projection) string {
	var parts []string
	if t.mean < p.High {
		parts = append(parts, fmt.Sprintf("mean score %.1f < HIGH_LOAD_THRESHOLD %g", t.mean, p.High))
	} else if pr.OK && pr.Mean < p.High {
		parts = append(parts, fmt.Sprintf("mean score %.1f projected to %.1f in %s (slope %+.2f/s, RB_TREND_HORIZON) < HIGH_LOAD_THRESHOLD %g",
			t.mean, pr.Mean, p.TrendHorizon, pr.Slope, p.High))
	}
	if t.critical > 0 {
		lo, name := s.minReady()
		parts = append(parts, fmt.Sprintf("worker %s score %.1f < CRITICAL_LOAD_THRESHOLD %g", name, lo, p.Critical))
	}
	return fmt.Sprintf("%s for %s", strings.Join(parts, " and "), s.Now.Sub(s.UpSince))
}

func (s *State) scaleUp(p Params, t tally, pr projection, out []events.Decision) []events.Decision {
	why := s.upWhy(p, t, pr)
	switch {
	case s.Now.Sub(s.UpSince) < p.ScaleUpWindow:
		return s.hold(p, t, out, "up/window", func() string {
			return fmt.Sprintf("%s, not yet RB_SCALE_UP_WINDOW %s", why, p.ScaleUpWindow)
		})
	case s.Desired >= p.Max:
		return s.hold(p, t, out, "up/max", func() string {
			return fmt.Sprintf("%s, but desired %d = MAX_CONTAINERS %d", why, s.Desired, p.Max)
		})
	case t.starting > 0 || t.live < s.Desired:
		// The last scale-up (or replacement) has not brought its capacity yet.
		return s.hold(p, t, out, "up/starting", func() string {
			return fmt.Sprintf("%s, but %d workers still starting and %d awaiting replacement (not capacity until ready)",
				why, t.starting, s.Desired-t.live)
		})
	case s.cooling(p):
		return s.hold(p, t, out, "up/cooldown", func() string {
			return fmt.Sprintf("%s, but last scaling %s ago < COOLDOWN_PERIOD %s", why, s.Now.Sub(s.LastScale), p.Cooldown)
		})
	}
	from := s.Desired
	k := min(p.Step, p.Max-from)
	targets := s.newWorkers(k, s.Now)
	proj := 0.0
	if pr.OK {
		proj = pr.Mean
	}
	d := s.decision(p, t, events.ActionScaleUp, from, from+k, targets, proj,
		fmt.Sprintf("%s: starting %s (SCALE_STEP %d)", why, strings.Join(targets, ", "), p.Step))
	s.scaled(from + k)
	return append(out, d)
}

func (s *State) scaleDown(p Params, t tally, pr projection, out []events.Decision) []events.Decision {
	mean := min(t.mean, pr.Mean)
	why := fmt.Sprintf("mean score %.1f > LOW_LOAD_THRESHOLD %g for %s", t.mean, p.Low, s.Now.Sub(s.DownSince))
	if pr.OK {
		why = fmt.Sprintf("mean score %.1f (projected %.1f in %s) > LOW_LOAD_THRESHOLD %g for %s", t.mean, pr.Mean, p.TrendHorizon, p.Low, s.Now.Sub(s.DownSince))
	}
	switch {
	case s.Now.Sub(s.DownSince) < p.ScaleDownWindow:
		return s.hold(p, t, out, "down/window", func() string {
			return fmt.Sprintf("%s, not yet RB_SCALE_DOWN_WINDOW %s", why, p.ScaleDownWindow)
		})
	case s.Desired <= p.Min:
		return s.hold(p, t, out, "down/min", func() string {
			return fmt.Sprintf("%s, but desired %d = DEFAULT_CONTAINER %d", why, s.Desired, p.Min)
		})
	case s.cooling(p):
		return s.hold(p, t, out, "down/cooldown", func() string {
			return fmt.Sprintf("%s, but last scaling %s ago < COOLDOWN_PERIOD %s", why, s.Now.Sub(s.LastScale), p.Cooldown)
		})
	}
	from := s.Desired
	to, victims := s.planDown(t, min(p.Step, from-p.Min))
	if to == from {
		return s.hold(p, t, out, "down/starting", func() string {
			return fmt.Sprintf("%s, but no ready worker can be sundowned (starting workers never are, nor the last ready one)", why)
		})
	}
	after := mean
	if n, v := t.ready, len(victims); v > 0 {
		// The usage of the removed workers moves to the others.
		after = clampScore(100 - (100-mean)*float64(n)/float64(n-v))
	}
	if p.ScaleInGuard && after < p.High {
		return s.hold(p, t, out, "down/guard", func() string {
			return fmt.Sprintf("%s, but the mean would fall to %.1f < HIGH_LOAD_THRESHOLD %g after removing %d of %d ready workers (RB_SCALE_IN_GUARD)",
				why, after, p.High, len(victims), t.ready)
		})
	}
	reason := fmt.Sprintf("%s: %s (SCALE_STEP %d, desired %d → %d)", why, sundownText(victims), p.Step, from, to)
	if p.ScaleInGuard {
		reason += fmt.Sprintf("; mean after removal %.1f ≥ HIGH_LOAD_THRESHOLD %g", after, p.High)
	}
	d := s.decision(p, t, events.ActionScaleDown, from, to, victims, after, reason)
	s.sundownAll(victims)
	s.scaled(to)
	return append(out, d)
}

// planDown lowers Desired by up to k and picks the SUNDOWN victims that
// brings the live workers down to it: ready workers only (never a starting
// one, never the last ready one), highest score first, ties by name. It
// lowers Desired less when there are not enough victims.
func (s *State) planDown(t tally, k int) (to int, victims []string) {
	to = s.Desired - k
	need := t.live - to
	if need <= 0 {
		// Fewer live workers than desired already (a replacement pending):
		// lowering Desired is enough.
		return to, nil
	}
	if room := t.ready - 1; need > room {
		to += need - max(room, 0)
		need = max(room, 0)
	}
	if need == 0 || to >= s.Desired {
		return s.Desired, nil
	}
	cands := make([]*Worker, 0, t.ready)
	for i := range s.Workers {
		if s.Workers[i].Phase == PhaseReady {
			cands = append(cands, &s.Workers[i])
		}
	}
	slices.SortStableFunc(cands, func(a, b *Worker) int {
		if c := cmp.Compare(b.score(), a.score()); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, w := range cands[:need] {
		victims = append(victims, w.Name)
	}
	return to, victims
}

func (s *State) sundownAll(names []string) {
	for _, n := range names {
		if i, ok := s.find(n); ok {
			s.sundown(&s.Workers[i])
		}
	}
}

func sundownText(victims []string) string {
	if len(victims) == 0 {
		return "no worker to sundown (a missing one is not replaced)"
	}
	return "SUNDOWN " + strings.Join(victims, ", ")
}

// scaled records a scale-up or scale-down: the cooldown starts, and the
// windows start again, so the next action needs its condition to hold anew.
func (s *State) scaled(to int) {
	s.Desired = to
	s.LastScale = s.Now
	s.UpSince, s.DownSince = time.Time{}, time.Time{}
	s.Hold = ""
}

// hold tells once why a rule that fired did nothing; the same hold is not
// repeated until something else happened in between.
func (s *State) hold(p Params, t tally, out []events.Decision, key string, reason func() string) []events.Decision {
	if s.Hold == key {
		return out
	}
	s.Hold = key
	return append(out, s.decision(p, t, events.ActionHold, s.Desired, s.Desired, nil, 0, reason()))
}

func (s *State) decision(p Params, t tally, a events.Action, from, to int, targets []string, projected float64, reason string) events.Decision {
	lo, _ := s.minReady()
	return events.Decision{
		App: s.App, Action: a, Reason: reason, From: from, To: to, Targets: targets,
		Inputs: events.DecisionInputs{
			MeanScore: t.mean, MinScore: lo, ProjectedMean: projected,
			Active: t.live, Ready: t.ready, Starting: t.starting, Sundown: t.sundown, Desired: s.Desired,
			Min: p.Min, Max: p.Max, HighThreshold: p.High, LowThreshold: p.Low, CriticalThresh: p.Critical,
			ConfigVersion: p.ConfigVersion,
		},
	}
}
