package collector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/admin"
	rt "github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/pkg/testutil/dockertest"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/services/collector"
)

const (
	workerPort = 8080
	interval   = 250 * time.Millisecond
)

// fastHealth makes the worker's HEALTHCHECK report within about a second.
// Each check runs a process in the container, CPU that counts as the
// worker's: once a second keeps an idle worker near 1 %.
var fastHealth = &container.HealthConfig{
	Test: []string{"CMD", "/worker", "-health"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 3,
}

func baseConfig(app, network string) collector.Config {
	return collector.Config{
		App: app, Network: network, Port: workerPort, Interval: interval,
		Probe: collector.ProbeHTTP, ProbePath: "/healthz", ProbeTimeout: time.Second,
		Node: "test", RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond,
	}
}

// TestDocker runs the collector against the real engine; the subtests share
// the worker image and run in parallel.
func TestDocker(t *testing.T) {
	t.Parallel()
	image := dockertest.WorkerImage(t)
	t.Run("workers", func(t *testing.T) { t.Parallel(); testWorkers(t, image) })
	t.Run("probe", func(t *testing.T) { t.Parallel(); testProbeWorker(t, image) })
	t.Run("resume", func(t *testing.T) { t.Parallel(); testResume(t, image) })
}

// testWorkers: two labelled workers (rb.app and the legacy label) and two
// that are not the app's; Samples for exactly the two, CPU follows load,
// lifecycle facts from Docker, and a stopped worker's Samples stop.
func testWorkers(t *testing.T, image string) {
	cli := dockertest.Client(t)
	netw := dockertest.Network(t)
	app := "rbtest" + randomHex(t)
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	rec := record(t, b, app)

	// The collector starts first: the workers are seen through Docker's events.
	col := startCollector(t, baseConfig(app, netw), newDocker(t, ""), b)
	waitFor(t, "the collector to be ready", func() bool { return col.svc.Ready() == nil })

	nameA, nameB := "rbt-"+app+"-a", "rbt-"+app+"-b"
	idA := dockertest.Run(t, dockertest.RunSpec{Image: image, Name: nameA, Network: netw, Healthcheck: fastHealth,
		Labels: map[string]string{rt.LabelApp: app}})
	idB := dockertest.Run(t, dockertest.RunSpec{Image: image, Name: nameB, Network: netw, Healthcheck: fastHealth,
		Labels: map[string]string{rt.LabelLegacy: app}})
	dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Labels: map[string]string{"team": app}})
	dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Labels: map[string]string{rt.LabelApp: app + "-other"}})

	ipOf := func(id string) string {
		r, err := cli.ContainerInspect(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return r.NetworkSettings.Networks[netw].IPAddress
	}
	addrA, addrB := fmt.Sprintf("%s:%d", ipOf(idA), workerPort), fmt.Sprintf("%s:%d", ipOf(idB), workerPort)

	// A fresh worker is visible at once: a Sample soon after its start fact.
	for _, w := range []struct{ name, id, addr string }{{nameA, idA, addrA}, {nameB, idB, addrB}} {
		waitFor(t, w.name+" started and sampled with a passing probe", func() bool {
			ss := rec.samplesOf(w.name)
			return len(rec.factsOf(w.name, events.PhaseStarted)) > 0 && len(ss) > 0 && ss[len(ss)-1].Data.ProbeOK
		})
		start := rec.factsOf(w.name, events.PhaseStarted)[0]
		first := rec.samplesOf(w.name)[0]
		if lag := first.Time.Sub(start.Time); lag > 2*time.Second {
			t.Errorf("%s: first Sample %v after its start", w.name, lag)
		}
		if start.Data.ContainerID != w.id || start.Data.Address != w.addr || start.Source != "collector/test" {
			t.Errorf("%s: started fact %+v, want id %s, address %s, source collector/test", w.name, start, w.id, w.addr)
		}
		last := rec.samplesOf(w.name)
		s := last[len(last)-1]
		if s.Data.ContainerID != w.id || s.Data.Address != w.addr || s.Data.State != "running" || s.Data.App != app ||
			s.Data.ProbeSeconds <= 0 || s.Data.ProbeError != "" || s.Data.CPULimit != 0 {
			t.Errorf("%s: Sample %+v, want id %s, address %s, running, probe ok", w.name, s.Data, w.id, w.addr)
		}
		if want := fmt.Sprintf("%s-%d", w.name, s.Time.UnixNano()); s.ID != want || s.Source != "collector/test" {
			t.Errorf("%s: Sample id %q source %q, want %q collector/test", w.name, s.ID, s.Source, want)
		}
	}
	// Rates need two stats readings, about a second.
	for _, name := range []string{nameA, nameB} {
		waitFor(t, name+" sampled with rates and memory", func() bool {
			ss := rec.samplesOf(name)
			s := ss[len(ss)-1].Data
			return s.WindowSeconds > 0 && s.MemUsage > 0 && s.MemLimit > 0
		})
	}
	for _, name := range []string{nameA, nameB} {
		waitFor(t, name+" reported healthy", func() bool {
			hs := rec.factsOf(name, events.PhaseHealth)
			return len(hs) > 0 && hs[len(hs)-1].Data.Reason == "healthy"
		})
	}

	// Load A: three requests at a time burning CPU, until a Sample shows it
	// (however busy the machine is).
	burnFrom := time.Now()
	loadCtx, stopLoad := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				req, _ := http.NewRequestWithContext(loadCtx, http.MethodGet, "http://"+addrA+"/work?cpu_ms=1000", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					if loadCtx.Err() == nil {
						t.Errorf("load %s: %v", nameA, err)
					}
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	waitFor(t, nameA+" Sample CPU to rise", func() bool { return peakCPU(rec.samplesOf(nameA), burnFrom) >= 20 })
	stopLoad()
	wg.Wait()
	peakA, peakB := peakCPU(rec.samplesOf(nameA), burnFrom), peakCPU(rec.samplesOf(nameB), burnFrom)
	t.Logf("CPU under load: %s peak %.1f %%, idle %s peak %.2f %%", nameA, peakA, nameB, peakB)
	if peakB > peakA/3 {
		t.Errorf("idle %s peaked at %.1f %% CPU, loaded %s at %.1f %%: want the loaded one well above", nameB, peakB, nameA, peakA)
	}
	// The same Samples through the pure scoring: A's CPU score drops below B's.
	scoreA, scoreB := lowestCPUScore(t, rec.samplesOf(nameA)), lowestCPUScore(t, rec.samplesOf(nameB))
	if scoreA >= scoreB {
		t.Errorf("lowest CPU score: loaded %s %.1f, idle %s %.1f; want the loaded one lower", nameA, scoreA, nameB, scoreB)
	}

	// Stop A: a died fact, and its Samples stop while B's go on.
	stopTimeout := 2
	if err := cli.ContainerStop(t.Context(), idA, container.StopOptions{Timeout: &stopTimeout}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, nameA+" died fact", func() bool { return len(rec.factsOf(nameA, events.PhaseDied)) > 0 })
	died := rec.factsOf(nameA, events.PhaseDied)[0]
	if !strings.HasPrefix(died.Data.Reason, "exit code ") || died.Data.ContainerID != idA || died.Data.Address != addrA {
		t.Errorf("died fact %+v, want reason \"exit code N\", id %s and its last address %s", died.Data, idA, addrA)
	}
	// The collector drops A from its Samples when it handles the die event,
	// before it publishes the died fact; a tick that began before may still
	// publish, but is stamped before. So every Sample of A, however late it
	// arrives, is stamped before the died fact arrived here. (Docker's event
	// time is no bound: the event may reach the collector late on a busy
	// machine.)
	diedArrived := rec.arrivedAt(died.ID)
	nB := len(rec.samplesOf(nameB))
	waitFor(t, "four more Samples of "+nameB, func() bool { return len(rec.samplesOf(nameB)) >= nB+4 })
	for _, s := range rec.samplesOf(nameA) {
		if s.Time.After(diedArrived) {
			t.Errorf("%s sampled at %v, after its died fact (Docker time %v) arrived at %v", nameA, s.Time, died.Time, diedArrived)
		}
	}

	if got, want := rec.containers(), []string{nameA, nameB}; !slices.Equal(got, want) {
		t.Errorf("Samples of %v, want exactly %v", got, want)
	}
	if bad := rec.badSubjects(); len(bad) > 0 {
		t.Errorf("events on subjects that do not match their payload: %v", bad)
	}
	if n := metric(t, col.reg, "rb_collector_containers_watched"); n != 1 {
		t.Errorf("containers watched = %v, want 1", n)
	}
	if n := metric(t, col.reg, "rb_collector_probe_seconds"); n < 4 {
		t.Errorf("probe latency observations = %v, want several", n)
	}
	if n := metric(t, col.reg, "rb_collector_publish_errors_total"); n != 0 {
		t.Errorf("publish errors = %v, want 0", n)
	}
	if n := metric(t, col.reg, "rb_collector_docker_reconnects_total"); n != 0 {
		t.Errorf("docker reconnects = %v, want 0", n)
	}
}

// peakCPU is the highest CPUPercent of the Samples stamped after from.
func peakCPU(ss []events.Event[events.Sample], from time.Time) float64 {
	peak := 0.0
	for _, s := range ss {
		if s.Time.After(from) {
			peak = max(peak, s.Data.CPUPercent)
		}
	}
	return peak
}

// lowestCPUScore runs the Samples through pkg/score and returns the lowest
// CPU score.
func lowestCPUScore(tb testing.TB, ss []events.Event[events.Sample]) float64 {
	tb.Helper()
	slices.SortFunc(ss, func(a, b events.Event[events.Sample]) int { return a.Time.Compare(b.Time) })
	p := score.DefaultParams()
	st := score.NewState(p)
	lowest := 100.0
	for _, s := range ss {
		lowest = min(lowest, st.Update(p, s.Data).CPU)
	}
	return lowest
}

// testProbeWorker probes a real worker in both modes, then on a closed port
// and after it stopped; and a collector probing a closed port says so in
// its Samples.
func testProbeWorker(t *testing.T, image string) {
	cli := dockertest.Client(t)
	netw := dockertest.Network(t)
	app := "rbtest" + randomHex(t)
	id := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Labels: map[string]string{rt.LabelApp: app}})
	r, err := cli.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	ip := r.NetworkSettings.Networks[netw].IPAddress
	addr := fmt.Sprintf("%s:%d", ip, workerPort)
	probe := func(mode, path, addr string, timeout time.Duration) collector.ProbeResult {
		p, err := collector.NewProber(mode, path, timeout)
		if err != nil {
			t.Fatal(err)
		}
		return p.Probe(t.Context(), addr)
	}
	waitFor(t, "the worker to answer", func() bool { return probe(collector.ProbeHTTP, "/healthz", addr, time.Second).OK })

	tests := []struct {
		name       string
		mode, path string
		addr       string
		wantOK     bool
		wantErr    string
	}{
		{name: "tcp", mode: collector.ProbeTCP, addr: addr, wantOK: true},
		{name: "http", mode: collector.ProbeHTTP, path: "/healthz", addr: addr, wantOK: true},
		{name: "http bad request", mode: collector.ProbeHTTP, path: "/work?cpu_ms=lots", addr: addr, wantErr: "status 400"},
		{name: "tcp closed port", mode: collector.ProbeTCP, addr: ip + ":9", wantErr: "connection refused"},
		{name: "http closed port", mode: collector.ProbeHTTP, path: "/healthz", addr: ip + ":9", wantErr: "connection refused"},
	}
	for _, tt := range tests {
		res := probe(tt.mode, tt.path, tt.addr, time.Second)
		if res.OK != tt.wantOK || (tt.wantOK && res.Err != nil) || (!tt.wantOK && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.wantErr))) {
			t.Errorf("%s: Probe = %+v, want OK %v, error containing %q", tt.name, res, tt.wantOK, tt.wantErr)
		}
	}

	// A collector probing a port the worker does not listen on.
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	rec := record(t, b, app)
	cfg := baseConfig(app, netw)
	cfg.Port, cfg.Probe = 9, collector.ProbeTCP
	startCollector(t, cfg, newDocker(t, ""), b)
	name := strings.TrimPrefix(r.Name, "/")
	waitFor(t, "a Sample with a failed probe", func() bool {
		ss := rec.samplesOf(name)
		return len(ss) > 0 && ss[len(ss)-1].Data.ProbeError != "" && !strings.Contains(ss[len(ss)-1].Data.ProbeError, "not probed")
	})
	ss := rec.samplesOf(name)
	if s := ss[len(ss)-1].Data; s.ProbeOK || !strings.Contains(s.ProbeError, "connection refused") || s.Address != ip+":9" {
		t.Errorf("Sample %+v, want a refused probe of %s:9", s, ip)
	}

	// A stopped worker: its old address answers no more, within the timeout.
	stopTimeout := 2
	if err := cli.ContainerStop(t.Context(), id, container.StopOptions{Timeout: &stopTimeout}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{collector.ProbeTCP, collector.ProbeHTTP} {
		const timeout = 500 * time.Millisecond
		start := time.Now()
		res := probe(mode, "/healthz", addr, timeout)
		if res.OK || res.Err == nil {
			t.Errorf("%s probe of a stopped worker = %+v, want a failure", mode, res)
		}
		if d := time.Since(start); d > timeout+500*time.Millisecond {
			t.Errorf("%s probe of a stopped worker took %v, timeout %v", mode, d, timeout)
		}
	}
}

