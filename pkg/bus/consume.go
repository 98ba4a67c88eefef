package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rustybalancer/rb/events"
)

// ErrPermanent marks a handler error that no retry can fix (a message that
// cannot be decoded, a payload that fails validation): Consume moves the
// message to the dead letter queue at once. Wrap it: fmt.Errorf("decode
// score: %w: %w", bus.ErrPermanent, err).
var ErrPermanent = errors.New("permanent failure")

// Headers set on a dead-lettered message, on rb.dlq.<stream>. The data is the
// original message's; its own headers are kept, except the Nats-* ones.
const (
	HeaderDLQReason     = "Rb-Dlq-Reason"     // the handler's error
	HeaderDLQKind       = "Rb-Dlq-Kind"       // DLQKindPermanent or DLQKindMaxDeliver
	HeaderDLQSubject    = "Rb-Dlq-Subject"    // the original subject
	HeaderDLQStream     = "Rb-Dlq-Stream"     // the original stream
	HeaderDLQConsumer   = "Rb-Dlq-Consumer"   // the durable that gave up
	HeaderDLQSequence   = "Rb-Dlq-Sequence"   // the original stream sequence
	HeaderDLQDeliveries = "Rb-Dlq-Deliveries" // deliveries so far, the last included
	HeaderDLQPublished  = "Rb-Dlq-Published"  // the original publish time, RFC 3339
)

// Values of HeaderDLQKind.
const (
	DLQKindPermanent  = "permanent"   // the handler returned ErrPermanent (or panicked)
	DLQKindMaxDeliver = "max-deliver" // the handler failed on MaxDeliver deliveries
)

// Consumer defaults.
const (
	DefaultMaxDeliver = 5
	DefaultAckWait    = 30 * time.Second
	DefaultRetryDelay = 250 * time.Millisecond
	DefaultBatch      = 32
)

// Pull settings: a lost pull request is noticed after two missed heartbeats.
const (
	pullExpiry    = 30 * time.Second
	pullHeartbeat = 5 * time.Second
	ackTimeout    = 5 * time.Second
	dlqTimeout    = 5 * time.Second
	maxReasonLen  = 1024
)

// DeliverPolicy says where a new durable consumer starts.
type DeliverPolicy int

// Deliver policies.
const (
	DeliverAll            DeliverPolicy = iota // every message kept in the stream
	DeliverNew                                 // only messages published after creation
	DeliverLastPerSubject                      // the last message of each subject, then new ones
	DeliverByStartTime                         // messages published since StartTime
)

func (p DeliverPolicy) jetstream() (jetstream.DeliverPolicy, error) {
	switch p {
	case DeliverAll:
		return jetstream.DeliverAllPolicy, nil
	case DeliverNew:
		return jetstream.DeliverNewPolicy, nil
	case DeliverLastPerSubject:
		return jetstream.DeliverLastPerSubjectPolicy, nil
	case DeliverByStartTime:
		return jetstream.DeliverByStartTimePolicy, nil
	}
	return 0, fmt.Errorf("unknown deliver policy %d", int(p))
}

// ConsumerOptions configure a durable consumer.
type ConsumerOptions struct {
	// Stream and Durable name the stream and the consumer (required). The
	// consumer's position is kept by the server under Durable.
	Stream, Durable string
	// FilterSubjects restricts the subjects delivered; empty means all.
	FilterSubjects []string
	// MaxDeliver is how many times a message is tried before it is
	// dead-lettered (default 5).
	MaxDeliver int
	// AckWait is how long the server waits for an acknowledgement before
	// redelivering (default 30 s). A handler running longer keeps its message
	// by reporting progress every AckWait/2.
	AckWait time.Duration
	// DeliverPolicy and StartTime say where the consumer starts when it is
	// first created; an existing durable resumes where it is.
	DeliverPolicy DeliverPolicy
	StartTime     time.Time
	// RetryDelay is the redelivery delay after the first failure, doubled
	// after each further one, at most 10 s (default 250 ms).
	RetryDelay time.Duration
	// Batch is how many messages are fetched ahead of the handler (default 32).
	Batch int
	// OnDeadLetter, if set, is called after each message moved to the dead
	// letter queue (for metrics by stream and reason).
	OnDeadLetter func(DeadLetter)
}

// DeadLetter describes a message moved to the dead letter queue.
type DeadLetter struct {
	Stream, Consumer, Subject string
	Sequence, NumDelivered    uint64
	Kind                      string // DLQKindPermanent or DLQKindMaxDeliver
	Reason                    string
}

