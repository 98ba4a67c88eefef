package queuebuilder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
)

// input is one event a test publishes: a score (phase empty) or a fact.
type input struct {
	ctr   string
	score float64
	phase events.Phase
	// want, when set, is the queue to wait for before the next input.
	want string
}

// TestQueue runs one service for several apps at once, each case on its own
// app: order, SUNDOWN last with weight 0, workers leaving on removed, died
// and failed, the event id, source and time, and growing generations.
func TestQueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run(t, Options{})
	tests := []struct {
		name   string
		inputs []input
		want   string
	}{
		{
			name:   "others by score descending",
			inputs: []input{{ctr: "w1", score: 50}, {ctr: "w2", score: 90}, {ctr: "w3", score: 70}},
			want:   "w2:ACTIVE:90 w3:ACTIVE:70 w1:ACTIVE:50",
		},
		{
			name: "sundown moves last with weight 0",
			inputs: []input{{ctr: "w1", score: 90}, {ctr: "w2", score: 40}, {ctr: "w3", score: 60,
				want: "w1:ACTIVE:90 w3:ACTIVE:60 w2:ACTIVE:40"}, {ctr: "w1", phase: events.PhaseSundown}},
			want: "w3:ACTIVE:60 w2:ACTIVE:40 w1:SUNDOWN:0",
		},
		{
			name: "removed leaves the queue",
			inputs: []input{{ctr: "w1", score: 80}, {ctr: "w2", score: 30, want: "w1:ACTIVE:80 w2:ACTIVE:30"},
				{ctr: "w1", phase: events.PhaseRemoved}},
			want: "w2:ACTIVE:30",
		},
		{
			name: "died leaves, and a late score does not bring it back",
			inputs: []input{{ctr: "w1", score: 80}, {ctr: "w2", score: 30, want: "w1:ACTIVE:80 w2:ACTIVE:30"},
				{ctr: "w2", phase: events.PhaseDied, want: "w1:ACTIVE:80"}, {ctr: "w2", score: 95}, {ctr: "w1", score: 75}},
			want: "w1:ACTIVE:75",
		},
		{
			name: "failed leaves the queue",
			inputs: []input{{ctr: "w1", phase: events.PhaseCreated, want: "w1:INIT:100"}, {ctr: "w1", phase: events.PhaseFailed},
				{ctr: "w2", score: 45}},
			want: "w2:ACTIVE:45",
		},
		{
			name: "created is INIT at 100 until ready and scored",
			inputs: []input{{ctr: "w1", score: 60}, {ctr: "w2", phase: events.PhaseCreated, want: "w2:INIT:100 w1:ACTIVE:60"},
				{ctr: "w2", phase: events.PhaseReady, want: "w2:ACTIVE:100 w1:ACTIVE:60"}, {ctr: "w2", score: 20}},
			want: "w1:ACTIVE:60 w2:ACTIVE:20",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := "app" + string(rune('a'+i))
			w := h.watch(t, app)
			base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			for k, in := range tc.inputs {
				at := base.Add(time.Duration(k) * time.Second)
				if in.phase == "" {
					h.score(t, app, in.ctr, in.score, at)
				} else {
					h.fact(t, app, in.ctr, in.phase, at)
				}
				if in.want != "" {
					w.lastOrder(t, in.want)
				}
			}
			final := w.lastOrder(t, tc.want)
			all := w.all(t)
			for _, r := range all {
				checkQueue(t, r)
				if r.ev.Data.App != app {
					t.Fatalf("queue of %q on the subject of %q", r.ev.Data.App, app)
				}
				// Stamped with an input's event time, never the wall clock.
				if d := r.ev.Time.Sub(base); d < 0 || d >= time.Duration(len(tc.inputs))*time.Second || d%time.Second != 0 {
					t.Fatalf("queue generation %d stamped %v, not an input's time", r.ev.Data.Generation, r.ev.Time)
				}
			}
			checkGenerations(t, all)
			if final.ev.Time.Before(all[0].ev.Time) {
				t.Fatalf("final queue stamped %v before the first %v", final.ev.Time, all[0].ev.Time)
			}
		})
	}
}

