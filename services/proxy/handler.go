package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rustybalancer/rb/pkg/cache"
)

// handle serves one request: a cache hit, a WebSocket tunnel, or a forward
// to a worker of the request's app.
func (s *Service) handle(ctx *fasthttp.RequestCtx) {
	defer s.recoverPanic(ctx)
	start := s.now()
	h := &ctx.Request.Header
	a := s.appFor(h.Host())
	if isWebSocket(h) {
		s.tunnel(ctx, a, start)
		return
	}
	if h.IsConnect() {
		// Not a forward proxy: a worker could not answer CONNECT sensibly.
		s.answer(ctx, a, fasthttp.StatusMethodNotAllowed, "CONNECT is not supported")
		ctx.SetConnectionClose()
		s.account(a, ctx, start)
		return
	}
	cl := h.ContentLength() // -1: chunked, -2: none
	if int64(cl) > s.cfg.MaxBodySize {
		s.tooLarge(ctx, a)
		s.account(a, ctx, start)
		return
	}
	var key *keyBuf
	if s.cache != nil && s.cacheCfg.PathAllowed(h.Method(), ctx.Path()) {
		key = s.keys.Get().(*keyBuf)
		key.b = cache.AppendKey(key.b[:0], h.Method(), ctx.Host(), h.RequestURI(), h.Peek(fasthttp.HeaderAcceptEncoding))
		if !skipLookup(h) {
			if e, ok := s.cache.GetBytes(key.b); ok {
				s.keys.Put(key)
				s.m.cacheHits.Inc()
				s.writeHit(ctx, e)
				s.account(a, ctx, start)
				return
			}
		}
		s.m.cacheMisses.Inc()
	}
	// A small body is read whole, so that it can be sent again on a retry;
	// a larger or chunked one streams to the worker.
	var body *bodyReader
	var small *keyBuf
	switch {
	case cl > 0 && cl <= smallBodyLimit:
		small = s.keys.Get().(*keyBuf)
		small.b = slices.Grow(small.b[:0], cl)[:cl]
		if _, err := io.ReadFull(ctx.RequestBodyStream(), small.b); err != nil {
			s.keys.Put(small)
			if key != nil {
				s.keys.Put(key)
			}
			s.answer(ctx, a, fasthttp.StatusBadRequest, "reading the request body failed")
			ctx.SetConnectionClose()
			s.account(a, ctx, start)
			return
		}
		ctx.Request.SetBodyRaw(small.b)
	case cl > 0 || cl == -1:
		body = s.bodies.Get().(*bodyReader)
		*body = bodyReader{r: ctx.RequestBodyStream(), max: s.cfg.MaxBodySize}
		ctx.Request.SetBodyStream(body, cl)
	}
	stripRequest(h, false)
	s.addForwarded(ctx)
	s.forward(ctx, a, start, cl, small != nil, body, key)
	if key != nil {
		ctx.Response.Header.Set("X-Cache", "MISS")
		s.keys.Put(key)
	}
	if small != nil {
		s.keys.Put(small)
	}
	if body != nil {
		*body = bodyReader{}
		s.bodies.Put(body)
	}
	s.account(a, ctx, start)
}

