package cache

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// Clock is the time source of a Cache, in unix nanoseconds.
type Clock interface {
	NowNano() int64
}

// Cache holds responses by key, bounded by entries and bytes, each entry
// expiring after its TTL. It is safe for concurrent use.
type Cache struct {
	store *otter.Cache[string, *Entry]
	clock Clock
	cfg   Config
	bytes atomic.Int64
}

// New builds a cache. A nil clock uses the wall clock and lets otter clean
// up expired entries in the background. A clock that is also an
// otter.Clock goes to otter as it is: otter.NewCoarseClock makes a hit
// cheaper (no system clock read) for TTLs off by up to its resolution. Any
// other clock (tests) does without the background clean-up: expired entries
// are never returned either way, and the bounds still evict them.
//
// otter bounds either entries or weight, not both, so both bounds are kept
// by one weight: an entry weighs max(its bytes, MaxBytes/Capacity). The sum
// stays under MaxBytes, so the bytes are bounded, and no more than Capacity
// entries fit. Small entries are charged more than they hold, so a cache of
// mixed sizes may evict before either bound is reached by itself.
func New(cfg Config, clock Clock) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	c := &Cache{clock: clock, cfg: cfg}
	minWeight := uint32((cfg.MaxBytes + int64(cfg.Capacity) - 1) / int64(cfg.Capacity))
	opts := &otter.Options[string, *Entry]{
		MaximumWeight: uint64(cfg.MaxBytes),
		Weigher: func(key string, e *Entry) uint32 {
			return max(minWeight, uint32(min(int64(len(key))+e.Size(), int64(^uint32(0)))))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *Entry]) time.Duration {
			return e.Value.TTL
		}),
		OnAtomicDeletion: func(e otter.DeletionEvent[string, *Entry]) {
			c.bytes.Add(-(int64(len(e.Key)) + e.Value.Size()))
		},
	}
	switch oc := clock.(type) {
	case nil:
		c.clock = wallClock{}
	case otter.Clock:
		opts.Clock = oc
	default:
		opts.Clock = otterClock{clock}
	}
	store, err := otter.New(opts)
	if err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	c.store = store
	return c, nil
}

// Get returns the fresh entry stored under key.
func (c *Cache) Get(key string) (*Entry, bool) {
	return c.store.GetIfPresent(key)
}

// GetBytes is Get for a key built in a reusable buffer (AppendKey), without
// copying it to a string: a lookup does not keep its key.
func (c *Cache) GetBytes(key []byte) (*Entry, bool) {
	return c.store.GetIfPresent(unsafe.String(unsafe.SliceData(key), len(key)))
}

// Set stores e under key, stamping e.StoredAt with the cache's clock, and
// reports whether it did: an entry without a positive TTL or larger than
// MaxEntryBytes is not stored. e must not be modified afterwards.
func (c *Cache) Set(key string, e *Entry) bool {
	size := int64(len(key)) + e.Size()
	if e.TTL <= 0 || size > c.cfg.MaxEntryBytes {
		return false
	}
	e.StoredAt = time.Unix(0, c.clock.NowNano())
	c.bytes.Add(size)
	c.store.Set(key, e)
	return true
}

// Delete removes the entry under key, if any.
func (c *Cache) Delete(key string) {
	c.store.Invalidate(key)
}

// Len returns the approximate number of entries, expired ones not yet
// cleaned up included.
func (c *Cache) Len() int { return c.store.EstimatedSize() }

// Bytes returns the bytes held by the entries (as Entry.Size counts them,
// plus keys), expired ones not yet cleaned up included.
func (c *Cache) Bytes() int64 { return c.bytes.Load() }

// Now returns the cache's clock reading, for Entry.Age on a hit.
func (c *Cache) Now() time.Time { return time.Unix(0, c.clock.NowNano()) }

// Close stops the cache's background goroutines.
func (c *Cache) Close() { c.store.StopAllGoroutines() }

// AppendKey appends the cache key of a request to dst: method, host
// (lower-cased), request URI (path and query) and Accept-Encoding. The
// encoding is always part of the key, since only Vary: Accept-Encoding is
// cached and the response's Vary is unknown at lookup.
func AppendKey(dst, method, host, uri, acceptEncoding []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	for _, b := range host {
		dst = append(dst, lower(b))
	}
	dst = append(dst, ' ')
	dst = append(dst, uri...)
	dst = append(dst, 0)
	return append(dst, acceptEncoding...)
}

// wallClock reads the system clock.
type wallClock struct{}

func (wallClock) NowNano() int64 { return time.Now().UnixNano() }

// otterClock adapts a Clock to otter's, without periodic ticks.
type otterClock struct{ Clock }

func (otterClock) Tick(time.Duration) <-chan time.Time { return nil }
