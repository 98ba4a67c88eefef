package scaler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// logSubjects says which subjects of RB_DECISIONS are the app's: its
// decisions, its runtime config changes and its workers' lifecycle facts.
//
// The log is read without a server-side filter and sorted out here: on this
// nats-server (2.x) an ordered consumer filtered on these three subjects
// delivered about 1,000 messages/s from a stream of 4,000 per-container
// subjects, the same consumer unfiltered about 50,000 (TestFigures).
func (t *term) logSubjects() (func(subject string) bool, error) {
	app, err := events.EscapeToken(t.s.app)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", t.s.app, err)
	}
	scaleSubj, configSubj, facts := events.PrefixScale+app, events.PrefixConfig+app, events.PrefixLifecycle+app+"."
	return func(subject string) bool {
		return subject == scaleSubj || subject == configSubj || strings.HasPrefix(subject, facts)
	}, nil
}

// followLog reads the app's decision log in stream order with one ordered
// consumer: from the snapshot's sequence (or the start) what the log holds
// when the term starts (the rebuild), then the marker that the loop is
// caught up, then everything new as it comes. The backlog ends at the first
// message the server delivers with nothing pending after it, or at once when
// the consumer starts with nothing pending. A consumer that fails is
// recreated after the last message delivered. It returns nil when ctx is done.
func (t *term) followLog(ctx context.Context) error {
	mine, err := t.logSubjects()
	if err != nil {
		return err
	}
	js := t.s.bus.JetStream()
	last, ok := t.restoreSnapshot(ctx)
	if !ok {
		return nil
	}
	caughtUp := false
	catchUp := func() bool {
		caughtUp = true
		return t.send(ctx, input{kind: inCaughtUp})
	}
	for failures := 0; ; {
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
		if last > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
		}
		cons, err := js.OrderedConsumer(ctx, events.StreamDecisions, cfg)
		var it jetstream.MessagesContext
		if err == nil {
			it, err = cons.Messages()
		}
		if err == nil {
			failures = 0
			if info := cons.CachedInfo(); !caughtUp && info != nil && info.NumPending == 0 && info.Delivered.Consumer == 0 {
				if !catchUp() {
					it.Stop()
					return nil
				}
			}
			stop := context.AfterFunc(ctx, it.Stop)
			for {
				m, nerr := it.Next(jetstream.NextContext(ctx))
				if nerr != nil {
					err = nerr
					break
				}
				md, merr := m.Metadata()
				if merr != nil {
					err = fmt.Errorf("message without metadata: %w", merr)
					break
				}
				last = md.Sequence.Stream
				if mine(m.Subject()) && !t.deliverLog(ctx, m.Subject(), m.Data(), last) {
					break
				}
				if !caughtUp && md.NumPending == 0 && !catchUp() {
					break
				}
			}
			stop()
			it.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		if failures == 1 {
			t.log.Warn("following the decision log failed; resuming", "after_seq", last, "err", err)
		}
		sleep(ctx, min(time.Duration(failures)*250*time.Millisecond, 5*time.Second))
	}
}

// deliverLog decodes one log message and hands it to the loop; false when
// ctx ended first.
func (t *term) deliverLog(ctx context.Context, subject string, data []byte, seq uint64) bool {
	meta, err := events.PeekMeta(data)
	if err != nil {
		t.invalidFeed(events.StreamDecisions, subject, err)
		return true
	}
	var in input
	switch meta.Kind {
	case events.KindDecision:
		ev, err := events.Decode[events.Decision](data)
		if err != nil {
			t.invalidFeed(events.StreamDecisions, subject, err)
			return true
		}
		in = input{kind: inDecision, at: ev.Time, source: ev.Source, id: ev.ID, decision: ev.Data}
	case events.KindLifecycle:
		ev, err := events.Decode[events.Lifecycle](data)
		if err != nil {
			t.invalidFeed(events.StreamDecisions, subject, err)
			return true
		}
		in = input{kind: inLifecycle, at: ev.Time, source: ev.Source, lifecycle: ev.Data}
	case events.KindConfigChanged:
		ev, err := events.Decode[events.ConfigChanged](data)
		if err != nil {
			t.invalidFeed(events.StreamDecisions, subject, err)
			return true
		}
		in = input{kind: inConfig, at: ev.Time, source: ev.Source, config: ev.Data}
	default:
		t.invalidFeed(events.StreamDecisions, subject, fmt.Errorf("unexpected event kind %q", meta.Kind))
		return true
	}
	in.seq = seq
	return t.send(ctx, in)
}

// watch follows the app's scores or proxy reports from now on (they are
// current state, not history: a term starts with the next ones).
func (t *term) watch(ctx context.Context, stream, prefix string, kind inputKind) error {
	app, err := events.EscapeToken(t.s.app)
	if err != nil {
		return fmt.Errorf("app %q: %w", t.s.app, err)
	}
	return t.s.bus.Watch(ctx, stream, []string{prefix + app + ".>"}, false, func(m bus.Msg) {
		var in input
		switch kind {
		case inScore:
			ev, err := bus.DecodeEvent[events.Score](m)
			if err != nil {
				t.invalidFeed(stream, m.Subject, err)
				return
			}
			in = input{kind: inScore, at: ev.Time, source: ev.Source, score: ev.Data}
		case inProxy:
			ev, err := bus.DecodeEvent[events.ProxyReport](m)
			if err != nil {
				t.invalidFeed(stream, m.Subject, err)
				return
			}
			in = input{kind: inProxy, at: ev.Time, source: ev.Source, proxy: ev.Data}
		}
		t.send(ctx, in)
	})
}
