package scorer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	"github.com/rustybalancer/rb/services/scorer"
)

// TestScoresSamples: Samples in, Scores out, with every component and input,
// on the container's subject, with ids and event time taken from the Sample.
func TestScoresSamples(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	s := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())

	var evs []events.Event[events.Sample]
	for i := range 8 {
		evs = append(evs, sample("web-1", i), sample("web.2", i)) // a dot is escaped in the subject
	}
	publish(t, w.b, evs...)
	want := expect(score.DefaultParams(), evs)
	checkScores(t, r, evs, want)

	last := want[len(want)-1]
	if last.Inputs.HistoryLen == 0 || last.Availability == 100 || last.CPU == 0 || last.Memory == 0 || last.Network == 0 || last.Category == "" {
		t.Fatalf("score lacks components: %+v", last)
	}
	waitFor(t, "metrics", func() bool { return metric(t, s.reg, "rb_scorer_scores_published_total") == 16 })
	for name, want := range map[string]float64{
		"rb_scorer_samples_total":         16,
		"rb_scorer_score_latency_seconds": 16,
		"rb_scorer_containers":            2,
	} {
		if got := metric(t, s.reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestMalformedSampleGoesToDLQ: undecodable or misplaced Samples go to
// rb.dlq.RB_STATS, are counted, and the next valid Sample is still scored.
func TestMalformedSampleGoesToDLQ(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	s := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())
	ctx := context.Background()

	subj, _ := events.StatsSubject(app, "web-1")
	if err := w.b.Publish(ctx, subj, "garbage-1", []byte(`{"schema":1,"kind":"sample",`)); err != nil {
		t.Fatal(err)
	}
	wrongApp := sample("web-1", 0)
	wrongApp.Data.App, wrongApp.ID = "other", "wrong-app"
	data, _ := events.Encode(wrongApp)
	if err := w.b.Publish(ctx, subj, wrongApp.ID, data); err != nil {
		t.Fatal(err)
	}
	good := sample("web-1", 0)
	publish(t, w.b, good)
	checkScores(t, r, []events.Event[events.Sample]{good}, expect(score.DefaultParams(), []events.Event[events.Sample]{good}))

	waitFor(t, "two dead letters", func() bool { return metric(t, s.reg, "rb_scorer_dead_lettered_total") == 2 })
	if m, w := metric(t, s.reg, "rb_scorer_samples_rejected_total", "reason=malformed"), metric(t, s.reg, "rb_scorer_samples_rejected_total", "reason=wrong_subject"); m != 1 || w != 1 {
		t.Fatalf("rejected: malformed %v, wrong_subject %v; want 1 and 1", m, w)
	}
	dlq, err := w.b.JetStream().Stream(ctx, events.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		msg, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		if msg.Subject != "rb.dlq.RB_STATS" || msg.Header.Get(bus.HeaderDLQSubject) != subj || msg.Header.Get(bus.HeaderDLQKind) != bus.DLQKindPermanent {
			t.Fatalf("dead letter %d on %s with headers %v", seq, msg.Subject, msg.Header)
		}
	}
}

// TestRestartContinuesEMA stops the scorer mid-stream and starts a new one on
// the same NATS and Redis: the next Scores equal an uninterrupted scorer's.
func TestRestartContinuesEMA(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	st := newStore(t, w.redis.URL())
	var evs []events.Event[events.Sample]
	for i := range 24 {
		evs = append(evs, sample("web-1", i))
	}
	want := expect(score.DefaultParams(), evs)

	a := startScorer(t, w.url, st, testConfig())
	publish(t, w.b, evs[:12]...)
	checkScores(t, r, evs[:12], want[:12])
	waitAcked(t, w.b, 12)
	a.stop()

	snap, err := st.GetSnapshot(context.Background(), scorer.SnapshotKind, app)
	if err != nil {
		t.Fatalf("no snapshot after a stop: %v", err)
	}
	if snap.Version != 12 { // the twelfth message of RB_STATS
		t.Fatalf("snapshot version %d, want 12", snap.Version)
	}

	b := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())
	publish(t, w.b, evs[12:]...)
	checkScores(t, r, evs[12:], want[12:])
	if want[12].Availability > 90 {
		t.Fatalf("test data too easy: availability %v after 12 samples, a jump to 100 would hardly show", want[12].Availability)
	}
	if got := metric(t, b.reg, "rb_scorer_restored_samples_total", "way=rebuild"); got != 0 {
		t.Fatalf("restarted scorer rebuilt %v samples, want the snapshot used", got)
	}
	r.none(t, 100*time.Millisecond)
}

