package gateway

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.New(store.Options{URL: redistest.Start(t).URL()}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// racingStore lets another writer win once, between the read and the write.
type racingStore struct {
	*store.Store
	once sync.Once
	err  error // of the other writer
}

func (r *racingStore) SetConfig(ctx context.Context, app string, values map[string]string, expect int64) (store.AppConfig, error) {
	r.once.Do(func() {
		_, r.err = r.Store.SetConfig(ctx, app, map[string]string{"SCALE_STEP": "3"}, expect)
	})
	return r.Store.SetConfig(ctx, app, values, expect)
}

func TestConfigWriterMergesAConcurrentChange(t *testing.T) {
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	rs := &racingStore{Store: newStore(t)}
	w := &ConfigWriter{Store: rs, Bus: b, Base: config.Default(), Source: "test", Now: func() time.Time { return t0 }}
	st, err := w.Update(context.Background(), ConfigUpdate{App: "shop", Set: map[string]string{"HIGH_LOAD_THRESHOLD": "50"}})
	if err != nil || rs.err != nil {
		t.Fatal(err, rs.err)
	}
	// The other writer's SCALE_STEP=3 is version 1; ours, merged, version 2.
	want := map[string]string{"HIGH_LOAD_THRESHOLD": "50", "SCALE_STEP": "3"}
	if st.Version != 2 || !reflect.DeepEqual(st.Overrides, want) || !reflect.DeepEqual(st.Changed, []string{"HIGH_LOAD_THRESHOLD"}) {
		t.Fatalf("state %+v, want version 2 with %v", st, want)
	}
	// With an expected version, the same race is a conflict.
	rs.once = sync.Once{}
	v := st.Version
	_, err = w.Update(context.Background(), ConfigUpdate{App: "shop", Set: map[string]string{"HIGH_LOAD_THRESHOLD": "45"}, Version: &v})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update with a version that lost the race: %v, want ErrConflict", err)
	}
}

func TestConfigWriterBrokenStoredValues(t *testing.T) {
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	st := newStore(t)
	// Written by a process with another environment, or another version of rb.
	if _, err := st.SetConfig(context.Background(), "shop", map[string]string{"HIGH_LOAD_THRESHOLD": "abc", "RB_RETIRED": "1"}, 0); err != nil {
		t.Fatal(err)
	}
	w := &ConfigWriter{Store: st, Bus: b, Base: config.Default(), Source: "test"}
	got, err := w.Get(context.Background(), "shop")
	if err != nil || len(got.Problems) != 2 || !strings.Contains(strings.Join(got.Problems, "\n"), "HIGH_LOAD_THRESHOLD") || got.Effective["HIGH_LOAD_THRESHOLD"] != "55" {
		t.Fatalf("Get: %+v, %v; want both problems named and the base value in effect", got, err)
	}
	_, err = w.Update(context.Background(), ConfigUpdate{App: "shop", Set: map[string]string{"SCALE_STEP": "2"}})
	var ce *config.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "HIGH_LOAD_THRESHOLD") {
		t.Fatalf("update on top of a broken value: %v, want a *config.Error naming it", err)
	}
	// The broken values can be removed, even the one this build does not know.
	fixed, err := w.Update(context.Background(), ConfigUpdate{App: "shop", Unset: []string{"HIGH_LOAD_THRESHOLD", "RB_RETIRED"}})
	if err != nil || fixed.Version != 2 || len(fixed.Overrides) != 0 || len(fixed.Problems) != 0 {
		t.Fatalf("removing the broken values: %+v, %v", fixed, err)
	}
	if _, err := w.Update(context.Background(), ConfigUpdate{App: "shop", Unset: []string{"RB_RETIRED"}}); err == nil || !strings.Contains(err.Error(), "RB_RETIRED") {
		t.Fatalf("removing an unknown variable that is not stored: %v, want an error naming it", err)
	}
}

func TestConfigWriterNotPublished(t *testing.T) {
	// A NATS without the streams: the publish finds no stream.
	url, _ := natstest.Start(t)
	b := natstest.ConnectWith(t, bus.Options{URL: url})
	st := newStore(t)
	w := &ConfigWriter{Store: st, Bus: b, Base: config.Default(), Source: "test"}
	state, err := w.Update(context.Background(), ConfigUpdate{App: "shop", Set: map[string]string{"SCALE_STEP": "2"}})
	if !errors.Is(err, ErrNotPublished) || !strings.Contains(err.Error(), "rb.config.shop") {
		t.Fatalf("update without a stream: %v, want ErrNotPublished naming the subject", err)
	}
	if state.Version != 1 || state.Overrides["SCALE_STEP"] != "2" {
		t.Fatalf("state %+v: the change is stored and returned", state)
	}
}
