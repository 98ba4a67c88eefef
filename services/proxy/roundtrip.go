package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rustybalancer/rb/pkg/balance"
)

// rtKind is how a round trip to a worker ended.
type rtKind uint8

const (
	rtOK          rtKind = iota // a response header was read
	rtDial                      // the worker could not be reached: nothing was sent
	rtBroken                    // the connection failed before a complete answer
	rtTimeout                   // REQUEST_TIMEOUT passed
	rtBadResponse               // the worker's response did not parse
	rtNoConn                    // no free connection to the worker in time
	rtBodyLimit                 // the client's chunked body passed RB_MAX_BODY_SIZE
	rtClientBody                // reading the client's body failed
)

// rtResult is the outcome of one round trip.
type rtResult struct {
	kind rtKind
	// reused says the connection came from the pool (for rtBroken: a
	// keep-alive connection the worker may have closed meanwhile).
	reused bool
	// stream is set when the response body is streamed: its Close, called
	// by fasthttp once the body is written, ends the request's accounting.
	stream tracker
	err    error
}

// tracker ends a streamed request's accounting when its body is done.
type tracker interface {
	track(st *balance.Stats, latency time.Duration, status int)
}

// roundTrip sends req over a connection of p and reads the response header
// into resp by deadline. A body with a known length up to limit is read
// whole; any other body is left to stream from the connection (see
// streamBody). It uses fasthttp's HostClient as a connection pool only, so
// that it can tell a refused connection from a broken one and choose per
// response between buffering and streaming.
func (s *Service) roundTrip(p *pool, req *fasthttp.Request, resp *fasthttp.Response, t0, deadline time.Time, limit int, body *bodyReader) rtResult {
	timeout := deadline.Sub(t0)
	if timeout <= 0 {
		return rtResult{kind: rtTimeout}
	}
	hc := p.hc
	cc, err := hc.AcquireConn(timeout, false)
	if err != nil {
		var de *dialError
		switch {
		case errors.As(err, &de):
			return rtResult{kind: rtDial, err: err}
		case errors.Is(err, fasthttp.ErrNoFreeConns):
			return rtResult{kind: rtNoConn, err: err}
		}
		return rtResult{kind: rtTimeout, err: err}
	}
	res := rtResult{reused: cc.CreatedTime().Before(t0)}
	conn := cc.Conn()
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		res.kind, res.err = rtBroken, err
		return res
	}
	// Keep the client's Host; a request without one (HTTP/1.0) gets the
	// worker's address.
	req.UseHostHeader = true
	if len(req.Header.Host()) == 0 {
		req.Header.SetHost(p.addr)
	}
	req.URI().DisablePathNormalizing = true
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		res.kind, res.err = writeFailure(err, body), err
		return res
	}
	br := hc.AcquireReader(conn)
	// Header.Read starts the header afresh but keeps the server's settings
	// (no default Date, Content-Type): the worker's Date passes through.
	for interim := 0; ; interim++ {
		err = resp.Header.Read(br)
		if err != nil {
			break
		}
		if c := resp.StatusCode(); c >= 200 || c == fasthttp.StatusSwitchingProtocols || interim == 10 {
			break
		}
	}
	if err == nil && resp.StatusCode() < 200 {
		err = fmt.Errorf("unexpected status %d", resp.StatusCode())
	}
	if err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		res.kind, res.err = readFailure(err), err
		return res
	}
	resp.Header.SetNoDefaultContentType(true)
	closeConn := resp.ConnectionClose()
	status := resp.StatusCode()
	if req.Header.IsHead() || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified {
		resp.SkipBody = true
		hc.ReleaseReader(br)
		if closeConn {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return res
	}
	n := resp.Header.ContentLength()
	if n >= 0 && n <= limit {
		if err := resp.ReadBody(br, limit); err != nil {
			hc.ReleaseReader(br)
			hc.CloseConn(cc)
			res.kind, res.err = rtBroken, err
			if isTimeout(err) {
				res.kind = rtTimeout
			}
			return res
		}
		hc.ReleaseReader(br)
		if closeConn {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return res
	}
	sb := acquireStream(&s.streams, hc, cc, (*fasthttp.HostClient).ReleaseConn, (*fasthttp.HostClient).CloseConn)
	sb.br, sb.closeConn, sb.timeout, sb.now = br, closeConn, s.cfg.Timeout, s.now
	switch {
	case n >= 0:
		sb.mode, sb.left = modeFixed, int64(n)
	case n == -1:
		sb.mode = modeChunked
	default: // -2: the body ends when the worker closes the connection
		sb.mode, sb.closeConn = modeUntilClose, true
	}
	resp.SetBodyStream(sb, max(n, -1))
	res.stream = sb
	return res
}

// writeFailure classifies an error while sending the request.
func writeFailure(err error, body *bodyReader) rtKind {
	switch {
	case body != nil && body.over:
		return rtBodyLimit
	case body != nil && body.err != nil:
		return rtClientBody
	case isTimeout(err):
		return rtTimeout
	}
	return rtBroken
}

// readFailure classifies an error while reading the response header: the
// connection ended (broken), it timed out, or the bytes were not HTTP.
func readFailure(err error) rtKind {
	switch {
	case isTimeout(err):
		return rtTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed), errors.Is(err, fasthttp.ErrConnectionClosed):
		return rtBroken
	}
	return rtBadResponse
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout())
}