// testResume cuts the collector off the engine and back: not ready while
// cut off, re-listed and caught up after, the death it missed published once.
func testResume(t *testing.T, image string) {
	cli := dockertest.Client(t)
	netw := dockertest.Network(t)
	app := "rbtest" + randomHex(t)
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	rec := record(t, b, app)
	proxy := newSockProxy(t, cli.DaemonHost())

	// The engine is unreachable at start.
	col := startCollector(t, baseConfig(app, netw), newDocker(t, proxy.host()), b)
	waitFor(t, "two reconnect attempts", func() bool { return metric(t, col.reg, "rb_collector_docker_reconnects_total") >= 2 })
	if err := col.svc.Ready(); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("Ready() = %v, want not ready, starting", err)
	}
	id := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Labels: map[string]string{rt.LabelApp: app}})
	r, err := cli.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(r.Name, "/")

	// Reachable: the running worker is found by the list.
	proxy.start(t)
	waitFor(t, "ready once the engine answers", func() bool { return col.svc.Ready() == nil })
	waitFor(t, "Samples of the listed worker", func() bool { return len(rec.samplesOf(name)) >= 2 })
	// It started while the engine was unreachable, after the collector's
	// first attempt: the engine's history since that attempt is caught up.
	waitFor(t, "the started fact caught up", func() bool { return len(rec.factsOf(name, events.PhaseStarted)) > 0 })

	// Cut off; the worker dies meanwhile.
	proxy.stop()
	waitFor(t, "not ready once cut off", func() bool { return col.svc.Ready() != nil })
	if m := metric(t, col.reg, "rb_collector_docker_up"); m != 0 {
		t.Errorf("rb_collector_docker_up = %v while cut off, want 0", m)
	}
	stopTimeout := 2
	if err := cli.ContainerStop(t.Context(), id, container.StopOptions{Timeout: &stopTimeout}); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()

	// Back: the death is caught up from the engine's history, once.
	proxy.start(t)
	waitFor(t, "ready again", func() bool { return col.svc.Ready() == nil })
	waitFor(t, "the missed died fact", func() bool { return len(rec.factsOf(name, events.PhaseDied)) > 0 })
	// A negative check, so a bounded wait: nothing more may come.
	n := len(rec.samplesOf(name))
	time.Sleep(4 * interval)
	if got := len(rec.samplesOf(name)); got != n {
		t.Errorf("%d Samples of %s after its death was caught up, want none", got-n, name)
	}
	for _, s := range rec.samplesOf(name) {
		if s.Data.State != "running" {
			t.Errorf("Sample in state %q", s.Data.State)
		}
	}
	// The second catch-up re-reads the start too: the stream drops the copy.
	for _, phase := range []events.Phase{events.PhaseStarted, events.PhaseDied} {
		if got := len(rec.factsOf(name, phase)); got != 1 {
			t.Errorf("%d %s facts, want 1", got, phase)
		}
	}
	if m := metric(t, col.reg, "rb_collector_containers_watched"); m != 0 {
		t.Errorf("containers watched = %v after the death, want 0", m)
	}
	t.Logf("worker stopped while cut off; caught up within %v", time.Since(stoppedAt).Round(time.Millisecond))
}

