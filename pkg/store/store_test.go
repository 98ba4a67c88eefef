package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

// waitFor bounds every wait for a condition in these tests.
const waitFor = 10 * time.Second

// newStore returns a Store on srv with short timeouts and backoff, logging
// JSON into the returned buffer. mod may adjust the options.
func newStore(tb testing.TB, srv *redistest.Server, mod func(*Options)) (*Store, *logBuffer) {
	tb.Helper()
	opts := Options{
		URL:           srv.URL(),
		DialTimeout:   time.Second,
		OpTimeout:     2 * time.Second,
		MinBackoff:    5 * time.Millisecond,
		MaxBackoff:    40 * time.Millisecond,
		CheckInterval: 10 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	logs := &logBuffer{}
	s, err := New(opts, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, logs
}

// runStore runs s.Run until the test ends and checks that it returns nil.
func runStore(tb testing.TB, s *Store) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(waitFor):
			tb.Errorf("Run did not return within %s of cancel", waitFor)
		}
	})
}

// eventually polls cond until it holds or waitFor passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", waitFor, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fixedClock returns a clock that reads t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// logBuffer collects log output written from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON log records written so far.
func (b *logBuffer) records(tb testing.TB) []map[string]any {
	tb.Helper()
	b.mu.Lock()
	data := bytes.Clone(b.buf.Bytes())
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tb.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// withMsg returns the records whose msg is msg.
func withMsg(recs []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error
	}{
		{name: "empty URL", opts: Options{}, want: []string{"RB_REDIS_URL is empty", "redis://"}},
		{name: "blank URL", opts: Options{URL: "  "}, want: []string{"RB_REDIS_URL is empty"}},
		{name: "host:port without scheme", opts: Options{URL: "localhost:6379"}, want: []string{"RB_REDIS_URL", `scheme "localhost" is not supported`}},
		{name: "http scheme", opts: Options{URL: "http://redis:6379"}, want: []string{"RB_REDIS_URL", `scheme "http"`}},
		{name: "unix scheme", opts: Options{URL: "unix:///tmp/redis.sock"}, want: []string{`scheme "unix"`}},
		{name: "no host", opts: Options{URL: "redis://"}, want: []string{"RB_REDIS_URL", "no host"}},
		{name: "no host name", opts: Options{URL: "redis://:6379/0"}, want: []string{"empty host name"}},
		{name: "port not a number", opts: Options{URL: "redis://redis:abc/0"}, want: []string{"RB_REDIS_URL is not a valid URL", "invalid port"}},
		{name: "port zero", opts: Options{URL: "redis://redis:0/0"}, want: []string{`port "0" is not a number in 1..65535`}},
		{name: "port too large", opts: Options{URL: "redis://u:hunter2@redis:70000/0"}, want: []string{`port "70000"`, "redis://u:xxxxx@redis:70000/0"}},
		{name: "empty port", opts: Options{URL: "redis://redis:/0"}, want: []string{"empty port"}},
		{name: "database not a number", opts: Options{URL: "redis://redis:6379/main"}, want: []string{`database "main" is not a number`}},
		{name: "database negative", opts: Options{URL: "redis://redis:6379/-1"}, want: []string{`database "-1"`}},
		{name: "bad query option", opts: Options{URL: "redis://redis:6379/0?dial_timeout=soon"}, want: []string{"RB_REDIS_URL", "dial_timeout"}},
		{name: "control character", opts: Options{URL: "redis://u:hunter2@redis:6379/\x7f"}, want: []string{"RB_REDIS_URL is not a valid URL"}},
		{name: "negative op timeout", opts: Options{URL: "redis://redis", OpTimeout: -time.Second}, want: []string{"OpTimeout is -1s: must not be negative"}},
		{name: "backoff inverted", opts: Options{URL: "redis://redis", MinBackoff: time.Minute, MaxBackoff: time.Second}, want: []string{"MinBackoff (1m0s) is above MaxBackoff (1s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.opts, nil)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v) succeeded, want an error", tt.opts)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestNewAcceptsURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		wantAddr string
		wantDB   int
		wantTLS  bool
		wantUser string
	}{
		{name: "plain", url: "redis://127.0.0.1:6379/0", wantAddr: "127.0.0.1:6379"},
		{name: "default port", url: "redis://redis", wantAddr: "redis:6379"},
		{name: "database", url: "redis://redis:6380/3", wantAddr: "redis:6380", wantDB: 3},
		{name: "tls with user", url: "rediss://app:pw@cache.example:6380/1", wantAddr: "cache.example:6380", wantDB: 1, wantTLS: true, wantUser: "app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(Options{URL: tt.url}, nil)
			if err != nil {
				t.Fatalf("New(%q): %v", tt.url, err)
			}
			defer s.Close()
			o := s.rdb.Options()
			if o.Addr != tt.wantAddr || o.DB != tt.wantDB || (o.TLSConfig != nil) != tt.wantTLS || o.Username != tt.wantUser {
				t.Fatalf("New(%q) gave addr %q db %d tls %v user %q; want %q %d %v %q",
					tt.url, o.Addr, o.DB, o.TLSConfig != nil, o.Username, tt.wantAddr, tt.wantDB, tt.wantTLS, tt.wantUser)
			}
			// New does no I/O, so nothing is known about Redis yet.
			if err := s.Health(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not checked yet") {
				t.Fatalf("Health() before any check = %v, want ErrUnavailable saying not checked yet", err)
			}
		})
	}
}

func TestInvalidNames(t *testing.T) {
	t.Parallel()
	s, err := New(Options{URL: "redis://127.0.0.1:1/0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{name: "config app with colon", call: func() error { _, err := s.GetConfig(ctx, "a:b"); return err }, want: `get config for app "a:b": app "a:b" contains ':'`},
		{name: "config empty app", call: func() error { _, err := s.SetConfig(ctx, "", nil, 0); return err }, want: "app is empty"},
		{name: "snapshot kind with space", call: func() error { _, err := s.PutSnapshot(ctx, "q x", "web", 1, nil); return err }, want: `snapshot kind "q x"`},
		{name: "container without name", call: func() error { return s.PutContainer(ctx, ContainerRecord{App: "web"}) }, want: "container name is empty"},
		{name: "desired negative", call: func() error { return s.SetDesired(ctx, "web", -1) }, want: "-1 is negative"},
		{name: "lease without holder", call: func() error { _, err := s.AcquireLease(ctx, "scaler:web", "", time.Second); return err }, want: "lease holder is empty"},
		{name: "lease ttl too short", call: func() error { _, err := s.AcquireLease(ctx, "scaler:web", "a", time.Microsecond); return err }, want: "below 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Fatalf("invalid input reached Redis: %v", err)
			}
		})
	}
}