// TestNoOpPublishesNothing: inputs that change nothing publish nothing, and
// published generations follow each other.
func TestNoOpPublishesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.run(t, Options{})
	const app = "shop"
	w := h.watch(t, app)
	now := time.Now()
	h.score(t, app, "w1", 50, now)
	first := w.lastOrder(t, "w1:ACTIVE:50")
	unchanged := func() float64 {
		return metric(t, r.reg, "rb_queuebuilder_inputs_total", map[string]string{"result": resultUnchanged})
	}
	before := unchanged()
	h.score(t, app, "w1", 50, now.Add(time.Second))                   // same score
	h.fact(t, app, "w1", events.PhaseStarted, now.Add(2*time.Second)) // already ACTIVE
	h.fact(t, app, "w9", events.PhaseDrained, now.Add(3*time.Second)) // unknown worker
	h.fact(t, app, "w1", events.PhaseHealth, now.Add(4*time.Second))  // changes nothing
	waitFor(t, 10*time.Second, "four no-op inputs applied", func() bool { return unchanged()-before == 4 })
	h.score(t, app, "w1", 60, now.Add(5*time.Second))
	second := w.lastOrder(t, "w1:ACTIVE:60")
	// The counter moves once the publish is acknowledged, which may be after
	// the watcher got the message.
	waitPublishes(t, r, app, 2)
	if g1, g2 := first.ev.Data.Generation, second.ev.Data.Generation; g2 != g1+1 {
		t.Fatalf("generations %d then %d, want consecutive", g1, g2)
	}
	if got := len(w.all(t)); got != 2 {
		t.Fatalf("%d queue events on RB_QUEUE, want 2", got)
	}
	if got := metric(t, r.reg, "rb_queuebuilder_generation", map[string]string{"app": app}); got != float64(second.ev.Data.Generation) {
		t.Fatalf("generation gauge %v, want %d", got, second.ev.Data.Generation)
	}
}

