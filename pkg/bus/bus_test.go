package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
)

// waitTimeout bounds every wait for a condition; the conditions normally
// hold within milliseconds. It is generous because a loaded CI
// machine can delay a pull past a missed heartbeat (5 s) and its re-pull;
// the waits return as soon as the condition holds, so only a real hang fails.
const waitTimeout = 30 * time.Second

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive waits for one value from ch.
func receive[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		tb.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		var zero T
		return zero
	}
}

// newBus starts a server and connects to it with the streams of events/.
func newBus(tb testing.TB) (*bus.Bus, *bus.Server) {
	tb.Helper()
	url, srv := natstest.Start(tb)
	return natstest.Connect(tb, url), srv
}

// consume runs b.Consume until the test ends and checks it returns nil then.
func consume(tb testing.TB, b *bus.Bus, opts bus.ConsumerOptions, h bus.Handler) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, opts, h) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Consume after cancel = %v, want nil", err)
		}
	})
}

func publish(tb testing.TB, b *bus.Bus, subject, id, data string) {
	tb.Helper()
	if err := b.Publish(context.Background(), subject, id, []byte(data)); err != nil {
		tb.Fatal(err)
	}
}

func streamInfo(tb testing.TB, b *bus.Bus, name string) *jetstream.StreamInfo {
	tb.Helper()
	s, err := b.JetStream().Stream(context.Background(), name)
	if err != nil {
		tb.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo()
}

func TestEnsureStreamsIsIdempotent(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t) // Connect ensured them once
	streams := events.Streams(events.DefaultStreamLimits())
	before := map[string]*jetstream.StreamInfo{}
	for _, s := range streams {
		before[s.Name] = streamInfo(t, b, s.Name)
	}
	if err := b.EnsureStreams(context.Background(), streams); err != nil {
		t.Fatalf("second EnsureStreams: %v", err)
	}
	for _, s := range streams {
		after := streamInfo(t, b, s.Name)
		if !reflect.DeepEqual(after.Config, before[s.Name].Config) {
			t.Errorf("%s config changed by a second EnsureStreams:\nbefore %+v\nafter  %+v", s.Name, before[s.Name].Config, after.Config)
		}
		if !after.Created.Equal(before[s.Name].Created) {
			t.Errorf("%s was recreated", s.Name)
		}
		if !reflect.DeepEqual(after.Config.Subjects, s.Subjects) || after.Config.MaxAge != s.MaxAge {
			t.Errorf("%s: subjects %v max age %s, want %v %s", s.Name, after.Config.Subjects, after.Config.MaxAge, s.Subjects, s.MaxAge)
		}
	}
}

