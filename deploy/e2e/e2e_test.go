//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// Bounds of the phases; the whole test stays under about 6 minutes plus the
// image build.
const (
	upTimeout        = 8 * time.Minute // builds the binaries and images, then waits for health
	firstAnswerWait  = 60 * time.Second
	scaleUpWait      = 150 * time.Second
	holdAfterScaleUp = 20 * time.Second
	scaleDownWait    = 180 * time.Second
	downTimeout      = 2 * time.Minute
)

// The loads: "heavy" asks for a little more than one worker's 0.5 core (14
// req/s of 40 ms of CPU: 0.56 core), enough to scale to the maximum of 3
// without queueing up much before the second worker is ready; "light" runs
// from before the scale-up to after the scale-down, so requests are in
// flight while workers are drained and removed.
var (
	heavyArgs = []string{"-rate", "14", "-duration", "240s", "-warmup", "10s", "-timeout", "20s", "-concurrency", "200"}
	lightArgs = []string{"-rate", "4", "-duration", "480s", "-warmup", "5s", "-timeout", "20s", "-concurrency", "50"}
)

func TestStackScalesUpAndDown(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skipf("no Docker engine (docker info: %v): the end-to-end test needs one", err)
	}
	s := newStack(t)
	ctx := context.Background()
	minW, _ := strconv.Atoi(s.env["DEFAULT_CONTAINER"])
	maxW, _ := strconv.Atoi(s.env["MAX_CONTAINERS"])
	sum := &summary{}
	t.Cleanup(func() { t.Log("\n" + sum.String()) })
	began := time.Now()

	// A clean state: whatever an earlier run left, volumes included.
	dctx, cancel := context.WithTimeout(ctx, downTimeout)
	if err := s.script(dctx, t, []string{"PURGE=1"}, "down", "dev"); err != nil {
		cancel()
		t.Fatalf("clean state: %v", err)
	}
	cancel()
	// Always tear down, and check that nothing is left behind.
	t.Cleanup(func() {
		if t.Failed() {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_ = s.script(lctx, t, nil, "logs", "dev", "--tail=60", "--no-color")
			cancel()
		}
		dctx, cancel := context.WithTimeout(ctx, downTimeout)
		defer cancel()
		err := s.script(dctx, t, []string{"PURGE=1"}, "down", "dev")
		left, lerr := s.leftovers(dctx)
		switch {
		case err != nil:
			t.Errorf("task down: %v", err)
		case lerr != nil:
			t.Errorf("check leftovers: %v", lerr)
		case left != "":
			t.Errorf("task down left behind: %s", left)
		default:
			sum.add("down", "no container, network, volume or worker of %s/%s left", s.project(), s.app())
		}
	})

	// Up: binaries, images, compose, health.
	uctx, cancel := context.WithTimeout(ctx, upTimeout)
	err := s.script(uctx, t, nil, "up", "dev")
	cancel()
	if err != nil {
		t.Fatalf("task up ENV=dev: %v", err)
	}
	sum.add("up", "every service healthy after %s", time.Since(began).Round(time.Second))
	o := observe(t, s.natsURL(), s.app())

	// A worker answers through the proxy.
	t0 := time.Now()
	worker, err := firstAnswer(ctx, s.proxyURL("/"), firstAnswerWait)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	sum.add("proxy", "GET / answered by %s after %s", worker, time.Since(t0).Round(100*time.Millisecond))
	if err := waitWorkers(ctx, s, "at the minimum", 30*time.Second, func(n int) bool { return n == minW }); err != nil {
		t.Fatal(err)
	}

	// Load until the app scales up, and a while longer so the new workers
	// take their share.
	light := s.startLoad(t, "light", append([]string{"-url", s.proxyURL("/")}, lightArgs...)...)
	heavy := s.startLoad(t, "heavy", append([]string{"-url", s.proxyURL("/work?cpu_ms=40")}, heavyArgs...)...)
	t0 = time.Now()
	var peak int
	err = waitWorkers(ctx, s, "more than the minimum", scaleUpWait, func(n int) bool { peak = max(peak, n); return n > minW })
	if err != nil {
		t.Error(err)
	} else {
		sum.add("scale up", "%d → more workers %s after the load started", minW, time.Since(t0).Round(time.Second))
		deadline := time.Now().Add(holdAfterScaleUp)
		for time.Now().Before(deadline) {
			if n, err := s.runningWorkers(ctx); err == nil {
				peak = max(peak, len(n))
			}
			time.Sleep(time.Second)
		}
	}
	heavyRes, herr := heavy.stop(30 * time.Second)
	if herr != nil {
		t.Error(herr)
	}
	sum.load("heavy load", heavyRes)
	if peak > maxW {
		t.Errorf("%d workers at the peak, more than MAX_CONTAINERS=%d", peak, maxW)
	}
	sum.add("peak", "%d workers (max %d)", peak, maxW)
	if herr == nil && len(heavyRes.Workers) < 2 && peak > 1 {
		t.Errorf("heavy load answered by %d worker(s) (%v) although %d ran: the new workers got no traffic", len(heavyRes.Workers), heavyRes.Workers, peak)
	}
	if t.Failed() {
		return
	}

	// Without the heavy load: SUNDOWN, drain and removal back to the minimum.
	t0 = time.Now()
	if err := waitWorkers(ctx, s, "back at the minimum", scaleDownWait, func(n int) bool { return n == minW }); err != nil {
		t.Error(err)
	} else {
		sum.add("scale down", "back to %d worker(s) %s after the heavy load stopped", minW, time.Since(t0).Round(time.Second))
	}
	// Let the light load run over the last removal, then stop it.
	time.Sleep(3 * time.Second)
	lightRes, lerr := light.stop(30 * time.Second)
	if lerr != nil {
		t.Error(lerr)
	}
	sum.load("light load", lightRes)

	for _, r := range []struct {
		name string
		res  loadResult
	}{{"heavy", heavyRes}, {"light", lightRes}} {
		if r.res.Failed != 0 {
			t.Errorf("%s load: %d failed requests after warm-up (status %v, errors %v %v)", r.name, r.res.Failed, r.res.Status, r.res.Errors, r.res.ErrorSamples)
		}
		if r.res.OK == 0 {
			t.Errorf("%s load: no request answered", r.name)
		}
	}

	// What the stack said on NATS and through the gateway API.
	actions, phases := o.counts()
	sum.add("decisions", "%v", actions)
	sum.add("lifecycle", "%v", phases)
	if actions[events.ActionScaleUp] == 0 {
		t.Errorf("no scale_up decision on rb.scale.%s", s.app())
	}
	if actions[events.ActionScaleDown] == 0 {
		t.Errorf("no scale_down decision on rb.scale.%s", s.app())
	}
	sundown := o.phaseContainers(events.PhaseSundown)
	removed := o.phaseContainers(events.PhaseRemoved)
	drained := o.phaseContainers(events.PhaseDrained)
	if len(sundown) == 0 {
		t.Errorf("no sundown lifecycle fact on rb.lifecycle.%s.>", s.app())
	}
	for c := range sundown {
		if !removed[c] {
			t.Errorf("worker %s went SUNDOWN but no removed fact followed", c)
		}
	}
	sum.add("drain", "%d SUNDOWN, %d drained, %d removed; %d seen SUNDOWN on the queue", len(sundown), len(drained), len(removed), len(o.sundown))
	if len(o.bad) > 0 {
		t.Errorf("%d messages did not decode, e.g. %s", len(o.bad), o.bad[0])
	}
	if n, err := gatewayDecisions(ctx, s.gatewayURL("/api/v1/apps/"+s.app()+"/decisions")); err != nil {
		t.Errorf("gateway API: %v", err)
	} else {
		sum.add("gateway", "/api/v1/apps/%s/decisions: %v", s.app(), n)
		if n[events.ActionScaleUp] == 0 || n[events.ActionScaleDown] == 0 {
			t.Errorf("gateway API decisions %v: want scale_up and scale_down", n)
		}
	}
	if restarts, err := s.serviceRestarts(ctx); err != nil {
		t.Errorf("restart counts: %v", err)
	} else {
		var bad []string
		for svc, n := range restarts {
			if n > 0 {
				bad = append(bad, fmt.Sprintf("%s:%d", svc, n))
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("services restarted during the test: %s", strings.Join(bad, " "))
		}
		sum.add("restarts", "%d services, restarted: %v", len(restarts), bad)
	}
	t.Log("timeline (since the NATS subscription):\n  " + strings.Join(o.timeline(), "\n  "))
	sum.add("total", "%s before teardown", time.Since(began).Round(time.Second))
}

