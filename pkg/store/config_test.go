package store

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

func TestConfigGetSetCAS(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s, _ := newStore(t, redistest.Start(t), func(o *Options) { o.Now = fixedClock(now) })
	ctx := context.Background()

	got, err := s.GetConfig(ctx, "web")
	if err != nil || got.Version != 0 || got.Values != nil || !got.UpdatedAt.IsZero() {
		t.Fatalf("GetConfig of an unset app = %+v, %v; want zero AppConfig, nil", got, err)
	}

	steps := []struct {
		name        string
		values      map[string]string
		expect      int64
		wantVersion int64
		wantErr     error
	}{
		{name: "create", values: map[string]string{"HIGH_LOAD_THRESHOLD": "55.0", "SCALE_STEP": "1"}, expect: 0, wantVersion: 1},
		{name: "create again conflicts", values: map[string]string{"SCALE_STEP": "9"}, expect: 0, wantErr: ErrConflict},
		{name: "update", values: map[string]string{"HIGH_LOAD_THRESHOLD": "50", "SCALE_STEP": "2"}, expect: 1, wantVersion: 2},
		{name: "stale version conflicts", values: map[string]string{"SCALE_STEP": "3"}, expect: 1, wantErr: ErrConflict},
		{name: "future version conflicts", values: map[string]string{"SCALE_STEP": "3"}, expect: 7, wantErr: ErrConflict},
		{name: "any version", values: map[string]string{"SCALE_STEP": "4"}, expect: AnyVersion, wantVersion: 3},
		{name: "empty config", values: nil, expect: 3, wantVersion: 4},
		{name: "odd values kept verbatim", values: map[string]string{"X": "a b\n\"c\"", "É": ""}, expect: 4, wantVersion: 5},
	}
	want := AppConfig{}
	for _, st := range steps {
		cfg, err := s.SetConfig(ctx, "web", st.values, st.expect)
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: SetConfig err = %v, want %v", st.name, err, st.wantErr)
			}
		} else {
			if err != nil {
				t.Fatalf("%s: SetConfig: %v", st.name, err)
			}
			if cfg.Version != st.wantVersion || !cfg.UpdatedAt.Equal(now) || !maps.Equal(cfg.Values, st.values) {
				t.Fatalf("%s: SetConfig = %+v, want version %d values %v at %s", st.name, cfg, st.wantVersion, st.values, now)
			}
			want = cfg
		}
		got, err := s.GetConfig(ctx, "web")
		if err != nil {
			t.Fatalf("%s: GetConfig: %v", st.name, err)
		}
		if got.Version != want.Version || !got.UpdatedAt.Equal(want.UpdatedAt) || !maps.Equal(got.Values, want.Values) {
			t.Fatalf("%s: GetConfig = %+v, want %+v", st.name, got, want)
		}
	}

	// The conflict message says what was stored and what was expected.
	_, err = s.SetConfig(ctx, "web", nil, 1)
	if want := `set config for app "web": conflict: stored version is 5, expected 1`; err == nil || err.Error() != want {
		t.Fatalf("conflict error = %v, want %q", err, want)
	}

	// Apps do not share config.
	if other, err := s.GetConfig(ctx, "api"); err != nil || other.Version != 0 {
		t.Fatalf("GetConfig(api) = %+v, %v; want unset", other, err)
	}

	// Returned maps are copies.
	got, _ = s.GetConfig(ctx, "web")
	got.Values["X"] = "changed"
	again, _ := s.GetConfig(ctx, "web")
	if again.Values["X"] != "a b\n\"c\"" {
		t.Fatalf("changing a returned map changed the store: %q", again.Values["X"])
	}
}

// TestConfigCASConcurrent has writers increment a counter with
// read-modify-write; only a real compare-and-swap loses no increment.
func TestConfigCASConcurrent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const writers, rounds = 6, 10
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		s, _ := newStore(t, srv, nil) // own client each: as separate processes would
		wg.Go(func() {
			for range rounds {
				for {
					cur, err := s.GetConfig(ctx, "web")
					if err != nil {
						errs <- err
						return
					}
					n, _ := strconv.Atoi(cur.Values["N"])
					_, err = s.SetConfig(ctx, "web", map[string]string{"N": strconv.Itoa(n + 1)}, cur.Version)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrConflict) {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s, _ := newStore(t, srv, nil)
	got, err := s.GetConfig(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(writers * rounds); got.Values["N"] != want || got.Version != writers*rounds {
		t.Fatalf("after %d increments: N=%s version %d, want N=%s version %d", writers*rounds, got.Values["N"], got.Version, want, writers*rounds)
	}
}

func TestPrefixIsolates(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, _ := newStore(t, srv, func(o *Options) { o.Prefix = "a:" })
	b, _ := newStore(t, srv, func(o *Options) { o.Prefix = "b:" })
	ctx := context.Background()
	if _, err := a.SetConfig(ctx, "web", map[string]string{"K": "a"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.SetDesired(ctx, "web", 4); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetConfig(ctx, "web"); err != nil || got.Version != 0 {
		t.Fatalf("store with prefix b: sees config %+v, %v", got, err)
	}
	if _, ok, err := b.Desired(ctx, "web"); err != nil || ok {
		t.Fatalf("store with prefix b: sees desired count (ok=%v, err=%v)", ok, err)
	}
}
