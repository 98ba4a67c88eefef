package cache

import (
	"bytes"
	"testing"
	"time"
)

func TestNewEntryFiltersHeaders(t *testing.T) {
	t.Parallel()
	in := hdr(
		"Content-Type", "image/png",
		"Connection", "keep-alive, X-Hop",
		"Keep-Alive", "timeout=5",
		"X-Hop", "dropped because Connection names it",
		"Transfer-Encoding", "chunked",
		"Set-Cookie", "a=1",
		"set-cookie", "b=2",
		"Age", "7",
		"TE", "trailers",
		"Trailer", "X-Sum",
		"Upgrade", "h2c",
		"Proxy-Authenticate", "Basic",
		"Proxy-Authorization", "Basic x",
		"Proxy-Connection", "keep-alive",
		"Cache-Control", "max-age=60",
		"ETag", `"abc"`,
		"X-Multi", "1",
		"X-Multi", "2",
	)
	body := []byte("PNG...")
	e := NewEntry(200, in, body, time.Minute)
	want := hdr("Content-Type", "image/png", "Cache-Control", "max-age=60", "ETag", `"abc"`, "X-Multi", "1", "X-Multi", "2")
	if len(e.Header) != len(want) {
		t.Fatalf("header = %q, want %q", e.Header, want)
	}
	for i := range want {
		if !bytes.Equal(e.Header[i].Key, want[i].Key) || !bytes.Equal(e.Header[i].Value, want[i].Value) {
			t.Errorf("line %d = %s: %s, want %s: %s", i, e.Header[i].Key, e.Header[i].Value, want[i].Key, want[i].Value)
		}
	}
	if e.Status != 200 || e.TTL != time.Minute || e.InitialAge != 7*time.Second {
		t.Errorf("entry = status %d ttl %s age %s, want 200 1m0s 7s", e.Status, e.TTL, e.InitialAge)
	}
	// The entry owns copies: the source buffers may be reused.
	body[0] = 'X'
	in[0].Value[0] = 'X'
	if string(e.Body) != "PNG..." || string(e.Header[0].Value) != "image/png" {
		t.Errorf("entry shares memory with its source: body %q, first value %q", e.Body, e.Header[0].Value)
	}
	// Appending to a line must not overwrite the next one.
	_ = append(e.Header[0].Value, "zzzz"...)
	if string(e.Header[1].Key) != "Cache-Control" {
		t.Errorf("lines share capacity: second key is now %q", e.Header[1].Key)
	}
}

func TestNewEntryWithoutHeader(t *testing.T) {
	t.Parallel()
	e := NewEntry(204, nil, nil, time.Second)
	if e.Status != 204 || len(e.Header) != 0 || len(e.Body) != 0 {
		t.Errorf("entry = %+v", e)
	}
}

func TestEntryAge(t *testing.T) {
	t.Parallel()
	stored := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := &Entry{StoredAt: stored, InitialAge: 5 * time.Second}
	tests := []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{name: "at storage", now: stored, want: 5 * time.Second},
		{name: "later", now: stored.Add(time.Minute), want: 65 * time.Second},
		{name: "clock behind", now: stored.Add(-time.Second), want: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := e.Age(tt.now); got != tt.want {
				t.Errorf("Age = %s, want %s", got, tt.want)
			}
		})
	}
}
