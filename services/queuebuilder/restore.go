package queuebuilder

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/store"
)

// errMissingStream is a stream that does not exist: the bus ensures the
// streams at connect, so this is not worth retrying.
var errMissingStream = errors.New("stream missing")

// found is what the start-up found of one app's queue.
type found struct {
	nats     *events.Event[events.QueueSnapshot] // last on RB_QUEUE
	natsData []byte
	redis    *events.Event[events.QueueSnapshot] // in Redis
	// redisVersion is the version of the Redis snapshot, also when its data
	// cannot be decoded: a generation floor all the same.
	redisVersion uint64
}

// restore reads the last queue of every app from RB_QUEUE and Redis and
// restores the newer of the two into the builder.
func (s *Service) restore(ctx context.Context) error {
	byApp, err := s.readQueueStream(ctx)
	if err != nil {
		return err
	}
	apps := make([]string, 0, len(byApp)+len(s.opts.Apps))
	for app := range byApp {
		apps = append(apps, app)
	}
	for _, app := range s.opts.Apps {
		if app != "" && byApp[app] == nil {
			byApp[app] = &found{}
			apps = append(apps, app)
		}
	}
	slices.Sort(apps)
	redisUp := true
	for _, app := range apps {
		if redisUp {
			redisUp = s.readRedis(ctx, app, byApp[app])
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.restoreApp(app, byApp[app])
	}
	return nil
}

// readQueueStream returns the last valid queue of each app on RB_QUEUE.
func (s *Service) readQueueStream(ctx context.Context) (map[string]*found, error) {
	js := s.bus.JetStream()
	stream, err := js.Stream(ctx, events.StreamQueue)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %s", errMissingStream, events.StreamQueue)
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", events.StreamQueue, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(events.PrefixQueue+">"))
	if err != nil {
		return nil, fmt.Errorf("list subjects of %s: %w", events.StreamQueue, err)
	}
	byApp := map[string]*found{}
	for subj := range info.State.Subjects {
		toks, err := events.Tokens(events.PrefixQueue, subj)
		if err != nil || len(toks) != 1 {
			s.logger.Warn("queuebuilder: ignoring a subject on RB_QUEUE that is not rb.queue.<app>", "subject", subj)
			continue
		}
		raw, err := stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired or purged since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("read last queue on %s: %w", subj, err)
		}
		ev, err := events.Decode[events.QueueSnapshot](raw.Data)
		if err == nil && ev.Data.App != toks[0] {
			err = fmt.Errorf("app %q on the subject of app %q", ev.Data.App, toks[0])
		}
		if err != nil {
			s.logger.Warn("queuebuilder: last message on RB_QUEUE is not a usable queue; ignored", "subject", subj, "seq", raw.Sequence, "err", err)
			continue
		}
		byApp[toks[0]] = &found{nats: &ev, natsData: raw.Data}
	}
	return byApp, nil
}

// readRedis adds the app's Redis snapshot to f, and reports false when Redis
// is unreachable (the remaining apps are then not asked for).
func (s *Service) readRedis(ctx context.Context, app string, f *found) bool {
	snap, err := s.store.GetSnapshot(ctx, SnapshotKind, app)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		return true
	case errors.Is(err, store.ErrUnavailable):
		s.logger.Warn("queuebuilder: redis unavailable at start; restoring the queues from RB_QUEUE only", "err", err)
		return false
	default:
		s.logger.Warn("queuebuilder: queue snapshot in redis not read", "app", app, "err", err)
		return true
	}
	f.redisVersion = snap.Version
	ev, err := events.Decode[events.QueueSnapshot](snap.Data)
	if err == nil && (ev.Data.App != app || ev.Data.Generation != snap.Version) {
		err = fmt.Errorf("app %q generation %d stored as app %q version %d", ev.Data.App, ev.Data.Generation, app, snap.Version)
	}
	if err != nil {
		s.logger.Warn("queuebuilder: queue snapshot in redis is not usable; only its version is kept", "app", app, "version", snap.Version, "err", err)
		return true
	}
	f.redis = &ev
	return true
}

// restoreApp restores the newer of the queues found into the builder.
func (s *Service) restoreApp(app string, f *found) {
	var natsGen uint64
	if f.nats != nil {
		natsGen = f.nats.Data.Generation
	}
	chosen, from := f.nats, "RB_QUEUE"
	if f.redis != nil && f.redis.Data.Generation > natsGen {
		chosen, from = f.redis, "redis"
	}
	floor := max(natsGen, f.redisVersion)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.appLocked(app)
	st.published = natsGen
	switch {
	case chosen == nil && floor == 0:
		return
	case chosen == nil:
		// Only an undecodable Redis snapshot: keep its generation as a floor
		// without publishing an empty queue over it.
		s.builder.Restore(events.QueueSnapshot{App: app, Generation: floor})
		st.published = floor
		s.logger.Warn("queuebuilder: no usable queue to restore; generations go on from the redis version", "app", app, "generation", floor)
		return
	}
	snap := chosen.Data
	if floor > snap.Generation {
		snap.Generation = floor
		st.published = floor
	}
	s.builder.Restore(snap)
	st.lastTime = chosen.Time
	if st.published > 0 {
		s.m.generation.WithLabelValues(app).Set(float64(st.published))
	}
	if f.nats != nil && f.redisVersion < natsGen {
		s.snaps.put(app, natsGen, f.natsData)
	}
	s.logger.Info("queuebuilder: queue restored", "app", app, "generation", snap.Generation, "from", from,
		"items", len(snap.Items), "on_rb_queue", natsGen, "in_redis", f.redisVersion)
}

// resetConsumers deletes the durable consumers, so that they are created
// afresh and deliver the history the rebuild needs.
func (s *Service) resetConsumers(ctx context.Context) error {
	js := s.bus.JetStream()
	for _, c := range []struct{ stream, durable string }{
		{events.StreamScores, DurableScores}, {events.StreamDecisions, DurableLifecycle},
	} {
		err := js.DeleteConsumer(ctx, c.stream, c.durable)
		switch {
		case err == nil, errors.Is(err, jetstream.ErrConsumerNotFound):
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return fmt.Errorf("%w: %s", errMissingStream, c.stream)
		default:
			return fmt.Errorf("delete consumer %s/%s: %w", c.stream, c.durable, err)
		}
	}
	return nil
}

// lastSequence is the stream sequence of the last message on filter in
// stream, 0 when there is none.
func (s *Service) lastSequence(ctx context.Context, stream, filter string) (uint64, error) {
	st, err := s.bus.JetStream().Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("%w: %s", errMissingStream, stream)
	}
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", stream, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, filter)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read the last message on %s: %w", filter, err)
	}
	return m.Sequence, nil
}
