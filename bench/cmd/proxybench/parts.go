package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// wrkRow is one measured wrk run.
type wrkRow struct {
	target string
	round  int
	res    wrkResult
	// cpuPerReq is the proxy's CPU time (user + system, all its processes)
	// per request during the run; 0 for the direct target.
	cpuPerReq time.Duration
	stall     float64 // share of the run with a task waiting for a CPU; -1 unknown
}

// Target names of the throughput part; direct is the reference of ratios.
const (
	tDirect  = "direct (one backend)"
	tRBP2C   = "rb (p2c, default)"
	tRBRR    = "rb (round-robin)"
	tHAProxy = "HAProxy (roundrobin)"
	tNGINX   = "NGINX (round robin)"
)

// throughput runs wrk against one backend directly and through each proxy
// over the same two backends, interleaved, cfg.rounds times.
func (e *env) throughput(ctx context.Context, rep *report) error {
	bs, err := startBackends([]time.Duration{0, 0}, e.log)
	if err != nil {
		return err
	}
	defer bs.Close()
	addrs := bs.Addrs()
	targets := []*running{{name: tDirect, url: "http://" + addrs[0] + "/"}}
	if e.cfg.rb != "" {
		for _, pol := range []struct{ name, policy string }{{tRBP2C, "p2c"}, {tRBRR, "round-robin"}} {
			r, err := e.startRB(ctx, pol.name, pol.policy, []queued{{addrs[0], 100}, {addrs[1], 100}})
			if err != nil {
				return err
			}
			targets = append(targets, r)
		}
	}
	h, err := e.startHAProxy(ctx, tHAProxy, "roundrobin", addrs)
	if err != nil {
		return err
	}
	n, err := e.startNGINX(ctx, tNGINX, "", addrs)
	if err != nil {
		return err
	}
	targets = append(targets, h, n)
	for _, t := range targets {
		rep.wrkTargets = append(rep.wrkTargets, t.name)
	}
	c := e.cfg
	for round := 1; round <= c.rounds; round++ {
		for _, t := range targets {
			if c.wrkWarmup >= time.Second {
				if _, err := runWrk(ctx, c.wrk, c.wrkThreads, c.wrkConns, c.wrkWarmup, t.url); err != nil {
					return fmt.Errorf("warm up %s: %w", t.name, err)
				}
			}
			bs.Reset()
			var cpu0 time.Duration
			if t.p != nil {
				if cpu0, err = groupCPU(t.p.Pid()); err != nil {
					return err
				}
			}
			stall := startStall()
			res, err := runWrk(ctx, c.wrk, c.wrkThreads, c.wrkConns, c.wrkDuration, t.url)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", t.name, round, err)
			}
			row := wrkRow{target: t.name, round: round, res: res, stall: stall.Share()}
			if t.p != nil {
				cpu1, err := groupCPU(t.p.Pid())
				if err != nil {
					return err
				}
				if res.Requests > 0 {
					row.cpuPerReq = (cpu1 - cpu0) / time.Duration(res.Requests)
				}
			}
			if t.p != nil {
				if hits := bs.Hits(); hits[0] == 0 || hits[1] == 0 {
					return fmt.Errorf("%s round %d: a backend got no request (%v): the proxy does not use both", t.name, round, hits)
				}
			}
			e.log.Info("wrk", "target", t.name, "round", round, "req/s", int(res.ReqPerSec), "p50", res.P50, "p99", res.P99,
				"errors", res.Errors, "cpu/req", row.cpuPerReq)
			rep.wrk = append(rep.wrk, row)
		}
	}
	for _, t := range targets {
		if t.p != nil {
			if err := e.procs.stop(t.p); err != nil {
				e.log.Warn("stop", "target", t.name, "err", err)
			}
		}
	}
	return nil
}

// etaRow is the distribution of one weight set.
type etaRow struct {
	weights []float64
	counts  []int64
	eta     float64
	paper   float64
	ideal   float64 // median η of an exact categorical sampler at the same count
	failed  int64
	elapsed time.Duration
}