// firstAnswer polls url until a worker answers 200 with its name.
func firstAnswer(ctx context.Context, url string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	c := &http.Client{Timeout: 5 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if w := resp.Header.Get("X-Worker-Name"); resp.StatusCode == http.StatusOK && w != "" {
				return w, nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("no worker answered GET %s within %s; last: %s", url, wait, last)
}

// waitWorkers polls the running workers until ok(count) holds.
func waitWorkers(ctx context.Context, s *stack, what string, wait time.Duration, ok func(int) bool) error {
	deadline := time.Now().Add(wait)
	var names []string
	for {
		var err error
		names, err = s.runningWorkers(ctx)
		if err != nil {
			return err
		}
		if ok(len(names)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("workers not %s within %s: %d running %v", what, wait, len(names), names)
		}
		time.Sleep(time.Second)
	}
}

// gatewayDecisions counts the decisions the gateway API lists, by action.
func gatewayDecisions(ctx context.Context, url string) (map[events.Action]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	var body struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode %s: %w", url, err)
	}
	n := map[events.Action]int{}
	for _, raw := range body.Events {
		ev, err := events.Decode[events.Decision](raw)
		if err != nil {
			return nil, fmt.Errorf("decode a decision of %s: %w", url, err)
		}
		n[ev.Data.Action]++
	}
	return n, nil
}

// summary collects one line per checked fact for the closing report.
type summary struct{ lines []string }

func (s *summary) add(what, format string, args ...any) {
	s.lines = append(s.lines, fmt.Sprintf("%-11s %s", what+":", fmt.Sprintf(format, args...)))
}

func (s *summary) load(what string, r loadResult) {
	s.add(what, "sent %d, ok %d, failed %d after warm-up (%d in warm-up), skipped %d, p50 %.0f ms, p99 %.0f ms, by worker %v",
		r.Sent, r.OK, r.Failed, r.FailedWarmup, r.Skipped, r.LatencyMS.P50, r.LatencyMS.P99, r.Workers)
}

func (s *summary) String() string {
	return "==== e2e summary ====\n" + strings.Join(s.lines, "\n") + "\n====================="
}