// forward sends the request to a worker of a, retrying once on another
// worker when that is safe, and leaves the worker's answer (or the proxy's)
// in ctx.Response.
func (s *Service) forward(ctx *fasthttp.RequestCtx, a *appState, start time.Time, cl int, buffered bool, body *bodyReader, key *keyBuf) {
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
	req, resp := &ctx.Request, &ctx.Response
	deadline := start.Add(s.cfg.Timeout)
	limit := bufferLimit
	if key != nil {
		limit = max(limit, int(s.cacheCfg.MaxEntryBytes))
	}
	// A request is sent again only when the worker cannot have seen it (the
	// connection was refused) or it is idempotent and its body is none or
	// held in memory.
	replayable := (cl == 0 || cl == -2 || buffered) && idempotent(req.Header.Method())
	retried, staleRetried := false, false
	st := b.Stats()
	st.Begin()
	for {
		t0 := s.now()
		res := s.roundTrip(r.pools[b.Index()], req, resp, t0, deadline, limit, body)
		end := s.now()
		lat := end.Sub(t0)
		switch res.kind {
		case rtOK:
			status := resp.StatusCode()
			if res.stream != nil {
				res.stream.track(st, lat, status)
			} else {
				st.Done(lat, status, false, end.UnixNano())
			}
			if key != nil && res.stream == nil {
				s.store(ctx, key, status)
			}
			stripResponse(&resp.Header)
			return
		case rtBroken:
			if res.reused && !staleRetried && replayable {
				// A pooled keep-alive connection the worker had closed:
				// once more on the same worker, on a fresh connection.
				staleRetried = true
				continue
			}
		case rtTimeout:
			st.Done(lat, fasthttp.StatusGatewayTimeout, false, end.UnixNano())
			s.m.backendErrors.timeout.Inc()
			s.answer(ctx, a, fasthttp.StatusGatewayTimeout, "the worker did not answer within REQUEST_TIMEOUT")
			return
		case rtBadResponse:
			st.Done(lat, fasthttp.StatusBadGateway, false, end.UnixNano())
			s.m.backendErrors.badResponse.Inc()
			s.warnOnce("bad-response/"+b.Address, "worker sent a response the proxy could not read", "app", a.name, "backend", b.ID, "err", res.err)
			s.answer(ctx, a, fasthttp.StatusBadGateway, "the worker's response could not be read")
			return
		case rtNoConn:
			st.Done(lat, fasthttp.StatusServiceUnavailable, false, end.UnixNano())
			s.answer(ctx, a, fasthttp.StatusServiceUnavailable, "no free connection to the worker")
			resp.Header.Set(fasthttp.HeaderRetryAfter, "1")
			return
		case rtBodyLimit:
			st.Done(lat, 0, false, end.UnixNano())
			s.tooLarge(ctx, a)
			return
		case rtClientBody:
			st.Done(lat, 0, false, end.UnixNano())
			s.answer(ctx, a, fasthttp.StatusBadRequest, "reading the request body failed")
			ctx.SetConnectionClose()
			return
		}
		// The worker could not be reached (rtDial) or broke the connection
		// before answering (rtBroken): a connect error for the balancer.
		st.Done(0, 0, true, end.UnixNano())
		s.m.backendErrors.connect.Inc()
		if retried || !(res.kind == rtDial || replayable) || !end.Before(deadline) {
			s.answer(ctx, a, fasthttp.StatusBadGateway, "the worker could not be reached")
			return
		}
		next, err := pk.PickExcept(s.rnd, end.UnixNano(), b)
		if err != nil {
			s.answer(ctx, a, fasthttp.StatusBadGateway, "the worker could not be reached")
			return
		}
		retried, staleRetried = true, false
		s.m.retries.Inc()
		b, st = next, next.Stats()
		st.Begin()
	}
}

// idempotent reports the methods a request may be repeated with: GET, HEAD,
// OPTIONS, PUT, DELETE.
func idempotent(m []byte) bool {
	switch string(m) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodPut, fasthttp.MethodDelete:
		return true
	}
	return false
}

// skipLookup reports whether the client asks not to be served from a cache
// (Cache-Control: no-cache or no-store, Pragma: no-cache).
func skipLookup(h *fasthttp.RequestHeader) bool {
	found := false
	if cc := h.Peek(fasthttp.HeaderCacheControl); len(cc) > 0 {
		forEachToken(cc, func(tok []byte) {
			found = found || equalFold(tok, "no-cache") || equalFold(tok, "no-store")
		})
	}
	return found || equalFold(h.Peek(fasthttp.HeaderPragma), "no-cache")
}

// account counts the answer in the app's metrics.
func (s *Service) account(a *appState, ctx *fasthttp.RequestCtx, start time.Time) {
	a.byClass[statusClass(ctx.Response.StatusCode())].Inc()
	a.duration.Observe(s.now().Sub(start).Seconds())
}

func statusClass(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}

// noBackend answers 503: the app has no route yet, or no worker that may
// take a request.
func (s *Service) noBackend(ctx *fasthttp.RequestCtx, a *appState) {
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	ctx.Response.SetBodyRaw(a.noBackend)
	s.m.noBackend.Inc()
}