// TestDockerUnreachable: DOCKER_HOST names a socket that does not exist.
// The collector keeps running, retries, reports not ready on the admin
// listener, and stops cleanly.
func TestDockerUnreachable(t *testing.T) {
	t.Parallel()
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	host := "unix://" + t.TempDir() + "/no-docker.sock"
	d, err := rt.NewDocker(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	col := startCollector(t, baseConfig("rbtest"+randomHex(t), ""), d, b)

	adm := admin.New("127.0.0.1:0", slog.New(slog.DiscardHandler))
	adm.AddReady("collector", col.svc.Ready)
	ctx, cancel := context.WithCancel(context.Background())
	admDone := make(chan error, 1)
	go func() { admDone <- adm.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-admDone })
	addr, err := adm.Addr(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	waitFor(t, "three reconnect attempts", func() bool { return metric(t, col.reg, "rb_collector_docker_reconnects_total") >= 3 })
	resp, err := http.Get("http://" + addr.String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no-docker.sock") {
		t.Fatalf("/readyz = %d %s, want 503 naming the engine", resp.StatusCode, body)
	}
	if err := col.svc.Ready(); err == nil {
		t.Fatal("Ready() = nil with no engine")
	}
	if m := metric(t, col.reg, "rb_collector_docker_up"); m != 0 {
		t.Errorf("rb_collector_docker_up = %v, want 0", m)
	}
}

// TestNewRejects names each bad setting.
func TestNewRejects(t *testing.T) {
	t.Parallel()
	ok := baseConfig("shop", "")
	tests := []struct {
		name    string
		change  func(*collector.Config)
		wantErr string
	}{
		{name: "no app", change: func(c *collector.Config) { c.App = "" }, wantErr: "APP_IDENTIFIER"},
		{name: "bad port", change: func(c *collector.Config) { c.Port = 70000 }, wantErr: "TARGET_PORT"},
		{name: "no interval", change: func(c *collector.Config) { c.Interval = 0 }, wantErr: "RB_COLLECT_INTERVAL"},
		{name: "bad probe", change: func(c *collector.Config) { c.Probe = "ping" }, wantErr: "RB_PROBE"},
		{name: "no node", change: func(c *collector.Config) { c.Node = "" }, wantErr: "node"},
	}
	d, err := rt.NewDocker("unix:///nonexistent/docker.sock", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.change(&cfg)
			_, err := collector.New(cfg, d, noPublish{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

type noPublish struct{}

func (noPublish) Publish(context.Context, string, string, []byte) error {
	return errors.New("not connected")
}
