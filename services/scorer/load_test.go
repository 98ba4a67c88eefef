package scorer_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

var (
	load           = flag.Bool("load", false, "run TestLoad1000: Sample → Score latency and scorer CPU under load")
	loadContainers = flag.Int("load.containers", 1000, "simulated containers")
	loadDuration   = flag.Duration("load.duration", 25*time.Second, "measured time, after a warm-up")
	loadWarmup     = flag.Duration("load.warmup", 5*time.Second, "time before measuring")
	loadBurst      = flag.Bool("load.burst", false, "all containers sample at the same instant each second (default: spread over the second)")
)

// TestLoad1000 measures the Sample → Score latency through JetStream and the
// CPU the scorer uses, with -load.containers simulated containers sending one
// Sample a second each. The scorer runs as its own process (`rb
// -target=scorer`, built here), so its CPU is measured alone; the NATS server,
// the load generator and the Score subscriber share this test's process.
//
//	go test ./services/scorer -run TestLoad1000 -v -args -load
func TestLoad1000(t *testing.T) {
	if !*load {
		t.Skip("load test: run with -args -load")
	}
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	rs := redistest.Start(t)

	bin := filepath.Join(t.TempDir(), "rb")
	if out, err := exec.Command("go", "build", "-o", bin, "../rb").CombinedOutput(); err != nil {
		t.Fatalf("build rb: %v\n%s", err, out)
	}
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "-target=scorer")
	cmd.Env = append(os.Environ(), "APP_IDENTIFIER="+app, "RB_NATS_URL="+url, "RB_REDIS_URL="+rs.URL(),
		"RB_ADMIN_ADDR="+adminAddr, "RB_LOG_LEVEL=warn")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("scorer log:\n%s", stderr.String())
		}
	})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, err := b.JetStream().Consumer(context.Background(), events.StreamStats, "scorer_"+app); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("scorer exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scorer's consumer did not appear within a minute")
		}
	}

	// Scores, read as plain NATS messages: the latency is receive time − the
	// Score's event time, which is its Sample's, stamped at publication.
	var (
		mu        sync.Mutex
		latencies []time.Duration
		measuring bool
		received  int
	)
	sub, err := b.Conn().Subscribe(events.PrefixScore+app+".>", func(m *nats.Msg) {
		now := time.Now()
		meta, err := events.PeekMeta(m.Data)
		if err != nil {
			t.Errorf("bad score: %v", err)
			return
		}
		mu.Lock()
		received++
		if measuring {
			latencies = append(latencies, now.Sub(meta.Time))
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}

	n := *loadContainers
	subjects := make([]string, n)
	for i := range subjects {
		subjects[i], _ = events.StatsSubject(app, fmt.Sprintf("worker-%04d", i))
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var published, late int
	var (
		burstMu sync.Mutex
		bursts  []time.Duration // time to store a whole burst, measured
	)
	measuringNow := func() bool { mu.Lock(); defer mu.Unlock(); return measuring }
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		start := time.Now().Truncate(time.Second).Add(time.Second)
		for round := 0; ; round++ {
			if *loadBurst {
				// As the collector does: every container's Sample stamped
				// with the same tick, published at once.
				at := start.Add(time.Duration(round) * time.Second)
				if d := time.Until(at); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				futs := make([]jetstream.PubAckFuture, 0, n)
				for i := range n {
					ev := sample(fmt.Sprintf("worker-%04d", i), round)
					ev.ID, ev.Time = fmt.Sprintf("worker-%04d-%d", i, round), at
					data, err := events.Encode(ev)
					if err != nil {
						t.Error(err)
						return
					}
					f, err := b.JetStream().PublishAsync(subjects[i], data, jetstream.WithMsgID(ev.ID))
					if err != nil {
						if ctx.Err() == nil {
							t.Errorf("publish: %v", err)
						}
						return
					}
					futs = append(futs, f)
				}
				for _, f := range futs {
					select {
					case <-f.Ok():
						published++
					case err := <-f.Err():
						t.Errorf("publish: %v", err)
						return
					case <-ctx.Done():
						return
					}
				}
				if d := time.Since(at); measuringNow() {
					burstMu.Lock()
					bursts = append(bursts, d)
					burstMu.Unlock()
				} else if d > time.Second {
					late++
				}
				continue
			}
			for i := range n {
				at := start.Add(time.Duration(round)*time.Second + time.Duration(i)*time.Second/time.Duration(n))
				if d := time.Until(at); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				} else if d < -100*time.Millisecond {
					late++
				}
				if ctx.Err() != nil {
					return
				}
				ev := sample(fmt.Sprintf("worker-%04d", i), round)
				ev.ID = fmt.Sprintf("worker-%04d-%d", i, round)
				ev.Time = time.Now().UTC()
				data, err := events.Encode(ev)
				if err == nil {
					err = b.Publish(ctx, subjects[i], ev.ID, data)
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("publish: %v", err)
					}
					return
				}
				published++
			}
		}
	}()

	time.Sleep(*loadWarmup)
	proc0, _ := scrapeHistogram(adminAddr, "rb_scorer_processing_seconds")
	cpu0 := procCPU(t, cmd.Process.Pid)
	self0 := procCPU(t, os.Getpid())
	mu.Lock()
	measuring = true
	mu.Unlock()
	t0 := time.Now()
	time.Sleep(*loadDuration)
	mu.Lock()
	measuring = false
	lat := slices.Clone(latencies)
	mu.Unlock()
	elapsed := time.Since(t0)
	cpu1 := procCPU(t, cmd.Process.Pid)
	proc1, procErr := scrapeHistogram(adminAddr, "rb_scorer_processing_seconds")
	self1 := procCPU(t, os.Getpid())
	stop()
	<-genDone

	if len(lat) == 0 {
		t.Fatal("no scores measured")
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	scorerCPU := (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	selfCPU := (self1 - self0).Seconds() / elapsed.Seconds()
	mode := "spread over each second"
	if *loadBurst {
		mode = "all at the same instant each second"
	}
	t.Logf("%d containers at 1 Hz (%s), measured %v after %v warm-up", n, mode, elapsed.Round(time.Millisecond), *loadWarmup)
	lateWhat := "published >100 ms late"
	if *loadBurst {
		lateWhat = "bursts that took >1 s to publish"
	}
	t.Logf("scores measured %d (%.0f/s); samples published %d, %s: %d", len(lat), float64(len(lat))/elapsed.Seconds(), published, lateWhat, late)
	t.Logf("sample → score latency: p50 %v  p90 %v  p99 %v  p99.9 %v  max %v",
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond),
		pct(0.999).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	t.Logf("scorer process CPU: %.1f%% of one core (%.2f ms per sample); test process (NATS server, generator, subscriber): %.1f%%",
		100*scorerCPU, 1000*(cpu1-cpu0).Seconds()/float64(len(lat)), 100*selfCPU)
	burstMu.Lock()
	if len(bursts) > 0 {
		slices.Sort(bursts)
		t.Logf("time to store a burst of %d Samples (generator's last ack): median %v, max %v", n, bursts[len(bursts)/2].Round(time.Millisecond), bursts[len(bursts)-1].Round(time.Millisecond))
	}
	burstMu.Unlock()
	if procErr == nil {
		d := proc1.minus(proc0)
		t.Logf("scorer's share, Sample stored in RB_STATS → Score stored (its histogram, interpolated): p50 ≈ %v  p99 ≈ %v  (%d scores)",
			d.quantile(0.5).Round(10*time.Microsecond), d.quantile(0.99).Round(10*time.Microsecond), int(d.count()))
	}
	if m, err := scrape(adminAddr, "rb_scorer_scores_published_total"); err == nil {
		t.Logf("scorer's own count of scores published: %s", m)
	}
	if want := float64(n) * elapsed.Seconds() * 0.95; float64(len(lat)) < want {
		t.Errorf("only %d scores in %v, want about %d: the scorer fell behind", len(lat), elapsed, n*int(elapsed.Seconds()))
	}
}

// procCPU is the user + system CPU time of process pid, from /proc.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read CPU time of %d: %v", pid, err)
	}
	// Fields after the command name (which may hold spaces) start at state (3).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64) // field 14
	stime, _ := strconv.ParseFloat(f[12], 64) // field 15
	return time.Duration((utime + stime) / clockTicks() * float64(time.Second))
}