// Msg is a message handed to a Handler or a Watch function.
type Msg struct {
	Subject string
	Data    []byte
	Headers nats.Header
	// Sequence is the message's sequence in its stream.
	Sequence uint64
	// NumDelivered counts deliveries of this message to this consumer, this one included.
	NumDelivered uint64
	// Time is when the stream stored the message.
	Time time.Time
}

// Handler processes one message. A nil error acknowledges it; an error
// wrapping ErrPermanent dead-letters it at once; any other error has it
// redelivered after a delay, and dead-lettered after MaxDeliver deliveries.
type Handler func(ctx context.Context, msg Msg) error

func (o ConsumerOptions) withDefaults() (ConsumerOptions, error) {
	var errs []error
	if !validName(o.Stream) {
		errs = append(errs, fmt.Errorf("stream name %q: want a non-empty name without '.', '*', '>', '/', '\\' or white space", o.Stream))
	}
	if !validName(o.Durable) {
		errs = append(errs, fmt.Errorf("durable name %q: want a non-empty name without '.', '*', '>', '/', '\\' or white space", o.Durable))
	}
	if o.MaxDeliver < 0 {
		errs = append(errs, fmt.Errorf("max deliver %d: want 0 (default %d) or more", o.MaxDeliver, DefaultMaxDeliver))
	}
	if o.AckWait < 0 || o.RetryDelay < 0 || o.Batch < 0 {
		errs = append(errs, errors.New("ack wait, retry delay and batch must not be negative"))
	}
	if _, err := o.DeliverPolicy.jetstream(); err != nil {
		errs = append(errs, err)
	}
	if o.DeliverPolicy == DeliverByStartTime && o.StartTime.IsZero() {
		errs = append(errs, errors.New("deliver by start time needs a start time"))
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.AckWait == 0 {
		o.AckWait = DefaultAckWait
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	return o, errors.Join(errs...)
}

// validName reports whether s can name a stream or consumer.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*>/\\ \t\r\n")
}

// config is the JetStream consumer config. The server redelivers without
// limit; Consume counts deliveries itself and dead-letters, so that a message
// whose last delivery timed out is never dropped silently.
func (o ConsumerOptions) config() jetstream.ConsumerConfig {
	dp, _ := o.DeliverPolicy.jetstream() // validated in withDefaults
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		DeliverPolicy: dp,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	switch {
	case len(o.FilterSubjects) == 1:
		cfg.FilterSubject = o.FilterSubjects[0]
	case len(o.FilterSubjects) > 1:
		cfg.FilterSubjects = o.FilterSubjects
	case o.DeliverPolicy == DeliverLastPerSubject:
		cfg.FilterSubject = ">" // the server wants a filter for this policy
	}
	if o.DeliverPolicy == DeliverByStartTime {
		t := o.StartTime
		cfg.OptStartTime = &t
	}
	return cfg
}

// Consume runs a durable consumer with manual acknowledgement until ctx is
// done, then returns nil. Messages are handled one at a time, in order; run
// Consume several times with the same Durable to handle in parallel. When the
// server goes away Consume waits for it and resumes where the consumer was.
// It returns an error for invalid options, when the server refuses the
// consumer (e.g. unknown stream), or when the Bus is closed.
func (b *Bus) Consume(ctx context.Context, opts ConsumerOptions, h Handler) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	if h == nil {
		return errors.New("consume: nil handler")
	}
	c := &consumer{b: b, opts: opts, h: h,
		log: b.logger.With("stream", opts.Stream, "consumer", opts.Durable)}
	// Closing the Bus ends the consumer too; handlers see their ctx cancelled.
	cctx, cancel := b.untilClosed(ctx)
	defer cancel()
	for failures := 0; ; {
		cons, err := b.ensureConsumer(cctx, opts)
		if err == nil {
			if failures > 0 {
				c.log.Info("consumer ready again")
			}
			failures = 0
			err = c.run(cctx, cons)
			switch {
			case b.isClosed():
				return fmt.Errorf("consume %s/%s: %w", opts.Stream, opts.Durable, ErrClosed)
			case ctx.Err() != nil:
				return nil
			}
			c.log.Warn("consumer interrupted, recreating it", "err", err)
			sleep(cctx, retryBase) // when cut short, the next attempt fails and says why
			continue
		}
		switch {
		case b.isClosed():
			return fmt.Errorf("consume %s/%s: %w", opts.Stream, opts.Durable, ErrClosed)
		case ctx.Err() != nil:
			return nil
		case refused(err):
			return fmt.Errorf("consume %s/%s: %w", opts.Stream, opts.Durable, err)
		}
		failures++
		if failures == 1 {
			c.log.Warn("consumer unavailable, retrying", "err", err)
		} else {
			c.log.Debug("consumer still unavailable", "err", err, "failures", failures)
		}
		sleep(cctx, backoff(retryBase, retryMax, failures))
	}
}

