package bus

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/rustybalancer/rb/events"
)

// Defaults of the embedded server.
const (
	// DefaultStoreDir is where the embedded server keeps JetStream data.
	DefaultStoreDir = "./data/nats"
	// DefaultListen is the embedded server's client address.
	DefaultListen = "127.0.0.1:4222"
)

// Options says how to reach NATS, or how to run it in-process.
//
// The credentials (User/Password, Token or NKeySeedFile; at most one kind)
// are what the client presents; an embedded server started from the same
// Options requires exactly them, so one Options value describes both ends.
// The TLS fields apply to the client only: the embedded server listens
// without TLS, on loopback or a private network.
type Options struct {
	// URL of the NATS server(s), comma separated. Empty starts an embedded
	// JetStream server (see EmbeddedServer) owned by the Bus.
	URL string

	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// NKeySeedFile is a file holding a user nkey seed ("SU...").
	NKeySeedFile string

	// TLSCA is a PEM file of CAs to verify the server with.
	TLSCA string
	// TLSCert and TLSKey are the PEM client certificate and key (mutual TLS).
	TLSCert, TLSKey string

	// Name is the client connection name shown by the server (connz).
	Name string

	// StoreDir is the embedded server's JetStream directory (default DefaultStoreDir).
	StoreDir string
	// Listen is the embedded server's client host:port (default DefaultListen);
	// port -1 or 0 picks a free port (tests).
	Listen string
	// MonitorPort is the embedded server's HTTP monitoring port on the Listen
	// host; 0 turns monitoring off, -1 picks a free port.
	MonitorPort int

	// Streams are ensured by Connect (created, or updated when they differ).
	Streams []events.Stream
}

// authMode names the kind of credentials set, for messages; "" means none.
func (o Options) authMode() string {
	switch {
	case o.NKeySeedFile != "":
		return "nkey"
	case o.Token != "":
		return "token"
	case o.User != "":
		return "user " + strconv.Quote(o.User)
	}
	return ""
}

// validate reports every problem of the client side of o.
func (o Options) validate() error {
	var errs []error
	kinds := 0
	if o.User != "" || o.Password != "" {
		kinds++
		if o.User == "" {
			errs = append(errs, errors.New("nats password set without a user"))
		}
	}
	if o.Token != "" {
		kinds++
	}
	if o.NKeySeedFile != "" {
		kinds++
	}
	if kinds > 1 {
		errs = append(errs, errors.New("nats credentials: set only one of user/password, token or nkey seed file"))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		errs = append(errs, errors.New("nats TLS: client certificate and key must be set together"))
	}
	return errors.Join(errs...)
}

// listenAddr splits Listen (or its default) into host and a nats-server port,
// where -1 asks for a free port.
func (o Options) listenAddr() (string, int, error) {
	l := o.Listen
	if l == "" {
		l = DefaultListen
	}
	host, p, err := net.SplitHostPort(l)
	if err != nil {
		return "", 0, fmt.Errorf("nats listen address %q: want host:port: %w", l, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("nats listen address %q: port must be -1..65535", l)
	}
	if port == 0 {
		port = -1 // nats-server reads 0 as its default 4222; we mean "any free port"
	}
	return host, port, nil
}
