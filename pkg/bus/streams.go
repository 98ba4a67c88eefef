package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rustybalancer/rb/events"
)

// EnsureStreams makes each stream exist with the given subjects and limits:
// it creates a missing stream, updates one whose description, subjects or
// limits differ, and leaves an equal one alone, so calling it again is a no
// op. Settings it does not manage (replicas, storage chosen by an operator)
// are kept on update. A duplicate window longer than MaxAge is shortened to
// MaxAge, which JetStream requires.
func (b *Bus) EnsureStreams(ctx context.Context, streams []events.Stream) error {
	var errs []error
	for _, s := range streams {
		if err := b.ensureStream(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *Bus) ensureStream(ctx context.Context, s events.Stream) error {
	want := streamConfig(s)
	// Two attempts: another process may create the stream between our lookup
	// and our create, which then becomes an update.
	for attempt := 0; ; attempt++ {
		st, err := b.js.Stream(ctx, s.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = b.js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt == 0 {
				continue
			}
			if err != nil {
				return fmt.Errorf("create stream %s: %w", s.Name, err)
			}
			b.logger.Info("stream created", "stream", s.Name, "subjects", want.Subjects, "max_age", want.MaxAge)
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up stream %s: %w", s.Name, err)
		}
		have := st.CachedInfo().Config
		if sameManaged(have, want) {
			return nil
		}
		upd := have
		upd.Description, upd.Subjects = want.Description, want.Subjects
		upd.MaxAge, upd.MaxMsgsPerSubject, upd.MaxBytes, upd.Duplicates = want.MaxAge, want.MaxMsgsPerSubject, want.MaxBytes, want.Duplicates
		if _, err := b.js.UpdateStream(ctx, upd); err != nil {
			return fmt.Errorf("update stream %s: %w", s.Name, err)
		}
		b.logger.Info("stream updated", "stream", s.Name,
			"subjects", want.Subjects, "max_age", want.MaxAge, "old_max_age", have.MaxAge,
			"max_msgs_per_subject", want.MaxMsgsPerSubject, "max_bytes", want.MaxBytes)
		return nil
	}
}

// streamConfig is the JetStream form of s: file storage, limits retention,
// old messages discarded first. Zero limits mean unlimited (-1 on the wire).
func streamConfig(s events.Stream) jetstream.StreamConfig {
	unlimited := func(v int64) int64 {
		if v <= 0 {
			return -1
		}
		return v
	}
	dup := s.Duplicates
	if s.MaxAge > 0 && dup > s.MaxAge {
		dup = s.MaxAge
	}
	if dup <= 0 {
		dup = 2 * time.Minute // the server's default, spelled out so comparisons hold
		if s.MaxAge > 0 && dup > s.MaxAge {
			dup = s.MaxAge
		}
	}
	return jetstream.StreamConfig{
		Name:              s.Name,
		Description:       s.Description,
		Subjects:          slices.Clone(s.Subjects),
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxAge:            s.MaxAge,
		MaxMsgsPerSubject: unlimited(s.MaxMsgsPerSubject),
		MaxBytes:          unlimited(s.MaxBytes),
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Duplicates:        dup,
		Replicas:          1,
	}
}

// sameManaged reports whether the settings EnsureStreams manages are equal.
func sameManaged(have, want jetstream.StreamConfig) bool {
	hs, ws := slices.Clone(have.Subjects), slices.Clone(want.Subjects)
	slices.Sort(hs)
	slices.Sort(ws)
	return have.Description == want.Description && slices.Equal(hs, ws) &&
		have.MaxAge == want.MaxAge && have.MaxMsgsPerSubject == want.MaxMsgsPerSubject &&
		have.MaxBytes == want.MaxBytes && have.Duplicates == want.Duplicates
}
