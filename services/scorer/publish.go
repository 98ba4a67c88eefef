package scorer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// Publishing Scores. Waiting for the stream's ack of each Score in the
// handler would cost a round trip per Sample and queue Samples behind it. So
// the handler publishes without waiting and returns; the confirmer waits for
// the acks, in order, and sends a failed Score again until it is stored or a
// newer Score of its container supersedes it.
//
// A Score is sent under the state lock, and only while its Sample is its
// container's latest: a container's Scores reach the stream in the order its
// Samples were applied, even with several handlers running.
const (
	confirmQueue   = 4096             // Scores sent and not yet confirmed; the handlers wait beyond
	confirmTimeout = 10 * time.Second // longest wait for one ack before sending again
	retryMin       = 100 * time.Millisecond
	retryMax       = 5 * time.Second
	drainTimeout   = 2 * time.Second // at stop, for the acks still outstanding
)

// inFlight is a Score sent and not yet confirmed.
type inFlight struct {
	container string
	seq       uint64
	stored    time.Time // when RB_STATS stored the Sample; zero if unknown
	subject   string
	data      []byte
	ev        events.Event[events.Score]
	fut       jetstream.PubAckFuture
}

// publishAsync encodes ev, the Score of the Sample at seq, sends it (send)
// and hands it to the confirmer. It blocks while confirmQueue Scores are in
// flight. A Score superseded before it is sent is dropped.
func (s *Service) publishAsync(ctx context.Context, container string, seq uint64, stored time.Time, ev events.Event[events.Score]) error {
	subj, err := events.ScoreSubject(ev.Data.App, ev.Data.Container)
	if err != nil {
		return fmt.Errorf("%w: score %s: %w", bus.ErrPermanent, ev.ID, err)
	}
	data, err := events.Encode(ev)
	if err != nil {
		// Update's Scores always validate (pkg/score's property tests);
		// never retry what cannot succeed.
		return fmt.Errorf("%w: score %s: %w", bus.ErrPermanent, ev.ID, err)
	}
	f := inFlight{container: container, seq: seq, stored: stored, subject: subj, data: data, ev: ev}
	f.fut, err = s.send(f)
	switch {
	case err != nil:
		return err
	case f.fut == nil:
		return nil // superseded
	}
	select {
	case s.confirm <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err() // the Sample is handed back; the redelivery sends the Score again
	}
}

// send publishes f without waiting for the ack, if its Sample is still the
// container's latest and its Score not confirmed; else it returns a nil
// future. The lock orders a container's Scores (see above); publishing
// without waiting only writes to the connection's buffer.
func (s *Service) send(f inFlight) (jetstream.PubAckFuture, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.ctrs[f.container]; c == nil || c.seq != f.seq || !c.hasPending {
		return nil, nil
	}
	fut, err := s.bus.JetStream().PublishAsync(f.subject, f.data, jetstream.WithMsgID(f.ev.ID))
	if err != nil {
		return nil, fmt.Errorf("publish score %s on %s: %w", f.ev.ID, f.subject, err)
	}
	return fut, nil
}

// confirmer waits for the ack of each Score in flight until the queue is
// closed. Retries stop when ctx is done; Scores left unconfirmed stay pending
// in the state and the snapshot, and are published again at the next start.
func (s *Service) confirmer(ctx context.Context) {
	var drainBy time.Time // once stopping, all acks get drainTimeout together
	for f := range s.confirm {
		wait := confirmTimeout
		if ctx.Err() != nil {
			if drainBy.IsZero() {
				drainBy = time.Now().Add(drainTimeout)
			}
			wait = max(time.Until(drainBy), 0)
		}
		err := waitAck(f.fut, wait)
		if err != nil {
			s.m.publishErrors.Inc()
			s.logOnce("publish/failed", "score not stored, publishing it again", "score", f.ev.ID, "subject", f.subject, "err", err)
			err = s.retry(ctx, f)
		}
		if err == nil {
			s.confirmed(f)
		}
	}
}

// waitAck waits up to wait for the stream's answer to a publication.
func waitAck(fut jetstream.PubAckFuture, wait time.Duration) error {
	select { // an answer already there wins over a zero wait
	case <-fut.Ok():
		return nil
	case err := <-fut.Err():
		return err
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-fut.Ok():
		return nil
	case err := <-fut.Err():
		return err
	case <-t.C:
		return fmt.Errorf("no ack within %v", wait)
	}
}

// retry sends f again until it is stored, superseded, or ctx is done.
func (s *Service) retry(ctx context.Context, f inFlight) error {
	delay := retryMin
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fut, err := s.send(f)
		switch {
		case err == nil && fut == nil:
			return errSuperseded
		case err == nil:
			if err = waitAck(fut, confirmTimeout); err == nil {
				return nil
			}
		}
		s.m.publishErrors.Inc()
		s.log.Debug("score publish retry failed", "score", f.ev.ID, "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		delay = min(2*delay, retryMax)
	}
}

// errSuperseded: a newer Score of the container exists; the old one is moot.
var errSuperseded = errors.New("superseded by a newer score")

// confirmed records that f is stored.
func (s *Service) confirmed(f inFlight) {
	s.mu.Lock()
	if c := s.ctrs[f.container]; c != nil && c.seq == f.seq {
		c.hasPending = false
	}
	s.mu.Unlock()
	s.m.scores.Inc()
	now := s.now()
	s.m.latency.Observe(now.Sub(f.ev.Time).Seconds())
	if !f.stored.IsZero() {
		s.m.processing.Observe(now.Sub(f.stored).Seconds())
	}
}

// publishPending publishes the Scores a snapshot restored as unconfirmed
// (the stream drops those it has, by id).
func (s *Service) publishPending(ctx context.Context) error {
	type pending struct {
		name string
		seq  uint64
		ev   events.Event[events.Score]
	}
	var all []pending
	s.mu.Lock()
	for name, c := range s.ctrs {
		if c.hasPending {
			all = append(all, pending{name, c.seq, c.pending})
		}
	}
	s.mu.Unlock()
	for _, p := range all {
		if err := s.publishAsync(ctx, p.name, p.seq, time.Time{}, p.ev); err != nil {
			return err
		}
	}
	return nil
}
