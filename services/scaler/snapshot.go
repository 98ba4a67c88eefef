package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/pkg/store"
)

// SnapshotKind names the scaler's snapshots in Redis: rb:snapshot:scale:<app>.
const SnapshotKind = "scale"

// snapshotEvery is the least time between two snapshots of a term.
const snapshotEvery = 5 * time.Second

// Snapshot is the scaling state of an app as saved in Redis, exact at a
// position of the decision log: every RB_DECISIONS message up to Seq is in
// State and none after it. A new leader decodes it and reads the log after
// Seq, instead of the whole log.
type Snapshot struct {
	// Seq is the last RB_DECISIONS stream sequence applied (0: none).
	Seq   uint64       `json:"seq"`
	State *scale.State `json:"state"`
	// ConfigVersion and ConfigValues are the runtime config in force at Seq.
	ConfigVersion int64             `json:"config_version,omitempty"`
	ConfigValues  map[string]string `json:"config_values,omitempty"`
}

// restoreSnapshot reads the app's snapshot and, when it is usable, hands it
// to the loop; it returns the sequence to read the log after (0: from the
// start) and false when ctx ended. A snapshot that cannot be read, belongs
// to another app or is ahead of the stream (the stream was recreated) is
// ignored: the whole log is read instead.
func (t *term) restoreSnapshot(ctx context.Context) (uint64, bool) {
	raw, err := t.s.store.GetSnapshot(ctx, SnapshotKind, t.s.app)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, true
	case err != nil && !errors.Is(err, store.ErrStale):
		t.log.Warn("state snapshot not readable; rebuilding from the whole decision log", "err", err)
		return 0, ctx.Err() == nil
	}
	var sn Snapshot
	if err := json.Unmarshal(raw.Data, &sn); err != nil || sn.State == nil || sn.State.App != t.s.app || sn.Seq != raw.Version {
		t.log.Warn("state snapshot unusable; rebuilding from the whole decision log", "seq", raw.Version, "err", err)
		return 0, true
	}
	stream, err := t.s.bus.JetStream().Stream(ctx, events.StreamDecisions)
	if err != nil {
		t.log.Warn("decision log not inspectable; rebuilding from the whole of it", "err", err)
		return 0, ctx.Err() == nil
	}
	if lastSeq := stream.CachedInfo().State.LastSeq; sn.Seq > lastSeq {
		t.log.Warn("state snapshot is ahead of the decision log (was the stream recreated?); rebuilding from the whole log",
			"snapshot_seq", sn.Seq, "log_last_seq", lastSeq)
		return 0, true
	}
	if !t.send(ctx, input{kind: inSnapshot, snapshot: &sn}) {
		return 0, false
	}
	return sn.Seq, true
}

// restore installs a snapshot in the loop, before any log message.
func (t *term) restore(sn *Snapshot) {
	t.st, t.seq = sn.State, sn.Seq
	if sn.ConfigVersion > 0 && sn.ConfigVersion >= t.version {
		t.applyConfig(sn.ConfigValues, sn.ConfigVersion, "snapshot")
	}
	c := t.st.Counts()
	t.log.Info("scaler state restored from its snapshot", "seq", sn.Seq, "desired", t.st.Desired, "live", c.Live, "sundown", c.Sundown)
}

// maybeSnapshot saves the state when it is exact at a log position — every
// decision this term published has come back through the log, so none is
// in the state ahead of its sequence — and the last save is old enough.
func (t *term) maybeSnapshot(force bool) {
	if !t.live || len(t.pending) > 0 || (!force && time.Since(t.snapAt) < snapshotEvery) || t.seq == t.snapSeq && !force {
		return
	}
	data, err := json.Marshal(Snapshot{Seq: t.seq, State: t.st, ConfigVersion: t.version, ConfigValues: t.values})
	if err != nil {
		t.log.Error("state snapshot not encoded", "err", err)
		return
	}
	t.snapAt, t.snapSeq = time.Now(), t.seq
	t.snaps.set(t.seq, data)
}

// snapshotWriter writes the latest snapshot to Redis off the loop's path.
type snapshotWriter struct {
	s    *Service
	mu   sync.Mutex
	seq  uint64
	data []byte
	wake chan struct{}
}

func (w *snapshotWriter) set(seq uint64, data []byte) {
	w.mu.Lock()
	w.seq, w.data = seq, data
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until ctx is done; the term flushes the last one after.
func (w *snapshotWriter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			w.write(ctx)
		}
	}
}

func (w *snapshotWriter) write(ctx context.Context) {
	w.mu.Lock()
	seq, data := w.seq, w.data
	w.data = nil
	w.mu.Unlock()
	if data == nil {
		return
	}
	stored, err := w.s.store.PutSnapshot(ctx, SnapshotKind, w.s.app, seq, data)
	switch {
	case err != nil:
		w.s.log.Warn("state snapshot not written; a new leader reads more of the log", "seq", seq, "err", err)
	case !stored:
		// Another term wrote a later one (or the stream was recreated and
		// sequences restarted: then only the whole-log rebuild is exact).
		w.s.log.Debug("state snapshot older than the stored one; not written", "seq", seq)
	}
}

// LoadSnapshot reads and decodes the scaler's snapshot of app, for `rb
// status` and tests.
func LoadSnapshot(ctx context.Context, st interface {
	GetSnapshot(ctx context.Context, kind, app string) (store.Snapshot, error)
}, app string) (Snapshot, error) {
	raw, err := st.GetSnapshot(ctx, SnapshotKind, app)
	if err != nil {
		return Snapshot{}, fmt.Errorf("load scaler snapshot of %q: %w", app, err)
	}
	var sn Snapshot
	if err := json.Unmarshal(raw.Data, &sn); err != nil {
		return Snapshot{}, fmt.Errorf("load scaler snapshot of %q: %w", app, err)
	}
	return sn, nil
}
