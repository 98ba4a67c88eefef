package scale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidParams marks every problem Params.Validate reports.
var ErrInvalidParams = errors.New("invalid scaling parameter")

// Params are the scaling policy of one app. Each field's comment names the
// configuration variable it comes from (the prototype's name where it had one,
// RB_… for what is new) and its default. Validate before use.
type Params struct {
	// Min is the minimum and start number of workers (DEFAULT_CONTAINER, 5).
	Min int
	// Max is the maximum number of workers (MAX_CONTAINERS, 15).
	Max int
	// High: scale up when the mean score of the ready workers is below it
	// (HIGH_LOAD_THRESHOLD, 55). Scores are 100 − usage: low score, high load.
	High float64
	// Low: scale down when the mean score is above it (LOW_LOAD_THRESHOLD, 80).
	Low float64
	// Critical: scale up when any ready worker's score is below it
	// (CRITICAL_LOAD_THRESHOLD, 20).
	Critical float64
	// Step is how many workers one scaling action adds or sundowns (SCALE_STEP, 1).
	Step int
	// Cooldown is the least time between two scaling actions (COOLDOWN_PERIOD, 5 s).
	Cooldown time.Duration
	// CheckPeriod is the least time between two scaling checks (SCALE_CHECK_PERIOD, 10 s).
	CheckPeriod time.Duration
	// ScaleUpWindow is how long the scale-up condition must have held,
	// without a break, before a scale-up (RB_SCALE_UP_WINDOW, 0 s: at once).
	ScaleUpWindow time.Duration
	// ScaleDownWindow is how long the scale-down condition must have held
	// before a scale-down (RB_SCALE_DOWN_WINDOW, 30 s).
	ScaleDownWindow time.Duration
	// ReadyTimeout: a worker still starting this long after it was requested
	// counts as failed and is replaced (RB_READY_TIMEOUT, 60 s; 0: never).
	ReadyTimeout time.Duration
	// DrainGrace: a SUNDOWN worker every live proxy has reported with 0 requests
	// in flight for this long is drained and removed (RB_DRAIN_GRACE, 2 s).
	DrainGrace time.Duration
	// DrainTimeout: a SUNDOWN worker is removed this long after SUNDOWN even if
	// requests are still in flight (RB_DRAIN_TIMEOUT, 60 s; 0: never).
	DrainTimeout time.Duration
	// TrendHorizon: when > 0 the scaler also acts on the mean score projected
	// this far ahead by the least-squares slope of recent means
	// (RB_TREND_HORIZON, 0 s: off).
	TrendHorizon time.Duration
	// TrendWindow is how far back the slope looks (RB_TREND_WINDOW, 60 s).
	TrendWindow time.Duration
	// ScaleInGuard skips a scale-down whose projected mean score after the
	// removal (the removed workers' usage spread over the rest) would fall
	// below High (RB_SCALE_IN_GUARD, true).
	ScaleInGuard bool
	// ReplaceBackoff delays the replacement of a worker that failed before it
	// was ever ready: ReplaceBackoff × 2^(n−1) after the n-th such failure in a
	// row, at most 32 × ReplaceBackoff (RB_REPLACE_BACKOFF, 5 s; 0: no delay).
	// A worker that dies after being ready is replaced at once.
	ReplaceBackoff time.Duration
	// ProxyGoneIntervals: a proxy that has not reported for this many of its
	// report intervals is gone and no longer holds up a drain
	// (RB_PROXY_GONE_INTERVALS, 3).
	ProxyGoneIntervals int
	// ConfigVersion is copied into every decision's inputs, so a decision
	// names the config it was taken under (rb.config.<app> version; 0: unknown).
	ConfigVersion int64
}

// DefaultParams returns the prototype's defaults (ORIGINAL.md) and the
// documented defaults of what is new (docs/scaling.md).
func DefaultParams() Params {
	return Params{
		Min:                5,
		Max:                15,
		High:               55,
		Low:                80,
		Critical:           20,
		Step:               1,
		Cooldown:           5 * time.Second,
		CheckPeriod:        10 * time.Second,
		ScaleUpWindow:      0,
		ScaleDownWindow:    30 * time.Second,
		ReadyTimeout:       60 * time.Second,
		DrainGrace:         2 * time.Second,
		DrainTimeout:       60 * time.Second,
		TrendHorizon:       0,
		TrendWindow:        60 * time.Second,
		ScaleInGuard:       true,
		ReplaceBackoff:     5 * time.Second,
		ProxyGoneIntervals: 3,
	}
}

// minTrendWindow is the shortest trend window that can hold the three points
// a slope needs at the one-second resolution the trend is sampled at.
const minTrendWindow = 3 * trendResolution

// Validate reports every problem with p, each naming the variable, its value
// and what is allowed. It returns nil when p is usable.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...))
	}
	for _, th := range []struct {
		name string
		v    float64
	}{{"CRITICAL_LOAD_THRESHOLD", p.Critical}, {"HIGH_LOAD_THRESHOLD", p.High}, {"LOW_LOAD_THRESHOLD", p.Low}} {
		if math.IsNaN(th.v) || th.v < 0 || th.v > 100 {
			bad("%s=%v, want a score in 0..100", th.name, th.v)
		}
	}
	if !(p.Critical < p.High) {
		bad("CRITICAL_LOAD_THRESHOLD=%v must be below HIGH_LOAD_THRESHOLD=%v", p.Critical, p.High)
	}
	if !(p.High < p.Low) {
		bad("HIGH_LOAD_THRESHOLD=%v must be below LOW_LOAD_THRESHOLD=%v", p.High, p.Low)
	}
	if p.Min < 1 {
		bad("DEFAULT_CONTAINER=%d, want ≥ 1", p.Min)
	}
	if p.Max < p.Min {
		bad("MAX_CONTAINERS=%d must be ≥ DEFAULT_CONTAINER=%d", p.Max, p.Min)
	}
	if p.Step < 1 {
		bad("SCALE_STEP=%d, want ≥ 1", p.Step)
	}
	if p.ProxyGoneIntervals < 1 {
		bad("RB_PROXY_GONE_INTERVALS=%d, want ≥ 1", p.ProxyGoneIntervals)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"COOLDOWN_PERIOD", p.Cooldown}, {"SCALE_CHECK_PERIOD", p.CheckPeriod},
		{"RB_SCALE_UP_WINDOW", p.ScaleUpWindow}, {"RB_SCALE_DOWN_WINDOW", p.ScaleDownWindow},
		{"RB_READY_TIMEOUT", p.ReadyTimeout}, {"RB_DRAIN_GRACE", p.DrainGrace}, {"RB_DRAIN_TIMEOUT", p.DrainTimeout},
		{"RB_TREND_HORIZON", p.TrendHorizon}, {"RB_TREND_WINDOW", p.TrendWindow}, {"RB_REPLACE_BACKOFF", p.ReplaceBackoff},
	} {
		if d.v < 0 {
			bad("%s=%s, want a duration ≥ 0", d.name, d.v)
		}
	}
	if p.TrendHorizon > 0 && p.TrendWindow < minTrendWindow {
		bad("RB_TREND_WINDOW=%s, want ≥ %s when RB_TREND_HORIZON is set", p.TrendWindow, minTrendWindow)
	}
	return errors.Join(errs...)
}
