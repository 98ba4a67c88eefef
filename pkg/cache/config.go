package cache

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Config bounds the cache and sets what it stores.
type Config struct {
	// Capacity is the maximum number of entries (CACHE_CAPACITY).
	Capacity int
	// MaxBytes bounds the memory held by entries (bodies, headers, keys and
	// a fixed overhead per entry).
	MaxBytes int64
	// MaxEntryBytes is the largest single entry stored; larger responses
	// pass through uncached.
	MaxEntryBytes int64
	// DefaultTTL is the lifetime of a response that passes the path filter
	// but carries no explicit freshness (no max-age, s-maxage or Expires).
	// Zero caches only responses with explicit freshness.
	DefaultTTL time.Duration
	// Extensions is the path filter: only GET/HEAD requests whose path ends
	// in one of these (case-insensitive, with the dot) are cached. An empty
	// list allows every path.
	Extensions []string
}

// DefaultConfig returns the prototype's behaviour, bounded: 10,000 entries,
// 128 MiB, 8 MiB per entry, 3600 s for static files without explicit
// freshness, and the static extensions .jpg .jpeg .png .gif .css .js.
func DefaultConfig() Config {
	return Config{
		Capacity:      10_000,
		MaxBytes:      128 << 20,
		MaxEntryBytes: 8 << 20,
		DefaultTTL:    time.Hour,
		Extensions:    []string{".jpg", ".jpeg", ".png", ".gif", ".css", ".js"},
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if c.Capacity < 1 {
		errs = append(errs, fmt.Errorf("CACHE_CAPACITY %d: must be at least 1", c.Capacity))
	}
	if c.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("cache max bytes %d: must be positive", c.MaxBytes))
	}
	if c.MaxEntryBytes < 1 || c.MaxEntryBytes > c.MaxBytes || c.MaxEntryBytes > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("cache max entry bytes %d: must be in [1, min(max bytes %d, 4 GiB))", c.MaxEntryBytes, c.MaxBytes))
	}
	if c.Capacity >= 1 && c.MaxBytes/int64(c.Capacity) > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("cache max bytes %d: more than 4 GiB per entry of CACHE_CAPACITY %d", c.MaxBytes, c.Capacity))
	}
	if c.DefaultTTL < 0 {
		errs = append(errs, fmt.Errorf("cache default TTL %s: must not be negative", c.DefaultTTL))
	}
	for _, e := range c.Extensions {
		if !strings.HasPrefix(e, ".") || len(e) < 2 || strings.ContainsAny(e, "/?# ") {
			errs = append(errs, fmt.Errorf("cache extension %q: must look like .ext", e))
		}
	}
	return errors.Join(errs...)
}

// PathAllowed reports whether the path filter lets method and path (without
// the query) be cached: a cheap test the proxy can make before it gathers
// anything else.
func (c Config) PathAllowed(method, path []byte) bool {
	if string(method) != "GET" && string(method) != "HEAD" {
		return false
	}
	if len(c.Extensions) == 0 {
		return true
	}
	for _, ext := range c.Extensions {
		if len(path) >= len(ext) && equalFold(path[len(path)-len(ext):], ext) {
			return true
		}
	}
	return false
}

// equalFold compares b with the ASCII string s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
