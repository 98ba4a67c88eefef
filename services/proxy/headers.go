package proxy

import (
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// hopByHop reports whether a header name is hop-by-hop for the proxy:
// RFC 9110 §7.6.1's list, the Proxy-* headers and Expect (the proxy answers
// 100-continue itself). Transfer-Encoding is left to fasthttp, which
// re-frames every body it forwards.
func hopByHop(k []byte) bool {
	switch len(k) {
	case 2:
		return equalFold(k, "TE")
	case 6:
		return equalFold(k, "Expect")
	case 7:
		return equalFold(k, "Trailer") || equalFold(k, "Upgrade")
	case 10:
		return equalFold(k, "Connection") || equalFold(k, "Keep-Alive")
	}
	return len(k) > 6 && equalFold(k[:6], "Proxy-")
}

// stripRequest removes the hop-by-hop headers of a request about to be
// forwarded, and those its Connection header names. With tunnel (a
// WebSocket upgrade) Connection: Upgrade and Upgrade stay. The client's
// Connection: close does not reach the worker: the server already noted it
// for the client's connection, and the worker's connection is pooled.
func stripRequest(h *fasthttp.RequestHeader, tunnel bool) {
	h.ResetConnectionClose()
	if !h.IsHTTP11() {
		h.SetProtocol("HTTP/1.1")
	}
	if !anyHopByHop(h) {
		return
	}
	var cb [256]byte
	if conn := append(cb[:0], h.Peek(fasthttp.HeaderConnection)...); len(conn) > 0 {
		forEachToken(conn, func(tok []byte) {
			if tunnel && equalFold(tok, "Upgrade") {
				return
			}
			if !equalFold(tok, "Connection") && !equalFold(tok, "Upgrade") {
				h.DelBytes(tok)
			}
		})
	}
	if tunnel {
		h.Set(fasthttp.HeaderConnection, "Upgrade")
	} else {
		h.Del(fasthttp.HeaderConnection)
		h.Del(fasthttp.HeaderUpgrade)
	}
	h.Del(fasthttp.HeaderKeepAlive)
	h.Del(fasthttp.HeaderTE)
	h.Del(fasthttp.HeaderTrailer)
	h.Del(fasthttp.HeaderExpect)
	h.Del("Proxy-Connection")
	h.Del(fasthttp.HeaderProxyAuthorization)
	h.Del(fasthttp.HeaderProxyAuthenticate)
}

// anyHopByHop reports whether h has a header stripRequest removes, so the
// common request skips the deletions.
func anyHopByHop(h *fasthttp.RequestHeader) bool {
	for k := range h.All() {
		if hopByHop(k) {
			return true
		}
	}
	return false
}

// stripResponse removes a worker's hop-by-hop headers, those its Connection
// header names, and its Connection: close, which concerns the worker's
// connection only.
func stripResponse(h *fasthttp.ResponseHeader) {
	h.ResetConnectionClose()
	found := false
	for k := range h.All() {
		if hopByHop(k) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var cb [256]byte
	if conn := append(cb[:0], h.Peek(fasthttp.HeaderConnection)...); len(conn) > 0 {
		forEachToken(conn, func(tok []byte) {
			if !equalFold(tok, "Connection") {
				h.DelBytes(tok)
			}
		})
	}
	h.Del(fasthttp.HeaderConnection)
	h.Del(fasthttp.HeaderKeepAlive)
	h.Del(fasthttp.HeaderTE)
	h.Del(fasthttp.HeaderTrailer)
	h.Del(fasthttp.HeaderUpgrade)
	h.Del("Proxy-Connection")
	h.Del(fasthttp.HeaderProxyAuthenticate)
	h.Del(fasthttp.HeaderProxyAuthorization)
}

// addForwarded sets X-Forwarded-For (the client's address appended to what
// came in), X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id (a new one
// when the request has none).
func (s *Service) addForwarded(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	var buf [256]byte
	b := buf[:0]
	if prev := h.Peek(fasthttp.HeaderXForwardedFor); len(prev) > 0 {
		b = append(b, prev...)
		b = append(b, ", "...)
	}
	b = appendIP(b, ctx.RemoteIP())
	h.SetBytesV(fasthttp.HeaderXForwardedFor, b)
	if ctx.IsTLS() {
		h.Set(fasthttp.HeaderXForwardedProto, "https")
	} else {
		h.Set(fasthttp.HeaderXForwardedProto, "http")
	}
	if host := h.Host(); len(host) > 0 {
		b = append(buf[:0], host...)
		h.SetBytesV(fasthttp.HeaderXForwardedHost, b)
	}
	if len(h.Peek(headerXRequestID)) == 0 {
		h.SetBytesV(headerXRequestID, s.reqIDs.append(buf[:0]))
	}
}

// appendIP appends ip in its usual text form without allocating.
func appendIP(dst []byte, ip net.IP) []byte {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return append(dst, "unknown"...)
	}
	return a.Unmap().AppendTo(dst)
}

// requestIDs makes request ids: a random per-process prefix and a counter,
// unique without coordination and cheap (no allocation, one atomic add).
type requestIDs struct {
	prefix [8]byte
	n      atomic.Uint64
}

const hexDigits = "0123456789abcdef"

func (r *requestIDs) init(seed uint64) {
	for i := range r.prefix {
		r.prefix[i] = hexDigits[(seed>>(4*i))&15]
	}
}

// append appends the next id, "<prefix>-<counter in 12 hex digits>".
func (r *requestIDs) append(dst []byte) []byte {
	dst = append(dst, r.prefix[:]...)
	dst = append(dst, '-')
	n := r.n.Add(1)
	for i := 11; i >= 0; i-- {
		dst = append(dst, hexDigits[(n>>(4*i))&15])
	}
	return dst
}

// forEachToken calls f with each comma-separated token of v, trimmed.
func forEachToken(v []byte, f func([]byte)) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		tok := trimSpace(v[:i])
		if len(tok) > 0 {
			f(tok)
		}
		if i == len(v) {
			return
		}
		v = v[i+1:]
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// headerXRequestID names the request id header the proxy keeps or sets.
const headerXRequestID = "X-Request-Id"
