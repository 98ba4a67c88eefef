package runtime_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	rt "github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/testutil/dockertest"
)

// waitTimeout bounds every wait for the engine or a worker; the waits end as
// soon as their condition holds.
const waitTimeout = 30 * time.Second

// TestDocker runs the runtime against the real engine. The worker image and
// the network are built once and shared by the parallel subtests; each
// subtest uses its own app name so that their containers never mix.
func TestDocker(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.WorkerImage(t)
	netw := dockertest.Network(t)
	d := newDocker(t)
	if err := d.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}

	t.Run("list inspect and refusals", func(t *testing.T) {
		t.Parallel()
		app := uniqueName(t, "rbtest")
		current := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Name: uniqueName(t, "rbt-a"),
			Labels: map[string]string{rt.LabelApp: app}})
		legacy := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Name: uniqueName(t, "rbt-b"),
			Labels: map[string]string{rt.LabelLegacy: app}})
		other := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw,
			Labels: map[string]string{rt.LabelApp: app + "-other"}})
		unlabelled := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw,
			Labels: map[string]string{"rb.app.not": app}})
		ctx := t.Context()

		list, err := d.List(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(list), []string{current, legacy}; !slices.Equal(got, want) {
			t.Fatalf("List(%q) = %v, want exactly %v (sorted by name)", app, got, want)
		}
		for _, c := range list {
			if c.App != app || c.State != "running" {
				t.Errorf("List: %s app %q state %q, want %q running", c.Name, c.App, c.State, app)
			}
		}
		all, err := d.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		allIDs := ids(all)
		for _, id := range []string{current, legacy, other} {
			if !slices.Contains(allIDs, id) {
				t.Errorf("List(\"\") lacks managed container %s", id[:12])
			}
		}
		if slices.Contains(allIDs, unlabelled) {
			t.Errorf("List(\"\") holds the unlabelled container")
		}

		c, err := d.Inspect(ctx, current)
		if err != nil {
			t.Fatal(err)
		}
		ip := c.IPs[netw]
		if ip == "" || len(c.IPs) != 1 {
			t.Fatalf("IPs = %v, want one address on %s", c.IPs, netw)
		}
		addr, ok := c.Address(netw, 8080)
		if !ok || addr != ip+":8080" {
			t.Errorf("Address(%q, 8080) = %q, %v; want %s:8080", netw, addr, ok, ip)
		}
		if only, ok := c.Address("", 8080); !ok || only != addr {
			t.Errorf("Address(\"\", 8080) = %q, %v; want %q", only, ok, addr)
		}
		// Without WORKER_NAME the worker names itself by hostname, the short ID.
		body, _ := waitHTTP(t, "http://"+addr+"/hello")
		if want := current[:12] + " GET /hello\n"; body != want {
			t.Errorf("worker answered %q, want %q", body, want)
		}
		if lc, err := d.Inspect(ctx, legacy); err != nil || lc.App != app {
			t.Errorf("Inspect(legacy) = app %q, %v; want %q", lc.App, err, app)
		}
		if _, err := d.Inspect(ctx, unlabelled); !errors.Is(err, rt.ErrNotManaged) {
			t.Errorf("Inspect(unlabelled) = %v, want ErrNotManaged", err)
		}
		if _, err := d.Inspect(ctx, uniqueName(t, "rbt-missing")); !errors.Is(err, rt.ErrNotFound) {
			t.Errorf("Inspect(missing) = %v, want ErrNotFound", err)
		}

		// Nothing unlabelled is ever touched.
		refusals := []struct {
			name string
			call func() error
		}{
			{name: "stop", call: func() error { return d.Stop(ctx, unlabelled, time.Second) }},
			{name: "remove", call: func() error { return d.Remove(ctx, unlabelled) }},
			{name: "start", call: func() error { return d.Start(ctx, unlabelled) }},
			{name: "stats", call: func() error {
				samples, errs := d.Stats(ctx, unlabelled)
				for range samples {
				}
				return <-errs
			}},
		}
		for _, r := range refusals {
			err := r.call()
			if !errors.Is(err, rt.ErrNotManaged) || !strings.Contains(err.Error(), r.name+" container "+unlabelled) {
				t.Errorf("%s(unlabelled) = %v, want %q and ErrNotManaged", r.name, err, r.name+" container <id>")
			}
		}
		if st, err := cli.ContainerInspect(ctx, unlabelled); err != nil || !st.State.Running {
			t.Errorf("unlabelled container after the refusals: %v, want it still running", err)
		}
		if err := d.Stop(ctx, uniqueName(t, "rbt-missing"), time.Second); !errors.Is(err, rt.ErrNotFound) {
			t.Errorf("Stop(missing) = %v, want ErrNotFound", err)
		}
	})

	t.Run("events", func(t *testing.T) {
		t.Parallel()
		app := uniqueName(t, "rbtest")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		since := time.Now()
		evs, errs := d.Events(ctx, time.Time{})

		// The unlabelled container lives and dies first; nothing of it may
		// come through before the labelled containers' last events.
		unlabelled := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw})
		if err := cli.ContainerStop(ctx, unlabelled, container.StopOptions{}); err != nil {
			t.Fatal(err)
		}
		// Both labels, as Create sets them: each event must come once.
		current := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Name: uniqueName(t, "rbt-ev"),
			Labels: map[string]string{rt.LabelApp: app, rt.LabelLegacy: app},
			Healthcheck: &container.HealthConfig{
				Test: []string{"CMD", "/worker", "-health"}, Interval: 250 * time.Millisecond, Timeout: 2 * time.Second, Retries: 3,
			}})
		var seen []rt.Event
		next := func(what string, match func(rt.Event) bool) rt.Event {
			t.Helper()
			timer := time.NewTimer(waitTimeout)
			defer timer.Stop()
			for {
				select {
				case ev, ok := <-evs:
					if !ok {
						t.Fatalf("events ended waiting for %s: %v", what, <-errs)
					}
					seen = append(seen, ev)
					if match(ev) {
						return ev
					}
				case <-timer.C:
					t.Fatalf("no %s within %v; saw %+v", what, waitTimeout, seen)
				}
			}
		}
		is := func(id, action string) func(rt.Event) bool {
			return func(ev rt.Event) bool { return ev.ID == id && ev.Action == action }
		}

		next("healthy", is(current, "health_status: healthy"))
		if c, err := d.Inspect(ctx, current); err != nil || c.Health != "healthy" {
			t.Errorf("Inspect after health_status: healthy = %q, %v", c.Health, err)
		}
		stopStart := time.Now()
		if err := d.Stop(ctx, current, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("graceful stop took %v", time.Since(stopStart).Round(time.Millisecond))
		die := next("die", is(current, "die"))
		if die.ExitCode != "0" {
			t.Errorf("worker exited with %q on SIGTERM, want 0 (graceful shutdown)", die.ExitCode)
		}
		if err := d.Remove(ctx, current); err != nil {
			t.Fatal(err)
		}
		next("destroy", is(current, "destroy"))

		// A legacy-labelled container, alone in its time window so that the
		// replay below needs only a few events of the engine's short history
		// (256 events).
		legacySince := time.Now()
		legacyName := uniqueName(t, "rbt-ev-legacy")
		legacy := dockertest.Run(t, dockertest.RunSpec{Image: image, Network: netw, Name: legacyName,
			Labels: map[string]string{rt.LabelLegacy: app}})
		next("legacy start", is(legacy, "start"))
		if err := d.Remove(ctx, legacy); err != nil {
			t.Fatal(err)
		}
		next("legacy destroy", is(legacy, "destroy"))

		wantOrder := map[string][]string{
			current: {"create", "start", "health_status: healthy", "kill", "die", "stop", "destroy"},
			legacy:  {"create", "start", "kill", "die", "destroy"},
		}
		for id, want := range wantOrder {
			var got []string
			for _, ev := range seen {
				if ev.ID != id {
					continue
				}
				if ev.App != app {
					t.Errorf("event %s of %s: app %q, want %q", ev.Action, id[:12], ev.App, app)
				}
				if ev.Time.Before(since.Add(-time.Second)) {
					t.Errorf("event %s at %v, before the test began (%v)", ev.Action, ev.Time, since)
				}
				got = append(got, ev.Action)
			}
			if !isSubsequence(want, got) {
				t.Errorf("events of %s = %v, want in order %v", id[:12], got, want)
			}
			for _, once := range []string{"create", "start", "die", "destroy"} {
				if n := count(got, once); n != 1 {
					t.Errorf("events of %s: %q %d times, want once: %v", id[:12], once, n, got)
				}
			}
		}
		for _, ev := range seen {
			if ev.ID == unlabelled {
				t.Errorf("event of the unlabelled container: %+v", ev)
			}
			if ev.ID == legacy && ev.Name != legacyName {
				t.Errorf("legacy event name %q, want %q", ev.Name, legacyName)
			}
		}

		// since replays the engine's recent history: the legacy lifecycle again.
		rctx, rcancel := context.WithCancel(t.Context())
		revs, rerrs := d.Events(rctx, legacySince)
		evs, errs = revs, rerrs
		seen = nil
		next("replayed legacy start", is(legacy, "start"))
		next("replayed legacy destroy", is(legacy, "destroy"))
		rcancel()
		for range revs {
		}
		if err := <-rerrs; !errors.Is(err, context.Canceled) {
			t.Errorf("error after cancel = %v, want context.Canceled", err)
		}
	})

	t.Run("stats", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		c := create(t, d, rt.CreateSpec{App: uniqueName(t, "rbtest"), Name: uniqueName(t, "rbt-stats"), Image: image,
			Port: 8080, Network: netw, CPUs: 0.2, Memory: 64 << 20})
		if err := d.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		c, err := d.Inspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := c.Address(netw, 8080)
		waitHTTP(t, "http://"+addr+"/healthz")

		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		samples, errs := d.Stats(sctx, c.ID)
		recv := func() rt.StatsSample {
			t.Helper()
			select {
			case s, ok := <-samples:
				if !ok {
					t.Fatalf("stats ended: %v", <-errs)
				}
				return s
			case <-time.After(waitTimeout):
				t.Fatalf("no stats sample within %v", waitTimeout)
			}
			panic("unreachable")
		}
		prev := recv()
		cur := recv()
		idle := rt.CPUPercent(prev, cur, c.CPULimit)
		if !cur.Read.After(prev.Read) || cur.OnlineCPUs == 0 || cur.MemLimit != 64<<20 || cur.MemUsage == 0 || cur.RxBytes == 0 {
			t.Errorf("samples %+v then %+v: want later reads, online CPUs, the 64 MiB limit, memory and received bytes", prev, cur)
		}

		// Burn CPU in the worker; its small allowance fills up even on a busy
		// host.
		burnCtx, stopBurn := context.WithCancel(ctx)
		burned := make(chan error, 1)
		go func() {
			_, err := get(burnCtx, "http://"+addr+"/work?cpu_ms=8000")
			burned <- err
		}()
		t.Cleanup(func() { stopBurn(); <-burned })

		deadline := time.Now().Add(waitTimeout)
		busy := 0.0
		for busy < 50 {
			if time.Now().After(deadline) {
				t.Fatalf("CPUPercent stayed at %.1f%% (idle %.1f%%) while the worker burned CPU", busy, idle)
			}
			prev, cur = cur, recv()
			busy = rt.CPUPercent(prev, cur, c.CPULimit)
		}
		if idle >= 30 {
			t.Errorf("idle CPUPercent = %.1f%%, want well under the busy %.1f%%", idle, busy)
		}
		t.Logf("CPUPercent idle %.1f%%, burning %.1f%% of a %.1f core allowance", idle, busy, c.CPULimit)

		cancel()
		for range samples {
		}
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("stats error after cancel = %v, want context.Canceled", err)
		}
	})

	t.Run("create and lifecycle", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		app := uniqueName(t, "rbtest")
		name := uniqueName(t, "rbt-create")
		spec := rt.CreateSpec{App: app, Name: name, Image: image, Port: 9090, Network: netw,
			Env: []string{"EXTRA=1"}, Labels: map[string]string{"team": "core"}, CPUs: 0.25, Memory: 32 << 20, PublishPort: true}
		c := create(t, d, spec)
		if c.Name != name || c.App != app || c.State != "created" || c.Image != image {
			t.Errorf("created %+v", c)
		}
		wantLabels := map[string]string{rt.LabelApp: app, rt.LabelLegacy: app, "team": "core"}
		for k, v := range wantLabels {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}
		if c.CPULimit != 0.25 || c.MemLimit != 32<<20 {
			t.Errorf("limits %v cores, %d bytes; want 0.25 and 32 MiB", c.CPULimit, c.MemLimit)
		}
		raw, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range []string{"WORKER_NAME=" + name, "PORT=9090", "EXTRA=1"} {
			if !slices.Contains(raw.Config.Env, kv) {
				t.Errorf("env %v lacks %s", raw.Config.Env, kv)
			}
		}
		if string(raw.HostConfig.NetworkMode) != netw {
			t.Errorf("network mode %q, want %q", raw.HostConfig.NetworkMode, netw)
		}

		started := time.Now()
		if err := d.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		startReturned := time.Now()
		c, err = d.Inspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		addr, ok := c.Address(netw, 9090)
		if !ok || c.IPs[netw] == "" {
			t.Fatalf("no address on %s: %+v", netw, c)
		}
		body, answered := waitHTTP(t, "http://"+addr+"/hello")
		t.Logf("start to first answer: %v (Start returned after %v)",
			answered.Sub(started).Round(time.Millisecond), startReturned.Sub(started).Round(time.Millisecond))
		if want := name + " GET /hello\n"; body != want {
			t.Errorf("worker answered %q, want %q", body, want)
		}
		if c.HostPorts[9090] == 0 {
			t.Fatalf("port 9090 not published: %v", c.HostPorts)
		}
		published, ok := c.Address("not-a-network", 9090)
		if !ok || !strings.HasPrefix(published, "127.0.0.1:") {
			t.Fatalf("published address %q, %v", published, ok)
		}
		if body, _ := waitHTTP(t, "http://"+published+"/via-host"); body != name+" GET /via-host\n" {
			t.Errorf("published port answered %q", body)
		}
		list, err := d.List(ctx, app)
		if err != nil || len(list) != 1 || list[0].ID != c.ID {
			t.Errorf("List(%q) = %v, %v; want the created container alone", app, ids(list), err)
		}

		if err := d.Stop(ctx, c.ID, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if raw, err := cli.ContainerInspect(ctx, c.ID); err != nil || raw.State.Running || raw.State.ExitCode != 0 {
			t.Errorf("after Stop: %v, running %v, exit %d; want exited with 0", err, raw.State.Running, raw.State.ExitCode)
		}
		if err := d.Stop(ctx, c.ID, time.Second); err != nil {
			t.Errorf("second Stop = %v, want nil", err)
		}
		if err := d.Remove(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Inspect(ctx, c.ID); !errors.Is(err, rt.ErrNotFound) {
			t.Errorf("Inspect after Remove = %v, want ErrNotFound", err)
		}
		if err := d.Remove(ctx, c.ID); !errors.Is(err, rt.ErrNotFound) {
			t.Errorf("second Remove = %v, want ErrNotFound", err)
		}
		if _, err := d.Create(ctx, rt.CreateSpec{App: app, Name: name}); err == nil || !strings.Contains(err.Error(), "image is empty") {
			t.Errorf("Create(invalid) = %v, want the spec's problems", err)
		}
	})
}

func newDocker(t *testing.T) *rt.Docker {
	t.Helper()
	d, err := rt.NewDocker("", slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// create makes a container through the runtime and force-removes it in
// cleanup, whatever the test did with it.
func create(t *testing.T, d *rt.Docker, spec rt.CreateSpec) rt.Container {
	t.Helper()
	c, err := d.Create(t.Context(), spec)
	if c.ID != "" {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := d.Remove(ctx, c.ID); err != nil && !errors.Is(err, rt.ErrNotFound) {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitHTTP polls url until it answers 200 and returns the body and when it
// answered.
func waitHTTP(t *testing.T, url string) (string, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		body, err := get(ctx, url)
		if err == nil {
			return body, time.Now()
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("GET %s: no answer within %v: %v", url, waitTimeout, last)
	return "", time.Time{}
}

func get(ctx context.Context, url string) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

func ids(cs []rt.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// isSubsequence reports whether want appears in got in order, other
// elements allowed in between.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}