// tooLarge answers 413 and closes the connection (with a linger), since the
// rest of the body is not read.
func (s *Service) tooLarge(ctx *fasthttp.RequestCtx, a *appState) {
	s.answer(ctx, a, fasthttp.StatusRequestEntityTooLarge, "request body larger than RB_MAX_BODY_SIZE")
	ctx.SetConnectionClose()
	markLinger(ctx.Conn())
}

// answer replaces the response with the proxy's own JSON answer.
func (s *Service) answer(ctx *fasthttp.RequestCtx, a *appState, status int, msg string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	app := ""
	if a != nil {
		app = a.name
	}
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
		App   string `json:"app,omitempty"`
	}{msg, app})
	ctx.Response.SetBodyRaw(body)
}

// expect answers Expect: 100-continue: 413 right away for a body announced
// larger than RB_MAX_BODY_SIZE, so the client does not send it.
func (s *Service) expect(ctx *fasthttp.RequestCtx) int {
	if int64(ctx.Request.Header.ContentLength()) > s.cfg.MaxBodySize {
		s.m.rejected[rejectedTooLarge].Inc()
		markLinger(ctx.Conn())
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// rejectRequest answers a request fasthttp could not read: 431 for a header
// over the limit, 413 for a body over it, 408 for a client too slow, 400
// otherwise. The connection is closed with a linger, so the client reads
// the answer even when it was still sending.
func (s *Service) rejectRequest(ctx *fasthttp.RequestCtx, err error) {
	status, msg, kind := fasthttp.StatusBadRequest, "the request could not be parsed", rejectedBad
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		status, msg, kind = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header larger than 16 KiB", rejectedHeader
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg, kind = fasthttp.StatusRequestEntityTooLarge, "request body larger than RB_MAX_BODY_SIZE", rejectedTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		status, msg, kind = fasthttp.StatusRequestTimeout, "the request was not received within REQUEST_TIMEOUT", rejectedTimeout
	}
	s.m.rejected[kind].Inc()
	s.answer(ctx, nil, status, msg)
	markLinger(ctx.Conn())
}

// recoverPanic turns a panic of the request path into a 500 and a log line:
// a bug must not take the proxy down.
func (s *Service) recoverPanic(ctx *fasthttp.RequestCtx) {
	if v := recover(); v != nil {
		s.m.panics.Inc()
		s.log.Error("panic while serving a request", "panic", v, "uri", string(ctx.RequestURI()), "stack", string(debug.Stack()))
		s.answer(ctx, nil, fasthttp.StatusInternalServerError, "internal error")
		ctx.SetConnectionClose()
	}
}

// keyBuf is a reusable buffer for cache keys.
type keyBuf struct{ b []byte }

// store keeps the response in the cache when Cacheability allows it.
func (s *Service) store(ctx *fasthttp.RequestCtx, key *keyBuf, status int) {
	req, resp := &ctx.Request, &ctx.Response
	ttl, ok, _ := cache.Cacheability(
		cache.Request{Method: req.Header.Method(), Path: ctx.Path(), Header: &req.Header},
		cache.Response{Status: status, Header: &resp.Header},
		s.now(), s.cacheCfg)
	if !ok {
		return
	}
	e := cache.NewEntry(status, &resp.Header, resp.Body(), ttl)
	if s.cache.Set(string(key.b), e) {
		s.m.cacheStores.Inc()
	}
}

// writeHit answers from a cache entry.
func (s *Service) writeHit(ctx *fasthttp.RequestCtx, e *cache.Entry) {
	resp := &ctx.Response
	resp.SetStatusCode(e.Status)
	for _, f := range e.Header {
		resp.Header.AddBytesKV(f.Key, f.Value)
	}
	var buf [20]byte
	age := int64(e.Age(s.cache.Now()) / time.Second)
	resp.Header.SetBytesV(fasthttp.HeaderAge, appendInt(buf[:0], age))
	resp.Header.Set("X-Cache", "HIT")
	resp.SetBodyRaw(e.Body)
}

func appendInt(dst []byte, n int64) []byte {
	if n <= 0 {
		return append(dst, '0')
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return append(dst, b[i:]...)
}
