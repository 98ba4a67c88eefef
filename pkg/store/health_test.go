package store

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

// TestRedisDown stops Redis under a running store: reads of config and
// snapshots fall back to the last known values, flagged stale; everything
// else fails as unavailable; Health says so; and all of it recovers when
// Redis returns.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s, _ := newStore(t, srv, func(o *Options) { o.Now = fixedClock(clock) })
	runStore(t, s)
	ctx := context.Background()

	eventually(t, "Health to report Redis up", func() bool { return s.Health() == nil })
	want, err := s.SetConfig(ctx, "web", map[string]string{"SCALE_STEP": "2"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSnapshot(ctx, "queue", "web", 7, []byte("q7")); err != nil {
		t.Fatal(err)
	}
	// api's config was read (and found unset); nothing to fall back to.
	if _, err := s.GetConfig(ctx, "api"); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)

	t.Run("config read is stale", func(t *testing.T) {
		got, err := s.GetConfig(ctx, "web")
		if !errors.Is(err, ErrStale) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("GetConfig while down: err = %v, want ErrStale (and not ErrUnavailable)", err)
		}
		if !strings.HasPrefix(err.Error(), `get config for app "web": stale value`) {
			t.Fatalf("error %q does not say what was being done", err)
		}
		if got.Version != want.Version || !maps.Equal(got.Values, want.Values) {
			t.Fatalf("GetConfig while down = %+v, want the last known %+v", got, want)
		}
	})
	t.Run("snapshot read is stale", func(t *testing.T) {
		got, err := s.GetSnapshot(ctx, "queue", "web")
		if !errors.Is(err, ErrStale) || got.Version != 7 || !bytes.Equal(got.Data, []byte("q7")) {
			t.Fatalf("GetSnapshot while down = {%d %q}, %v; want {7 q7} with ErrStale", got.Version, got.Data, err)
		}
	})
	t.Run("reads without a known value are unavailable", func(t *testing.T) {
		for what, err := range map[string]error{
			"config of api":     second(s.GetConfig(ctx, "api")),
			"config of never":   second(s.GetConfig(ctx, "never")),
			"snapshot of api":   second(s.GetSnapshot(ctx, "queue", "api")),
			"container records": second(s.ListContainers(ctx, "web")),
			"container record":  second(s.GetContainer(ctx, "web", "w1")),
		} {
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStale) {
				t.Errorf("%s while down: err = %v, want ErrUnavailable", what, err)
			}
		}
		if _, _, err := s.Desired(ctx, "web"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Desired while down: err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("writes are unavailable", func(t *testing.T) {
		for what, err := range map[string]error{
			"set config":       second(s.SetConfig(ctx, "web", map[string]string{"SCALE_STEP": "3"}, want.Version)),
			"put snapshot":     second(s.PutSnapshot(ctx, "queue", "web", 8, []byte("q8"))),
			"put container":    s.PutContainer(ctx, ContainerRecord{App: "web", Name: "w1"}),
			"delete container": s.DeleteContainer(ctx, "web", "w1"),
			"set desired":      s.SetDesired(ctx, "web", 3),
			"acquire lease":    second(s.AcquireLease(ctx, "scaler:web", "a", time.Second)),
			"release lease":    s.ReleaseLease(ctx, "scaler:web", "a"),
		} {
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s while down: err = %v, want ErrUnavailable", what, err)
			}
		}
		_, err := s.SetConfig(ctx, "web", nil, AnyVersion)
		if !strings.HasPrefix(err.Error(), `set config for app "web": redis unavailable: `) {
			t.Errorf("error %q does not say what was being done", err)
		}
		// The failed write did not change what a stale read returns.
		if got, _ := s.GetConfig(ctx, "web"); got.Values["SCALE_STEP"] != "2" {
			t.Errorf("stale config after a failed write = %v, want SCALE_STEP=2", got.Values)
		}
	})
	t.Run("health reports down", func(t *testing.T) {
		err := s.Health()
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "unreachable since") ||
			!strings.Contains(err.Error(), srv.Addr()) {
			t.Fatalf("Health while down = %v, want ErrUnavailable naming %s and since when", err, srv.Addr())
		}
		if want := "unreachable since 2025-03-01T12:00:00Z: "; !strings.Contains(err.Error(), want) {
			t.Fatalf("Health while down = %v, want it to contain %q", err, want)
		}
	})

	srv.Restart(t)
	eventually(t, "Health to report Redis up after restart", func() bool { return s.Health() == nil })

	// The restarted server is empty (no persistence): reads are fresh again.
	if got, err := s.GetConfig(ctx, "web"); err != nil || got.Version != 0 {
		t.Fatalf("GetConfig after restart = %+v, %v; want unset, nil", got, err)
	}
	if _, err := s.GetSnapshot(ctx, "queue", "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSnapshot after restart: err = %v, want ErrNotFound", err)
	}
	if _, err := s.SetConfig(ctx, "web", map[string]string{"SCALE_STEP": "4"}, 0); err != nil {
		t.Fatalf("SetConfig after restart: %v", err)
	}
	if ok, err := s.AcquireLease(ctx, "scaler:web", "a", time.Second); err != nil || !ok {
		t.Fatalf("AcquireLease after restart (scripts are loaded again): %v, %v", ok, err)
	}
	if err := s.PutContainer(ctx, ContainerRecord{App: "web", Name: "w1"}); err != nil {
		t.Fatalf("PutContainer after restart: %v", err)
	}
	// A read that now finds nothing forgets the last known value.
	srv.Stop(t)
	if _, err := s.GetSnapshot(ctx, "queue", "web"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("GetSnapshot after a read found it gone: err = %v, want ErrUnavailable", err)
	}
	if got, err := s.GetConfig(ctx, "web"); !errors.Is(err, ErrStale) || got.Values["SCALE_STEP"] != "4" {
		t.Fatalf("GetConfig = %+v, %v; want the config written after restart, stale", got, err)
	}
}

