package cache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
)

func TestSetGet(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := newTestCache(t, DefaultConfig(), clock)
	e := NewEntry(200, hdr("Content-Type", "text/css"), []byte("body{}"), time.Minute)
	if !c.Set("k", e) {
		t.Fatal("Set refused a small entry")
	}
	got, ok := c.Get("k")
	if !ok || got != e {
		t.Fatalf("Get = %v, %v; want the stored entry", got, ok)
	}
	if got.StoredAt.UnixNano() != clock.NowNano() {
		t.Errorf("StoredAt = %v, want the cache clock %v", got.StoredAt, c.Now())
	}
	if got, ok := c.GetBytes([]byte("k")); !ok || got != e {
		t.Errorf("GetBytes = %v, %v", got, ok)
	}
	if _, ok := c.Get("other"); ok {
		t.Error("Get of a missing key hit")
	}
	c.Delete("k")
	if _, ok := c.Get("k"); ok {
		t.Error("Get after Delete hit")
	}
	c.store.CleanUp()
	if c.Bytes() != 0 || c.Len() != 0 {
		t.Errorf("after Delete: %d bytes, %d entries; want 0, 0", c.Bytes(), c.Len())
	}
}

func TestSetRefuses(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.MaxEntryBytes = 1 << 10
	c := newTestCache(t, cfg, newFakeClock())
	tests := []struct {
		name  string
		entry *Entry
	}{
		{name: "no TTL", entry: NewEntry(200, nil, []byte("x"), 0)},
		{name: "negative TTL", entry: NewEntry(200, nil, []byte("x"), -time.Second)},
		{name: "too large", entry: NewEntry(200, nil, make([]byte, 1<<10), time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c.Set(tt.name, tt.entry) {
				t.Error("Set stored it")
			}
			if _, ok := c.Get(tt.name); ok {
				t.Error("Get hit")
			}
		})
	}
}

// TestTTLExpiry: an entry is a hit until its TTL has passed on the cache's
// clock, then a miss; replacing it restarts its TTL.
func TestTTLExpiry(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := newTestCache(t, DefaultConfig(), clock)
	c.Set("short", NewEntry(200, nil, []byte("a"), 10*time.Second))
	c.Set("long", NewEntry(200, nil, []byte("b"), time.Hour))
	clock.advance(10*time.Second - 1)
	if _, ok := c.Get("short"); !ok {
		t.Fatal("entry expired before its TTL")
	}
	clock.advance(1)
	if _, ok := c.Get("short"); ok {
		t.Fatal("entry still served at its TTL")
	}
	if _, ok := c.Get("long"); !ok {
		t.Fatal("long entry expired early")
	}
	c.Set("long", NewEntry(200, nil, []byte("c"), 5*time.Second))
	clock.advance(4 * time.Second)
	if e, ok := c.Get("long"); !ok || string(e.Body) != "c" {
		t.Fatal("replaced entry missing")
	}
	clock.advance(time.Second)
	if _, ok := c.Get("long"); ok {
		t.Fatal("replaced entry kept the old, longer TTL")
	}
	c.store.CleanUp()
	if c.Bytes() != 0 {
		t.Errorf("Bytes = %d after every entry expired, want 0", c.Bytes())
	}
}

// TestByteBound: large entries are evicted to keep the bytes under MaxBytes
// long before the entry bound is reached.
func TestByteBound(t *testing.T) {
	t.Parallel()
	cfg := Config{Capacity: 1000, MaxBytes: 1 << 20, MaxEntryBytes: 256 << 10, DefaultTTL: time.Hour}
	c := newTestCache(t, cfg, newFakeClock())
	body := make([]byte, 100<<10)
	for i := range 40 {
		if !c.Set(fmt.Sprintf("big%d", i), NewEntry(200, nil, body, time.Hour)) {
			t.Fatalf("Set %d refused", i)
		}
	}
	c.store.CleanUp()
	if b := c.Bytes(); b > cfg.MaxBytes {
		t.Errorf("Bytes = %d, want <= %d", b, cfg.MaxBytes)
	}
	if n := c.Len(); n < 5 || n > 10 {
		t.Errorf("Len = %d, want 5..10 entries of 100 KiB in 1 MiB", n)
	}
	if w := c.store.WeightedSize(); w > uint64(cfg.MaxBytes) {
		t.Errorf("weighted size %d over the maximum %d", w, cfg.MaxBytes)
	}
}

// TestEntryBound: tiny entries are evicted at Capacity long before the
// bytes bound is reached.
func TestEntryBound(t *testing.T) {
	t.Parallel()
	cfg := Config{Capacity: 50, MaxBytes: 64 << 20, MaxEntryBytes: 1 << 20, DefaultTTL: time.Hour}
	c := newTestCache(t, cfg, newFakeClock())
	for i := range 500 {
		c.Set(fmt.Sprintf("small%d", i), NewEntry(200, hdr("Content-Type", "text/css"), []byte("a{}"), time.Hour))
	}
	c.store.CleanUp()
	if n := c.Len(); n > cfg.Capacity || n < cfg.Capacity/2 {
		t.Errorf("Len = %d, want %d..%d", n, cfg.Capacity/2, cfg.Capacity)
	}
	var sum int64
	for k, e := range c.store.All() {
		sum += int64(len(k)) + e.Size()
	}
	if c.Bytes() != sum {
		t.Errorf("Bytes = %d, entries hold %d", c.Bytes(), sum)
	}
}

func TestAppendKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		method, host, uri, e string
		want                 string
	}{
		{name: "plain", method: "GET", host: "example.com", uri: "/a.png?v=1", e: "gzip", want: "GET example.com /a.png?v=1\x00gzip"},
		{name: "host case folded", method: "HEAD", host: "Example.COM:8080", uri: "/", want: "HEAD example.com:8080 /\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AppendKey(nil, []byte(tt.method), []byte(tt.host), []byte(tt.uri), []byte(tt.e))
			if string(got) != tt.want {
				t.Errorf("AppendKey = %q, want %q", got, tt.want)
			}
		})
	}
	a := AppendKey(nil, []byte("GET"), []byte("h"), []byte("/x.js"), []byte("gzip"))
	b := AppendKey(nil, []byte("GET"), []byte("h"), []byte("/x.js"), []byte("br"))
	if string(a) == string(b) {
		t.Error("keys for different Accept-Encoding are equal")
	}
}

// TestConcurrentUse hammers one cache from several goroutines (run with
// -race) and checks the byte accounting at the end.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	cfg := Config{Capacity: 100, MaxBytes: 1 << 20, MaxEntryBytes: 64 << 10, DefaultTTL: time.Hour}
	clock := newFakeClock()
	c := newTestCache(t, cfg, clock)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := make([]byte, 0, 64)
			for i := range 3000 {
				k := fmt.Sprintf("w%d-%d", w, i%150)
				switch i % 4 {
				case 0:
					c.Set(k, NewEntry(200, hdr("Content-Type", "image/png"), []byte(strings.Repeat("x", i%5000)), time.Duration(1+i%10)*time.Second))
				case 3:
					c.Delete(k)
				default:
					key = append(key[:0], k...)
					if e, ok := c.GetBytes(key); ok && e.Status != 200 {
						t.Errorf("bad entry %+v", e)
					}
				}
				if i%500 == 0 {
					clock.advance(time.Second)
				}
			}
		}()
	}
	wg.Wait()
	c.store.CleanUp()
	var sum int64
	for k, e := range c.store.All() {
		sum += int64(len(k)) + e.Size()
	}
	if c.Bytes() != sum || c.Bytes() > cfg.MaxBytes {
		t.Errorf("Bytes = %d, entries hold %d, max %d", c.Bytes(), sum, cfg.MaxBytes)
	}
}

func BenchmarkGetHit(b *testing.B) {
	b.Run("wall clock", func(b *testing.B) { benchmarkGetHit(b, nil) })
	coarse := otter.NewCoarseClock(100 * time.Millisecond)
	b.Cleanup(coarse.Stop)
	b.Run("coarse clock", func(b *testing.B) { benchmarkGetHit(b, coarse) })
}

func benchmarkGetHit(b *testing.B, clock Clock) {
	c := newTestCache(b, DefaultConfig(), clock)
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = AppendKey(nil, []byte("GET"), []byte("example.com"), fmt.Appendf(nil, "/static/%d.png", i), []byte("gzip, br"))
		c.Set(string(keys[i]), NewEntry(200, hdr("Content-Type", "image/png", "Cache-Control", "max-age=3600"), make([]byte, 4096), time.Hour))
	}
	b.Run("Get", func(b *testing.B) {
		strKeys := make([]string, len(keys))
		for i := range keys {
			strKeys[i] = string(keys[i])
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, ok := c.Get(strKeys[i%len(strKeys)]); !ok {
					b.Error("miss")
					return
				}
				i++
			}
		})
	})
	b.Run("AppendKey+GetBytes", func(b *testing.B) {
		uris := make([][]byte, len(keys))
		for i := range uris {
			uris[i] = fmt.Appendf(nil, "/static/%d.png", i)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 128)
			i := 0
			for pb.Next() {
				buf = AppendKey(buf[:0], []byte("GET"), []byte("example.com"), uris[i%len(uris)], []byte("gzip, br"))
				if _, ok := c.GetBytes(buf); !ok {
					b.Error("miss")
					return
				}
				i++
			}
		})
	})
}

// TestWallClock: without a clock the cache runs on the system clock, with
// otter's background clean-up, stopped by Close (via t.Cleanup).
func TestWallClock(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, DefaultConfig(), nil)
	before := time.Now()
	c.Set("k", NewEntry(200, nil, []byte("x"), time.Hour))
	e, ok := c.Get("k")
	if !ok {
		t.Fatal("miss right after Set")
	}
	if e.StoredAt.Before(before) || e.StoredAt.After(time.Now()) {
		t.Errorf("StoredAt %v outside [%v, now]", e.StoredAt, before)
	}
	if age := e.Age(c.Now()); age < 0 || age > time.Minute {
		t.Errorf("Age = %s right after Set", age)
	}
}