// ensureConsumer creates the durable, or updates it keeping where it started:
// the start position of an existing durable cannot change.
func (b *Bus) ensureConsumer(ctx context.Context, opts ConsumerOptions) (jetstream.Consumer, error) {
	cfg := opts.config()
	existing, err := b.js.Consumer(ctx, opts.Stream, opts.Durable)
	switch {
	case err == nil:
		have := existing.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = have.DeliverPolicy, have.OptStartTime, have.OptStartSeq
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("look up consumer: %w", err)
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, opts.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	return cons, nil
}

// refused reports whether JetStream answered err as a client error (4xx:
// unknown stream, invalid config), which retrying cannot fix.
func refused(err error) bool {
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) {
		if api := jsErr.APIError(); api != nil {
			return api.Code >= 400 && api.Code < 500
		}
	}
	return false
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// consumer is one running Consume call.
type consumer struct {
	b    *Bus
	opts ConsumerOptions
	h    Handler
	log  *slog.Logger

	deadLettered int // this call's count, to keep its logs short
}

// run handles messages until ctx is done (nil) or the pull subscription
// ends (an error: the consumer was deleted, or the connection closed).
//
// It uses the callback form of the JetStream consumer: its messages wait in
// the subscription's own queue, where the iterator form drops messages once
// more arrive than its channel holds (e.g. when a reconnect doubles the pull
// requests in flight), leaving them for redelivery only after AckWait.
func (c *consumer) run(ctx context.Context, cons jetstream.Consumer) error {
	var (
		mu      sync.Mutex // held while a message is handled
		stopped bool
		errMu   sync.Mutex
		lastErr error
	)
	onMsg := func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if stopped || ctx.Err() != nil {
			_ = m.Nak() // delivered after we stopped: hand it back at once
			return
		}
		c.handle(ctx, m)
	}
	onErr := func(_ jetstream.ConsumeContext, err error) {
		errMu.Lock()
		lastErr = err
		errMu.Unlock()
		// Missed heartbeats and the like are handled by the library (it
		// pulls again); an error that ends the subscription is logged by
		// Consume when run returns it.
		c.log.Debug("consumer notice", "err", err)
	}
	cc, err := cons.Consume(onMsg,
		jetstream.PullMaxMessages(c.opts.Batch),
		jetstream.PullExpiry(pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(onErr),
	)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	var result error
	select {
	case <-ctx.Done():
	case <-cc.Closed():
		errMu.Lock()
		result = lastErr
		errMu.Unlock()
		if result == nil {
			result = errors.New("pull subscription ended")
		}
	}
	cc.Stop()
	mu.Lock() // wait for the message being handled
	stopped = true
	mu.Unlock()
	return result
}

// handle runs the handler on m and settles m: ack, redelivery or DLQ.
func (c *consumer) handle(ctx context.Context, m jetstream.Msg) {
	msg, err := msgFrom(m)
	if err != nil {
		// Not a JetStream delivery: nothing to settle it with but Term.
		c.log.Error("message without JetStream metadata dropped", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	stop := keepInProgress(m, c.opts.AckWait/2)
	herr := c.call(ctx, msg)
	stop()

	switch {
	case herr == nil:
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		err := m.DoubleAck(actx)
		cancel()
		if err != nil {
			c.b.stats.ackErrors.Add(1)
			c.log.Warn("ack not confirmed, the message may come again", "subject", msg.Subject, "seq", msg.Sequence, "err", err)
			return
		}
		c.b.stats.acked.Add(1)
	case ctx.Err() != nil:
		// Stopping: hand it back now rather than after AckWait.
		_ = m.Nak()
	case errors.Is(herr, ErrPermanent):
		c.deadLetter(ctx, m, msg, herr, DLQKindPermanent)
	case msg.NumDelivered >= uint64(c.opts.MaxDeliver):
		c.deadLetter(ctx, m, msg, herr, DLQKindMaxDeliver)
	default:
		delay := backoff(c.opts.RetryDelay, nakMax, int(msg.NumDelivered))
		c.b.stats.retried.Add(1)
		c.log.Debug("handler failed, message will be redelivered", "subject", msg.Subject, "seq", msg.Sequence,
			"delivered", msg.NumDelivered, "delay", delay, "err", herr)
		_ = m.NakWithDelay(delay)
	}
}

// call runs the handler; a panic becomes a permanent error, so that one bad
// message cannot crash the service or loop forever.
func (c *consumer) call(ctx context.Context, msg Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: handler panicked: %v", ErrPermanent, r)
			c.log.Error("handler panicked", "subject", msg.Subject, "seq", msg.Sequence, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	return c.h(ctx, msg)
}

// deadLetter publishes msg with the reason to rb.dlq.<stream> and terminates
// it. If the publish fails the message is redelivered and tried again; the
// DLQ message id makes the repeat harmless.
func (c *consumer) deadLetter(ctx context.Context, m jetstream.Msg, msg Msg, cause error, kind string) {
	reason := headerValue(cause.Error())
	subj, err := events.DLQSubject(c.opts.Stream)
	if err == nil {
		hdr := nats.Header{}
		for k, v := range msg.Headers {
			if !strings.HasPrefix(k, "Nats-") {
				hdr[k] = v
			}
		}
		hdr.Set(HeaderDLQReason, reason)
		hdr.Set(HeaderDLQKind, kind)
		hdr.Set(HeaderDLQSubject, msg.Subject)
		hdr.Set(HeaderDLQStream, c.opts.Stream)
		hdr.Set(HeaderDLQConsumer, c.opts.Durable)
		hdr.Set(HeaderDLQSequence, strconv.FormatUint(msg.Sequence, 10))
		hdr.Set(HeaderDLQDeliveries, strconv.FormatUint(msg.NumDelivered, 10))
		hdr.Set(HeaderDLQPublished, msg.Time.UTC().Format(time.RFC3339Nano))
		id := fmt.Sprintf("dlq:%s:%s:%d", c.opts.Stream, c.opts.Durable, msg.Sequence)
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dlqTimeout)
		_, err = c.b.js.PublishMsg(pctx, &nats.Msg{Subject: subj, Data: msg.Data, Header: hdr}, jetstream.WithMsgID(id))
		cancel()
	}
	if err != nil {
		c.b.stats.deadLetterErrors.Add(1)
		delay := backoff(c.opts.RetryDelay, nakMax, int(msg.NumDelivered))
		c.log.Error("dead letter failed, message will be redelivered", "subject", msg.Subject, "seq", msg.Sequence,
			"dlq_subject", subj, "reason", reason, "err", err)
		_ = m.NakWithDelay(delay)
		return
	}
	_ = m.TermWithReason("dead-lettered: " + kind)
	c.b.stats.deadLettered.Add(1)
	c.deadLettered++
	level := slog.LevelDebug
	if c.deadLettered == 1 || c.deadLettered%100 == 0 {
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "message dead-lettered", "subject", msg.Subject, "seq", msg.Sequence, "kind", kind,
		"delivered", msg.NumDelivered, "reason", reason, "dead_lettered", c.deadLettered, "dlq_subject", subj)
	if c.opts.OnDeadLetter != nil {
		c.opts.OnDeadLetter(DeadLetter{
			Stream: c.opts.Stream, Consumer: c.opts.Durable, Subject: msg.Subject,
			Sequence: msg.Sequence, NumDelivered: msg.NumDelivered, Kind: kind, Reason: reason,
		})
	}
}

// headerValue makes s fit in one header line of bounded length.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxReasonLen {
		s = strings.ToValidUTF8(s[:maxReasonLen], "") + "…"
	}
	return s
}

// msgFrom copies what a handler needs out of a JetStream message.
func msgFrom(m jetstream.Msg) (Msg, error) {
	meta, err := m.Metadata()
	if err != nil {
		return Msg{}, err
	}
	return Msg{
		Subject:      m.Subject(),
		Data:         m.Data(),
		Headers:      m.Headers(),
		Sequence:     meta.Sequence.Stream,
		NumDelivered: meta.NumDelivered,
		Time:         meta.Timestamp,
	}, nil
}

// keepInProgress tells the server every interval that m is still being
// worked on, until stop is called, so a slow handler keeps its message.
func keepInProgress(m jetstream.Msg, every time.Duration) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	tick := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = m.InProgress() // best effort: a lost one only risks a redelivery
		t.Reset(every)
	}
	mu.Lock()
	t = time.AfterFunc(every, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}
