package store

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

func TestSnapshotVersions(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s, _ := newStore(t, redistest.Start(t), func(o *Options) { o.Now = fixedClock(now) })
	ctx := context.Background()

	if _, err := s.GetSnapshot(ctx, "queue", "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSnapshot of a missing snapshot: err = %v, want ErrNotFound", err)
	}

	steps := []struct {
		name       string
		version    uint64
		data       []byte
		wantStored bool
		wantData   []byte // what GetSnapshot returns afterwards
		wantVer    uint64
	}{
		{name: "first", version: 5, data: []byte("five"), wantStored: true, wantData: []byte("five"), wantVer: 5},
		{name: "older ignored", version: 3, data: []byte("three"), wantData: []byte("five"), wantVer: 5},
		{name: "same ignored", version: 5, data: []byte("again"), wantData: []byte("five"), wantVer: 5},
		{name: "newer stored", version: 6, data: []byte("six"), wantStored: true, wantData: []byte("six"), wantVer: 6},
		{name: "more digits is newer", version: 10, data: []byte("ten"), wantStored: true, wantData: []byte("ten"), wantVer: 10},
		{name: "fewer digits is older", version: 9, data: []byte("nine"), wantData: []byte("ten"), wantVer: 10},
		{name: "binary data", version: 1 << 53, data: []byte{0, 1, 0xff, '\n', 0}, wantStored: true, wantData: []byte{0, 1, 0xff, '\n', 0}, wantVer: 1 << 53},
		// 2^53+1 rounds to 2^53 as a float: a float comparison would drop it.
		{name: "beyond float precision", version: 1<<53 + 1, data: []byte("p"), wantStored: true, wantData: []byte("p"), wantVer: 1<<53 + 1},
		{name: "max uint64", version: math.MaxUint64, data: []byte("max"), wantStored: true, wantData: []byte("max"), wantVer: math.MaxUint64},
		{name: "nothing newer than max", version: math.MaxUint64 - 1, data: []byte("x"), wantData: []byte("max"), wantVer: math.MaxUint64},
	}
	for _, st := range steps {
		stored, err := s.PutSnapshot(ctx, "queue", "web", st.version, st.data)
		if err != nil || stored != st.wantStored {
			t.Fatalf("%s: PutSnapshot(%d) = %v, %v; want %v, nil", st.name, st.version, stored, err, st.wantStored)
		}
		got, err := s.GetSnapshot(ctx, "queue", "web")
		if err != nil {
			t.Fatalf("%s: GetSnapshot: %v", st.name, err)
		}
		if got.Version != st.wantVer || !bytes.Equal(got.Data, st.wantData) || !got.At.Equal(now) {
			t.Fatalf("%s: GetSnapshot = {%d %q %s}, want {%d %q %s}", st.name, got.Version, got.Data, got.At, st.wantVer, st.wantData, now)
		}
	}

	// Kinds and apps are separate snapshots.
	for _, k := range [][2]string{{"queue", "api"}, {"routes", "web"}} {
		if _, err := s.GetSnapshot(ctx, k[0], k[1]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSnapshot(%s, %s): err = %v, want ErrNotFound", k[0], k[1], err)
		}
	}
}
