// Package bus is RustyBalancer's access to NATS JetStream: connecting (or
// running an embedded server), ensuring the streams of events/, publishing
// with de-duplication, durable consumers with bounded redelivery and a dead
// letter queue, and ordered watchers.
//
// Connections reconnect forever; a disconnection and the recovery are
// logged once each, and Health says since when NATS has been unreachable.
// Consumers survive the server going away and coming back.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors callers branch on.
var (
	// ErrUnavailable is wrapped by Health while NATS cannot be reached.
	ErrUnavailable = errors.New("nats unavailable")
	// ErrClosed is returned by calls on a closed Bus.
	ErrClosed = errors.New("bus closed")
)

// Connection tuning: a dead server is noticed within PingInterval × MaxPingsOutstanding.
const (
	pingInterval   = 10 * time.Second
	maxPingsOut    = 2
	connectTimeout = 5 * time.Second
	flushOnClose   = time.Second
)

// Bus is a NATS connection with JetStream. It is safe for concurrent use.
type Bus struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	srv    *Server // owned embedded server, nil when connected to a URL
	url    string
	logger *slog.Logger

	health    health
	stats     counters
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
}

// Connect connects to opts.URL, or, when it is empty, starts an embedded
// server (EmbeddedServer) that the Bus owns and shuts down on Close. The
// connection reconnects forever with backoff. Connect then ensures
// opts.Streams. A first connection that fails (wrong address, rejected
// credentials) is an error: Connect does not wait for a server to appear.
func Connect(ctx context.Context, opts Options, logger *slog.Logger) (*Bus, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	b := &Bus{url: opts.URL, logger: logger, closed: make(chan struct{})}
	nopts, err := b.natsOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	if opts.URL == "" {
		srv, err := EmbeddedServer(ctx, opts, logger)
		if err != nil {
			return nil, fmt.Errorf("connect to nats: %w", err)
		}
		b.srv, b.url = srv, srv.ClientURL()
		nopts = append(nopts, nats.InProcessServer(srv.inProcess()))
	}

	nc, err := nats.Connect(b.url, nopts...)
	if err != nil {
		b.shutdownServer()
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			who := opts.authMode()
			if who == "" {
				who = "no credentials"
			}
			return nil, fmt.Errorf("connect to nats at %s with %s: credentials rejected (check the user/password, token or nkey): %w", b.url, who, err)
		}
		return nil, fmt.Errorf("connect to nats at %s: %w", b.url, err)
	}
	b.nc = nc
	b.health.up()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to nats at %s: jetstream: %w", b.url, err)
	}
	b.js = js
	if err := b.EnsureStreams(ctx, opts.Streams); err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to nats at %s: %w", b.url, err)
	}
	logger.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "embedded", b.srv != nil)
	return b, nil
}

// natsOptions builds the client options: credentials, TLS, and reconnecting
// forever with logs and health kept up to date.
func (b *Bus) natsOptions(opts Options) ([]nats.Option, error) {
	name := opts.Name
	if name == "" {
		name = "rb"
	}
	nopts := []nats.Option{
		nats.Name(name),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(func(attempt int) time.Duration {
			return jittered(backoff(reconnectBase, reconnectMax, attempt), rand.Float64())
		}),
		// A server that rejects us may be fixed while we wait: keep trying.
		nats.IgnoreAuthErrorAbort(),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if b.isClosed() {
				return // our own Close
			}
			if err == nil {
				err = errors.New("connection lost")
			}
			b.stats.disconnects.Add(1)
			b.health.down(time.Now(), err)
			b.logger.Warn("nats disconnected, reconnecting", "url", b.url, "err", err)
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			b.health.down(time.Now(), err)
			b.logger.Debug("nats reconnect attempt failed", "url", b.url, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			since := b.health.up()
			b.stats.reconnects.Add(1)
			b.logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted(), "down_for", time.Since(since).Round(time.Millisecond))
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			b.health.close()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.logger.Warn("nats asynchronous error", "subject", subj, "err", err)
		}),
	}
	switch {
	case opts.Token != "":
		nopts = append(nopts, nats.Token(opts.Token))
	case opts.User != "":
		nopts = append(nopts, nats.UserInfo(opts.User, opts.Password))
	case opts.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed %s: %w", opts.NKeySeedFile, err)
		}
		nopts = append(nopts, o)
	}
	if opts.TLSCA != "" {
		nopts = append(nopts, nats.RootCAs(opts.TLSCA))
	}
	if opts.TLSCert != "" {
		nopts = append(nopts, nats.ClientCert(opts.TLSCert, opts.TLSKey))
	}
	return nopts, nil
}

// Conn is the underlying connection, for plain NATS use.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the JetStream context of the connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Server is the embedded server the Bus owns, or nil when it connected to a URL.
func (b *Bus) Server() *Server { return b.srv }

// Health returns nil while connected. Otherwise it returns an error wrapping
// ErrUnavailable (or ErrClosed) that says since when NATS has been
// unreachable and the last error seen. It does no I/O.
func (b *Bus) Health() error {
	if b.nc.IsConnected() {
		return nil
	}
	return b.health.err(b.url, b.nc.IsClosed(), time.Now(), b.nc.LastError())
}

// Close closes the connection (pending acknowledgements are flushed first)
// and shuts down the owned embedded server, if any. Consume and Watch calls
// still running return ErrClosed. It is safe to call more than once.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		if b.nc != nil {
			if b.nc.IsConnected() {
				_ = b.nc.FlushTimeout(flushOnClose) // best effort: the close happens anyway
			}
			b.nc.Close()
		}
		b.shutdownServer()
	})
	return nil
}

// isClosed reports whether Close was called or the connection is closed for good.
func (b *Bus) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return b.nc != nil && b.nc.IsClosed()
	}
}

// untilClosed returns ctx, cancelled also when the Bus is closed.
func (b *Bus) untilClosed(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (b *Bus) shutdownServer() {
	if b.srv != nil {
		b.srv.Shutdown()
	}
}

// Publish stores data on subject through JetStream and waits for the stream's
// acknowledgement. A non-empty msgID is sent as Nats-Msg-Id: the stream drops
// a second message with the same id within its duplicate window, so a
// publish may be retried safely. The error names the subject.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := b.js.Publish(ctx, subject, data, opts...); err != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	b.stats.published.Add(1)
	return nil
}
