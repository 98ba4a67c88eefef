package scorer

import (
	"math"
	"time"

	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/score"
)

// Params maps the configuration to score parameters: the Scoring section,
// and the collector's probe timeout (a later answer is no answer). It is the
// only place the two meet.
func Params(c config.Config) score.Params {
	s := c.Scoring
	return score.Params{
		Mode:               s.Mode,
		CPUWeight:          s.CPUWeight,
		MemoryWeight:       s.MemoryWeight,
		NetworkWeight:      s.NetworkWeight,
		AvailabilityWeight: s.AvailabilityWeight,
		HistorySize:        s.HistorySize,
		BestTimeWindow:     s.BestTimeWindow,
		EMAAlpha:           s.EMAAlpha,
		LUCutoff:           s.LUCutoff,
		MUCutoff:           s.MUCutoff,
		NetworkCapacity:    s.NetCapacity,
		ProbeTimeout:       c.Collect.ProbeTimeout.Seconds(),
		ThresholdStart:     s.ThresholdStart.Seconds(),
		ThresholdFloor:     s.ThresholdFloor.Seconds(),
		ProbeResolution:    s.ProbeResolution.Seconds(),
	}
}

// thresholdKeep is pkg/score's threshold smoothing, thr ← 0.9 × thr + …
const thresholdKeep = 0.9

// forgetTo is how little a state's starting value may still weigh after a
// rebuild: 1 %.
const forgetTo = 0.01

// rebuildSlack covers Samples the collector skipped or sent late.
const rebuildSlack = 1.5

// maxRebuildSamples bounds a rebuild (an hour at 1 Hz): with an EMA_ALPHA
// near 0 the EMA never forgets, and no window would be long enough.
const maxRebuildSamples = 3600

// RebuildSamples is how many Samples of a container a rebuild reads: enough
// to fill the history (HISTORY_SIZE answers, hence the best-times list) and
// for the availability EMA (factor 1 − EMA_ALPHA per Sample) and the dynamic
// threshold (0.9 per answer) to keep less than 1 % of their starting values.
// With the defaults: max(20, 21, 44) = 44; at most 3600.
func RebuildSamples(p score.Params) int {
	n := max(p.HistorySize, int(math.Ceil(math.Log(forgetTo)/math.Log(thresholdKeep))))
	if p.EMAAlpha < 1 {
		ema := math.Ceil(math.Log(forgetTo) / math.Log1p(-p.EMAAlpha))
		n = max(n, int(min(ema, maxRebuildSamples)))
	}
	return min(n, maxRebuildSamples)
}

// RebuildWindow is the stretch of RB_STATS a rebuild reads: RebuildSamples
// collector intervals, with half again as slack. With the defaults (1 s
// interval) it is 66 s.
func RebuildWindow(p score.Params, interval time.Duration) time.Duration {
	return time.Duration(float64(RebuildSamples(p)) * rebuildSlack * float64(interval))
}