// distribution sends cfg.etaRequests through the rb proxy with the
// weighted policy for each weight set and counts them at the backends.
func (e *env) distribution(ctx context.Context, rep *report) error {
	if e.cfg.rb == "" {
		e.log.Warn("no -rb: distribution part skipped")
		return nil
	}
	sets := []struct {
		weights []float64
		paper   float64
	}{{[]float64{100, 50, 25, 5}, 0.9}, {[]float64{100, 95, 90, 85}, 0.985}}
	for _, set := range sets {
		bs, err := startBackends(make([]time.Duration, len(set.weights)), e.log)
		if err != nil {
			return err
		}
		row, err := e.distributionSet(ctx, bs, set.weights)
		bs.Close()
		if err != nil {
			return err
		}
		row.paper = set.paper
		row.ideal = idealEfficiency(set.weights, e.cfg.etaRequests, 201, 1)
		e.log.Info("eta", "weights", formatWeights(set.weights), "counts", row.counts, "eta", row.eta, "ideal", row.ideal)
		rep.eta = append(rep.eta, row)
	}
	return nil
}

func (e *env) distributionSet(ctx context.Context, bs backendSet, weights []float64) (etaRow, error) {
	qs := make([]queued, len(bs))
	for i, a := range bs.Addrs() {
		qs[i] = queued{addr: a, weight: weights[i]}
	}
	name := "rb weighted " + formatWeights(weights)
	r, err := e.startRB(ctx, name, "weighted", qs)
	if err != nil {
		return etaRow{}, err
	}
	defer e.procs.stop(r.p)
	bs.Reset()
	// Bounded in time as well as in count.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	failed, elapsed, err := sendN(sctx, r.url, e.cfg.etaRequests, e.cfg.etaConns)
	if err != nil {
		return etaRow{}, fmt.Errorf("%s: %w", name, err)
	}
	counts := bs.Hits()
	eta, err := efficiency(counts, weights)
	if err != nil {
		return etaRow{}, fmt.Errorf("%s: %w", name, err)
	}
	return etaRow{weights: weights, counts: counts, eta: eta, failed: failed, elapsed: elapsed}, nil
}

// idealEfficiency is the median η of trials exact categorical samplers of n
// draws over weights: what sampling noise alone gives, so the proxy's η can
// be judged against it. Seeded: the same inputs give the same value.
func idealEfficiency(weights []float64, n, trials int, seed uint64) float64 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	total := 0.0
	for _, w := range weights {
		total += w
	}
	etas := make([]float64, trials)
	counts := make([]int64, len(weights))
	for t := range trials {
		clear(counts)
		for range n {
			u := rng.Float64() * total
			i := 0
			for ; i < len(weights)-1; i++ {
				if u < weights[i] {
					break
				}
				u -= weights[i]
			}
			counts[i]++
		}
		etas[t], _ = efficiency(counts, weights)
	}
	slices.Sort(etas)
	return etas[trials/2]
}

// hetTargetKeys name the targets of the heterogeneous part, for -het-targets.
var hetTargetKeys = []string{"p2c", "weighted", "round-robin", "haproxy", "nginx", "fast-only", "direct"}

// hetRow is one open-loop run over the heterogeneous backends.
type hetRow struct {
	target    string
	rate      int
	res       vegetaResult
	hits      []int64
	slowShare float64
	reference bool
	stall     float64 // share of the run with a task waiting for a CPU; -1 unknown
	// ewmaFast and ewmaSlow are rb's own latency estimates (median of its
	// 1 s reports) of the fast backends (their median) and the slow one;
	// 0 when not rb or not reported.
	ewmaFast, ewmaSlow float64
}

