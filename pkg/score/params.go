package score

import (
	"errors"
	"fmt"
	"math"
)

// ModeLegacy is the prototype's scoring (ORIGINAL.md) with its defects fixed;
// docs/scoring.md lists every fix. It is the only mode so far.
const ModeLegacy = "legacy"

// Upper bounds that keep per-container memory and every running sum finite.
const (
	maxHistorySize  = 10000
	maxBestWindow   = 10000
	maxProbeTimeout = 3600.0 // seconds
)

// weightSumTolerance is how far the four weights may sum from 1.
const weightSumTolerance = 0.01

// Params are the scoring parameters. Each field's comment names the
// configuration variable it comes from (the prototype's name where it had one).
// Validate before use: Update assumes valid Params.
type Params struct {
	// Mode selects the formulas (RB_SCORE_MODE). Only ModeLegacy exists.
	Mode string

	// CPUWeight is the CPU score's share of the overall score (CPU_WEIGHT, 0.35).
	CPUWeight float64
	// MemoryWeight is the memory score's share (MEMORY_WEIGHT, 0.25).
	MemoryWeight float64
	// NetworkWeight is the network score's share (NETWORK_WEIGHT, 0.15).
	NetworkWeight float64
	// AvailabilityWeight is the availability score's share (AVAILABILITY_WEIGHT, 0.25).
	AvailabilityWeight float64

	// HistorySize is how many probe times the availability history keeps (HISTORY_SIZE, 20).
	HistorySize int
	// BestTimeWindow is how many entries the best-times list keeps (BEST_TIME_WINDOW, 10).
	// The list is built over the last HistorySize answers, so an answer
	// leaves it when it leaves the history (docs/scoring.md, defect 8).
	BestTimeWindow int
	// EMAAlpha is the smoothing factor of the availability score (EMA_ALPHA, 0.2):
	// the weight of the newest raw value.
	EMAAlpha float64

	// LUCutoff is the overall score at or above which a worker is LU, low
	// utilisation (RB_LU_CUTOFF, 70; hard-coded in the prototype).
	LUCutoff float64
	// MUCutoff is the overall score at or above which a worker is MU, medium
	// utilisation; below it the worker is HU (RB_MU_CUTOFF, 40; hard-coded in the prototype).
	MUCutoff float64

	// NetworkCapacity is the traffic, in bytes per second received plus sent,
	// that counts as 100 % network utilisation (RB_NET_CAPACITY_BPS, 125,000,000 =
	// 1 Gbit/s; new: the prototype scored the relative change of the rate).
	NetworkCapacity float64

	// ProbeTimeout is the longest probe time, in seconds, that still counts as
	// an answer (RB_PROBE_TIMEOUT, 5; hard-coded in the prototype). A later answer
	// is no answer: raw availability 0.
	ProbeTimeout float64

	// ThresholdStart is the dynamic response-time threshold's initial value in
	// seconds (RB_RESPONSE_THRESHOLD_START, 1.0; hard-coded in the prototype).
	ThresholdStart float64
	// ThresholdFloor is the dynamic threshold's lower bound in seconds
	// (RB_RESPONSE_THRESHOLD_FLOOR, 0.5; hard-coded in the prototype).
	ThresholdFloor float64

	// ProbeResolution is the smallest probe time, in seconds, that the
	// scorer tells apart (RB_PROBE_RESOLUTION, 0.001; new): a faster answer
	// counts as this time, so jitter below what the probe can measure (a TCP
	// connect on loopback takes 0.05 to 0.5 ms) does not move the score. 0
	// takes every time as it is, as the prototype did.
	ProbeResolution float64
}

// DefaultParams returns the prototype's defaults (ORIGINAL.md), 1 Gbit/s of
// network capacity and a probe resolution of 1 ms.
func DefaultParams() Params {
	return Params{
		Mode:               ModeLegacy,
		CPUWeight:          0.35,
		MemoryWeight:       0.25,
		NetworkWeight:      0.15,
		AvailabilityWeight: 0.25,
		HistorySize:        20,
		BestTimeWindow:     10,
		EMAAlpha:           0.2,
		LUCutoff:           70,
		MUCutoff:           40,
		NetworkCapacity:    125e6,
		ProbeTimeout:       5,
		ThresholdStart:     1.0,
		ThresholdFloor:     0.5,
		ProbeResolution:    0.001,
	}
}

