package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// startTimeout bounds how long EmbeddedServer waits for the server to accept clients.
const startTimeout = 30 * time.Second

// Server is a NATS server with JetStream running in this process.
type Server struct {
	ns     *server.Server
	opts   Options // as started, Listen resolved to the bound address
	logger *slog.Logger

	shutdown sync.Once
}

// EmbeddedServer starts a NATS server with JetStream in this process, storing
// streams in opts.StoreDir and listening on opts.Listen, and returns once it
// accepts clients. It requires the credentials set in opts (see Options).
// The server serves outside clients too (`nats stream ls`); it is what the
// `nats` target of rb runs. Call Shutdown to stop it.
func EmbeddedServer(ctx context.Context, opts Options, logger *slog.Logger) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	host, port, err := opts.listenAddr()
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	if opts.StoreDir == "" {
		opts.StoreDir = DefaultStoreDir
	}
	sopts := &server.Options{
		ServerName: "rb",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
	}
	if opts.MonitorPort != 0 {
		sopts.HTTPHost = host
		sopts.HTTPPort = opts.MonitorPort
	}
	switch {
	case opts.Token != "":
		sopts.Authorization = opts.Token
	case opts.User != "":
		sopts.Username, sopts.Password = opts.User, opts.Password
	case opts.NKeySeedFile != "":
		pub, err := nkeyPublic(opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("start embedded nats: %w", err)
		}
		sopts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	}

	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats on %s:%d: %w", host, port, err)
	}
	sl := &serverLogger{l: logger.With("component", "nats-server")}
	ns.SetLoggerV2(sl, logger.Enabled(ctx, slog.LevelDebug), false, false)
	ns.Start()

	if err := waitReady(ctx, ns, sl); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats on %s:%d (store %s): %w", host, port, opts.StoreDir, err)
	}
	opts.Listen = ns.Addr().String()
	if opts.MonitorPort != 0 {
		if a := ns.MonitorAddr(); a != nil {
			opts.MonitorPort = a.Port
		}
	}
	s := &Server{ns: ns, opts: opts, logger: logger}
	logger.Info("embedded nats started", "url", ns.ClientURL(), "store", opts.StoreDir)
	return s, nil
}

// waitReady waits until ns accepts clients with JetStream on, or gives the
// reason it never will (nats-server reports those through Fatalf and goes on).
func waitReady(ctx context.Context, ns *server.Server, sl *serverLogger) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if msg := sl.fatal.Load(); msg != nil {
			return errors.New(*msg)
		}
		if ns.ReadyForConnections(20 * time.Millisecond) {
			if !ns.JetStreamEnabled() {
				if msg := sl.fatal.Load(); msg != nil {
					return errors.New(*msg)
				}
				return errors.New("jetstream did not start")
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", startTimeout)
		}
	}
}

// nkeyPublic reads a user seed file and returns its public key.
func nkeyPublic(seedFile string) (string, error) {
	raw, err := os.ReadFile(seedFile)
	if err != nil {
		return "", fmt.Errorf("read nkey seed: %w", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(raw))))
	if err != nil {
		return "", fmt.Errorf("parse nkey seed %s: %w", seedFile, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("nkey seed %s: %w", seedFile, err)
	}
	return pub, nil
}

// ClientURL is the URL clients connect to (nats://host:port).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Addr is the host:port the server listens on for clients.
func (s *Server) Addr() string { return s.opts.Listen }

// MonitorURL is the HTTP monitoring base URL, or "" when monitoring is off.
func (s *Server) MonitorURL() string {
	if s.opts.MonitorPort == 0 {
		return ""
	}
	host, _, _ := net.SplitHostPort(s.opts.Listen)
	return "http://" + net.JoinHostPort(host, strconv.Itoa(s.opts.MonitorPort))
}

// Options returns the options the server runs with, Listen and MonitorPort
// resolved to the bound ports, so that a server started from them again
// reuses the same address and store (a restart).
func (s *Server) Options() Options { return s.opts }

// Shutdown stops the server and waits until it has stopped. JetStream data
// stays in StoreDir. It is safe to call more than once.
func (s *Server) Shutdown() {
	s.shutdown.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.logger.Info("embedded nats stopped", "addr", s.opts.Listen)
	})
}

// inProcess lets a client in this process connect without TCP.
func (s *Server) inProcess() *server.Server { return s.ns }

// serverLogger routes nats-server logs to slog. nats-server reports fatal
// problems through Fatalf and goes on, expecting the logger to exit; this one
// keeps the first such message so EmbeddedServer can return it as an error.
type serverLogger struct {
	l     *slog.Logger
	fatal atomic.Pointer[string]
}

func (s *serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }

func (s *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.fatal.CompareAndSwap(nil, &msg)
	s.l.Error(msg)
}