// heterogeneous runs open-loop loads over three fast backends and one slow
// one through each policy, and records latency and the slow backend's share.
func (e *env) heterogeneous(ctx context.Context, rep *report) error {
	c := e.cfg
	bs, err := startBackends([]time.Duration{c.fast, c.fast, c.fast, c.slow}, e.log)
	if err != nil {
		return err
	}
	defer bs.Close()
	addrs := bs.Addrs()
	all := func() []queued {
		q := make([]queued, len(addrs))
		for i, a := range addrs {
			q[i] = queued{addr: a, weight: 100}
		}
		return q
	}
	type target struct {
		key, name string
		reference bool
		start     func() (*running, error)
	}
	var targets []target
	if c.rb != "" {
		for _, pol := range []string{"p2c", "weighted", "round-robin"} {
			targets = append(targets, target{key: pol, name: "rb " + pol, start: func() (*running, error) {
				return e.startRB(ctx, "rb-"+pol, pol, all())
			}})
		}
	}
	targets = append(targets,
		target{key: "haproxy", name: "HAProxy leastconn", start: func() (*running, error) {
			return e.startHAProxy(ctx, "haproxy-leastconn", "leastconn", addrs)
		}},
		target{key: "nginx", name: "NGINX least_conn", start: func() (*running, error) {
			return e.startNGINX(ctx, "nginx-least_conn", "least_conn", addrs)
		}},
	)
	if c.rb != "" {
		targets = append(targets, target{key: "fast-only", name: "reference: rb round-robin over the 3 fast backends only", reference: true, start: func() (*running, error) {
			return e.startRB(ctx, "rb-fast-only", "round-robin", all()[:3])
		}})
	}
	targets = append(targets, target{key: "direct", name: "reference: one fast backend directly, no proxy", reference: true, start: func() (*running, error) {
		return &running{name: "direct", url: "http://" + addrs[0] + "/"}, nil
	}})
	targets = slices.DeleteFunc(targets, func(t target) bool { return !c.hetTargets[t.key] })
	for i, t := range targets {
		r, err := t.start()
		if err != nil {
			return err
		}
		for _, rate := range c.hetRates {
			name := fmt.Sprintf("het-%d-%d", i, rate)
			if c.hetWarmup >= time.Second {
				if _, err := runVegeta(ctx, c.vegeta, e.dir, name+"-warmup", rate, c.hetWarmup, r.url); err != nil {
					return fmt.Errorf("warm up %s at %d/s: %w", t.name, rate, err)
				}
			}
			bs.Reset()
			var watch *ewmaWatch
			if r.nats != "" {
				if watch, err = watchEWMA(r.nats); err != nil {
					return err
				}
			}
			stall := startStall()
			res, err := runVegeta(ctx, c.vegeta, e.dir, name, rate, c.hetDuration, r.url)
			var ewma map[string]float64
			if watch != nil {
				ewma = watch.Stop()
			}
			if err != nil {
				return fmt.Errorf("%s at %d/s: %w", t.name, rate, err)
			}
			hits := bs.Hits()
			if !bs.WaitIdle(ctx, 10*time.Second) {
				e.log.Warn("backends still busy 10 s after the run", "target", t.name, "rate", rate)
			}
			var sum int64
			for _, h := range hits {
				sum += h
			}
			row := hetRow{target: t.name, rate: rate, res: res, hits: hits, reference: t.reference, stall: stall.Share()}
			if sum > 0 {
				row.slowShare = float64(hits[3]) / float64(sum)
			}
			if len(ewma) > 0 {
				var fast []float64
				for _, a := range addrs[:3] {
					if v, ok := ewma[a]; ok {
						fast = append(fast, v)
					}
				}
				if len(fast) > 0 {
					slices.Sort(fast)
					row.ewmaFast = fast[len(fast)/2]
				}
				row.ewmaSlow = ewma[addrs[3]]
			}
			e.log.Info("vegeta", "target", t.name, "rate", rate, "p50", res.P50, "p99", res.P99, "p99.9", res.P999,
				"slow share", fmt.Sprintf("%.2f%%", 100*row.slowShare), "ok", res.OK, "requests", res.Requests,
				"ewma fast", row.ewmaFast, "ewma slow", row.ewmaSlow)
			rep.het = append(rep.het, row)
		}
		if r.p == nil {
			continue
		}
		if err := e.procs.stop(r.p); err != nil {
			e.log.Warn("stop", "target", t.name, "err", err)
		}
	}
	return nil
}
