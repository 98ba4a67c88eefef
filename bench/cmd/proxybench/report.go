package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// report collects the figures of one run and prints them as markdown.
type report struct {
	cfg        config
	start, end time.Time
	machine    string
	loadEnd    string
	versions   []string

	wrkTargets []string
	wrk        []wrkRow
	eta        []etaRow
	het        []hetRow
}

// machineNote describes the CPUs, kernel and load at the start.
func machineNote() string {
	// The machine's CPUs, not runtime.NumCPU: the bench itself is pinned.
	model, cpus := "unknown CPU", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "processor":
				cpus++
			case k == "model name" && cpus == 1:
				model = strings.TrimSpace(v)
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d × %s%s; load average at start %s, CPU pressure (PSI some, avg60) %s", cpus, model, kernel, loadAvg(), psiAvg60())
}

// psiAvg60 is the share of the last minute in which a task waited for a CPU.
func psiAvg60() string {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return "unknown"
	}
	for _, f := range strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) {
		if v, ok := strings.CutPrefix(f, "avg60="); ok {
			return v + " %"
		}
	}
	return "unknown"
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// versions asks each tool for its version.
func (e *env) versions(ctx context.Context) []string {
	first := func(name string, args ...string) string {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if len(out) == 0 && err != nil {
			return "unknown (" + err.Error() + ")"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	v := []string{
		first(e.cfg.wrk, "-v"),
		first(e.cfg.haproxy, "-v"),
		first(e.cfg.nginx, "-v"),
		"vegeta " + vegetaVersion(ctx, e.cfg.vegeta),
		"Go " + runtime.Version(),
	}
	if e.cfg.rb != "" {
		v = append(v, "rb "+e.cfg.rbVersion)
	}
	return v
}

// vegetaVersion reads the module version from the binary's build info
// (`go install` leaves vegeta's own -version empty).
func vegetaVersion(ctx context.Context, bin string) string {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "unknown"
	}
	out, err := exec.CommandContext(ctx, "go", "version", "-m", path).Output()
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "mod" {
			return f[1] + " " + f[2]
		}
	}
	return "unknown"
}

// secMs prints seconds as milliseconds; 0 means not reported.
func secMs(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", 1000*v)
}

// pct prints a share in percent; negative means unknown.
func pct(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", 100*v)
}

