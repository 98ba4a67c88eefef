package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Snapshot is an opaque value with the version of the state it captures
// (for example the sequence of the queue event it was built from).
type Snapshot struct {
	Version uint64
	Data    []byte
	At      time.Time // when it was stored
}

type snapshotKey struct{ kind, app string }

// putSnapshotScript stores the snapshot only when its version is newer than the
// stored one. Versions are compared as decimal strings (longer is larger, then
// lexical), since Lua numbers lose precision above 2^53.
//
// KEYS[1] snapshot key; ARGV[1] version; ARGV[2] data; ARGV[3] at.
var putSnapshotScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'version')
if cur then
  local v = ARGV[1]
  if #v < #cur or (#v == #cur and v <= cur) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'data', ARGV[2], 'at', ARGV[3])
return 1
`)

// PutSnapshot stores data as the kind snapshot of app when version is newer
// than the stored one; otherwise it leaves the stored one and returns false,
// so that late or replayed writers cannot roll the snapshot back.
func (s *Store) PutSnapshot(ctx context.Context, kind, app string, version uint64, data []byte) (stored bool, err error) {
	if err := checkSnapshotNames(kind, app); err != nil {
		return false, fmt.Errorf("put %s snapshot for app %q: %w", kind, app, err)
	}
	now := s.opts.Now().UTC()
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.runInt(ctx, putSnapshotScript.Run(octx, s.rdb, []string{s.keys.snapshot(kind, app)},
		strconv.FormatUint(version, 10), data, now.Format(time.RFC3339Nano)))
	if err != nil {
		return false, fmt.Errorf("put %s snapshot for app %q version %d: %w", kind, app, version, err)
	}
	if n == 0 {
		return false, nil
	}
	s.mu.Lock()
	s.snapshots[snapshotKey{kind, app}] = Snapshot{Version: version, Data: bytes.Clone(data), At: now}
	s.mu.Unlock()
	return true, nil
}

// GetSnapshot returns the kind snapshot of app, or an error wrapping
// ErrNotFound. When Redis is unreachable it returns the last snapshot this
// Store read or wrote with an error wrapping ErrStale, or, when it has none,
// an error wrapping ErrUnavailable.
func (s *Store) GetSnapshot(ctx context.Context, kind, app string) (Snapshot, error) {
	if err := checkSnapshotNames(kind, app); err != nil {
		return Snapshot{}, fmt.Errorf("get %s snapshot for app %q: %w", kind, app, err)
	}
	key := snapshotKey{kind, app}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	f, cause := s.rdb.HGetAll(octx, s.keys.snapshot(kind, app)).Result()
	if err := s.result(ctx, cause); err != nil {
		if errors.Is(err, ErrUnavailable) {
			s.mu.Lock()
			last, ok := s.snapshots[key]
			s.mu.Unlock()
			if ok {
				last.Data = bytes.Clone(last.Data)
				return last, fmt.Errorf("get %s snapshot for app %q: %w (version %d): %w", kind, app, ErrStale, last.Version, cause)
			}
		}
		return Snapshot{}, fmt.Errorf("get %s snapshot for app %q: %w", kind, app, err)
	}
	if len(f) == 0 {
		s.mu.Lock()
		delete(s.snapshots, key)
		s.mu.Unlock()
		return Snapshot{}, fmt.Errorf("get %s snapshot for app %q: %w", kind, app, ErrNotFound)
	}
	snap, err := decodeSnapshot(f)
	if err != nil {
		return Snapshot{}, fmt.Errorf("get %s snapshot for app %q: %w", kind, app, err)
	}
	s.mu.Lock()
	s.snapshots[key] = Snapshot{Version: snap.Version, Data: bytes.Clone(snap.Data), At: snap.At}
	s.mu.Unlock()
	return snap, nil
}

func checkSnapshotNames(kind, app string) error {
	if err := checkName("snapshot kind", kind); err != nil {
		return err
	}
	return checkName("app", app)
}

func decodeSnapshot(f map[string]string) (Snapshot, error) {
	v, err := strconv.ParseUint(f["version"], 10, 64)
	if err != nil {
		return Snapshot{}, fmt.Errorf("decode field version %q: %w", f["version"], err)
	}
	at, err := time.Parse(time.RFC3339Nano, f["at"])
	if err != nil {
		return Snapshot{}, fmt.Errorf("decode field at: %w", err)
	}
	return Snapshot{Version: v, Data: []byte(f["data"]), At: at}, nil
}