func TestEnsureStreamsUpdates(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	// Each case works on its own stream T<i> with subjects t<i>.>.
	tests := []struct {
		name   string
		change func(s *events.Stream, p string)
		check  func(c jetstream.StreamConfig, p string) error
	}{
		{name: "max age", change: func(s *events.Stream, _ string) { s.MaxAge = 2 * time.Hour },
			check: func(c jetstream.StreamConfig, _ string) error {
				if c.MaxAge != 2*time.Hour {
					return fmt.Errorf("max age %s, want 2h", c.MaxAge)
				}
				return nil
			}},
		{name: "per subject limit", change: func(s *events.Stream, _ string) { s.MaxMsgsPerSubject = 3 },
			check: func(c jetstream.StreamConfig, _ string) error {
				if c.MaxMsgsPerSubject != 3 {
					return fmt.Errorf("max msgs per subject %d, want 3", c.MaxMsgsPerSubject)
				}
				return nil
			}},
		{name: "max bytes and subjects",
			change: func(s *events.Stream, p string) { s.MaxBytes = 1 << 20; s.Subjects = append(s.Subjects, "u"+p+".>") },
			check: func(c jetstream.StreamConfig, p string) error {
				if want := []string{"t" + p + ".>", "u" + p + ".>"}; c.MaxBytes != 1<<20 || !reflect.DeepEqual(c.Subjects, want) {
					return fmt.Errorf("max bytes %d subjects %v, want 1MiB %v", c.MaxBytes, c.Subjects, want)
				}
				return nil
			}},
		{name: "duplicate window clamped to max age", change: func(s *events.Stream, _ string) { s.MaxAge = 30 * time.Second },
			check: func(c jetstream.StreamConfig, _ string) error {
				if c.MaxAge != 30*time.Second || c.Duplicates != 30*time.Second {
					return fmt.Errorf("max age %s duplicates %s, want 30s 30s", c.MaxAge, c.Duplicates)
				}
				return nil
			}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fmt.Sprint(i)
			s := events.Stream{Name: "T" + p, Description: "test", Subjects: []string{"t" + p + ".>"}, MaxAge: time.Hour, Duplicates: time.Minute}
			if err := b.EnsureStreams(context.Background(), []events.Stream{s}); err != nil {
				t.Fatal(err)
			}
			created := streamInfo(t, b, s.Name).Created
			publish(t, b, "t"+p+".x", "", "kept")
			tt.change(&s, p)
			if err := b.EnsureStreams(context.Background(), []events.Stream{s}); err != nil {
				t.Fatal(err)
			}
			info := streamInfo(t, b, s.Name)
			if err := tt.check(info.Config, p); err != nil {
				t.Error(err)
			}
			if !info.Created.Equal(created) || info.State.Msgs != 1 {
				t.Errorf("stream was replaced instead of updated: created %v→%v, %d messages", created, info.Created, info.State.Msgs)
			}
		})
	}
}

func TestPublishConsumeAck(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	subj := "rb.stats.app.c1"
	for i := 1; i <= 3; i++ {
		publish(t, b, subj, fmt.Sprintf("m%d", i), fmt.Sprintf("sample %d", i))
	}
	got := make(chan bus.Msg, 10)
	consume(t, b, bus.ConsumerOptions{Stream: events.StreamStats, Durable: "scorer"}, func(_ context.Context, m bus.Msg) error {
		got <- m
		return nil
	})
	for i := 1; i <= 3; i++ {
		m := receive(t, got, fmt.Sprintf("message %d", i))
		if m.Subject != subj || string(m.Data) != fmt.Sprintf("sample %d", i) || m.Sequence != uint64(i) || m.NumDelivered != 1 {
			t.Errorf("message %d = %s %q seq %d delivered %d", i, m.Subject, m.Data, m.Sequence, m.NumDelivered)
		}
		if m.Time.IsZero() || time.Since(m.Time) > time.Minute {
			t.Errorf("message %d time %v, want the publish time", i, m.Time)
		}
		if m.Headers.Get("Nats-Msg-Id") != fmt.Sprintf("m%d", i) {
			t.Errorf("message %d headers %v, want its msg id", i, m.Headers)
		}
	}
	waitFor(t, "3 acks", func() bool { return b.Stats().Acked == 3 })
	ci, err := b.JetStream().Consumer(context.Background(), events.StreamStats, "scorer")
	if err != nil {
		t.Fatal(err)
	}
	info, err := ci.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 3 {
		t.Errorf("consumer: ack pending %d, pending %d, ack floor %d; want 0 0 3", info.NumAckPending, info.NumPending, info.AckFloor.Stream)
	}
	if s := b.Stats(); s.Published != 3 || s.Retried != 0 || s.DeadLettered != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestPublishDedupe(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	tests := []struct {
		name     string
		ids      []string
		wantMsgs uint64
	}{
		{name: "same id twice", ids: []string{"a", "a"}, wantMsgs: 1},
		{name: "distinct ids", ids: []string{"a", "b"}, wantMsgs: 2},
		{name: "no id", ids: []string{"", ""}, wantMsgs: 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := fmt.Sprintf("rb.score.dedupe%d.c", i)
			for _, id := range tt.ids {
				if id != "" {
					id = fmt.Sprintf("%s-%d", id, i)
				}
				publish(t, b, subj, id, "x")
			}
			s, err := b.JetStream().Stream(context.Background(), events.StreamScores)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subj))
			if err != nil {
				t.Fatal(err)
			}
			if got := info.State.Subjects[subj]; got != tt.wantMsgs {
				t.Errorf("%d messages on %s, want %d", got, subj, tt.wantMsgs)
			}
		})
	}
}

