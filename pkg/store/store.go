// Package store keeps RustyBalancer's shared state in Redis: the runtime
// config of each app, snapshots (such as the last queue, read by a proxy that
// starts while NATS is down), the scaler's container records and desired
// count, and leases that keep one active scaler per app.
//
// Keys (with the default prefix "rb:"):
//
//	rb:config:<app>              hash: version, updated_at, values (JSON object VARIABLE -> string)
//	rb:snapshot:<kind>:<app>     hash: version, at, data
//	rb:ctr:<app>:<name>          hash: one container record
//	rb:ctrs:<app>                set: names of the app's container records (the index)
//	rb:desired:<app>             string: desired container count
//	rb:lease:<name>              string: holder, with a TTL
//
// The store stays useful while Redis is down: reads of config and snapshots
// return the last value this process saw, with an error wrapping ErrStale;
// everything else fails fast with an error wrapping ErrUnavailable. Run
// watches Redis and Health reports what it saw, for readiness probes.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound means the key asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a compare-and-swap lost: the stored version is not the
	// one expected, or a lease is held by someone else.
	ErrConflict = errors.New("conflict")
	// ErrStale comes with a value that is the last one this process read or
	// wrote, returned because Redis could not be reached.
	ErrStale = errors.New("stale value, redis unavailable")
	// ErrUnavailable means Redis could not be reached and no value is returned.
	ErrUnavailable = errors.New("redis unavailable")
)

// Defaults applied by New to zero Options fields.
const (
	DefaultPrefix        = "rb:"
	DefaultDialTimeout   = 2 * time.Second
	DefaultOpTimeout     = 2 * time.Second
	DefaultMinBackoff    = 250 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultCheckInterval = time.Second
)

// AnyVersion as SetConfig's expectVersion overwrites whatever is stored.
const AnyVersion int64 = -1

// urlVar names the setting in messages, so an operator knows what to fix.
const urlVar = "RB_REDIS_URL"

// Options configures a Store. Zero durations take the defaults above.
type Options struct {
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS.
	URL string
	// Prefix is put before every key; tests use it to share a server.
	Prefix string
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
	// OpTimeout bounds every operation, including the health check's PING.
	OpTimeout time.Duration
	// MinBackoff and MaxBackoff bound the health monitor's retry delay while
	// Redis is down; the delay doubles after each failed check.
	MinBackoff, MaxBackoff time.Duration
	// CheckInterval is the time between health checks while Redis is up.
	CheckInterval time.Duration
	// Now is the clock used for timestamps (config updates, snapshots, down
	// since); nil means time.Now.
	Now func() time.Time
}

// Store is a Redis-backed store. It is safe for concurrent use.
type Store struct {
	rdb    *redis.Client
	opts   Options
	addr   string // host:port, never the password
	keys   keys
	logger *slog.Logger

	health health

	mu        sync.Mutex
	configs   map[string]AppConfig // last known, by app
	snapshots map[snapshotKey]Snapshot
}

// New checks opts and returns a Store. It does no I/O: a Redis that is down
// at start is reported by Run and Health, and by each operation.
func New(opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	ropts, err := parseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	ropts.DialTimeout = opts.DialTimeout
	ropts.ReadTimeout = opts.OpTimeout
	ropts.WriteTimeout = opts.OpTimeout
	ropts.ContextTimeoutEnabled = true
	// One dial per attempt: Run owns the retrying, with its own backoff and
	// logs, so a down Redis costs each operation one refused connection.
	ropts.DialerRetries = 1
	ropts.MaxRetries = 1
	// CLIENT SETINFO and MAINT_NOTIFICATIONS are not needed and older servers
	// reject them.
	ropts.DisableIdentity = true
	ropts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	return &Store{
		rdb:       redis.NewClient(ropts),
		opts:      opts,
		addr:      ropts.Addr,
		keys:      keys{prefix: opts.Prefix},
		logger:    logger,
		configs:   make(map[string]AppConfig),
		snapshots: make(map[snapshotKey]Snapshot),
	}, nil
}

// Close closes the connections to Redis. Operations after Close fail.
func (s *Store) Close() error {
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("close redis client for %s: %w", s.addr, err)
	}
	return nil
}

