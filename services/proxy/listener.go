package proxy

import (
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Bounds of a lingering close.
const (
	lingerTime     = time.Second
	maxLingerBytes = 256 << 20
)

// lingerListener wraps the client listener so that a connection closed after
// an error answer (413, 431, 400) lingers: closing a socket with unread
// input makes the kernel send a reset, which can destroy the answer before
// the client reads it, typically while the client is still sending the body
// or header that was refused. A lingering close shuts the write side, then
// reads and drops what the client still sends, for a bounded time.
type lingerListener struct {
	net.Listener
}

func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn is a client connection that may linger on Close.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

// markLinger asks for a lingering close of c, a connection accepted by a
// lingerListener (other connections are left alone).
func markLinger(c net.Conn) {
	if lc, ok := c.(*lingerConn); ok {
		lc.linger.Store(true)
	}
}

func (c *lingerConn) Close() error {
	if c.linger.Load() {
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		if c.Conn.SetReadDeadline(time.Now().Add(lingerTime)) == nil {
			_, _ = io.CopyN(io.Discard, c.Conn, maxLingerBytes)
		}
	}
	return c.Conn.Close()
}

// CloseWrite shuts the write side when the connection has one (TCP), for
// tunnels that end in one direction first.
func (c *lingerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
