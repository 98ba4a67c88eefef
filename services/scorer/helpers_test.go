package scorer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	"github.com/rustybalancer/rb/services/scorer"
)

const app = "shop"

// t0 is the event time of sample 0; Samples are one second apart.
var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const waitLong = 15 * time.Second

// world is one test's NATS server, a client on it, and a Redis.
type world struct {
	url   string
	b     *bus.Bus
	redis *redistest.Server
}

func newWorld(t *testing.T) *world {
	t.Helper()
	url, _ := natstest.Start(t)
	return &world{url: url, b: natstest.Connect(t, url), redis: redistest.Start(t)}
}

// newStore is a store on the world's Redis, or on another one.
func newStore(t testing.TB, url string) *store.Store {
	t.Helper()
	s, err := store.New(store.Options{URL: url}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testConfig() config.Config {
	c := config.Default()
	c.App = app
	return c
}

// running is a scorer started by a test.
type running struct {
	svc  *scorer.Service
	reg  *prometheus.Registry
	stop func()
}

// startScorer runs a scorer on its own NATS connection, as another process
// would, and waits until it is ready. stop cancels it and waits for Run to
// return nil; it also runs at cleanup.
func startScorer(t *testing.T, url string, st scorer.Store, cfg config.Config, edit ...func(*scorer.Options)) *running {
	t.Helper()
	b := natstest.Connect(t, url)
	reg := prometheus.NewRegistry()
	o := scorer.Options{Config: cfg, Bus: b, Store: st, Logger: natstest.Logger(t), Metrics: reg, Node: "test"}
	for _, e := range edit {
		e(&o)
	}
	svc, err := scorer.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("scorer Run = %v, want nil", err)
			}
		case <-time.After(waitLong):
			t.Errorf("scorer did not stop within %v", waitLong)
		}
	}
	t.Cleanup(stop)
	waitFor(t, "scorer ready", func() bool { return svc.Ready() == nil })
	return &running{svc: svc, reg: reg, stop: stop}
}

// waitAcked waits until the scorer's consumer has acknowledged the first n
// messages of RB_STATS. A test that stops a scorer right after seeing its
// last Score may otherwise stop it before the acknowledgement (or before the
// publisher hears the stream's ack): that Sample then comes again to the
// next scorer, which is correct but makes counts of restored Samples vary.
func waitAcked(t *testing.T, b *bus.Bus, n uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d samples acknowledged", n), func() bool {
		c, err := b.JetStream().Consumer(context.Background(), events.StreamStats, "scorer_"+app)
		if err != nil {
			return false
		}
		i := c.CachedInfo()
		return i.AckFloor.Stream == n && i.NumAckPending == 0
	})
}

// waitFor polls cond until it holds or waitLong passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the value of a counter or gauge, labels as "k=v" pairs; 0
// when it has not been set.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// sample i of container ctr: varying load, probe times around 1–3 ms, and
// every fifth probe failed, so the availability EMA is far from 100.
func sample(ctr string, i int) events.Event[events.Sample] {
	s := events.Sample{
		App: app, Container: ctr, ContainerID: "id-" + ctr, State: "running", Address: "10.0.0.1:8080",
		WindowSeconds: 1, CPUPercent: float64(10 + (7*i)%60), CPULimit: 1,
		MemUsage: uint64(100+i) << 20, MemLimit: 512 << 20, NetRxBps: 1e5 * float64(i), NetTxBps: 5e4,
		ProbeOK: true, ProbeSeconds: 0.001 + 0.0007*float64(i%4),
	}
	if i%5 == 3 {
		s.ProbeOK, s.ProbeSeconds, s.ProbeError = false, 5, "dial tcp 10.0.0.1:8080: i/o timeout"
	}
	return events.New(fmt.Sprintf("%s-%d", ctr, i), t0.Add(time.Duration(i)*time.Second), "collector/test", s)
}

func publish(t testing.TB, b *bus.Bus, evs ...events.Event[events.Sample]) {
	t.Helper()
	for _, ev := range evs {
		subj, err := events.StatsSubject(ev.Data.App, ev.Data.Container)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.PublishEvent(context.Background(), b, subj, ev); err != nil {
			t.Fatal(err)
		}
	}
}

// expect scores evs with pkg/score directly, one state per container, as an
// uninterrupted scorer would.
func expect(p score.Params, evs []events.Event[events.Sample]) []events.Score {
	states := map[string]*score.State{}
	out := make([]events.Score, len(evs))
	for i, ev := range evs {
		st := states[ev.Data.Container]
		if st == nil {
			st = score.NewState(p)
			states[ev.Data.Container] = st
		}
		out[i] = st.Update(p, ev.Data)
		out[i].SampleID = ev.ID
	}
	return out
}

// scoreMsg is one message read from RB_SCORES.
type scoreMsg struct {
	subject string
	ev      events.Event[events.Score]
}

// scoreReader reads RB_SCORES from its first message, in order.
type scoreReader struct {
	ch chan scoreMsg
	// source is the Scores' expected source (default scorer/test).
	source string
}

func readScores(t *testing.T, b *bus.Bus) *scoreReader {
	t.Helper()
	ctx := context.Background()
	cons, err := b.JetStream().OrderedConsumer(ctx, events.StreamScores, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.PrefixScore + app + ".>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &scoreReader{ch: make(chan scoreMsg, 4096), source: "scorer/test"}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := events.Decode[events.Score](m.Data())
		if err != nil {
			t.Errorf("undecodable score on %s: %v", m.Subject(), err)
			return
		}
		r.ch <- scoreMsg{subject: m.Subject(), ev: ev}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return r
}

func (r *scoreReader) next(t testing.TB) scoreMsg {
	t.Helper()
	select {
	case m := <-r.ch:
		return m
	case <-time.After(waitLong):
		t.Fatalf("no score within %v", waitLong)
		return scoreMsg{}
	}
}

// none checks that no further score arrives within d.
func (r *scoreReader) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.ch:
		t.Fatalf("unexpected score %s for sample %s", m.ev.ID, m.ev.Data.SampleID)
	case <-time.After(d):
	}
}

// checkScores reads one score per Sample and compares each with want: the
// subject, the ids, the event time and source, and every field of the Score.
func checkScores(t *testing.T, r *scoreReader, evs []events.Event[events.Sample], want []events.Score) {
	t.Helper()
	for i, ev := range evs {
		got := r.next(t)
		subj, _ := events.ScoreSubject(app, ev.Data.Container)
		switch {
		case got.subject != subj:
			t.Fatalf("score %d on %s, want %s", i, got.subject, subj)
		case got.ev.ID != scorer.ScoreID(ev.ID) || got.ev.Data.SampleID != ev.ID:
			t.Fatalf("score %d: id %q sample id %q, want %q and %q", i, got.ev.ID, got.ev.Data.SampleID, scorer.ScoreID(ev.ID), ev.ID)
		case !got.ev.Time.Equal(ev.Time) || got.ev.Source != r.source:
			t.Fatalf("score %d: time %v source %q, want the sample's time %v and %s", i, got.ev.Time, got.ev.Source, ev.Time, r.source)
		case got.ev.Data != want[i]:
			t.Fatalf("score %d (sample %s) differs:\n got %+v\nwant %+v", i, ev.ID, got.ev.Data, want[i])
		}
	}
}
