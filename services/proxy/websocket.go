package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// isWebSocket reports a WebSocket upgrade request. Other upgrades are
// forwarded as plain requests without their Upgrade header.
func isWebSocket(h *fasthttp.RequestHeader) bool {
	return h.ConnectionUpgrade() && equalFold(h.Peek(fasthttp.HeaderUpgrade), "websocket")
}

// tunnel proxies a WebSocket upgrade: it dials a worker (retrying once on
// another when the dial fails), sends the handshake, and on 101 hijacks the
// client connection and copies bytes both ways until either side closes.
// Any other answer is forwarded as a normal response. The worker counts the
// tunnel in flight until it closes, so a SUNDOWN worker with open tunnels
// is reported busy.
func (s *Service) tunnel(ctx *fasthttp.RequestCtx, a *appState, start time.Time) {
	defer s.account(a, ctx, start)
	r := a.route.Load()
	if r == nil {
		s.noBackend(ctx, a)
		return
	}
	pk := a.picker(r)
	b, err := pk.Pick(s.rnd, start.UnixNano())
	if err != nil {
		s.noBackend(ctx, a)
		return
	}
	stripRequest(&ctx.Request.Header, true)
	s.addForwarded(ctx)
	deadline := start.Add(s.cfg.Timeout)
	var conn net.Conn
	for retried := false; ; retried = true {
		b.Stats().Begin()
		conn, err = s.dial(b.Address, min(time.Until(deadline), maxConnectTimeout))
		if err == nil {
			break
		}
		now := s.now().UnixNano()
		b.Stats().Done(0, 0, true, now)
		s.m.backendErrors.connect.Inc()
		next, perr := pk.PickExcept(s.rnd, now, b)
		if retried || perr != nil {
			s.answer(ctx, a, fasthttp.StatusBadGateway, "the worker could not be reached")
			return
		}
		s.m.retries.Inc()
		b = next
	}
	st := b.Stats()
	t0 := s.now()
	fail := func(status int, msg string) {
		_ = conn.Close()
		st.Done(s.now().Sub(t0), status, false, s.now().UnixNano())
		s.answer(ctx, a, status, msg)
	}
	_ = conn.SetDeadline(deadline)
	req := &ctx.Request
	req.UseHostHeader = true
	if len(req.Header.Host()) == 0 {
		req.Header.SetHost(b.Address)
	}
	req.URI().DisablePathNormalizing = true
	bw := bufio.NewWriter(conn)
	if err := req.Write(bw); err != nil || bw.Flush() != nil {
		fail(fasthttp.StatusBadGateway, "the worker could not be reached")
		return
	}
	br := bufio.NewReader(conn)
	resp := &ctx.Response
	resp.Reset()
	if err := resp.Header.Read(br); err != nil {
		if isTimeout(err) {
			fail(fasthttp.StatusGatewayTimeout, "the worker did not answer within REQUEST_TIMEOUT")
		} else {
			fail(fasthttp.StatusBadGateway, "the worker's response could not be read")
		}
		return
	}
	resp.Header.SetNoDefaultContentType(true)
	lat := s.now().Sub(t0)
	status := resp.StatusCode()
	if status != fasthttp.StatusSwitchingProtocols {
		// Refused (401, 426, ...): an ordinary answer.
		err := resp.ReadBody(br, bufferLimit)
		_ = conn.Close()
		if err != nil {
			st.Done(lat, fasthttp.StatusBadGateway, false, s.now().UnixNano())
			s.answer(ctx, a, fasthttp.StatusBadGateway, "the worker's response could not be read")
			return
		}
		st.Done(lat, status, false, s.now().UnixNano())
		stripResponse(&resp.Header)
		return
	}
	handshake := append([]byte(nil), resp.Header.Header()...)
	_ = conn.SetDeadline(time.Time{})
	t := s.tunnels.add(conn)
	if t == nil {
		// Shutting down.
		fail(fasthttp.StatusServiceUnavailable, "the proxy is stopping")
		return
	}
	s.m.tunnels.Inc()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer func() {
			s.tunnels.remove(t)
			s.m.tunnels.Dec()
			_ = conn.Close()
			st.Done(lat, status, false, s.now().UnixNano())
		}()
		raw := c
		if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
			raw = u.UnsafeConn()
		}
		if !t.setClient(raw) {
			return
		}
		if _, err := c.Write(handshake); err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(c, br) // worker → client, starting with what br holds
			t.cut()
		}()
		_, _ = io.Copy(conn, c) // client → worker, starting with what the server's reader holds
		t.cut()
		<-done
	})
}

// tunnelConns are the two connections of one tunnel.
type tunnelConns struct {
	mu              sync.Mutex
	backend, client net.Conn
	cutDone         bool
}

// setClient records the client's connection; it reports false when the
// tunnel was cut meanwhile (shutdown).
func (t *tunnelConns) setClient(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.client = c
	return !t.cutDone
}

// cut ends both directions: a deadline in the past unblocks the copies. The
// connections are closed by their owners afterwards.
func (t *tunnelConns) cut() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cutDone = true
	past := time.Unix(1, 0)
	_ = t.backend.SetDeadline(past)
	if t.client != nil {
		_ = t.client.SetDeadline(past)
	}
}

// tunnels tracks the open tunnels, to cut them at shutdown.
type tunnels struct {
	mu     sync.Mutex
	set    map[*tunnelConns]struct{}
	closed bool
	idle   chan struct{} // closed when set becomes empty after closeAll
}

// add registers a tunnel to backend; nil once closeAll has run.
func (ts *tunnels) add(backend net.Conn) *tunnelConns {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return nil
	}
	if ts.set == nil {
		ts.set = map[*tunnelConns]struct{}{}
	}
	t := &tunnelConns{backend: backend}
	ts.set[t] = struct{}{}
	return t
}

func (ts *tunnels) remove(t *tunnelConns) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.set, t)
	if ts.closed && len(ts.set) == 0 && ts.idle != nil {
		close(ts.idle)
		ts.idle = nil
	}
}

// closeAll cuts every tunnel and refuses new ones, then waits (within ctx)
// for their goroutines to finish.
func (ts *tunnels) closeAll(ctx context.Context) {
	ts.mu.Lock()
	ts.closed = true
	var idle chan struct{}
	if len(ts.set) > 0 {
		idle = make(chan struct{})
		ts.idle = idle
	}
	for t := range ts.set {
		t.cut()
	}
	ts.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
}