// Validate reports every invalid parameter, each named by its configuration
// variable with the bad value and what is allowed, joined with errors.Join.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if p.Mode != ModeLegacy {
		bad("RB_SCORE_MODE: %q, want %q", p.Mode, ModeLegacy)
	}

	weights := []struct {
		name string
		v    float64
	}{
		{"CPU_WEIGHT", p.CPUWeight},
		{"MEMORY_WEIGHT", p.MemoryWeight},
		{"NETWORK_WEIGHT", p.NetworkWeight},
		{"AVAILABILITY_WEIGHT", p.AvailabilityWeight},
	}
	sum, weightsOK := 0.0, true
	for _, w := range weights {
		if !isFinite(w.v) || w.v < 0 {
			bad("%s: %v, want ≥ 0", w.name, w.v)
			weightsOK = false
		}
		sum += w.v
	}
	// The sum is only worth reporting when each weight is sane on its own.
	if weightsOK && math.Abs(sum-1) > weightSumTolerance {
		bad("CPU_WEIGHT+MEMORY_WEIGHT+NETWORK_WEIGHT+AVAILABILITY_WEIGHT: %v, want 1 ± %v", sum, weightSumTolerance)
	}

	if p.HistorySize < 1 || p.HistorySize > maxHistorySize {
		bad("HISTORY_SIZE: %d, want 1..%d", p.HistorySize, maxHistorySize)
	}
	if p.BestTimeWindow < 1 || p.BestTimeWindow > maxBestWindow {
		bad("BEST_TIME_WINDOW: %d, want 1..%d", p.BestTimeWindow, maxBestWindow)
	}
	if !isFinite(p.EMAAlpha) || p.EMAAlpha <= 0 || p.EMAAlpha > 1 {
		bad("EMA_ALPHA: %v, want 0 < EMA_ALPHA ≤ 1", p.EMAAlpha)
	}

	luOK := isFinite(p.LUCutoff) && p.LUCutoff > 0 && p.LUCutoff < 100
	if !luOK {
		bad("RB_LU_CUTOFF: %v, want 0 < RB_LU_CUTOFF < 100", p.LUCutoff)
	}
	switch {
	case !isFinite(p.MUCutoff) || p.MUCutoff <= 0 || p.MUCutoff >= 100:
		bad("RB_MU_CUTOFF: %v, want 0 < RB_MU_CUTOFF < 100", p.MUCutoff)
	case luOK && p.MUCutoff >= p.LUCutoff:
		bad("RB_MU_CUTOFF: %v, want < RB_LU_CUTOFF (%v)", p.MUCutoff, p.LUCutoff)
	}

	if !isFinite(p.NetworkCapacity) || p.NetworkCapacity <= 0 {
		bad("RB_NET_CAPACITY_BPS: %v, want a finite number of bytes/s > 0", p.NetworkCapacity)
	}
	timeoutOK := isFinite(p.ProbeTimeout) && p.ProbeTimeout > 0 && p.ProbeTimeout <= maxProbeTimeout
	if !timeoutOK {
		bad("RB_PROBE_TIMEOUT: %v, want 0 < RB_PROBE_TIMEOUT ≤ %v seconds", p.ProbeTimeout, maxProbeTimeout)
	}
	switch {
	case !isFinite(p.ProbeResolution) || p.ProbeResolution < 0 || p.ProbeResolution > maxProbeTimeout:
		bad("RB_PROBE_RESOLUTION: %v, want 0..%v seconds", p.ProbeResolution, maxProbeTimeout)
	case timeoutOK && p.ProbeResolution > p.ProbeTimeout:
		bad("RB_PROBE_RESOLUTION: %v, want ≤ RB_PROBE_TIMEOUT (%v)", p.ProbeResolution, p.ProbeTimeout)
	}

	floorOK := isFinite(p.ThresholdFloor) && p.ThresholdFloor >= 0 && p.ThresholdFloor <= maxProbeTimeout
	if !floorOK {
		bad("RB_RESPONSE_THRESHOLD_FLOOR: %v, want 0..%v seconds", p.ThresholdFloor, maxProbeTimeout)
	}
	switch {
	case !isFinite(p.ThresholdStart) || p.ThresholdStart < 0 || p.ThresholdStart > maxProbeTimeout:
		bad("RB_RESPONSE_THRESHOLD_START: %v, want 0..%v seconds", p.ThresholdStart, maxProbeTimeout)
	case floorOK && p.ThresholdStart < p.ThresholdFloor:
		bad("RB_RESPONSE_THRESHOLD_START: %v, want ≥ RB_RESPONSE_THRESHOLD_FLOOR (%v)", p.ThresholdStart, p.ThresholdFloor)
	}

	return errors.Join(errs...)
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
