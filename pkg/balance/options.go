package balance

import (
	"errors"
	"fmt"
	"time"
)

// Options tunes latency tracking, slow start and outlier ejection. The zero
// value is not valid; start from DefaultOptions.
type Options struct {
	// Tau is the time constant of the peak-EWMA latency: an old estimate
	// weighs e^(-age/Tau) against a new sample, and an estimate that gets no
	// samples decays with the same constant towards its probe latency.
	Tau time.Duration
	// InitialLatency is the latency assumed for a backend that has never
	// answered. Zero means the median of the known latencies in the table,
	// or 1 ms when none is known.
	InitialLatency time.Duration
	// SlowStart is the window over which a new or INIT backend's weight
	// ramps from SlowStartFloor to its full value. Zero disables slow start.
	SlowStart time.Duration
	// SlowStartFloor is the share of its weight a backend gets at the start
	// of the window, in (0, 1].
	SlowStartFloor float64
	// ErrorStreak is the number of consecutive 5xx answers that ejects a
	// backend. A connect error ejects at once.
	ErrorStreak int
	// EjectBase is the first ejection period; it doubles with every
	// consecutive ejection up to EjectMax.
	EjectBase time.Duration
	// EjectMax caps the ejection period.
	EjectMax time.Duration
}

// DefaultOptions returns the defaults: Tau 1 s, initial latency from the
// table's median, slow start over 10 s from 10 %, ejection after a connect
// error or 5 consecutive 5xx for 5 s doubling up to 60 s.
func DefaultOptions() Options {
	return Options{
		Tau:            time.Second,
		SlowStart:      10 * time.Second,
		SlowStartFloor: 0.1,
		ErrorStreak:    5,
		EjectBase:      5 * time.Second,
		EjectMax:       60 * time.Second,
	}
}

// Validate reports every invalid field at once.
func (o Options) Validate() error {
	var errs []error
	if o.Tau <= 0 {
		errs = append(errs, fmt.Errorf("balance tau %s: must be positive", o.Tau))
	}
	if o.InitialLatency < 0 {
		errs = append(errs, fmt.Errorf("balance initial latency %s: must be zero (median) or positive", o.InitialLatency))
	}
	if o.SlowStart < 0 {
		errs = append(errs, fmt.Errorf("balance slow start %s: must be zero (off) or positive", o.SlowStart))
	}
	if !(o.SlowStartFloor > 0 && o.SlowStartFloor <= 1) {
		errs = append(errs, fmt.Errorf("balance slow start floor %g: must be in (0, 1]", o.SlowStartFloor))
	}
	if o.ErrorStreak < 1 {
		errs = append(errs, fmt.Errorf("balance error streak %d: must be at least 1", o.ErrorStreak))
	}
	if o.EjectBase <= 0 {
		errs = append(errs, fmt.Errorf("balance eject base %s: must be positive", o.EjectBase))
	}
	if o.EjectMax < o.EjectBase {
		errs = append(errs, fmt.Errorf("balance eject max %s: must be at least the eject base %s", o.EjectMax, o.EjectBase))
	}
	return errors.Join(errs...)
}
