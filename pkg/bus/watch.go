package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// Watch follows stream with an ordered consumer (ephemeral, in memory, no
// acks) and calls h for each message, in stream order, until ctx is done; it
// then returns nil. With deliverLastPerSubject it first delivers the last
// message of each subject matching filter (empty: all), then new ones — the
// way to read "current state, then changes" (RB_QUEUE); without it only
// messages published from now on. When the server goes away Watch waits and
// resumes after the last message it delivered. It returns an error when the
// server refuses the consumer (e.g. unknown stream) or the Bus is closed.
func (b *Bus) Watch(ctx context.Context, stream string, filter []string, deliverLastPerSubject bool, h func(Msg)) error {
	if !validName(stream) {
		return fmt.Errorf("watch: stream name %q is not valid", stream)
	}
	if h == nil {
		return errors.New("watch: nil handler")
	}
	w := &watcher{b: b, stream: stream, log: b.logger.With("stream", stream, "watch", filter)}
	w.cfg = jetstream.OrderedConsumerConfig{FilterSubjects: slices.Clone(filter), DeliverPolicy: jetstream.DeliverNewPolicy}
	if deliverLastPerSubject {
		w.cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	}
	// Closing the Bus ends the watch too (Next may be waiting in a reset loop).
	wctx, cancel := b.untilClosed(ctx)
	defer cancel()
	for failures := 0; ; {
		cons, err := b.js.OrderedConsumer(wctx, stream, w.next())
		if err == nil {
			if failures > 0 {
				w.log.Info("watch ready again")
			}
			failures = 0
			err = w.run(wctx, cons, h)
			switch {
			case b.isClosed():
				return fmt.Errorf("watch %s: %w", stream, ErrClosed)
			case ctx.Err() != nil:
				return nil
			}
			w.log.Warn("watch interrupted, resuming", "err", err, "after_seq", w.lastSeq)
			sleep(wctx, retryBase) // when cut short, the next attempt fails and says why
			continue
		}
		switch {
		case b.isClosed():
			return fmt.Errorf("watch %s: %w", stream, ErrClosed)
		case ctx.Err() != nil:
			return nil
		case refused(err):
			return fmt.Errorf("watch %s: %w", stream, err)
		}
		failures++
		if failures == 1 {
			w.log.Warn("watch unavailable, retrying", "err", err)
		}
		sleep(wctx, backoff(retryBase, retryMax, failures))
	}
}

// watcher is one running Watch call.
type watcher struct {
	b       *Bus
	stream  string
	cfg     jetstream.OrderedConsumerConfig
	lastSeq uint64 // stream sequence of the last message delivered to h
	log     *slog.Logger
}

// next is the ordered consumer config that resumes after lastSeq.
func (w *watcher) next() jetstream.OrderedConsumerConfig {
	cfg := w.cfg
	if w.lastSeq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = w.lastSeq + 1
	}
	return cfg
}

// run delivers messages until ctx is done or the iterator fails. The ordered
// consumer recreates itself across reconnects; an error here means it gave up.
func (w *watcher) run(ctx context.Context, cons jetstream.Consumer, h func(Msg)) error {
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	// Next may be busy recreating the consumer, which only Stop interrupts.
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		msg, err := msgFrom(m)
		if err != nil {
			return fmt.Errorf("message without JetStream metadata: %w", err)
		}
		w.lastSeq = msg.Sequence
		h(msg)
	}
}