func TestPublishErrorNamesSubject(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		subject string
	}{
		{name: "subject of no stream", ctx: context.Background(), subject: "nowhere.at.all"},
		{name: "cancelled", ctx: cancelled, subject: "rb.stats.app.c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(tt.ctx, 3*time.Second)
			defer cancel()
			err := b.Publish(ctx, tt.subject, "", []byte("x"))
			if err == nil || !strings.Contains(err.Error(), "publish "+tt.subject+":") {
				t.Fatalf("Publish(%q) = %v, want an error naming the subject", tt.subject, err)
			}
		})
	}
	if s := b.Stats(); s.PublishErrors != 2 || s.Published != 0 {
		t.Errorf("stats %+v, want 2 publish errors", s)
	}
}

func TestCloseEndsConsumeAndWatch(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	errs := make(chan error, 2)
	go func() {
		errs <- b.Consume(context.Background(), bus.ConsumerOptions{Stream: events.StreamStats, Durable: "d"},
			func(context.Context, bus.Msg) error { return nil })
	}()
	go func() {
		errs <- b.Watch(context.Background(), events.StreamQueue, nil, true, func(bus.Msg) {})
	}()
	waitFor(t, "both consumers", func() bool {
		return streamInfo(t, b, events.StreamStats).State.Consumers == 1 && streamInfo(t, b, events.StreamQueue).State.Consumers == 1
	})
	b.Close()
	for range 2 {
		if err := receive(t, errs, "Consume or Watch to return"); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
}

func TestWatchUnknownStream(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	err := b.Watch(context.Background(), "NOPE", nil, true, func(bus.Msg) {})
	if err == nil || !strings.Contains(err.Error(), "watch NOPE") || !strings.Contains(err.Error(), "stream not found") {
		t.Fatalf("Watch = %v, want stream not found", err)
	}
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		fail          func() error // the handler's behaviour on the bad message
		wantCalls     int
		wantKind      string
		wantReason    string
		wantDelivered string
	}{
		{name: "transient error until max deliver", fail: func() error { return errors.New("backend down") },
			wantCalls: 3, wantKind: bus.DLQKindMaxDeliver, wantReason: "backend down", wantDelivered: "3"},
		{name: "permanent error at once", fail: func() error { return fmt.Errorf("decode sample: %w: bad json", bus.ErrPermanent) },
			wantCalls: 1, wantKind: bus.DLQKindPermanent, wantReason: "decode sample: permanent failure: bad json", wantDelivered: "1"},
		{name: "panic at once", fail: func() error { panic("boom") },
			wantCalls: 1, wantKind: bus.DLQKindPermanent, wantReason: "handler panicked: boom", wantDelivered: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, _ := newBus(t)
			publish(t, b, "rb.stats.app.bad", "bad-1", "not json")
			publish(t, b, "rb.stats.app.good", "good-1", "fine")

			var mu sync.Mutex
			calls := 0
			good := make(chan string, 10)
			dead := make(chan bus.DeadLetter, 10)
			opts := bus.ConsumerOptions{
				Stream: events.StreamStats, Durable: "scorer", MaxDeliver: 3, RetryDelay: 10 * time.Millisecond,
				OnDeadLetter: func(d bus.DeadLetter) { dead <- d },
			}
			consume(t, b, opts, func(_ context.Context, m bus.Msg) error {
				if m.Subject != "rb.stats.app.bad" {
					good <- string(m.Data)
					return nil
				}
				mu.Lock()
				calls++
				mu.Unlock()
				return tt.fail()
			})

			if got := receive(t, good, "the good message"); got != "fine" {
				t.Errorf("good message %q", got)
			}
			d := receive(t, dead, "the dead letter")
			if d.Subject != "rb.stats.app.bad" || d.Stream != events.StreamStats || d.Consumer != "scorer" || d.Kind != tt.wantKind || d.Sequence != 1 {
				t.Errorf("dead letter %+v", d)
			}
			mu.Lock()
			if calls != tt.wantCalls {
				t.Errorf("handler called %d times on the bad message, want %d", calls, tt.wantCalls)
			}
			mu.Unlock()

			dlq, err := b.JetStream().Stream(context.Background(), events.StreamDLQ)
			if err != nil {
				t.Fatal(err)
			}
			dlqSubject, _ := events.DLQSubject(events.StreamStats)
			raw, err := dlq.GetLastMsgForSubject(context.Background(), dlqSubject)
			if err != nil {
				t.Fatalf("no message on %s: %v", dlqSubject, err)
			}
			if string(raw.Data) != "not json" {
				t.Errorf("dead letter data %q, want the original", raw.Data)
			}
			wantHeaders := map[string]string{
				bus.HeaderDLQKind: tt.wantKind, bus.HeaderDLQSubject: "rb.stats.app.bad", bus.HeaderDLQStream: events.StreamStats,
				bus.HeaderDLQConsumer: "scorer", bus.HeaderDLQSequence: "1", bus.HeaderDLQDeliveries: tt.wantDelivered,
			}
			for k, want := range wantHeaders {
				if got := raw.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if got := raw.Header.Get(bus.HeaderDLQReason); !strings.Contains(got, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", got, tt.wantReason)
			}
			if _, err := time.Parse(time.RFC3339Nano, raw.Header.Get(bus.HeaderDLQPublished)); err != nil {
				t.Errorf("published header: %v", err)
			}

			// The consumer goes on with the next message.
			publish(t, b, "rb.stats.app.good", "good-2", "after")
			if got := receive(t, good, "the message after the dead letter"); got != "after" {
				t.Errorf("next message %q", got)
			}
			if s := b.Stats(); s.DeadLettered != 1 || s.DeadLetterErrors != 0 {
				t.Errorf("stats %+v, want 1 dead letter", s)
			}
			mu.Lock()
			if calls != tt.wantCalls {
				t.Errorf("bad message handled again after the dead letter (%d calls)", calls)
			}
			mu.Unlock()
		})
	}
}