func withDefaults(o Options) (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var errs []error
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &o.DialTimeout, DefaultDialTimeout},
		{"OpTimeout", &o.OpTimeout, DefaultOpTimeout},
		{"MinBackoff", &o.MinBackoff, DefaultMinBackoff},
		{"MaxBackoff", &o.MaxBackoff, DefaultMaxBackoff},
		{"CheckInterval", &o.CheckInterval, DefaultCheckInterval},
	} {
		switch {
		case *d.v < 0:
			errs = append(errs, fmt.Errorf("redis store option %s is %s: must not be negative", d.name, *d.v))
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if len(errs) == 0 && o.MinBackoff > o.MaxBackoff {
		errs = append(errs, fmt.Errorf("redis store option MinBackoff (%s) is above MaxBackoff (%s)", o.MinBackoff, o.MaxBackoff))
	}
	return o, errors.Join(errs...)
}

// parseURL checks the URL itself so that messages name the setting and never
// echo a password, then lets go-redis read it (including its query options).
func parseURL(raw string) (*redis.Options, error) {
	const want = "want redis://[user:pass@]host:port/db, or rediss:// for TLS"
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("%s is empty: %s", urlVar, want)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("%s is not a valid URL (%v): %s", urlVar, err, want)
	}
	shown := u.Redacted()
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("%s %s: scheme %q is not supported: %s", urlVar, shown, u.Scheme, want)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("%s %s: no host: %s", urlVar, shown, want)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s %s: empty host name: %s", urlVar, shown, want)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s %s: port %q is not a number in 1..65535", urlVar, shown, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("%s %s: empty port after ':'", urlVar, shown)
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return nil, fmt.Errorf("%s %s: database %q is not a number >= 0 (the path is the database index)", urlVar, shown, db)
		}
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", urlVar, shown, err)
	}
	return opts, nil
}

// keys builds every key the store uses.
type keys struct{ prefix string }

func (k keys) config(app string) string         { return k.prefix + "config:" + app }
func (k keys) snapshot(kind, app string) string { return k.prefix + "snapshot:" + kind + ":" + app }
func (k keys) container(app, name string) string {
	return k.prefix + "ctr:" + app + ":" + name
}
func (k keys) containerIndex(app string) string { return k.prefix + "ctrs:" + app }
func (k keys) desired(app string) string        { return k.prefix + "desired:" + app }
func (k keys) lease(name string) string         { return k.prefix + "lease:" + name }

// checkName rejects names that would make keys ambiguous: an app "a:b" with
// container "c" and an app "a" with container "b:c" must not share a key.
func checkName(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.ContainsAny(v, ": \t\r\n") {
		return fmt.Errorf("%s %q contains ':' or white space", what, v)
	}
	return nil
}

// opCtx bounds one operation by OpTimeout.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.OpTimeout)
}

// unavailable tells whether err means Redis could not serve the request (as
// opposed to a reply Redis chose to give, or the caller giving up).
func unavailable(ctx context.Context, err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, redis.ErrClosed):
		return false
	case ctx.Err() != nil:
		return false // the caller cancelled; not Redis's fault
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// Replies that mean "not now" rather than "no".
		for _, p := range []string{"LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "READONLY"} {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	return true // network errors, timeouts, pool exhaustion
}

// result records the outcome of an operation for Health and turns a failure
// into an error that wraps ErrUnavailable when Redis was unreachable. ctx is
// the caller's context, not the one bounded by OpTimeout.
func (s *Store) result(ctx context.Context, err error) error {
	if unavailable(ctx, err) {
		s.health.down(s.opts.Now(), err)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var rerr redis.Error
	if err == nil || errors.Is(err, redis.Nil) || errors.As(err, &rerr) {
		s.health.up() // Redis answered
	}
	return err
}

// runInt records the outcome of a script that returns an integer and
// converts its result; a reply of another type is an error of its own, not a
// sign that Redis is unreachable.
func (s *Store) runInt(ctx context.Context, cmd *redis.Cmd) (int64, error) {
	if err := s.result(ctx, cmd.Err()); err != nil {
		return 0, err
	}
	n, err := cmd.Int64()
	if err != nil {
		return 0, fmt.Errorf("script returned %v: %w", cmd.Val(), err)
	}
	return n, nil
}
