package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireLeaseScript takes the lease when free, renews it when the caller
// holds it, and returns 1 in both cases; 0 when someone else holds it.
//
// KEYS[1] lease key; ARGV[1] holder; ARGV[2] ttl in milliseconds.
var acquireLeaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseLeaseScript deletes the lease only when the caller holds it: 1 when
// deleted, 0 when free, -1 when held by someone else.
//
// KEYS[1] lease key; ARGV[1] holder.
var releaseLeaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
if cur == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return -1
`)

// AcquireLease takes the lease name for holder for ttl, or renews it when
// holder already has it, and reports whether holder has it now. A lease
// that is not renewed within ttl expires and another holder may take it, so
// renew well within ttl (a third of it is usual). ttl is rounded down to
// milliseconds and must be at least one.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(name, holder); err != nil {
		return false, fmt.Errorf("acquire lease %q for %q: %w", name, holder, err)
	}
	if ttl < time.Millisecond {
		return false, fmt.Errorf("acquire lease %q for %q: ttl %s is below 1ms", name, holder, ttl)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.runInt(ctx, acquireLeaseScript.Run(octx, s.rdb, []string{s.keys.lease(name)}, holder, ttl.Milliseconds()))
	if err != nil {
		return false, fmt.Errorf("acquire lease %q for %q: %w", name, holder, err)
	}
	return n == 1, nil
}

// ReleaseLease gives up the lease name if holder has it. Releasing a lease
// nobody holds (it expired) is not an error; releasing one held by another
// holder changes nothing and returns an error wrapping ErrConflict.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := checkLease(name, holder); err != nil {
		return fmt.Errorf("release lease %q for %q: %w", name, holder, err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.runInt(ctx, releaseLeaseScript.Run(octx, s.rdb, []string{s.keys.lease(name)}, holder))
	if err != nil {
		return fmt.Errorf("release lease %q for %q: %w", name, holder, err)
	}
	if n < 0 {
		return fmt.Errorf("release lease %q for %q: %w: held by another holder", name, holder, ErrConflict)
	}
	return nil
}

func checkLease(name, holder string) error {
	if name == "" {
		return fmt.Errorf("lease name is empty")
	}
	if holder == "" {
		return fmt.Errorf("lease holder is empty")
	}
	return nil
}
