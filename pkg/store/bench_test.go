package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

// The store is not on the request path; these measure the round trips a
// service pays per call against a local Redis.

func BenchmarkGetConfig(b *testing.B) {
	s, _ := newStore(b, redistest.Start(b), nil)
	ctx := context.Background()
	values := map[string]string{}
	for i := range 20 {
		values["VAR_"+strconv.Itoa(i)] = strconv.Itoa(i)
	}
	if _, err := s.SetConfig(ctx, "web", values, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetConfig(ctx, "web"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetConfigCAS(b *testing.B) {
	s, _ := newStore(b, redistest.Start(b), nil)
	ctx := context.Background()
	values := map[string]string{"SCALE_STEP": "1"}
	version := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := s.SetConfig(ctx, "web", values, version)
		if err != nil {
			b.Fatal(err)
		}
		version = cfg.Version
	}
}

func BenchmarkPutSnapshot4KiB(b *testing.B) {
	s, _ := newStore(b, redistest.Start(b), nil)
	ctx := context.Background()
	data := make([]byte, 4096)
	version := uint64(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		version++
		if _, err := s.PutSnapshot(ctx, "queue", "web", version, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListContainers15(b *testing.B) {
	s, _ := newStore(b, redistest.Start(b), nil)
	ctx := context.Background()
	for i := range 15 { // MAX_CONTAINERS
		rec := ContainerRecord{App: "web", Name: "worker-" + strconv.Itoa(i), Port: 8080, Labels: map[string]string{"application": "web"}}
		if err := s.PutContainer(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		recs, err := s.ListContainers(ctx, "web")
		if err != nil || len(recs) != 15 {
			b.Fatal(len(recs), err)
		}
	}
}

func BenchmarkAcquireLeaseRenew(b *testing.B) {
	s, _ := newStore(b, redistest.Start(b), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := s.AcquireLease(ctx, "scaler:web", "a", 10*time.Second); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