var (
	ticksOnce sync.Once
	ticks     = 100.0 // USER_HZ on Linux unless getconf says otherwise
)

func clockTicks() float64 {
	ticksOnce.Do(func() {
		if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
				ticks = v
			}
		}
	})
	return ticks
}

// scrape returns the value line of metric from the admin listener's /metrics.
func scrape(addr, metric string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), metric+" ") {
			return sc.Text(), nil
		}
	}
	return "", fmt.Errorf("%s not found", metric)
}

// histogram is a Prometheus histogram's cumulative buckets: upper bound → count.
type histogram struct {
	le     []float64
	counts []float64
}

// scrapeHistogram reads metric's buckets from the admin listener.
func scrapeHistogram(addr, metric string) (histogram, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	var h histogram
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), metric+`_bucket{le="`)
		if !ok {
			continue
		}
		le, val, _ := strings.Cut(rest, `"} `)
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(val, 64)
		if err1 != nil || err2 != nil {
			continue // +Inf is the count, kept below
		}
		h.le, h.counts = append(h.le, bound), append(h.counts, n)
	}
	if len(h.le) == 0 {
		return h, fmt.Errorf("%s not found", metric)
	}
	return h, nil
}

func (h histogram) minus(o histogram) histogram {
	out := histogram{le: h.le, counts: slices.Clone(h.counts)}
	for i := range out.counts {
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

func (h histogram) count() float64 { return h.counts[len(h.counts)-1] }

// quantile interpolates linearly inside the bucket that holds it.
func (h histogram) quantile(q float64) time.Duration {
	want := q * h.count()
	lo, below := 0.0, 0.0
	for i, n := range h.counts {
		if n >= want && n > below {
			v := lo + (h.le[i]-lo)*(want-below)/(n-below)
			return time.Duration(v * float64(time.Second))
		}
		lo, below = h.le[i], n
	}
	return time.Duration(h.le[len(h.le)-1] * float64(time.Second))
}
