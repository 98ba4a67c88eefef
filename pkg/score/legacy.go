// Package score turns one container's Samples into Scores: CPU, memory,
// network and availability scores (0..100, higher is better), their weighted
// overall score and a category (LU, MU, HU). The formulas are the prototype's
// (mode "legacy", see docs/scoring.md) with its defects fixed.
//
// The package is pure: no clock, no I/O, no randomness, no map iteration.
// The live scorer and replay call the same Update, so the same Samples with
// the same Params and State give the same Scores, bit for bit.
package score

import (
	"math"

	"github.com/rustybalancer/rb/events"
)

// The prototype's constants, kept as it had them.
const (
	effectiveCurrentWeight = 0.3  // effective = 0.3 × current + 0.7 × mean(history)
	thresholdKeep          = 0.9  // thr ← 0.9 × thr + 0.1 × 1.5 × mean(history)
	thresholdFactor        = 1.5  //
	penaltyMax             = 20.0 // penalty = 20 × (1 − e^−(effective − thr))
	trendGain              = 10.0 // adjustment = 10 × trend
	trendHalf              = 5    // trend compares the older 5 with the recent 5
	// trendMin bounds the trend below without changing any score: at −10 the
	// adjustment alone is −100, so raw availability is 0 already. It keeps
	// Inputs.Trend finite when the older mean is tiny.
	trendMin = -10.0
)

// Update scores sample s against the container's state st, advances st, and
// returns the Score with every component, the overall score, the category
// and the intermediate values in Inputs. SampleID is left empty: the Sample
// does not carry its event ID, so the caller sets it.
//
// p must be valid (Params.Validate). For any sample, including NaN or
// infinite fields, every score is in [0, 100] and every input is finite.
// Update does not allocate, except once after a restore or a change of
// HistorySize.
func (st *State) Update(p Params, s events.Sample) events.Score {
	st.fit(p)
	st.samples++

	in := events.ScoreInputs{
		CPUPercent: cpuPercent(s.CPUPercent),
		MemPercent: memPercent(s.MemUsage, s.MemLimit),
		NetPercent: netPercent(s.NetRxBps, s.NetTxBps, p.NetworkCapacity),
	}
	st.availability(p, s, &in)

	cpu := 100 - in.CPUPercent
	mem := 100 - in.MemPercent
	net := 100 - in.NetPercent
	avail := clampScore(st.ema)
	// Each product is converted explicitly so that no platform fuses it into
	// the following addition (Go spec, "Floating-point operators"): a replay on
	// another machine must give the same bits.
	overall := clampScore(float64(p.CPUWeight*cpu) + float64(p.MemoryWeight*mem) +
		float64(p.NetworkWeight*net) + float64(p.AvailabilityWeight*avail))

	return events.Score{
		App:          s.App,
		Container:    s.Container,
		ContainerID:  s.ContainerID,
		Address:      s.Address,
		Mode:         ModeLegacy,
		CPU:          cpu,
		Memory:       mem,
		Network:      net,
		Availability: avail,
		Overall:      overall,
		Category:     category(p, overall),
		Inputs:       in,
	}
}

// availability runs the prototype's availability algorithm for one probe,
// advancing st and recording every intermediate value in in.
func (st *State) availability(p Params, s events.Sample, in *events.ScoreInputs) {
	t, ok := probeTime(s.ProbeOK, s.ProbeSeconds, p.ProbeTimeout, p.ProbeResolution)
	in.ProbeOK = ok
	in.ProbeSeconds = finiteOr(s.ProbeSeconds, 0)
	in.ThresholdSecs = st.threshold

	raw := 0.0 // no answer: raw availability 0, as the prototype
	if ok {
		st.history.push(t)
		in.BestSecs = bestTime(&st.history, p.BestTimeWindow)
		mean := st.history.mean()
		eff := float64(effectiveCurrentWeight*t) + float64((1-effectiveCurrentWeight)*mean)
		st.threshold = nextThreshold(st.threshold, mean, p.ThresholdFloor)

		in.EffectiveSecs = eff
		in.ThresholdSecs = st.threshold
		in.Base = base(in.BestSecs, eff)
		in.Penalty = penalty(eff, st.threshold)
		in.Trend = trend(&st.history)
		raw = clampScore(in.Base - in.Penalty + float64(trendGain*in.Trend))
	} else {
		in.BestSecs = bestTime(&st.history, p.BestTimeWindow) // 0 while the history is empty
	}
	in.HistoryLen = st.history.n
	in.RawAvailability = raw
	st.ema = clampScore(float64(p.EMAAlpha*raw) + float64((1-p.EMAAlpha)*st.ema))
}

