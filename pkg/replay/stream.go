package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rustybalancer/rb/events"
)

// The JetStream source: the I/O half of replay. It reads a range of the
// streams with ordered consumers (nothing durable is left behind, nothing is
// acknowledged) and hands the messages, merged across streams by the time
// the server stored them, to an export file or a Recording.

// ExportStream is the stream name of an export's first line, which says
// what the file holds (ExportMeta). Readers that do not know it skip it.
const ExportStream = "RB_EXPORT"

// ExportMeta describes an export: the app, the range asked for and the
// warm-up read before it, so a replay of the file measures what a replay
// from the streams would. From is where the replay proper starts, in event
// time (for a sequence range: the event time of its first Sample).
type ExportMeta struct {
	App     string    `json:"app"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Warmup  string    `json:"warmup"`
	Streams []string  `json:"streams"`
	// Complete says the read started at the first message every stream
	// held of the app: the recording is the app's whole history.
	Complete bool `json:"complete,omitempty"`
}

// DefaultStreams are what an export and a replay read: the Samples; the
// decisions, lifecycle facts and config changes; the proxy reports (the
// drains depend on them); and the Scores (recomputed, but where they were
// stored says when the scaler saw them). The last two are skipped when the
// server has no such stream (Range.SkipMissing).
func DefaultStreams() []string {
	return []string{events.StreamStats, events.StreamDecisions, events.StreamProxy, events.StreamScores}
}

// Range is what to read: stored times From..To (To zero: up to what the
// stream holds when the read starts), or RB_STATS sequences FromSeq..ToSeq
// (their stored times then bound the other streams). Warmup is read before
// From and replayed as a warm-up.
type Range struct {
	From, To       time.Time
	FromSeq, ToSeq uint64
	Warmup         time.Duration
	// SkipMissing skips a stream other than RB_STATS that the server does
	// not have, instead of failing.
	SkipMissing bool
}

// ErrUnknownStream is returned for a stream name replay does not read.
var ErrUnknownStream = errors.New("unknown stream")

// CheckStream says whether replay reads a stream of that name.
func CheckStream(name string) error {
	_, err := appFilters(name, "x")
	return err
}

// appFilters are the subjects of app in a stream.
func appFilters(stream, app string) ([]string, error) {
	tok, err := events.EscapeToken(app)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	switch stream {
	case events.StreamStats:
		return []string{events.PrefixStats + tok + ".>"}, nil
	case events.StreamScores:
		return []string{events.PrefixScore + tok + ".>"}, nil
	case events.StreamDecisions:
		return []string{events.PrefixScale + tok, events.PrefixLifecycle + tok + ".>", events.PrefixConfig + tok}, nil
	case events.StreamProxy:
		return []string{events.PrefixProxy + tok + ".>"}, nil
	}
	return nil, fmt.Errorf("%w %q: want %s, %s, %s or %s", ErrUnknownStream, stream,
		events.StreamStats, events.StreamDecisions, events.StreamProxy, events.StreamScores)
}

// storedMsg is one message read.
type storedMsg struct {
	stream, subject string
	seq             uint64
	at              time.Time
	data            []byte
}

// cursor reads one stream in order up to an end.
type cursor struct {
	stream string
	it     jetstream.MessagesContext
	left   uint64 // messages still pending when the read started
	to     time.Time
	toSeq  uint64
	head   *storedMsg
	// first is a message placed before the consumer's (the last config
	// change before the range).
	first *storedMsg
}

// fetchTimeout bounds the wait for a message JetStream said was there.
const fetchTimeout = 10 * time.Second

func (c *cursor) next(ctx context.Context) (*storedMsg, error) {
	if c.first != nil {
		m := c.first
		c.first = nil
		return m, nil
	}
	if c.left == 0 || c.it == nil {
		return nil, nil
	}
	m, err := c.it.Next(jetstream.NextMaxWait(fetchTimeout))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read %s (%d messages left): %w", c.stream, c.left, err)
	}
	c.left--
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.stream, err)
	}
	out := &storedMsg{stream: c.stream, subject: m.Subject(), seq: md.Sequence.Stream, at: md.Timestamp, data: m.Data()}
	if (!c.to.IsZero() && out.at.After(c.to)) || (c.toSeq > 0 && out.seq > c.toSeq) {
		c.left = 0
		return nil, nil
	}
	return out, nil
}

func (c *cursor) stop() {
	if c.it != nil {
		c.it.Stop()
	}
}

// resolve turns a sequence range into times: those RB_STATS stored the two
// sequences at. It also returns where the replay proper starts in event
// time: the first Sample's event time for a sequence range, else From.
func resolve(ctx context.Context, js jetstream.JetStream, r Range) (Range, time.Time, error) {
	if r.FromSeq == 0 && r.ToSeq == 0 {
		return r, r.From, nil
	}
	s, err := js.Stream(ctx, events.StreamStats)
	if err != nil {
		return r, time.Time{}, fmt.Errorf("stream %s: %w", events.StreamStats, err)
	}
	var measure time.Time
	if r.FromSeq > 0 {
		m, err := s.GetMsg(ctx, r.FromSeq)
		if err != nil {
			return r, time.Time{}, fmt.Errorf("%s sequence %d: %w", events.StreamStats, r.FromSeq, err)
		}
		r.From, measure = m.Time, m.Time
		if meta, err := events.PeekMeta(m.Data); err == nil && !meta.Time.IsZero() {
			measure = meta.Time
		}
	}
	if r.ToSeq > 0 {
		m, err := s.GetMsg(ctx, r.ToSeq)
		if err != nil {
			return r, time.Time{}, fmt.Errorf("%s sequence %d: %w", events.StreamStats, r.ToSeq, err)
		}
		r.To = m.Time
	}
	return r, measure, nil
}

// present returns the streams the server has, all of them unless
// r.SkipMissing allows leaving out those it lacks (never RB_STATS).
func present(ctx context.Context, js jetstream.JetStream, streams []string, r Range) ([]string, error) {
	var out []string
	for _, name := range streams {
		if _, err := appFilters(name, "x"); err != nil {
			return nil, err
		}
		_, err := js.Stream(ctx, name)
		switch {
		case err == nil:
			out = append(out, name)
		case errors.Is(err, jetstream.ErrStreamNotFound) && r.SkipMissing && name != events.StreamStats:
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, fmt.Errorf("stream %s does not exist on this server", name)
		default:
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return out, nil
}

// open starts one ordered consumer per stream at From − Warmup.
func open(ctx context.Context, js jetstream.JetStream, app string, streams []string, r Range) ([]*cursor, error) {
	var out []*cursor
	fail := func(err error) ([]*cursor, error) {
		for _, c := range out {
			c.stop()
		}
		return nil, err
	}
	for _, name := range streams {
		filters, err := appFilters(name, app)
		if err != nil {
			return fail(err)
		}
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy}
		start := time.Time{}
		if !r.From.IsZero() {
			start = r.From.Add(-r.Warmup)
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
		}
		c := &cursor{stream: name, to: r.To}
		if name == events.StreamStats {
			c.toSeq = r.ToSeq
		}
		if name == events.StreamDecisions && !start.IsZero() {
			// The config in force at the start: the last change before it.
			if m, err := lastConfig(ctx, js, app); err != nil {
				return fail(err)
			} else if m != nil && m.at.Before(start) {
				c.first = m
			}
		}
		cons, err := js.OrderedConsumer(ctx, name, cfg)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fail(fmt.Errorf("stream %s does not exist on this server", name))
		}
		if err != nil {
			return fail(fmt.Errorf("read %s: %w", name, err))
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return fail(fmt.Errorf("read %s: %w", name, err))
		}
		c.left = info.NumPending
		if c.left > 0 {
			if c.it, err = cons.Messages(jetstream.PullMaxMessages(4096)); err != nil {
				return fail(fmt.Errorf("read %s: %w", name, err))
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// complete says whether the streams hold nothing of the app before the
// read starts: the read is then the app's whole history.
func complete(ctx context.Context, js jetstream.JetStream, app string, streams []string, r Range) (bool, error) {
	if r.From.IsZero() {
		return true, nil
	}
	start := r.From.Add(-r.Warmup)
	for _, name := range streams {
		filters, err := appFilters(name, app)
		if err != nil {
			return false, err
		}
		cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			return false, fmt.Errorf("read %s: %w", name, err)
		}
		batch, err := cons.FetchNoWait(1)
		if err != nil {
			return false, fmt.Errorf("read %s: %w", name, err)
		}
		for m := range batch.Messages() {
			if md, err := m.Metadata(); err != nil || md.Timestamp.Before(start) {
				return false, batch.Error()
			}
		}
		if err := batch.Error(); err != nil {
			return false, fmt.Errorf("read %s: %w", name, err)
		}
	}
	return true, nil
}

func lastConfig(ctx context.Context, js jetstream.JetStream, app string) (*storedMsg, error) {
	subj, err := events.ConfigSubject(app)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, events.StreamDecisions)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamDecisions, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last config change of %s: %w", app, err)
	}
	return &storedMsg{stream: events.StreamDecisions, subject: m.Subject, seq: m.Sequence, at: m.Time, data: m.Data}, nil
}

// each reads the range and calls f with every message, merged across
// streams by stored time (each stream in its own order).
func each(ctx context.Context, js jetstream.JetStream, app string, streams []string, r Range, f func(*storedMsg) error) error {
	cursors, err := open(ctx, js, app, streams, r)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range cursors {
			c.stop()
		}
	}()
	for _, c := range cursors {
		if c.head, err = c.next(ctx); err != nil {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var pick *cursor
		for _, c := range cursors {
			if c.head != nil && (pick == nil || c.head.at.Before(pick.head.at)) {
				pick = c
			}
		}
		if pick == nil {
			return nil
		}
		if err := f(pick.head); err != nil {
			return err
		}
		if pick.head, err = pick.next(ctx); err != nil {
			return err
		}
	}
}

// ExportStats counts what Export wrote and skipped.
type ExportStats struct {
	Written map[string]int
	// NotJSON counts messages that are not JSON (they cannot be a line).
	NotJSON int
}

// Export writes the range of the streams of app to w, merged by stored time,
// after a first line describing the export (ExportMeta).
func Export(ctx context.Context, js jetstream.JetStream, app string, streams []string, r Range, w *Writer) (ExportStats, error) {
	st := ExportStats{Written: map[string]int{}}
	r, measure, err := resolve(ctx, js, r)
	if err != nil {
		return st, err
	}
	if streams, err = present(ctx, js, streams, r); err != nil {
		return st, err
	}
	whole, err := complete(ctx, js, app, streams, r)
	if err != nil {
		return st, err
	}
	meta, err := json.Marshal(ExportMeta{App: app, From: measure, To: r.To, Warmup: r.Warmup.String(), Streams: slices.Clone(streams), Complete: whole})
	if err != nil {
		return st, fmt.Errorf("export: %w", err)
	}
	if err := w.Write(Record{Stream: ExportStream, Subject: "rb.export", Data: meta}); err != nil {
		return st, err
	}
	err = each(ctx, js, app, streams, r, func(m *storedMsg) error {
		err := w.Write(Record{Stream: m.stream, Subject: m.subject, Seq: m.seq, Data: m.data})
		if errors.Is(err, ErrNotJSON) {
			st.NotJSON++
			return nil
		}
		if err == nil {
			st.Written[m.stream]++
		}
		return err
	})
	return st, err
}

// Fetch reads the range of the streams of app into a Recording; its Meta
// says which range was read.
func Fetch(ctx context.Context, js jetstream.JetStream, app string, streams []string, r Range) (*Recording, error) {
	r, measure, err := resolve(ctx, js, r)
	if err != nil {
		return nil, err
	}
	if streams, err = present(ctx, js, streams, r); err != nil {
		return nil, err
	}
	whole, err := complete(ctx, js, app, streams, r)
	if err != nil {
		return nil, err
	}
	b := NewBuilder(app)
	err = each(ctx, js, app, streams, r, func(m *storedMsg) error {
		b.AddMessage(m.stream, m.subject, m.seq, m.data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	rec := b.Finish()
	rec.Meta = &ExportMeta{App: app, From: measure, To: r.To, Warmup: r.Warmup.String(), Streams: slices.Clone(streams), Complete: whole}
	return rec, nil
}
