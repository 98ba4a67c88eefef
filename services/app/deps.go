package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/admin"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
)

// Deps are the dependencies shared by the targets of one process. Clients are
// created on first use, so a process connects only to what its targets need.
type Deps struct {
	Config  *config.Config
	Logger  *slog.Logger
	Admin   *admin.Server
	Version string

	mu      sync.Mutex
	busMu   sync.Mutex
	natsURL string // the in-process embedded server, when the nats target runs
	bus     *bus.Bus
	store   *store.Store
	closers []func()
}

// onClose registers f to run when the process stops, after every service has
// returned; closers run in reverse order of registration.
func (d *Deps) onClose(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closers = append(d.closers, f)
}

func (d *Deps) close() {
	d.mu.Lock()
	cl := d.closers
	d.closers = nil
	d.mu.Unlock()
	for i := len(cl) - 1; i >= 0; i-- {
		cl[i]()
	}
}

// BusOptions are the NATS options from the config; a URL of an in-process
// nats target wins over starting another embedded server.
func (d *Deps) BusOptions() bus.Options {
	c := d.Config.NATS
	opts := bus.Options{
		URL: c.URL, User: c.User, Password: c.Password, Token: c.Token, NKeySeedFile: c.NKeySeedFile,
		TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey,
		Name: "rb", StoreDir: c.StoreDir, Listen: c.Listen, MonitorPort: c.MonitorPort,
		Streams: events.Streams(d.Config.StreamLimits()),
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if opts.URL == "" && d.natsURL != "" {
		opts.URL = d.natsURL
	}
	return opts
}

func (d *Deps) setNATSURL(u string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.natsURL = u
}

// Bus returns the process's NATS connection, connecting on first use. While
// NATS cannot be reached at start (compose starts everything at once) it
// retries with backoff, logging once per step, until ctx is done; once
// connected the client reconnects by itself forever.
func (d *Deps) Bus(ctx context.Context) (*bus.Bus, error) {
	opts := d.BusOptions()
	// busMu serialises connecting; mu is not held while retrying, so other
	// targets can use the store meanwhile.
	d.busMu.Lock()
	defer d.busMu.Unlock()
	d.mu.Lock()
	existing := d.bus
	d.mu.Unlock()
	if existing != nil {
		return existing, nil
	}
	logger := d.Logger.With("component", "bus")
	delay := 250 * time.Millisecond
	var b *bus.Bus
	for {
		var err error
		b, err = bus.Connect(ctx, opts, logger)
		if err == nil {
			break
		}
		if opts.URL == "" || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to NATS: %w", err)
		}
		logger.Warn("NATS not reachable yet; retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS: %w", ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bus = b
	d.Admin.AddHealth("nats", b.Health)
	d.closers = append(d.closers, func() { _ = b.Close() })
	return b, nil
}

// Store returns the process's Redis store, creating it on first use.
func (d *Deps) Store() (*store.Store, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.store != nil {
		return d.store, nil
	}
	s, err := store.New(store.Options{URL: d.Config.RedisURL()}, d.Logger.With("component", "store"))
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	d.store = s
	d.Admin.AddHealth("redis", s.Health)
	d.closers = append(d.closers, func() { _ = s.Close() })
	return s, nil
}

func (d *Deps) storeIfCreated() *store.Store {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.store
}