// TestDebounce publishes a burst of 100 score changes and measures what
// comes out: few publishes, the first one window at most after the burst
// reaches the service, the next ones a window apart, the last with the
// final state. It does not run in parallel with the other tests of the
// package, so that it measures the service rather than the contention.
func TestDebounce(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, Options{})
	const (
		app   = "burst"
		burst = 100
	)
	w := h.watch(t, app)
	now := time.Now()
	// The pipeline's own latency on this machine now, without debounce (the
	// app's first change is published at once): from the test's publish to
	// the watcher. It sets the tolerance below.
	t0 := time.Now()
	h.score(t, app, "w1", 1, now)
	pipeline := w.lastOrder(t, "w1:ACTIVE:1").seen.Sub(t0)
	h.score(t, app, "w2", 50, now)
	w.lastOrder(t, "w2:ACTIVE:50 w1:ACTIVE:1")
	baseline := len(w.all(t))
	changed := func() float64 {
		return metric(t, r.reg, "rb_queuebuilder_inputs_total", map[string]string{"kind": "score", "result": resultChanged})
	}
	before := changed()

	// Core NATS publishes: the stream stores them, and the burst is not
	// slowed down by waiting for an acknowledgement each.
	subj, err := events.ScoreSubject(app, "w1")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([][]byte, burst)
	for i := range msgs {
		v := float64(i%99 + 2) // 2..100: each differs from the one before
		if i == burst-1 {
			v = 99.5
		}
		msgs[i], err = events.Encode(events.New(h.id("burst"), now.Add(time.Duration(i+1)*time.Millisecond), "test/scorer", scoreOf(app, "w1", v)))
		if err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for _, m := range msgs {
		if err := h.bus.Conn().Publish(subj, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	burstTook := time.Since(start)
	// When the service had applied the whole burst.
	deadline := time.Now().Add(10 * time.Second)
	for changed()-before < burst {
		if time.Now().After(deadline) {
			t.Fatalf("only %v of %d changes applied", changed()-before, burst)
		}
		time.Sleep(time.Millisecond)
	}
	ingest := time.Since(start)

	final := w.last(t, "the final score on the queue", func(q events.QueueSnapshot) bool {
		return len(q.Items) == 2 && q.Items[0].Container == "w1" && q.Items[0].Score == 99.5
	})
	all := w.all(t)
	out := all[baseline:]
	checkGenerations(t, all)
	for _, r := range out {
		checkQueue(t, r)
	}
	firstAfter := out[0].seen.Sub(start)
	lastAfter := final.seen.Sub(start)
	var gaps []time.Duration
	for i := 1; i < len(out); i++ {
		gaps = append(gaps, out[i].stored.Sub(out[i-1].stored).Round(10*time.Microsecond))
	}
	hist := histogram(t, r.reg, "rb_queuebuilder_debounce_delay_seconds")
	tolerance := 20*time.Millisecond + 2*pipeline
	t.Logf("pipeline latency (publish a score → queue seen, no debounce) %v; burst of %d sent in %v, applied by the service %v after it started; %d publishes for it; first seen %v after the burst started, final %v; gaps between publishes (stream time) %v; service side, first change to publish start: %d publishes, mean %.2f ms",
		pipeline.Round(time.Microsecond), burst, burstTook.Round(time.Microsecond), ingest.Round(time.Microsecond), len(out), firstAfter.Round(time.Microsecond),
		lastAfter.Round(time.Microsecond), gaps, hist.GetSampleCount(), 1000*hist.GetSampleSum()/float64(hist.GetSampleCount()))

	if burstTook > 20*time.Millisecond {
		t.Logf("note: the burst took %v to send, more than the 20 ms meant (slow machine)", burstTook)
	}
	// Few publishes: at most one per window while the service takes the
	// burst in, and the last one. (Publishing every change would be ~100.)
	if limit := 2 + int(ingest/DefaultDebounce); len(out) > limit {
		t.Fatalf("%d publishes for a burst of %d changes applied in %v, want ≤ %d", len(out), burst, ingest, limit)
	}
	// The first publish: a window at most after the burst started (the
	// previous publish was moments before, so the window is all used), plus
	// the machine's tolerance: twice the pipeline's own latency, + 20 ms,
	// + the time the burst took to send when the machine is that slow.
	if firstAfter > DefaultDebounce+tolerance+burstTook {
		t.Fatalf("first publish seen %v after the burst started, want ≤ %v + %v + %v", firstAfter, DefaultDebounce, tolerance, burstTook)
	}
	// Service side: from the first change to the publish start, every time,
	// within the window plus the tolerance (to the histogram's resolution).
	limit := (DefaultDebounce + tolerance).Seconds()
	var le float64
	for _, b := range hist.GetBucket() {
		if b.GetUpperBound() >= limit {
			le = b.GetUpperBound()
			break
		}
	}
	if n, within := hist.GetSampleCount(), countAtMost(t, hist, le); le > 0 && within != n {
		t.Fatalf("%d of %d publishes started more than %vs after their first change", n-within, n, le)
	}
}

// waitPublishes waits until the service has published want queues of app,
// and fails when it published more.
func waitPublishes(t testing.TB, r *running, app string, want float64) {
	t.Helper()
	var got float64
	waitFor(t, 10*time.Second, fmt.Sprintf("%v publishes of %s", want, app), func() bool {
		got = metric(t, r.reg, "rb_queuebuilder_publishes_total", map[string]string{"app": app, "result": "ok"})
		if got > want {
			t.Fatalf("%v publishes of %s, want %v", got, app, want)
		}
		return got == want
	})
}

// TestSnapshotInRedis: Redis holds exactly the last queue published.
func TestSnapshotInRedis(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run(t, Options{})
	const app = "shop"
	w := h.watch(t, app)
	now := time.Now()
	h.score(t, app, "w1", 80, now)
	h.score(t, app, "w2", 70, now)
	w.lastOrder(t, "w1:ACTIVE:80 w2:ACTIVE:70")
	h.fact(t, app, "w1", events.PhaseSundown, now.Add(time.Second))
	last := w.lastOrder(t, "w2:ACTIVE:70 w1:SUNDOWN:0")
	snap := waitSnapshot(t, h.store, app, last.ev.Data.Generation)
	if !bytes.Equal(snap.Data, last.data) {
		t.Fatalf("redis holds\n%s\nwant the last published queue\n%s", snap.Data, last.data)
	}
	ev, err := events.Decode[events.QueueSnapshot](snap.Data)
	if err != nil {
		t.Fatalf("redis snapshot does not decode as a queue event: %v", err)
	}
	if order(ev.Data) != "w2:ACTIVE:70 w1:SUNDOWN:0" {
		t.Fatalf("redis queue %s", order(ev.Data))
	}
}

// waitSnapshot waits until Redis holds the queue of app at generation gen.
func waitSnapshot(t testing.TB, st *store.Store, app string, gen uint64) store.Snapshot {
	t.Helper()
	var snap store.Snapshot
	waitFor(t, 15*time.Second, "redis snapshot at the last generation", func() bool {
		var err error
		snap, err = st.GetSnapshot(context.Background(), SnapshotKind, app)
		return err == nil && snap.Version == gen
	})
	return snap
}

// TestRestart stops the service and starts another: generations go on
// increasing, whether the queue comes back from RB_QUEUE, from Redis, or
// both, and a restart alone publishes nothing new.
func TestRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// lose is what is gone when the second service starts.
		lose string
	}{
		{name: "NATS and Redis kept"},
		{name: "NATS lost: restored from Redis and published again", lose: "nats"},
		{name: "Redis lost: restored from RB_QUEUE and written to Redis again", lose: "redis"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const app = "shop"
			h := newHarness(t)
			first := h.run(t, Options{})
			w := h.watch(t, app)
			now := time.Now()
			h.score(t, app, "w1", 80, now)
			h.score(t, app, "w2", 60, now.Add(time.Second))
			h.fact(t, app, "w3", events.PhaseCreated, now.Add(2*time.Second))
			w.lastOrder(t, "w3:INIT:100 w1:ACTIVE:80 w2:ACTIVE:60")
			h.fact(t, app, "w1", events.PhaseSundown, now.Add(3*time.Second))
			h.fact(t, app, "w3", events.PhaseRemoved, now.Add(4*time.Second))
			before := w.lastOrder(t, "w2:ACTIVE:60 w1:SUNDOWN:0")
			gen := before.ev.Data.Generation
			waitSnapshot(t, h.store, app, gen)
			first.stop()

			switch tc.lose {
			case "nats":
				h.useNATS(t, "")
				w = h.watch(t, app)
			case "redis":
				h.redis.Stop(t)
				h.redis.Restart(t) // empty: nothing is persisted
			}
			second := h.run(t, Options{Apps: []string{app}})
			switch tc.lose {
			case "nats":
				again := w.last(t, "the restored queue published again", func(q events.QueueSnapshot) bool { return q.Generation == gen })
				if !bytes.Equal(again.data, before.data) {
					t.Fatalf("republished\n%s\nwant\n%s", again.data, before.data)
				}
			case "redis":
				snap := waitSnapshot(t, h.store, app, gen)
				if !bytes.Equal(snap.Data, before.data) {
					t.Fatalf("redis healed with\n%s\nwant\n%s", snap.Data, before.data)
				}
			}
			h.score(t, app, "w2", 65, now.Add(5*time.Second))
			after := w.lastOrder(t, "w2:ACTIVE:65 w1:SUNDOWN:0")
			// The rebuild changed nothing, so the restart published nothing
			// of its own: the change is the very next generation.
			if got := after.ev.Data.Generation; got != gen+1 {
				t.Fatalf("generation after restart %d, want %d", got, gen+1)
			}
			wantPublishes := 1.0
			if tc.lose == "nats" {
				wantPublishes = 2 // the restored generation, then the change
			}
			waitPublishes(t, second, app, wantPublishes)
			checkGenerations(t, w.all(t))
			waitSnapshot(t, h.store, app, gen+1)
		})
	}
}