func TestSlowHandlerKeepsItsMessage(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	publish(t, b, "rb.stats.app.c1", "", "slow")
	deliveries := make(chan uint64, 10)
	consume(t, b, bus.ConsumerOptions{Stream: events.StreamStats, Durable: "slow", AckWait: 200 * time.Millisecond},
		func(ctx context.Context, m bus.Msg) error {
			deliveries <- m.NumDelivered
			if m.NumDelivered == 1 {
				select { // longer than AckWait: only progress reports keep the message
				case <-time.After(700 * time.Millisecond):
				case <-ctx.Done():
				}
			}
			return nil
		})
	if n := receive(t, deliveries, "the delivery"); n != 1 {
		t.Fatalf("first delivery numbered %d", n)
	}
	waitFor(t, "the ack", func() bool { return b.Stats().Acked == 1 })
	select {
	case n := <-deliveries:
		t.Fatalf("message redelivered (delivery %d) while its handler was running", n)
	default:
	}
}

func TestConsumeOptionsValidation(t *testing.T) {
	t.Parallel()
	b, _ := newBus(t)
	ok := func(context.Context, bus.Msg) error { return nil }
	tests := []struct {
		name    string
		opts    bus.ConsumerOptions
		h       bus.Handler
		wantErr string
	}{
		{name: "no durable", opts: bus.ConsumerOptions{Stream: events.StreamStats}, h: ok, wantErr: "durable name"},
		{name: "dotted durable", opts: bus.ConsumerOptions{Stream: events.StreamStats, Durable: "a.b"}, h: ok, wantErr: "durable name"},
		{name: "no stream", opts: bus.ConsumerOptions{Durable: "d"}, h: ok, wantErr: "stream name"},
		{name: "start time missing", opts: bus.ConsumerOptions{Stream: events.StreamStats, Durable: "d", DeliverPolicy: bus.DeliverByStartTime}, h: ok, wantErr: "start time"},
		{name: "nil handler", opts: bus.ConsumerOptions{Stream: events.StreamStats, Durable: "d"}, wantErr: "nil handler"},
		{name: "unknown stream", opts: bus.ConsumerOptions{Stream: "NOPE", Durable: "d"}, h: ok, wantErr: "stream not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := b.Consume(ctx, tt.opts, tt.h)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Consume = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDeliverPolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		policy    bus.DeliverPolicy
		startTime bool // start at the time between the old messages and the live one
		want      []string
	}{
		{name: "all", policy: bus.DeliverAll, want: []string{"a1", "a2", "b1", "live"}},
		{name: "new", policy: bus.DeliverNew, want: []string{"live"}},
		{name: "last per subject", policy: bus.DeliverLastPerSubject, want: []string{"a2", "b1", "live"}},
		{name: "by start time", policy: bus.DeliverByStartTime, startTime: true, want: []string{"live"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, _ := newBus(t)
			for _, d := range []string{"a1", "a2", "b1"} {
				publish(t, b, "rb.scale."+d[:1], "", d)
			}
			opts := bus.ConsumerOptions{Stream: events.StreamDecisions, Durable: "d", FilterSubjects: []string{"rb.scale.>"}, DeliverPolicy: tt.policy}
			if tt.startTime {
				opts.StartTime = time.Now()
			}
			got := make(chan string, 10)
			consume(t, b, opts, func(_ context.Context, m bus.Msg) error { got <- string(m.Data); return nil })
			waitFor(t, "the consumer", func() bool {
				_, err := b.JetStream().Consumer(context.Background(), opts.Stream, opts.Durable)
				return err == nil
			})
			publish(t, b, "rb.scale.live", "", "live")
			// Delivery is in stream order, so a message that should have been
			// skipped would arrive before "live" and show up here.
			for _, want := range tt.want {
				if m := receive(t, got, want); m != want {
					t.Errorf("got %q, want %q", m, want)
				}
			}
		})
	}
}

func TestConsumeSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	url, srv := natstest.Start(t)
	b := natstest.Connect(t, url)

	var mu sync.Mutex
	handled := map[string]int{}
	reached := make(chan struct{})
	release := make(chan struct{})
	const blockAt = "m10"
	// Batch 1: when the server stops, no message but the one in the handler
	// has been delivered, so only that one may legitimately come twice.
	consume(t, b, bus.ConsumerOptions{Stream: events.StreamStats, Durable: "scorer", Batch: 1},
		func(_ context.Context, m bus.Msg) error {
			id := string(m.Data)
			mu.Lock()
			handled[id]++
			first := handled[id] == 1
			mu.Unlock()
			if id == blockAt && first {
				close(reached)
				<-release // hold the message in flight across the outage
			}
			return nil
		})

	for i := 1; i <= 20; i++ {
		publish(t, b, "rb.stats.app.c1", fmt.Sprintf("id%d", i), fmt.Sprintf("m%d", i))
	}
	receive(t, reached, "message 10 in the handler")
	srv.Shutdown()
	waitFor(t, "the bus to notice", func() bool { return b.Health() != nil })
	close(release)
	natstest.Restart(t, srv)
	waitFor(t, "the reconnect", func() bool { return b.Health() == nil && b.Stats().Reconnects == 1 })
	for i := 21; i <= 30; i++ {
		publish(t, b, "rb.stats.app.c1", fmt.Sprintf("id%d", i), fmt.Sprintf("m%d", i))
	}
	waitFor(t, "all 30 messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 30
	})
	// Handled ones were acked once: no more deliveries may come. Let the
	// consumer drain what it has, then compare with the server's view.
	waitFor(t, "all acks", func() bool {
		c, err := b.JetStream().Consumer(context.Background(), events.StreamStats, "scorer")
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 30 && info.NumAckPending == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i <= 30; i++ {
		id := fmt.Sprintf("m%d", i)
		n := handled[id]
		switch {
		case n == 0:
			t.Errorf("%s never handled", id)
		case n > 1 && id != blockAt:
			t.Errorf("%s handled %d times; only the message in flight (%s) may come twice", id, n, blockAt)
		case n > 2:
			t.Errorf("%s handled %d times", id, n)
		}
	}
	if s := b.Stats(); s.Disconnects != 1 || s.Reconnects != 1 {
		t.Errorf("stats %+v, want one disconnect and one reconnect", s)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	url, srv := natstest.Start(t)
	b := natstest.Connect(t, url)
	if err := b.Health(); err != nil {
		t.Fatalf("Health while connected = %v", err)
	}
	srv.Shutdown()
	waitFor(t, "Health to report the outage", func() bool { return b.Health() != nil })
	err := b.Health()
	if !errors.Is(err, bus.ErrUnavailable) || !strings.Contains(err.Error(), "disconnected since") || !strings.Contains(err.Error(), "last error") {
		t.Errorf("Health while down = %v, want ErrUnavailable saying since when and the last error", err)
	}
	natstest.Restart(t, srv)
	waitFor(t, "Health to recover", func() bool { return b.Health() == nil })
	b.Close()
	if err := b.Health(); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Health after Close = %v, want ErrClosed", err)
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lastPer  bool
		wantInit []string
	}{
		{name: "last per subject, then live", lastPer: true, wantInit: []string{"a2", "b1"}},
		{name: "live only", lastPer: false, wantInit: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, srv := newBus(t)
			// RB_DECISIONS keeps history per subject, so "last" is a real choice.
			for _, d := range []string{"a1", "a2", "b1"} {
				publish(t, b, "rb.scale."+d[:1], "", d)
			}
			publish(t, b, "rb.lifecycle.x.y", "", "other subject")
			got := make(chan string, 10)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- b.Watch(ctx, events.StreamDecisions, []string{"rb.scale.>"}, tt.lastPer, func(m bus.Msg) { got <- string(m.Data) })
			}()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Watch after cancel = %v, want nil", err)
				}
			})
			for _, want := range tt.wantInit {
				if m := receive(t, got, want); m != want {
					t.Errorf("got %q, want %q", m, want)
				}
			}
			waitFor(t, "the watcher's consumer", func() bool {
				return streamInfo(t, b, events.StreamDecisions).State.Consumers == 1
			})
			publish(t, b, "rb.scale.a", "", "a3")
			if m := receive(t, got, "a3"); m != "a3" {
				t.Errorf("got %q, want the live a3", m)
			}

			// An outage: the watcher resumes after a3, without repeats.
			srv.Shutdown()
			waitFor(t, "the outage", func() bool { return b.Health() != nil })
			natstest.Restart(t, srv)
			waitFor(t, "the reconnect", func() bool { return b.Health() == nil })
			publish(t, b, "rb.scale.b", "", "b2")
			if m := receive(t, got, "b2"); m != "b2" {
				t.Errorf("after restart got %q, want b2", m)
			}
			select {
			case m := <-got:
				t.Errorf("unexpected extra message %q", m)
			default:
			}
		})
	}
}

