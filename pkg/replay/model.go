package replay

import (
	"slices"

	"github.com/rustybalancer/rb/events"
)

// demand follows the recorded fleet: the latest Sample of every recorded
// worker sampled recently. At each sampling round of a what-if it gives the
// fleet's totals and means, from which the load models make the Samples of
// simulated workers:
//
//   - as-recorded: a worker the recording has no Sample for (a new one, or
//     one the recording removed earlier) gets the fleet's mean usage;
//   - conserve-demand: every ready worker gets an equal share of the fleet's
//     total CPU % and network bytes/s (CPU capped at 100 %: demand beyond
//     the fleet's capacity is not served, it does not queue).
//
// Memory (usage and limit) and the probe are not demand that spreads: each
// simulated worker gets the fleet's mean memory and the mean latency of the
// probes that answered (no answer at all in the round: a failed probe).
type demand struct {
	last []int32 // per recorded container: its latest Sample, -1 for none
	list []uint32
	in   []bool

	// Set by refresh.
	n, nOK                      int
	cpu, rx, tx, mem, lim, prob float64
}

func newDemand(n int) demand {
	d := demand{last: make([]int32, n), in: make([]bool, n)}
	for i := range d.last {
		d.last[i] = -1
	}
	return d
}

func (d demand) clone() demand {
	d.last, d.list, d.in = slices.Clone(d.last), slices.Clone(d.list), slices.Clone(d.in)
	return d
}

// note records Samples[si] as its container's latest.
func (d *demand) note(samples []Sample, si int) {
	c := samples[si].Ctr
	d.last[c] = int32(si)
	if !d.in[c] {
		d.in[c] = true
		d.list = append(d.list, c)
	}
}

// refresh sums the latest Samples of the containers sampled less than stale
// before b (in the order they were first seen, so the sums are the same on
// every run) and says whether any is left.
func (d *demand) refresh(samples []Sample, b, stale int64) bool {
	d.n, d.nOK = 0, 0
	d.cpu, d.rx, d.tx, d.mem, d.lim, d.prob = 0, 0, 0, 0, 0, 0
	keep := d.list[:0]
	for _, c := range d.list {
		s := &samples[d.last[c]]
		if b-s.At >= stale {
			d.in[c] = false
			continue
		}
		keep = append(keep, c)
		d.n++
		d.cpu += s.CPU
		d.rx += s.Rx
		d.tx += s.Tx
		d.mem += float64(s.MemUsage)
		d.lim += float64(s.MemLimit)
		if s.ProbeOK {
			d.nOK++
			d.prob += s.Probe
		}
	}
	d.list = keep
	return d.n > 0
}

// sample makes the Sample of one simulated worker out of ready workers.
func (d *demand) sample(m Model, ready int) events.Sample {
	n := float64(d.n)
	s := events.Sample{
		State:         "running",
		WindowSeconds: 1,
		MemUsage:      uint64(d.mem / n),
		MemLimit:      uint64(d.lim / n),
	}
	if m == ModelConserveDemand && ready > 0 {
		k := float64(ready)
		s.CPUPercent = min(d.cpu/k, 100)
		s.NetRxBps, s.NetTxBps = d.rx/k, d.tx/k
	} else {
		s.CPUPercent, s.NetRxBps, s.NetTxBps = d.cpu/n, d.rx/n, d.tx/n
	}
	if d.nOK > 0 {
		s.ProbeOK, s.ProbeSeconds = true, d.prob/float64(d.nOK)
	}
	return s
}
