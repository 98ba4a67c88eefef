package scorer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/pkg/store"
)

// snapshotFormat is the version of snapshotJSON.
const snapshotFormat = 1

// Reading the stream while restoring.
const (
	readBatch     = 256
	readIdle      = 30 * time.Second // longest wait for one message known to exist
	readerExpires = time.Minute      // the server drops a reader left behind by a crash
)

// snapshotJSON is the stored form of all states of an app. Containers are a
// map: encoding/json writes it in key order, so equal states give equal bytes.
type snapshotJSON struct {
	Format int    `json:"format"`
	App    string `json:"app"`
	// Seq is the stream sequence of the last Sample applied (also the
	// snapshot's version in the store); StreamTime is when it was stored.
	Seq        uint64                   `json:"seq"`
	StreamTime time.Time                `json:"stream_time"`
	Newest     time.Time                `json:"newest_sample_time"`
	Containers map[string]containerJSON `json:"containers"`
}

type containerJSON struct {
	Seq   uint64      `json:"seq"`
	Last  time.Time   `json:"last_sample_time"`
	State score.State `json:"state"`
	// Pending is the Score of the Sample at Seq when its publication was
	// not confirmed: that Sample was not acknowledged and comes again, and
	// the restored scorer publishes this Score rather than apply it twice.
	Pending *events.Event[events.Score] `json:"pending_score,omitempty"`
}

// restore builds the state from the snapshot and the stream (see the package
// doc) and returns where a consumer created now should start (zero: from the
// beginning). It starts from an empty state, so it can be tried again.
func (s *Service) restore(ctx context.Context) (time.Time, error) {
	s.mu.Lock()
	s.ctrs, s.applied, s.appliedTime, s.newest, s.dirty = map[string]*container{}, 0, time.Time{}, time.Time{}, false
	s.mu.Unlock()

	js := s.bus.JetStream()
	stream, err := js.Stream(ctx, events.StreamStats)
	if err != nil {
		return time.Time{}, fmt.Errorf("look up stream %s: %w", events.StreamStats, err)
	}
	state := stream.CachedInfo().State
	// end is the last Sample a previous run handled: the consumer's ack
	// floor, or, for a consumer not created yet, the end of the stream.
	var end uint64
	durable := true
	cons, err := js.Consumer(ctx, events.StreamStats, s.durable)
	switch {
	case err == nil:
		end = cons.CachedInfo().AckFloor.Stream
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		durable, end = false, state.LastSeq
	default:
		return time.Time{}, fmt.Errorf("look up consumer %s: %w", s.durable, err)
	}
	endTime := s.now()
	if end > 0 {
		if msg, err := stream.GetMsg(ctx, end); err == nil {
			endTime = msg.Time
		}
	}

	snap, why := s.loadSnapshot(ctx, state, end, endTime)
	var (
		way     string
		from    time.Time
		read    int
		readErr error
	)
	if snap != nil {
		way = "catch-up"
		s.install(snap)
		if snap.Seq < end {
			read, readErr = s.readStream(ctx, jetstream.ConsumerConfig{
				DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: snap.Seq + 1,
			}, end, way)
		}
	} else {
		way = "rebuild"
		from = endTime.Add(-s.window)
		if end > 0 {
			read, readErr = s.readStream(ctx, jetstream.ConsumerConfig{
				DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
			}, end, way)
		}
	}
	if readErr != nil {
		return time.Time{}, readErr
	}

	s.mu.Lock()
	n, startAt := len(s.ctrs), s.appliedTime
	s.m.containers.Set(float64(n))
	s.mu.Unlock()
	if startAt.IsZero() && !durable {
		startAt = from
	}
	args := []any{"way", way, "containers", n, "samples_read", read, "consumer_exists", durable, "consumer_acked_to", end}
	if snap != nil {
		args = append(args, "snapshot_seq", snap.Seq)
	} else {
		args = append(args, "no_snapshot", why, "window", s.window)
	}
	s.log.Info("score state restored", args...)
	return startAt, nil
}

// loadSnapshot returns the stored snapshot if it can be continued from
// exactly, or nil and why not.
func (s *Service) loadSnapshot(ctx context.Context, state jetstream.StreamState, end uint64, endTime time.Time) (*snapshotJSON, string) {
	stored, err := s.store.GetSnapshot(ctx, SnapshotKind, s.app)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "none stored"
	case errors.Is(err, store.ErrStale):
		s.log.Warn("redis unavailable, restoring the last snapshot this process wrote", "version", stored.Version, "err", err)
	case err != nil:
		s.log.Warn("snapshot not read, rebuilding from the stream", "err", err)
		return nil, "redis unavailable"
	}
	var snap snapshotJSON
	if err := json.Unmarshal(stored.Data, &snap); err != nil {
		s.log.Warn("snapshot undecodable, rebuilding from the stream", "err", err)
		return nil, "undecodable"
	}
	switch {
	case snap.Format != snapshotFormat || snap.App != s.app || snap.Seq != stored.Version:
		return nil, fmt.Sprintf("format %d for app %q at %d, want format %d for app %q at %d",
			snap.Format, snap.App, snap.Seq, snapshotFormat, s.app, stored.Version)
	case snap.Seq > state.LastSeq:
		return nil, fmt.Sprintf("at sequence %d, past the stream's last %d (stream recreated?)", snap.Seq, state.LastSeq)
	case snap.Seq < end && snap.Seq+1 < state.FirstSeq:
		return nil, fmt.Sprintf("samples after sequence %d have left the stream (first %d)", snap.Seq, state.FirstSeq)
	case snap.Seq < end && endTime.Sub(snap.StreamTime) > s.window:
		return nil, fmt.Sprintf("%v behind the consumer, more than a rebuild window", endTime.Sub(snap.StreamTime).Round(time.Second))
	}
	return &snap, ""
}