// bestTime is the prototype's best time over the history, the last
// HistorySize answers: its best-times list is built oldest first, a time
// joining when the list is empty or the time beats the last one kept, and
// keeps its newest window entries; bestTime is their mean (0 for an empty
// history). The prototype built the list over every answer ever, so one very
// fast answer capped the base for good; over the history, an answer leaves
// the list when it leaves the history (docs/scoring.md, defect 8). Until the
// history is full the two are the same.
func bestTime(h *ring, window int) float64 {
	if h.n == 0 {
		return 0
	}
	// One walk counts the list's entries and sums them, oldest first as the
	// prototype summed its list; only when the list is longer than window
	// does a second walk sum its newest window entries. No buffer either way.
	// The ring is walked as its two contiguous parts, oldest first.
	older := h.buf[h.head:min(h.head+h.n, len(h.buf))]
	newer := h.buf[:h.n-len(older)]
	last := older[0]
	lows, sum := 1, last
	for _, part := range [2][]float64{older[1:], newer} {
		for _, v := range part {
			if v < last {
				lows, sum, last = lows+1, sum+v, v
			}
		}
	}
	if lows <= window {
		return sum / float64(lows)
	}
	skip := lows - window // ≥ 1: the oldest entry is never summed here
	last = older[0]
	seen, sum := 1, 0.0
	for _, part := range [2][]float64{older[1:], newer} {
		for _, v := range part {
			if v < last {
				if seen >= skip {
					sum += v
				}
				seen, last = seen+1, v
			}
		}
	}
	return sum / float64(window)
}

// probeTime returns the probe time to score and whether it counts as an
// answer: the probe must have answered, in a finite time in [0, timeout].
// An answer faster than resolution counts as resolution.
func probeTime(ok bool, secs, timeout, resolution float64) (float64, bool) {
	if !ok || !(secs >= 0 && secs <= timeout) { // also false for NaN
		return 0, false
	}
	return max(secs, resolution), true
}

// cpuPercent clamps the collector's normalised CPU use to [0, 100]. A value
// that is not a number counts as fully used: a broken measurement must not
// make a worker look idle and draw traffic.
func cpuPercent(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 100
	}
	return clampScore(v)
}

// memPercent is usage / limit × 100, clamped to [0, 100]. A zero limit means
// Docker gave no memory figures (it reports the host's memory when no limit is
// set): the memory component then counts as unused.
func memPercent(usage, limit uint64) float64 {
	if limit == 0 {
		return 0
	}
	return clampScore(float64(float64(usage)/float64(limit)) * 100)
}

// netPercent is (rx + tx) / capacity × 100, clamped to [0, 100]. A rate that
// is not a number counts as full utilisation, a negative one as 0.
func netPercent(rx, tx, capacity float64) float64 {
	if !isFinite(rx) || !isFinite(tx) {
		return 100
	}
	if !(capacity > 0) { // Validate forbids it; never divide by it anyway
		return 0
	}
	return clampScore((max(rx, 0) + max(tx, 0)) / capacity * 100)
}

// base is 100 × (best / effective)^1.5, clamped to [0, 100]. An effective
// time of 0 means answers in no measurable time: base 100.
func base(best, effective float64) float64 {
	if !(effective > 0) {
		return 100
	}
	r := best / effective
	// r^1.5 as r × √r: the same value, and √ is exactly rounded everywhere
	// (math.Pow is not guaranteed to be).
	return clampScore(100 * float64(r*math.Sqrt(r)))
}

// nextThreshold is max(floor, 0.9 × thr + 0.1 × 1.5 × mean).
func nextThreshold(thr, mean, floor float64) float64 {
	return max(floor, float64(thresholdKeep*thr)+float64((1-thresholdKeep)*float64(thresholdFactor*mean)))
}

// penalty is 20 × (1 − e^−(effective − thr)) when effective exceeds thr, else 0.
func penalty(effective, thr float64) float64 {
	if !(effective > thr) {
		return 0
	}
	// 1 − e^−x as −expm1(−x): exact for small x, and math.Expm1 is the same
	// code on every amd64 CPU (math.Exp switches to FMA where the CPU has it).
	return -penaltyMax * math.Expm1(-(effective - thr))
}

// trend is (mean(older) − mean(recent)) / mean(older) over the newest
// history: recent is the last k entries and older the k before them, with
// k = min(5, n/2), so a short history uses what it has. It is 0 with fewer
// than 2 entries or when the older mean is 0, and never below −10.
func trend(h *ring) float64 {
	k := min(trendHalf, h.n/2)
	if k == 0 {
		return 0
	}
	older := h.meanOf(h.n-2*k, h.n-k)
	recent := h.meanOf(h.n-k, h.n)
	if !(older > 0) {
		return 0
	}
	return max(trendMin, (older-recent)/older)
}

// category maps the overall score to LU, MU or HU at the Params' cut-offs.
func category(p Params, overall float64) events.Category {
	switch {
	case overall >= p.LUCutoff:
		return events.CategoryLU
	case overall >= p.MUCutoff:
		return events.CategoryMU
	default:
		return events.CategoryHU
	}
}

// clampScore clamps v to [0, 100]; NaN becomes 0.
func clampScore(v float64) float64 {
	switch {
	case v >= 100:
		return 100
	case v >= 0:
		return v
	default: // negative or NaN
		return 0
	}
}

func finiteOr(v, def float64) float64 {
	if isFinite(v) {
		return v
	}
	return def
}