// us prints a CPU time per request; 0 means not measured.
func us(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// wrkMean averages a target's rounds.
type wrkMean struct {
	rps, p50, p99 float64 // req/s, ms, ms
	cpu           float64 // µs of proxy CPU per request
	errors        int64
}

func (r *report) wrkMeans() map[string]wrkMean {
	sums := map[string]wrkMean{}
	n := map[string]int{}
	for _, w := range r.wrk {
		m := sums[w.target]
		m.rps += w.res.ReqPerSec
		m.p50 += float64(w.res.P50) / float64(time.Millisecond)
		m.p99 += float64(w.res.P99) / float64(time.Millisecond)
		m.cpu += float64(w.cpuPerReq) / float64(time.Microsecond)
		m.errors += w.res.Errors
		sums[w.target] = m
		n[w.target]++
	}
	for k, m := range sums {
		c := float64(n[k])
		m.rps, m.p50, m.p99, m.cpu = m.rps/c, m.p50/c, m.p99/c, m.cpu/c
		sums[k] = m
	}
	return sums
}

func (r *report) markdown() string {
	var b strings.Builder
	c := r.cfg
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## Proxy comparison: rb, HAProxy, NGINX\n\n")
	p("- Run: %s, %s.\n", r.start.UTC().Format("2006-01-02 15:04 MST"), r.end.Sub(r.start).Round(time.Second))
	if c.command != "" {
		p("- Command: `%s`\n", c.command)
	}
	p("- Machine: %s; at the end load %s.\n", r.machine, r.loadEnd)
	if c.proxyCPUs != "" {
		p("- Placement: every proxy under test pinned to CPU %s (`taskset -c %s`) with one worker: HAProxy `nbthread 1`, NGINX `worker_processes 1`, rb GOMAXPROCS = 1 (from its CPU affinity).", c.proxyCPUs, c.proxyCPUs)
	} else {
		p("- Placement: no CPU pinning.")
	}
	if c.placement != "" {
		p(" %s", c.placement)
	}
	p("\n- Versions: %s.\n", strings.Join(r.versions, "; "))
	p("- All on loopback. Backends: fasthttp servers in the bench process answering a %d-byte body. "+
		"The peers do the same header work as rb (X-Forwarded-For/-Proto/-Host, X-Request-Id), keep connections to the backends "+
		"(HAProxy `http-reuse always`, NGINX upstream `keepalive`), no access log. rb runs as `rb -target=nats,proxy` "+
		"(embedded NATS, no Redis) and gets its backends from one queue event (events.QueueSnapshot on rb.queue.bench) "+
		"published once, ACTIVE, with probe latencies unknown (0): there is no collector in this bench.\n\n", len(backendBody))

	if len(r.wrk) > 0 {
		r.wrkSection(&b)
	}
	if len(r.eta) > 0 {
		r.etaSection(&b)
	}
	if len(r.het) > 0 {
		r.hetSection(&b)
	}
	return b.String()
}

func (r *report) wrkSection(b *strings.Builder) {
	c := r.cfg
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### Throughput and latency, closed loop (wrk)\n\n")
	p("`wrk -t%d -c%d -d%s --latency`, after an unmeasured %s run, against one backend directly and through each proxy "+
		"over the same two backends (no sleep); targets interleaved, rounds: %d.\n\n",
		c.wrkThreads, c.wrkConns, c.wrkDuration, c.wrkWarmup, c.rounds)
	p("| target | round | req/s | p50 | p99 | errors | proxy CPU per request | CPU pressure |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range r.wrk {
		p("| %s | %d | %.0f | %s | %s | %d | %s | %s |\n", w.target, w.round, w.res.ReqPerSec, ms(w.res.P50), ms(w.res.P99), w.res.Errors, us(w.cpuPerReq), pct(w.stall))
	}
	means := r.wrkMeans()
	d := means[tDirect]
	p("\nMean of the rounds, and as a ratio to direct:\n\n")
	p("| target | req/s | × direct | p50 | × direct | p99 | × direct | proxy CPU per request |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range r.wrkTargets {
		m := means[t]
		p("| %s | %.0f | %.2f | %.2f ms | %.2f | %.2f ms | %.2f | %s |\n", t, m.rps, m.rps/d.rps, m.p50, m.p50/d.p50, m.p99, m.p99/d.p99,
			us(time.Duration(m.cpu*float64(time.Microsecond))))
	}
	h, hok := means[tHAProxy]
	n, nok := means[tNGINX]
	if !hok || !nok {
		p("\n")
		return
	}
	p("\nCPU pressure is the share of the run's wall time in which some task on the machine waited for a CPU " +
		"(Linux PSI, /proc/pressure/cpu \"some\"): the bench's own load adds to it, other work on the machine is the rest.\n")
	p("\nProxy CPU per request is the CPU time (user + system) of the proxy's processes during the run over the requests wrk counted: " +
		"what each request costs the proxy, much less disturbed by other load on the machine than req/s.\n")
	p("\nGoals (rb with its default policy p2c; round-robin in brackets):\n\n")
	for _, t := range []string{tRBP2C, tRBRR} {
		if _, ok := means[t]; !ok {
			return
		}
	}
	rb, rr := means[tRBP2C], means[tRBRR]
	p("| goal | measured | verdict |\n|---|---|---|\n")
	p("| rb req/s ≥ NGINX | %.0f vs %.0f: %.2f × (%.2f ×) | %s |\n", rb.rps, n.rps, rb.rps/n.rps, rr.rps/n.rps, verdict(rb.rps >= n.rps))
	p("| rb req/s ≥ 0.9 × HAProxy | %.0f vs %.0f: %.2f × (%.2f ×) | %s |\n", rb.rps, h.rps, rb.rps/h.rps, rr.rps/h.rps, verdict(rb.rps >= 0.9*h.rps))
	p("| rb p99 ≤ 1.2 × HAProxy p99 | %.2f ms vs %.2f ms: %.2f × (%.2f ×) | %s |\n", rb.p99, h.p99, rb.p99/h.p99, rr.p99/h.p99, verdict(rb.p99 <= 1.2*h.p99))
	p("| (for reference) proxy CPU per request | rb %.1f µs (%.1f µs), HAProxy %.1f µs, NGINX %.1f µs | |\n\n", rb.cpu, rr.cpu, h.cpu, n.cpu)
}

func (r *report) etaSection(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### Distribution efficiency (rb, RB_BALANCE_POLICY=weighted)\n\n")
	p("η = min(r_i/w_i) / max(r_i/w_i) over %d requests (closed loop, %d connections), r_i counted at the backends. "+
		"\"Exact sampler\" is the median η of 201 simulated exact categorical samplers of the same count: the best a random pick can expect.\n\n",
		r.cfg.etaRequests, r.cfg.etaConns)
	p("| weights | requests per backend | η | exact sampler | paper | η ≥ paper |\n|---|---|---:|---:|---:|---|\n")
	for _, e := range r.eta {
		counts := make([]string, len(e.counts))
		for i, c := range e.counts {
			counts[i] = fmt.Sprint(c)
		}
		p("| %s | %s | %.3f | %.3f | %.3f | %s |\n", formatWeights(e.weights), strings.Join(counts, " / "), e.eta, e.ideal, e.paper, verdict(e.eta >= e.paper))
	}
	p("\n")
}

func (r *report) hetSection(b *strings.Builder) {
	c := r.cfg
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### Heterogeneous backends, open loop (vegeta)\n\n")
	p("Four backends, three sleeping %s per request and one %s; vegeta attack at a constant rate for %s after an unmeasured %s "+
		"at the same rate (vegeta -timeout %s: a request unanswered by then fails with that latency; -max-workers %d: when that many requests hang, "+
		"vegeta sends late rather than opening ever more connections); latency of every request, failed ones included "+
		"(nearest rank); sent/s is the rate vegeta achieved (below the target rate when the load generator itself was starved); "+
		"slow share = requests the slow backend answered / all, counted at the backends. "+
		"rb gets equal weights; its p2c learns latencies from live answers only (no probes in this bench). "+
		"\"rb's latency EWMA\" is what the rb proxy itself reports (rb.proxy.bench.*, every second): the median over the run of the fast backends' "+
		"estimate and of the slow one's, over the seconds in which each got requests.\n\n",
		c.fast, c.slow, c.hetDuration, c.hetWarmup, vegetaTimeout, vegetaMaxWorkers)
	p("| target | rate | sent/s | ok | p50 | p99 | p99.9 | max | slow share | rb's latency EWMA fast / slow | CPU pressure |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, h := range r.het {
		share := fmt.Sprintf("%.2f %%", 100*h.slowShare)
		if h.reference {
			share = "–"
		}
		ewma := "–"
		if h.ewmaFast > 0 || h.ewmaSlow > 0 {
			ewma = secMs(h.ewmaFast) + " / " + secMs(h.ewmaSlow)
		}
		p("| %s | %d | %.0f | %d/%d | %s | %s | %s | %s | %s | %s | %s |\n", h.target, h.rate, h.res.Rate, h.res.OK, h.res.Requests,
			ms(h.res.P50), ms(h.res.P99), ms(h.res.P999), ms(h.res.Max), share, ewma, pct(h.stall))
	}
	var goal []string
	for _, h := range r.het {
		if h.target != "rb p2c" {
			continue
		}
		ok := h.res.P99 <= 5*time.Millisecond && h.slowShare <= 0.01
		goal = append(goal, fmt.Sprintf("| rb p2c at %d/s: p99 ≤ 5 ms, slow share ≤ 1 %% | p99 %s, slow share %.2f %% | %s |", h.rate, ms(h.res.P99), 100*h.slowShare, verdict(ok)))
	}
	if len(goal) > 0 {
		p("\n| goal | measured | verdict |\n|---|---|---|\n%s\n", strings.Join(goal, "\n"))
	}
	p("\n")
}