// TestRebuildFromStreams: with neither RB_QUEUE nor Redis holding a queue,
// a start rebuilds it from the last scores and the lifecycle facts, leaving
// out removed workers and scores older than ScoreHistory.
func TestRebuildFromStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const app = "shop"
	now := time.Now()
	h.score(t, app, "w1", 30, now)
	h.score(t, app, "w1", 40, now.Add(time.Second)) // the last one counts
	h.score(t, app, "w2", 90, now)
	h.score(t, app, "w3", 70, now)
	h.fact(t, app, "w2", events.PhaseRemoved, now.Add(2*time.Second))
	h.fact(t, app, "w3", events.PhaseSundown, now.Add(3*time.Second))
	h.fact(t, app, "w4", events.PhaseCreated, now.Add(4*time.Second))
	w := h.watch(t, app)
	// All of the above was stored a moment ago: a clock 100 s ahead with a
	// 1 min score history makes every score stale, while the facts are
	// read from 24 h back.
	ahead := h.run(t, Options{Now: func() time.Time { return time.Now().Add(100 * time.Second) }, ScoreHistory: time.Minute})
	w.lastOrder(t, "w4:INIT:100 w3:SUNDOWN:0")
	if got := metric(t, ahead.reg, "rb_queuebuilder_inputs_total", map[string]string{"kind": "score", "result": resultStale}); got != 3 {
		t.Fatalf("%v stale scores, want the last 3 (one per worker)", got)
	}
	ahead.stop()
	// A service on time applies them: the restored queue is updated.
	h.run(t, Options{})
	got := w.lastOrder(t, "w4:INIT:100 w1:ACTIVE:40 w3:SUNDOWN:0")
	checkGenerations(t, w.all(t))
	// Stamped with the latest input that changed the restored queue: which
	// one depends on how the two streams interleave, but it is an input's.
	inputTime := false
	for k := range 5 {
		inputTime = inputTime || got.ev.Time.Equal(now.Add(time.Duration(k)*time.Second))
	}
	if !inputTime {
		t.Fatalf("rebuilt queue stamped %v, want an input's time", got.ev.Time)
	}
}