// TestRestartRightAfterAScore stops scorers the moment their last Score is
// in the stream, before they may have acknowledged the Sample or heard the
// stream's ack: whichever way each stop falls, every Sample is scored
// exactly once and the Scores equal an uninterrupted scorer's.
func TestRestartRightAfterAScore(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	var evs []events.Event[events.Sample]
	for i := range 20 {
		evs = append(evs, sample("web-1", i))
	}
	want := expect(score.DefaultParams(), evs)
	for from := 0; from < len(evs); from += 5 {
		s := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())
		publish(t, w.b, evs[from:from+5]...)
		checkScores(t, r, evs[from:from+5], want[from:from+5])
		s.stop()
	}
	startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig()) // takes any Sample left unacknowledged
	r.none(t, 200*time.Millisecond)
}

// TestRestartCatchesUpFromOlderSnapshot: the snapshot in Redis is older than
// the consumer's position (another run went on without writing to this
// Redis); the Samples in between are applied from the stream, not scored
// again, and scoring continues exactly.
func TestRestartCatchesUpFromOlderSnapshot(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	other := redistest.Start(t)
	var evs []events.Event[events.Sample]
	for i := range 12 {
		evs = append(evs, sample("web-1", i), sample("web-2", i))
	}
	want := expect(score.DefaultParams(), evs)

	a := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig()) // snapshot at 8 in w.redis
	publish(t, w.b, evs[:8]...)
	checkScores(t, r, evs[:8], want[:8])
	waitAcked(t, w.b, 8)
	a.stop()
	b := startScorer(t, w.url, newStore(t, other.URL()), testConfig()) // writes to the other Redis
	publish(t, w.b, evs[8:16]...)
	checkScores(t, r, evs[8:16], want[8:16])
	waitAcked(t, w.b, 16)
	b.stop()

	c := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())
	if got := metric(t, c.reg, "rb_scorer_restored_samples_total", "way=catch-up"); got != 8 {
		t.Fatalf("caught up %v samples, want 8 (sequences 9..16)", got)
	}
	publish(t, w.b, evs[16:]...)
	checkScores(t, r, evs[16:], want[16:])
	r.none(t, 100*time.Millisecond)
}

// TestRestartWithoutSnapshotRebuilds: with Redis empty the state is rebuilt
// from the stream, so scores go on without a jump to 100.
func TestRestartWithoutSnapshotRebuilds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	var evs []events.Event[events.Sample]
	for i := range 40 {
		evs = append(evs, sample("web-1", i))
	}
	want := expect(score.DefaultParams(), evs)

	a := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())
	publish(t, w.b, evs[:30]...)
	checkScores(t, r, evs[:30], want[:30])
	waitAcked(t, w.b, 30)
	a.stop()

	empty := redistest.Start(t)
	b := startScorer(t, w.url, newStore(t, empty.URL()), testConfig())
	if got := metric(t, b.reg, "rb_scorer_restored_samples_total", "way=rebuild"); got != 30 {
		t.Fatalf("rebuilt from %v samples, want 30 (all within the window)", got)
	}
	publish(t, w.b, evs[30:]...)
	checkScores(t, r, evs[30:], want[30:])
	if want[30].Availability > 90 {
		t.Fatalf("test data too easy: availability %v", want[30].Availability)
	}
}

