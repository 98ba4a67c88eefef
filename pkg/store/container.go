package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ContainerRecord is the scaler's record of one worker container of an app:
// its desired state, kept across restarts of the scaler.
type ContainerRecord struct {
	App     string
	Name    string
	ID      string
	Image   string
	Address string
	State   string
	Port    int
	Created time.Time
	Labels  map[string]string
}

// PutContainer creates or replaces the record rec.App/rec.Name.
func (s *Store) PutContainer(ctx context.Context, rec ContainerRecord) error {
	if err := checkContainerNames(rec.App, rec.Name); err != nil {
		return fmt.Errorf("put container record %s/%s: %w", rec.App, rec.Name, err)
	}
	labels := rec.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	enc, err := json.Marshal(labels)
	if err != nil {
		return fmt.Errorf("put container record %s/%s: encode labels: %w", rec.App, rec.Name, err)
	}
	key := s.keys.container(rec.App, rec.Name)
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	// One transaction, so the index never names a record that was not written.
	_, err = s.rdb.TxPipelined(octx, func(p redis.Pipeliner) error {
		p.Del(octx, key) // no field of an older record survives
		p.HSet(octx, key,
			"app", rec.App,
			"name", rec.Name,
			"id", rec.ID,
			"image", rec.Image,
			"address", rec.Address,
			"state", rec.State,
			"port", strconv.Itoa(rec.Port),
			"created", rec.Created.UTC().Format(time.RFC3339Nano),
			"labels", string(enc),
		)
		p.SAdd(octx, s.keys.containerIndex(rec.App), rec.Name)
		return nil
	})
	if err = s.result(ctx, err); err != nil {
		return fmt.Errorf("put container record %s/%s: %w", rec.App, rec.Name, err)
	}
	return nil
}

// GetContainer returns the record app/name, or an error wrapping ErrNotFound.
func (s *Store) GetContainer(ctx context.Context, app, name string) (ContainerRecord, error) {
	if err := checkContainerNames(app, name); err != nil {
		return ContainerRecord{}, fmt.Errorf("get container record %s/%s: %w", app, name, err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	f, err := s.rdb.HGetAll(octx, s.keys.container(app, name)).Result()
	if err = s.result(ctx, err); err != nil {
		return ContainerRecord{}, fmt.Errorf("get container record %s/%s: %w", app, name, err)
	}
	if len(f) == 0 {
		return ContainerRecord{}, fmt.Errorf("get container record %s/%s: %w", app, name, ErrNotFound)
	}
	rec, err := decodeContainer(app, name, f)
	if err != nil {
		return ContainerRecord{}, fmt.Errorf("get container record %s/%s: %w", app, name, err)
	}
	return rec, nil
}

// ListContainers returns the records of app sorted by name. It reads the
// app's index, not the key space.
func (s *Store) ListContainers(ctx context.Context, app string) ([]ContainerRecord, error) {
	if err := checkName("app", app); err != nil {
		return nil, fmt.Errorf("list container records of app %q: %w", app, err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	names, err := s.rdb.SMembers(octx, s.keys.containerIndex(app)).Result()
	if err = s.result(ctx, err); err != nil {
		return nil, fmt.Errorf("list container records of app %q: %w", app, err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	cmds := make([]*redis.MapStringStringCmd, len(names))
	_, err = s.rdb.Pipelined(octx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.HGetAll(octx, s.keys.container(app, n))
		}
		return nil
	})
	if err = s.result(ctx, err); err != nil {
		return nil, fmt.Errorf("list container records of app %q: %w", app, err)
	}
	recs := make([]ContainerRecord, 0, len(names))
	for i, n := range names {
		f := cmds[i].Val()
		if len(f) == 0 {
			continue // deleted between the two reads
		}
		rec, err := decodeContainer(app, n, f)
		if err != nil {
			return nil, fmt.Errorf("list container records of app %q: %w", app, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// DeleteContainer removes the record app/name. Deleting a missing record is
// not an error, so that reconciliation can repeat it.
func (s *Store) DeleteContainer(ctx context.Context, app, name string) error {
	if err := checkContainerNames(app, name); err != nil {
		return fmt.Errorf("delete container record %s/%s: %w", app, name, err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err := s.rdb.TxPipelined(octx, func(p redis.Pipeliner) error {
		p.Del(octx, s.keys.container(app, name))
		p.SRem(octx, s.keys.containerIndex(app), name)
		return nil
	})
	if err = s.result(ctx, err); err != nil {
		return fmt.Errorf("delete container record %s/%s: %w", app, name, err)
	}
	return nil
}

// Desired returns the desired container count of app; ok is false when it was
// never set.
func (s *Store) Desired(ctx context.Context, app string) (n int, ok bool, err error) {
	if err := checkName("app", app); err != nil {
		return 0, false, fmt.Errorf("get desired count of app %q: %w", app, err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	raw, err := s.rdb.Get(octx, s.keys.desired(app)).Result()
	if err = s.result(ctx, err); err != nil {
		if errors.Is(err, redis.Nil) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("get desired count of app %q: %w", app, err)
	}
	if n, err = strconv.Atoi(raw); err != nil {
		return 0, false, fmt.Errorf("get desired count of app %q: stored value %q is not a number", app, raw)
	}
	return n, true, nil
}

// SetDesired stores the desired container count of app; n must not be negative.
func (s *Store) SetDesired(ctx context.Context, app string, n int) error {
	if err := checkName("app", app); err != nil {
		return fmt.Errorf("set desired count of app %q: %w", app, err)
	}
	if n < 0 {
		return fmt.Errorf("set desired count of app %q: %d is negative", app, n)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.result(ctx, s.rdb.Set(octx, s.keys.desired(app), n, 0).Err()); err != nil {
		return fmt.Errorf("set desired count of app %q to %d: %w", app, n, err)
	}
	return nil
}

func checkContainerNames(app, name string) error {
	if err := checkName("app", app); err != nil {
		return err
	}
	if name == "" {
		return errors.New("container name is empty")
	}
	return nil
}

func decodeContainer(app, name string, f map[string]string) (ContainerRecord, error) {
	rec := ContainerRecord{
		App:     app,
		Name:    name,
		ID:      f["id"],
		Image:   f["image"],
		Address: f["address"],
		State:   f["state"],
	}
	var err error
	if rec.Port, err = strconv.Atoi(f["port"]); err != nil {
		return ContainerRecord{}, fmt.Errorf("decode record %s/%s: field port %q: %w", app, name, f["port"], err)
	}
	if rec.Created, err = time.Parse(time.RFC3339Nano, f["created"]); err != nil {
		return ContainerRecord{}, fmt.Errorf("decode record %s/%s: field created: %w", app, name, err)
	}
	if err := json.Unmarshal([]byte(f["labels"]), &rec.Labels); err != nil {
		return ContainerRecord{}, fmt.Errorf("decode record %s/%s: field labels: %w", app, name, err)
	}
	return rec, nil
}