// TestMalformedInput: undecodable inputs are dead-lettered and counted, and
// the service goes on.
func TestMalformedInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.run(t, Options{})
	const app = "shop"
	w := h.watch(t, app)
	ctx := context.Background()
	bad := []struct{ subj, data string }{
		{"rb.score.shop.w1", "{not json"},
		{"rb.score.shop.w1", `{"schema":1,"kind":"score","id":"x","time":"2026-01-01T00:00:00Z","source":"t","data":{"app":"shop","container":"w1","overall_score":140,"utilization_category":"LU"}}`},
		{"rb.lifecycle.shop.w1", `{"schema":1,"kind":"lifecycle","id":"y","time":"2026-01-01T00:00:00Z","source":"t","data":{"app":"shop","container":"w1","phase":"exploded"}}`},
		{"rb.lifecycle.shop.w1", `{"schema":9}`},
	}
	for i, b := range bad {
		if err := h.bus.Publish(ctx, b.subj, h.id("bad")+string(rune('a'+i)), []byte(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	h.score(t, app, "w1", 55, time.Now())
	w.lastOrder(t, "w1:ACTIVE:55")
	invalid := func(kind string) float64 {
		return metric(t, r.reg, "rb_queuebuilder_inputs_total", map[string]string{"kind": kind, "result": resultInvalid})
	}
	waitFor(t, 10*time.Second, "invalid inputs counted", func() bool { return invalid("score") == 2 && invalid("lifecycle") == 2 })
	waitFor(t, 10*time.Second, "dead letters counted", func() bool {
		return metric(t, r.reg, "rb_queuebuilder_dead_lettered_total", map[string]string{"stream": events.StreamScores}) == 2 &&
			metric(t, r.reg, "rb_queuebuilder_dead_lettered_total", map[string]string{"stream": events.StreamDecisions}) == 2
	})
	dlq, err := h.bus.JetStream().Stream(ctx, events.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{events.StreamScores, events.StreamDecisions} {
		subj, _ := events.DLQSubject(stream)
		m, err := dlq.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			t.Fatalf("nothing on %s: %v", subj, err)
		}
		if m.Header.Get(bus.HeaderDLQReason) == "" {
			t.Fatalf("dead letter on %s without a reason", subj)
		}
	}
}

// TestRedisDown: with Redis down the queue is still published on NATS, the
// health check says the snapshot is behind, and the snapshot is written
// once Redis is back.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.run(t, Options{})
	const app = "shop"
	w := h.watch(t, app)
	now := time.Now()
	h.score(t, app, "w1", 50, now)
	first := w.lastOrder(t, "w1:ACTIVE:50")
	waitSnapshot(t, h.store, app, first.ev.Data.Generation)
	if err := r.svc.Health(); err != nil {
		t.Fatalf("health with redis up: %v", err)
	}

	h.redis.Stop(t)
	h.score(t, app, "w1", 60, now.Add(time.Second))
	h.score(t, app, "w2", 40, now.Add(2*time.Second))
	last := w.lastOrder(t, "w1:ACTIVE:60 w2:ACTIVE:40")
	waitFor(t, 10*time.Second, "health reports the snapshot behind", func() bool {
		err := r.svc.Health()
		return err != nil && strings.Contains(err.Error(), "redis") && errors.Is(err, store.ErrUnavailable)
	})
	if got := metric(t, r.reg, "rb_queuebuilder_snapshot_pending", nil); got != 1 {
		t.Fatalf("snapshot_pending %v, want 1", got)
	}

	h.redis.Restart(t)
	snap := waitSnapshot(t, h.store, app, last.ev.Data.Generation)
	if !bytes.Equal(snap.Data, last.data) {
		t.Fatalf("redis holds\n%s\nwant\n%s", snap.Data, last.data)
	}
	waitFor(t, 10*time.Second, "healthy again", func() bool { return r.svc.Health() == nil })
	if got := metric(t, r.reg, "rb_queuebuilder_snapshot_writes_total", map[string]string{"result": "unavailable"}); got < 1 {
		t.Fatalf("no unavailable write counted")
	}
}

// TestNew checks the argument errors.
func TestNew(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		name    string
		opts    Options
		bus     bool
		store   bool
		wantErr string
	}{
		{name: "no bus", store: true, wantErr: "no NATS bus"},
		{name: "no store", bus: true, wantErr: "no snapshot store"},
		{name: "negative debounce", bus: true, store: true, opts: Options{Debounce: -time.Millisecond}, wantErr: "must not be negative"},
		{name: "defaults", bus: true, store: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b *bus.Bus
			if tc.bus {
				b = h.bus
			}
			var st SnapshotStore
			if tc.store {
				st = h.store
			}
			svc, err := New(tc.opts, b, st, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New() error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if svc.opts.Debounce != DefaultDebounce || !strings.HasPrefix(svc.Source(), "queuebuilder/") || svc.Ready() == nil {
				t.Fatalf("defaults not applied: %+v, source %q", svc.opts, svc.Source())
			}
		})
	}
}