func TestConnectAuth(t *testing.T) {
	t.Parallel()
	seed := writeSeed(t)
	otherSeed := writeSeed(t)
	tests := []struct {
		name    string
		server  bus.Options
		client  bus.Options
		wantErr string
	}{
		{name: "user and password", server: bus.Options{User: "rb", Password: "s3cret"}, client: bus.Options{User: "rb", Password: "s3cret"}},
		{name: "wrong password", server: bus.Options{User: "rb", Password: "s3cret"}, client: bus.Options{User: "rb", Password: "nope"},
			wantErr: `with user "rb": credentials rejected`},
		{name: "token", server: bus.Options{Token: "t0ken"}, client: bus.Options{Token: "t0ken"}},
		{name: "missing token", server: bus.Options{Token: "t0ken"}, client: bus.Options{},
			wantErr: "with no credentials: credentials rejected"},
		{name: "nkey", server: bus.Options{NKeySeedFile: seed}, client: bus.Options{NKeySeedFile: seed}},
		{name: "other nkey", server: bus.Options{NKeySeedFile: seed}, client: bus.Options{NKeySeedFile: otherSeed},
			wantErr: "with nkey: credentials rejected"},
		{name: "two kinds of credentials", server: bus.Options{Token: "t0ken"}, client: bus.Options{Token: "t0ken", User: "rb"},
			wantErr: "set only one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, _ := natstest.StartWith(t, tt.server)
			opts := tt.client
			opts.URL = url
			b, err := bus.Connect(context.Background(), opts, natstest.Logger(t))
			if tt.wantErr != "" {
				if err == nil {
					b.Close()
					t.Fatal("Connect succeeded, want an error")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Connect = %v, want an error containing %q", err, tt.wantErr)
				}
				for _, secret := range []string{"s3cret", "nope", "t0ken"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q leaks a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer b.Close()
			if err := b.Conn().Publish("plain", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := b.Conn().Flush(); err != nil {
				t.Fatalf("authenticated connection: %v", err)
			}
		})
	}
}

// writeSeed writes a new user nkey seed to a file and returns its path.
func writeSeed(tb testing.TB) string {
	tb.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		tb.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		tb.Fatal(err)
	}
	f, err := os.CreateTemp(tb.TempDir(), "user-*.nk")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.Write(seed); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return f.Name()
}

func TestConnectEmbedded(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	b, err := bus.Connect(context.Background(), bus.Options{
		Listen: "127.0.0.1:-1", StoreDir: store, MonitorPort: -1,
		Streams: events.Streams(events.DefaultStreamLimits()),
	}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	srv := b.Server()
	if srv == nil {
		t.Fatal("Server() = nil for an embedded bus")
	}
	publish(t, b, "rb.queue.app", "", "queue")
	if _, err := os.Stat(filepath.Join(store, "jetstream")); err != nil {
		t.Errorf("no JetStream data in the store dir: %v", err)
	}
	// Outside clients reach it over TCP.
	other := natstest.ConnectWith(t, bus.Options{URL: srv.ClientURL()})
	if n := streamInfo(t, other, events.StreamQueue).State.Msgs; n != 1 {
		t.Errorf("outside client sees %d queue messages, want 1", n)
	}
	if srv.MonitorURL() == "" {
		t.Error("monitoring asked for but MonitorURL is empty")
	}
	other.Close()

	b.Close()
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("embedded server still listens on %s after Close", srv.Addr())
	}
	if err := b.Publish(context.Background(), "rb.queue.app", "", nil); err == nil {
		t.Error("Publish after Close succeeded")
	}
}

func TestEmbeddedServerErrors(t *testing.T) {
	t.Parallel()
	_, running := natstest.Start(t)
	tests := []struct {
		name    string
		opts    bus.Options
		wantErr string
	}{
		{name: "port in use", opts: bus.Options{Listen: running.Addr()}, wantErr: running.Addr()},
		{name: "bad listen address", opts: bus.Options{Listen: "nonsense"}, wantErr: `listen address "nonsense"`},
		{name: "bad port", opts: bus.Options{Listen: "127.0.0.1:99999"}, wantErr: "port must be"},
		{name: "missing seed file", opts: bus.Options{Listen: "127.0.0.1:-1", NKeySeedFile: "/nonexistent/seed"}, wantErr: "read nkey seed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.StoreDir = t.TempDir()
			srv, err := bus.EmbeddedServer(context.Background(), opts, natstest.Logger(t))
			if err == nil {
				srv.Shutdown()
				t.Fatal("EmbeddedServer succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("EmbeddedServer = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
