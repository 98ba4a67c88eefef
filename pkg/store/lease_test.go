package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

func TestLease(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, _ := newStore(t, srv, nil)
	b, _ := newStore(t, srv, nil)
	ctx := context.Background()
	const name = "scaler:web"

	acquire := func(s *Store, holder string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.AcquireLease(ctx, name, holder, ttl)
		if err != nil {
			t.Fatalf("AcquireLease(%s): %v", holder, err)
		}
		return ok
	}

	if !acquire(a, "a", time.Minute) {
		t.Fatal("a could not take a free lease")
	}
	if acquire(b, "b", time.Minute) {
		t.Fatal("b took a lease a holds")
	}
	// Renewal keeps it ours and resets the TTL.
	if !acquire(a, "a", 2*time.Minute) {
		t.Fatal("a could not renew its lease")
	}
	if ttl := a.rdb.PTTL(ctx, a.keys.lease(name)).Val(); ttl <= time.Minute {
		t.Fatalf("TTL after renewing for 2m is %s", ttl)
	}
	// Only the holder releases.
	if err := b.ReleaseLease(ctx, name, "b"); !errors.Is(err, ErrConflict) {
		t.Fatalf("b released a's lease: err = %v, want ErrConflict", err)
	}
	if acquire(b, "b", time.Minute) {
		t.Fatal("b took the lease after its failed release")
	}
	if err := a.ReleaseLease(ctx, name, "a"); err != nil {
		t.Fatalf("a releasing its lease: %v", err)
	}
	if err := a.ReleaseLease(ctx, name, "a"); err != nil {
		t.Fatalf("releasing a free lease: %v", err)
	}
	if !acquire(b, "b", time.Minute) {
		t.Fatal("b could not take the released lease")
	}

	// A lease not renewed expires and another holder takes it.
	if !acquire(b, "b", 50*time.Millisecond) {
		t.Fatal("b could not shorten its lease")
	}
	eventually(t, "a to take b's expired lease", func() bool { return acquire(a, "a", time.Minute) })
	if acquire(b, "b", time.Minute) {
		t.Fatal("b renewed a lease it lost")
	}
	if err := b.ReleaseLease(ctx, name, "b"); !errors.Is(err, ErrConflict) {
		t.Fatalf("b released the lease it lost: err = %v, want ErrConflict", err)
	}

	// Leases are independent by name.
	if ok, err := b.AcquireLease(ctx, "scaler:api", "b", time.Minute); err != nil || !ok {
		t.Fatalf("b could not take another lease: %v, %v", ok, err)
	}
}