// TestQueueEventIsJSON makes sure the published bytes are the envelope the
// proxy and the gateway decode.
func TestQueueEventIsJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run(t, Options{})
	w := h.watch(t, "shop")
	h.score(t, "shop", "w1", 50, time.Now())
	r := w.lastOrder(t, "w1:ACTIVE:50")
	var raw map[string]any
	if err := json.Unmarshal(r.data, &raw); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, ","); got != "data,id,kind,schema,source,time" {
		t.Fatalf("envelope keys %s", got)
	}
}

// TestNATSRestart: the service rides out a NATS restart: what changes after
// it is published, at the next generation.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run(t, Options{})
	const app = "shop"
	now := time.Now()
	h.score(t, app, "w1", 50, now)
	w := h.watch(t, app)
	first := w.lastOrder(t, "w1:ACTIVE:50")

	h.nats = natstest.Restart(t, h.nats)
	// The test's own client reconnects too; publish once it has.
	waitFor(t, 15*time.Second, "the score published after the restart", func() bool {
		subj, _ := events.ScoreSubject(app, "w1")
		ev := events.New("after-restart", now.Add(time.Second), "test/scorer", scoreOf(app, "w1", 70))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return bus.PublishEvent(ctx, h.bus, subj, ev) == nil
	})
	after := w.lastOrder(t, "w1:ACTIVE:70")
	if got, want := after.ev.Data.Generation, first.ev.Data.Generation+1; got != want {
		t.Fatalf("generation %d after the restart, want %d", got, want)
	}
	waitSnapshot(t, h.store, app, after.ev.Data.Generation)
}

// TestAppRedisCannotKeep: an app whose name cannot be a Redis key is still
// published on NATS; the snapshot write fails for good, once, and is not
// reported as a Redis outage.
func TestAppRedisCannotKeep(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.run(t, Options{})
	const app = "odd:app"
	w := h.watch(t, app)
	h.score(t, app, "w1", 50, time.Now())
	w.lastOrder(t, "w1:ACTIVE:50")
	waitFor(t, 10*time.Second, "the failed write counted", func() bool {
		return metric(t, r.reg, "rb_queuebuilder_snapshot_writes_total", map[string]string{"result": "error"}) == 1
	})
	if err := r.svc.Health(); err != nil {
		t.Fatalf("health %v, want nil: Redis is up", err)
	}
	if got := metric(t, r.reg, "rb_queuebuilder_snapshot_pending", nil); got != 0 {
		t.Fatalf("snapshot_pending %v, want 0", got)
	}
}