// errBodyTooLarge stops the upload of a chunked body over RB_MAX_BODY_SIZE.
var errBodyTooLarge = errors.New("request body larger than RB_MAX_BODY_SIZE")

// bodyReader passes the client's body to the worker, stopping it past the
// size limit and remembering whether a failure was the client's.
type bodyReader struct {
	r      io.Reader
	n, max int64
	over   bool
	err    error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		b.over = true
		return n, errBodyTooLarge
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Body framings a streamBody decodes.
const (
	modeFixed      = iota // Content-Length
	modeChunked           // Transfer-Encoding: chunked
	modeUntilClose        // neither: until the worker closes
)

// connOf is what the proxy needs of fasthttp's (unexported) pooled
// connection type.
type connOf interface {
	Conn() net.Conn
	CreatedTime() time.Time
}

// streamBody is a worker's response body read straight from its connection
// while fasthttp writes it to the client. The response is decoded here
// (Content-Length, chunked, or until close) and re-framed by fasthttp; the
// worker's trailers are dropped. Each Read extends the connection's read
// deadline by REQUEST_TIMEOUT, so a long download may take as long as it
// needs while a stalled one times out. Close pools the connection when the
// body was read to its end, closes it otherwise, and ends the request's
// accounting. It is generic over the pooled connection type only because
// fasthttp does not export that type's name; streams are pooled, so a
// streamed response allocates nothing either.
type streamBody[C connOf] struct {
	pool      *sync.Pool
	hc        *fasthttp.HostClient
	cc        C
	release   func(*fasthttp.HostClient, C)
	discard   func(*fasthttp.HostClient, C)
	br        *bufio.Reader
	mode      int
	left      int64 // modeFixed: body bytes left; modeChunked: of the current chunk
	eof       bool
	closeConn bool
	readErr   error
	timeout   time.Duration
	now       func() time.Time

	st      *balance.Stats
	latency time.Duration
	status  int
}

func acquireStream[C connOf](p *sync.Pool, hc *fasthttp.HostClient, cc C, release, discard func(*fasthttp.HostClient, C)) *streamBody[C] {
	b, ok := p.Get().(*streamBody[C])
	if !ok {
		b = new(streamBody[C])
	}
	b.pool, b.hc, b.cc, b.release, b.discard = p, hc, cc, release, discard
	return b
}

func (b *streamBody[C]) track(st *balance.Stats, latency time.Duration, status int) {
	b.st, b.latency, b.status = st, latency, status
}

func (b *streamBody[C]) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.readErr != nil {
		return 0, b.readErr
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.timeout > 0 {
		_ = b.cc.Conn().SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.read(p)
	if err != nil && err != io.EOF {
		b.readErr = err
	}
	return n, err
}

func (b *streamBody[C]) read(p []byte) (int, error) {
	switch b.mode {
	case modeFixed:
		if b.left == 0 {
			b.eof = true
			return 0, io.EOF
		}
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			b.eof = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case modeChunked:
		if b.left == 0 {
			size, err := readChunkSize(b.br)
			if err != nil {
				return 0, err
			}
			if size == 0 {
				if err := skipTrailer(b.br); err != nil {
					return 0, err
				}
				b.eof = true
				return 0, io.EOF
			}
			b.left = size
		}
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.br.Read(p)
		b.left -= int64(n)
		if err == io.EOF {
			return n, io.ErrUnexpectedEOF
		}
		if err == nil && b.left == 0 {
			err = readCRLF(b.br)
		}
		return n, err
	default:
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.eof = true
		}
		return n, err
	}
}

// Close gives the connection back (pooled after a complete body, else
// closed) and ends the request's accounting: a body cut short by the worker
// counts as a connection failure.
func (b *streamBody[C]) Close() error {
	if b.hc == nil {
		return nil
	}
	b.hc.ReleaseReader(b.br)
	if b.eof && !b.closeConn {
		b.release(b.hc, b.cc)
	} else {
		b.discard(b.hc, b.cc)
	}
	if b.st != nil {
		b.st.Done(b.latency, b.status, b.readErr != nil, b.now().UnixNano())
	}
	p := b.pool
	*b = streamBody[C]{}
	p.Put(b)
	return nil
}

// maxChunkSize bounds a chunk's size (2^60 bytes: no overflow).
const maxChunkSize = 1 << 60

// readChunkSize reads a chunk-size line (hex, optional extensions).
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("read chunk size: %w", err)
	}
	var n int64
	digits := 0
	for _, c := range line {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if digits == 0 {
				return 0, errors.New("read chunk size: no digits")
			}
			return n, nil
		default:
			return 0, fmt.Errorf("read chunk size: bad byte %q", c)
		}
		if n > maxChunkSize>>4 {
			return 0, errors.New("read chunk size: too large")
		}
		n = n<<4 | int64(v)
		digits++
	}
	return 0, errors.New("read chunk size: unterminated line")
}

// readCRLF reads the line end after a chunk's data.
func readCRLF(br *bufio.Reader) error {
	c, err := br.ReadByte()
	if err == nil && c == '\r' {
		c, err = br.ReadByte()
	}
	if err == nil && c != '\n' {
		err = errors.New("chunk data not followed by CRLF")
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// skipTrailer reads the trailer section after the last chunk, up to the
// empty line.
func skipTrailer(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read trailer: %w", err)
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return nil
		}
	}
}