// TestRunLogsOncePerStep checks the health monitor's log while Redis is down:
// one warning per failed check, with delays that double up to MaxBackoff, and
// one line when Redis is back.
func TestRunLogsOncePerStep(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s, logs := newStore(t, srv, nil) // MinBackoff 5ms, MaxBackoff 40ms
	runStore(t, s)
	ctx := context.Background()
	eventually(t, "Health to report Redis up", func() bool { return s.Health() == nil })

	srv.Stop(t)
	const steps = 7
	eventually(t, "warnings for 7 failed checks", func() bool {
		return len(withMsg(logs.records(t), "redis unreachable")) >= steps
	})
	// Operations during the outage add no log lines of their own.
	for range 5 {
		if _, err := s.GetConfig(ctx, "web"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("GetConfig while down: %v", err)
		}
	}
	srv.Restart(t)
	eventually(t, "the recovery line", func() bool {
		return len(withMsg(logs.records(t), "redis reachable again")) > 0
	})
	eventually(t, "Health to report Redis up after restart", func() bool { return s.Health() == nil })

	recs := logs.records(t)
	warns := withMsg(recs, "redis unreachable")
	wantDelays := []time.Duration{5, 10, 20, 40, 40, 40, 40}
	for i, w := range warns {
		want := 40 * time.Millisecond
		if i < len(wantDelays) {
			want = wantDelays[i] * time.Millisecond
		}
		if got := time.Duration(w["retry_in"].(float64)); got != want {
			t.Errorf("warning %d: retry_in %s, want %s (one line per backoff step)", i+1, got, want)
		}
		if got := int(w["failed_checks"].(float64)); got != i+1 {
			t.Errorf("warning %d: failed_checks %d, want %d", i+1, got, i+1)
		}
		if w["level"] != "WARN" || w["err"] == nil || !strings.Contains(w["err"].(string), "connection refused") {
			t.Errorf("warning %d = %v, want level WARN with the error", i+1, w)
		}
	}
	var other []string
	for _, r := range recs {
		if m := r["msg"].(string); m != "redis unreachable" && m != "redis reachable again" {
			other = append(other, m)
		}
	}
	if len(other) > 0 {
		t.Errorf("unexpected log lines: %q", other)
	}
	back := withMsg(recs, "redis reachable again")
	if len(back) != 1 || back[0]["level"] != "INFO" || int(back[0]["failed_checks"].(float64)) != len(warns) {
		t.Fatalf("recovery lines = %v, want one INFO line counting %d failed checks", back, len(warns))
	}
	if last := recs[len(recs)-1]; last["msg"] != "redis reachable again" {
		t.Fatalf("last log line is %v, want the recovery", last)
	}
}

func TestRunReturnsOnCancel(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, func(o *Options) { o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour })
	srv.Stop(t) // Run is waiting out a long backoff when cancelled
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, "a failed check", func() bool { return s.Health() != nil && !strings.Contains(s.Health().Error(), "not checked") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
	}
}

// TestCallerCancelIsNotAnOutage checks that a caller giving up is reported as
// such, not as Redis being down.
func TestCallerCancelIsNotAnOutage(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, redistest.Start(t), nil)
	if _, err := s.SetConfig(context.Background(), "web", map[string]string{"A": "1"}, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg, err := s.GetConfig(ctx, "web")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStale) || cfg.Version != 0 {
		t.Fatalf("GetConfig with a cancelled context = %+v, %v; want context.Canceled only", cfg, err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("a cancelled call made Health report Redis down: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