// TestFirstStartRebuildsFromHistory: a scorer started for the first time on a
// stream that already holds Samples rebuilds its state from them and scores
// only new Samples.
func TestFirstStartRebuildsFromHistory(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	var evs []events.Event[events.Sample]
	for i := range 25 {
		evs = append(evs, sample("web-1", i))
	}
	want := expect(score.DefaultParams(), evs)
	publish(t, w.b, evs[:20]...)
	s := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())
	if got := metric(t, s.reg, "rb_scorer_restored_samples_total", "way=rebuild"); got != 20 {
		t.Fatalf("rebuilt from %v samples, want 20", got)
	}
	publish(t, w.b, evs[20:]...)
	checkScores(t, r, evs[20:], want[20:]) // the first score read is sample 20's
}

// TestRuntimeConfig: the app's config in Redis is read at start; a
// ConfigChanged on rb.config.<app> changes the weights for the next Sample;
// an invalid one is refused and the weights kept.
func TestRuntimeConfig(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	st := newStore(t, w.redis.URL())
	ctx := context.Background()
	stored, err := st.SetConfig(ctx, app, map[string]string{"NETWORK_WEIGHT": "0", "AVAILABILITY_WEIGHT": "0.4"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := startScorer(t, w.url, st, testConfig())
	if got := metric(t, s.reg, "rb_scorer_config_version"); got != float64(stored.Version) {
		t.Fatalf("config version %v at start, want %d", got, stored.Version)
	}

	evs := []events.Event[events.Sample]{sample("web-1", 0), sample("web-1", 1), sample("web-1", 2)}
	p1 := score.DefaultParams()
	p1.NetworkWeight, p1.AvailabilityWeight = 0, 0.4
	p2 := p1
	p2.CPUWeight, p2.MemoryWeight, p2.AvailabilityWeight = 1, 0, 0
	// Weights do not change the state, so each score is expect()'s with that Sample's weights.
	want := []events.Score{expect(p1, evs)[0], expect(p2, evs)[1], expect(p2, evs)[2]}

	publish(t, w.b, evs[0])
	checkScores(t, r, evs[:1], want[:1])

	change := func(version int64, values map[string]string) {
		t.Helper()
		subj, _ := events.ConfigSubject(app)
		ev := events.New(fmt.Sprintf("config-%s-%d", app, version), time.Now(), "test", events.ConfigChanged{
			App: app, Version: version, Values: values, Changed: []string{"CPU_WEIGHT"},
		})
		if err := bus.PublishEvent(ctx, w.b, subj, ev); err != nil {
			t.Fatal(err)
		}
	}
	change(stored.Version+1, map[string]string{"CPU_WEIGHT": "1", "MEMORY_WEIGHT": "0", "NETWORK_WEIGHT": "0", "AVAILABILITY_WEIGHT": "0"})
	waitFor(t, "config applied", func() bool { return metric(t, s.reg, "rb_scorer_config_version") == float64(stored.Version+1) })
	publish(t, w.b, evs[1])
	checkScores(t, r, evs[1:2], want[1:2])
	if want[1].Overall != want[1].CPU {
		t.Fatalf("with all weight on CPU, overall %v != cpu %v", want[1].Overall, want[1].CPU)
	}

	change(stored.Version+2, map[string]string{"CPU_WEIGHT": "2"}) // weights no longer sum to 1
	waitFor(t, "config refused", func() bool { return metric(t, s.reg, "rb_scorer_config_refused_total") == 1 })
	publish(t, w.b, evs[2])
	checkScores(t, r, evs[2:], want[2:])
	if got := metric(t, s.reg, "rb_scorer_config_version"); got != float64(stored.Version+1) {
		t.Fatalf("config version %v after a refused change, want %d", got, stored.Version+1)
	}
}

// TestForgetsContainers: a removed or died container's state is dropped, and
// so is one that has sent nothing for IdleTimeout; the next Sample of a
// forgotten container starts from a fresh state.
func TestForgetsContainers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := readScores(t, w.b)
	s := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig(), func(o *scorer.Options) {
		o.IdleTimeout, o.SnapshotEvery = time.Minute, 20*time.Millisecond
	})
	var evs []events.Event[events.Sample]
	for i := range 5 {
		evs = append(evs, sample("web-1", i), sample("web-2", i), sample("web-3", i))
	}
	publish(t, w.b, evs...)
	checkScores(t, r, evs, expect(score.DefaultParams(), evs))

	ctx := context.Background()
	for _, f := range []struct {
		ctr   string
		phase events.Phase
	}{{"web-1", events.PhaseRemoved}, {"web-2", events.PhaseDied}, {"web-3", events.PhaseSundown}} {
		subj, _ := events.LifecycleSubject(app, f.ctr)
		ev := events.New("life-"+f.ctr, time.Now(), "test", events.Lifecycle{App: app, Container: f.ctr, Phase: f.phase})
		if err := bus.PublishEvent(ctx, w.b, subj, ev); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two containers forgotten", func() bool { return metric(t, s.reg, "rb_scorer_containers") == 1 })
	if metric(t, s.reg, "rb_scorer_containers_forgotten_total", "reason=removed") != 1 ||
		metric(t, s.reg, "rb_scorer_containers_forgotten_total", "reason=died") != 1 {
		t.Fatal("forgotten counts by reason wrong")
	}

	// web-1 comes back: it scores as new. web-3 (SUNDOWN, still known) is
	// idle from the scorer's point of view once Samples are 2 minutes newer.
	back := sample("web-1", 120)
	publish(t, w.b, back)
	checkScores(t, r, []events.Event[events.Sample]{back}, expect(score.DefaultParams(), []events.Event[events.Sample]{back}))
	waitFor(t, "idle container forgotten", func() bool {
		return metric(t, s.reg, "rb_scorer_containers_forgotten_total", "reason=idle") == 1
	})
	if got := metric(t, s.reg, "rb_scorer_containers"); got != 1 {
		t.Fatalf("containers %v, want 1 (web-1)", got)
	}
	// The snapshot no longer holds them.
	waitFor(t, "snapshot with web-1 only", func() bool {
		snap, err := newStore(t, w.redis.URL()).GetSnapshot(ctx, scorer.SnapshotKind, app)
		if err != nil {
			return false
		}
		var v struct{ Containers map[string]json.RawMessage }
		return json.Unmarshal(snap.Data, &v) == nil && len(v.Containers) == 1 && v.Containers["web-1"] != nil
	})
}

// TestScoreSentAgainUntilStored: while RB_SCORES is missing every publication
// fails; the scorer keeps the Score and sends it again, and it is stored once
// the stream is back.
func TestScoreSentAgainUntilStored(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := startScorer(t, w.url, newStore(t, w.redis.URL()), testConfig())
	ctx := context.Background()
	if err := w.b.JetStream().DeleteStream(ctx, events.StreamScores); err != nil {
		t.Fatal(err)
	}
	evs := []events.Event[events.Sample]{sample("web-1", 0)}
	publish(t, w.b, evs...)
	waitFor(t, "a failed publication", func() bool { return metric(t, s.reg, "rb_scorer_publish_errors_total") >= 2 })
	if err := w.b.EnsureStreams(ctx, events.Streams(events.DefaultStreamLimits())); err != nil {
		t.Fatal(err)
	}
	r := readScores(t, w.b)
	checkScores(t, r, evs, expect(score.DefaultParams(), evs))
	evs = append(evs, sample("web-1", 1))
	publish(t, w.b, evs[1])
	checkScores(t, r, evs[1:], expect(score.DefaultParams(), evs)[1:])
	r.none(t, 100*time.Millisecond)
}
