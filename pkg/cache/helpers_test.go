package cache

import (
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Clock tests move by hand.
type fakeClock struct{ now atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) NowNano() int64          { return c.now.Load() }
func (c *fakeClock) advance(d time.Duration) { c.now.Add(int64(d)) }

// hdr builds a Header from name, value pairs.
func hdr(kv ...string) Header {
	h := make(Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, Field{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return h
}

func newTestCache(tb testing.TB, cfg Config, clock Clock) *Cache {
	tb.Helper()
	c, err := New(cfg, clock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}
