package bus

import "sync/atomic"

// Stats are the Bus's counters since Connect, for metrics.
type Stats struct {
	// Published and PublishErrors count Publish calls.
	Published, PublishErrors uint64
	// Acked counts messages handled without error and acknowledged.
	Acked uint64
	// AckErrors counts acknowledgements the server did not confirm (the message may come again).
	AckErrors uint64
	// Retried counts messages handed back for redelivery after a handler error.
	Retried uint64
	// DeadLettered counts messages moved to the dead letter queue.
	DeadLettered uint64
	// DeadLetterErrors counts failed moves to the dead letter queue (the message is retried).
	DeadLetterErrors uint64
	// Disconnects and Reconnects count connection losses and recoveries.
	Disconnects, Reconnects uint64
}

type counters struct {
	published, publishErrors, acked, ackErrors, retried     atomic.Uint64
	deadLettered, deadLetterErrors, disconnects, reconnects atomic.Uint64
}

// Stats returns the counters of the Bus.
func (b *Bus) Stats() Stats {
	c := &b.stats
	return Stats{
		Published: c.published.Load(), PublishErrors: c.publishErrors.Load(),
		Acked: c.acked.Load(), AckErrors: c.ackErrors.Load(), Retried: c.retried.Load(),
		DeadLettered: c.deadLettered.Load(), DeadLetterErrors: c.deadLetterErrors.Load(),
		Disconnects: c.disconnects.Load(), Reconnects: c.reconnects.Load(),
	}
}
