package scorer

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
)

// discardStore keeps the last snapshot's size and stores nothing.
type discardStore struct{ bytes int }

func (*discardStore) GetConfig(context.Context, string) (store.AppConfig, error) {
	return store.AppConfig{}, nil
}
func (*discardStore) GetSnapshot(context.Context, string, string) (store.Snapshot, error) {
	return store.Snapshot{}, store.ErrNotFound
}
func (d *discardStore) PutSnapshot(_ context.Context, _, _ string, _ uint64, data []byte) (bool, error) {
	d.bytes = len(data)
	return true, nil
}

// BenchmarkSnapshot1000 encodes the states of 1,000 containers with full
// histories, as the snapshot loop does every 5 s while holding the lock that
// Samples wait for. One op is one snapshot.
func BenchmarkSnapshot1000(b *testing.B) {
	cfg := config.Default()
	cfg.App = "shop"
	st := &discardStore{}
	s := &Service{store: st, log: slog.New(slog.DiscardHandler), app: "shop", params: Params(cfg),
		ctrs: map[string]*container{}, seenKinds: map[string]bool{}}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	s.m = m
	seq := uint64(0)
	for round := range 30 {
		for i := range 1000 {
			seq++
			ctr := fmt.Sprintf("worker-%04d", i)
			ev := events.New(fmt.Sprintf("%s-%d", ctr, round), time.Unix(int64(round), 0), "test", events.Sample{
				App: "shop", Container: ctr, CPUPercent: 20, MemUsage: 1 << 20, MemLimit: 1 << 30,
				ProbeOK: true, ProbeSeconds: 0.001 + float64(i%7)*0.0003,
			})
			s.applySilently(seq, time.Unix(int64(round), 0), ev)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		s.dirty = true
		s.snapshot(context.Background())
	}
	b.ReportMetric(float64(st.bytes), "bytes")
}
