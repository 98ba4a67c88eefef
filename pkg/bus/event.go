package bus

import (
	"context"
	"fmt"

	"github.com/rustybalancer/rb/events"
)

// PublishEvent encodes ev and publishes it on subject, waiting for the
// JetStream ack, with the event id as the message id (so a retried publish
// is deduplicated by the stream).
func PublishEvent[T events.Payload](ctx context.Context, b *Bus, subject string, ev events.Event[T]) error {
	data, err := events.Encode(ev)
	if err != nil {
		return fmt.Errorf("publish on %s: %w", subject, err)
	}
	return b.Publish(ctx, subject, ev.ID, data)
}

// DecodeEvent decodes a consumed message as an event of kind T. A failure
// wraps ErrPermanent, so a handler that returns it sends the message to the
// dead letter queue with the reason, and the consumer goes on.
func DecodeEvent[T events.Payload](m Msg) (events.Event[T], error) {
	ev, err := events.Decode[T](m.Data)
	if err != nil {
		return ev, fmt.Errorf("%w: %s seq %d: %w", ErrPermanent, m.Subject, m.Sequence, err)
	}
	return ev, nil
}
