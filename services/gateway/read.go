package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rustybalancer/rb/pkg/bus"
)

// ReadRequest says which stored messages ReadStream delivers.
type ReadRequest struct {
	Stream  string
	Filters []string
	// LastPerSubject delivers only the last message of each subject;
	// otherwise every message stored at or after Since (zero: all).
	LastPerSubject bool
	Since          time.Time
}

// readBatch is how many messages one pull asks for; readIdle is how long
// ReadStream waits for a message it was told is pending.
const (
	readBatch = 512
	readIdle  = 5 * time.Second
)

// ReadStream delivers the stored messages of req to h in stream order and
// returns once it has delivered the last one stored when it started: it
// reads what is there, it does not follow the stream (bus.Watch does). It
// uses an ordered consumer, which the server deletes when it goes idle.
func ReadStream(ctx context.Context, js jetstream.JetStream, req ReadRequest, h func(bus.Msg)) error {
	st, err := js.Stream(ctx, req.Stream)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", req.Stream, err)
	}
	end := st.CachedInfo().State.LastSeq
	if end == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: slices.Clone(req.Filters), DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case req.LastPerSubject:
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	case !req.Since.IsZero():
		since := req.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.OrderedConsumer(ctx, req.Stream, cfg)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", req.Stream, err)
	}
	if cons.CachedInfo().NumPending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(readBatch))
	if err != nil {
		return fmt.Errorf("read stream %s: %w", req.Stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next(jetstream.NextMaxWait(readIdle))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, nats.ErrTimeout) {
				return nil // nothing more came: what was pending is gone (age limits)
			}
			return fmt.Errorf("read stream %s: %w", req.Stream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read stream %s: message without metadata: %w", req.Stream, err)
		}
		h(bus.Msg{Subject: m.Subject(), Data: m.Data(), Headers: m.Headers(), Sequence: meta.Sequence.Stream,
			NumDelivered: meta.NumDelivered, Time: meta.Timestamp})
		if meta.Sequence.Stream >= end || meta.NumPending == 0 {
			return nil
		}
	}
}