// install replaces the state with the snapshot's.
func (s *Service) install(snap *snapshotJSON) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctrs = make(map[string]*container, len(snap.Containers))
	for name, cj := range snap.Containers {
		c := &container{st: cj.State, seq: cj.Seq, last: cj.Last}
		if cj.Pending != nil {
			c.pending, c.hasPending = *cj.Pending, true
		}
		s.ctrs[name] = c
	}
	s.applied, s.appliedTime, s.newest = snap.Seq, snap.StreamTime, snap.Newest
}

// readStream applies, without publishing, the app's Samples from where cfg
// starts up to the stream sequence end, and returns how many it applied.
// Samples that fail to decode are skipped: the consumer dead-lettered them.
func (s *Service) readStream(ctx context.Context, cfg jetstream.ConsumerConfig, end uint64, way string) (int, error) {
	cfg.FilterSubject = s.statsFilter
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.MemoryStorage = true
	cfg.InactiveThreshold = readerExpires
	js := s.bus.JetStream()
	cons, err := js.CreateConsumer(ctx, events.StreamStats, cfg)
	if err != nil {
		return 0, fmt.Errorf("%s: create a reader on %s: %w", way, events.StreamStats, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readIdle)
		_ = js.DeleteConsumer(dctx, events.StreamStats, cons.CachedInfo().Name) // else it expires
		cancel()
	}()
	// Messages stored later are the consumer's: stop at end, or when
	// everything there was at the start is read.
	pending := cons.CachedInfo().NumPending
	if pending == 0 {
		return 0, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(readBatch))
	if err != nil {
		return 0, fmt.Errorf("%s: read %s: %w", way, events.StreamStats, err)
	}
	defer it.Stop()
	applied := 0
	for n := uint64(0); n < pending; n++ {
		nctx, cancel := context.WithTimeout(ctx, readIdle)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return applied, fmt.Errorf("%s: read %s after %d samples: %w", way, events.StreamStats, applied, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return applied, fmt.Errorf("%s: read %s: %w", way, events.StreamStats, err)
		}
		seq := md.Sequence.Stream
		if seq > end {
			break
		}
		ev, err := s.decodeSample(bus.Msg{Subject: msg.Subject(), Data: msg.Data(), Sequence: seq, Time: md.Timestamp})
		if err == nil && s.applySilently(seq, md.Timestamp, ev) {
			applied++
		}
		if seq == end {
			break
		}
	}
	s.m.restored.WithLabelValues(way).Add(float64(applied))
	return applied, nil
}

// snapshot writes all states to the store when they changed; failures are
// logged and counted (the next one, or the stream, covers them).
//
// It does not stop scoring while it encodes: it takes the version (the last
// sequence applied) first, then encodes one container at a time under the
// lock. A container may then include Samples applied after the version; a
// restore reads from the version + 1 and skips them by the container's own
// sequence, so each Sample is still applied once.
func (s *Service) snapshot(ctx context.Context) {
	s.mu.Lock()
	if !s.dirty || s.applied == 0 {
		s.mu.Unlock()
		return
	}
	snap := snapshotJSON{Format: snapshotFormat, App: s.app, Seq: s.applied, StreamTime: s.appliedTime, Newest: s.newest}
	names := make([]string, 0, len(s.ctrs))
	for name := range s.ctrs {
		names = append(names, name)
	}
	s.dirty = false
	s.mu.Unlock()

	states := make(map[string]json.RawMessage, len(names))
	var err error
	for _, name := range names {
		s.mu.Lock()
		if c := s.ctrs[name]; c != nil {
			cj := containerJSON{Seq: c.seq, Last: c.last, State: c.st}
			if c.hasPending {
				p := c.pending
				cj.Pending = &p
			}
			// Encoding copies the state's buffers before the next Update.
			states[name], err = json.Marshal(cj)
		}
		s.mu.Unlock()
		if err != nil {
			break
		}
	}
	var data []byte
	if err == nil {
		data, err = json.Marshal(struct {
			snapshotJSON
			Containers map[string]json.RawMessage `json:"containers"`
		}{snap, states})
	}
	if err != nil {
		s.m.snapshots.WithLabelValues("failed").Inc()
		s.logOnce("snapshot/encode", "snapshot not encoded", "err", err)
		return
	}
	stored, err := s.store.PutSnapshot(ctx, SnapshotKind, s.app, snap.Seq, data)
	switch {
	case err != nil:
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.m.snapshots.WithLabelValues("failed").Inc()
		s.logOnce("snapshot/"+storeErrKind(err), "snapshot not stored; a restart will read more of the stream", "err", err)
	case !stored:
		s.m.snapshots.WithLabelValues("stale").Inc()
	default:
		s.m.snapshots.WithLabelValues("stored").Inc()
		s.m.snapshotBytes.Set(float64(len(data)))
	}
}

func storeErrKind(err error) string {
	if errors.Is(err, store.ErrUnavailable) {
		return "unavailable"
	}
	return "error"
}
