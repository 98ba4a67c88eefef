package runtime

import "math"

// CPUPercent is the share of its CPU allowance a container used between two
// samples, 0..100.
//
// It starts from the prototype's formula, Δcontainer CPU / Δsystem CPU ×
// online CPUs × 100, which is the use in percent of one core (up to
// online × 100 on a multi-core host, the prototype's defect), and divides it
// by the allowance in cores: the container's CPU limit, or the online CPUs
// when there is no limit or the limit exceeds them. So 100 means "the whole
// allowance used" on any host. It returns 0 when either delta is zero or
// negative (a counter reset, a restarted container) and clamps to [0, 100].
// When the samples do not say how many CPUs are online, one is assumed.
func CPUPercent(prev, cur StatsSample, limitCores float64) float64 {
	if cur.CPUTotal <= prev.CPUTotal || cur.SystemCPU <= prev.SystemCPU {
		return 0
	}
	online := float64(cur.OnlineCPUs)
	if online == 0 {
		online = float64(prev.OnlineCPUs)
	}
	if online == 0 {
		online = 1
	}
	cpu := float64(cur.CPUTotal - prev.CPUTotal)
	system := float64(cur.SystemCPU - prev.SystemCPU)
	oneCore := cpu / system * online * 100

	allowance := online
	if limitCores > 0 && limitCores < online { // false for NaN, +Inf
		allowance = limitCores
	}
	return clamp(oneCore/allowance, 0, 100)
}

// NetRates returns the received and transmitted bytes per second between two
// samples, from their read times. A rate is 0 when its counter went back (a
// reset) and both are 0 when the time between samples is not positive.
func NetRates(prev, cur StatsSample) (rx, tx float64) {
	if prev.Read.IsZero() || cur.Read.IsZero() {
		return 0, 0
	}
	dt := cur.Read.Sub(prev.Read).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	if cur.RxBytes >= prev.RxBytes {
		rx = float64(cur.RxBytes-prev.RxBytes) / dt
	}
	if cur.TxBytes >= prev.TxBytes {
		tx = float64(cur.TxBytes-prev.TxBytes) / dt
	}
	return rx, tx
}

func clamp(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return lo
	}
	return math.Max(lo, math.Min(hi, v))
}
