package bus

import "github.com/rustybalancer/rb/pkg/config"

// DefaultClientURL is where operator commands (rb status, rb replay, ...)
// look for NATS when neither their flag nor RB_NATS_URL names a server.
const DefaultClientURL = "nats://127.0.0.1:4222"

// ClientOptions are the options of a client connection from rb's NATS
// config: its credentials and TLS, and url, else the config's URL, else
// DefaultClientURL. They never start an embedded server.
func ClientOptions(n config.NATS, url, name string) Options {
	if url == "" {
		url = n.URL
	}
	if url == "" {
		url = DefaultClientURL
	}
	return Options{
		URL: url, User: n.User, Password: n.Password, Token: n.Token, NKeySeedFile: n.NKeySeedFile,
		TLSCA: n.TLSCA, TLSCert: n.TLSCert, TLSKey: n.TLSKey, Name: name,
	}
}
