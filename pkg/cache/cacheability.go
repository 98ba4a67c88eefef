package cache

import (
	"iter"
	"time"
)

// Headers is a read-only header block: every line as a name and a value,
// valid only during the iteration. fasthttp's *RequestHeader and
// *ResponseHeader satisfy it, as does Header.
type Headers interface {
	All() iter.Seq2[[]byte, []byte]
}

// Request is what Cacheability needs to know about the request.
type Request struct {
	Method []byte
	// Path is the request path without the query.
	Path   []byte
	Header Headers
}

// Response is what Cacheability needs to know about the response.
type Response struct {
	Status int
	Header Headers
}

// The reasons Cacheability gives. The first four say why a response is
// stored; the others why it is not.
const (
	ReasonSMaxAge        = "s-maxage"
	ReasonMaxAge         = "max-age"
	ReasonExpires        = "expires"
	ReasonDefaultTTL     = "default ttl"
	ReasonMethod         = "method"
	ReasonPath           = "path filter"
	ReasonRequestNoStore = "request no-store"
	ReasonStatus         = "status"
	ReasonSetCookie      = "set-cookie"
	ReasonNoStore        = "no-store"
	ReasonPrivate        = "private"
	ReasonNoCache        = "no-cache"
	ReasonVary           = "vary"
	ReasonAuthorization  = "authorization"
	ReasonStale          = "stale"
	ReasonNoFreshness    = "no freshness"
)

// maxDelta caps delta-seconds as RFC 9111 §1.2.2 allows (2^31 s).
const maxDelta = 1 << 31

// cacheableStatus are the statuses a shared cache may store with explicit
// freshness (RFC 9110 §15.1's heuristically cacheable ones; 206 is left
// out, since entries hold whole bodies).
func cacheableStatus(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// defaultTTLStatus are the statuses the default TTL applies to: successes
// and permanent redirects. Errors (404, 410, …) are stored only when the
// backend says for how long.
func defaultTTLStatus(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 308:
		return true
	}
	return false
}

// Cacheability decides, as a shared cache under RFC 9111, whether the
// response to req may be stored, for how long, and why (one of the Reason
// constants). In order:
//
//   - only GET and HEAD, only paths that pass cfg's extension filter;
//   - not when the request says Cache-Control: no-store;
//   - only the statuses a cache may store (206 excluded);
//   - never with Set-Cookie, nor with Cache-Control no-store, private or
//     no-cache (this cache does not revalidate), nor Pragma: no-cache
//     without Cache-Control;
//   - Vary: only absent or Accept-Encoding, which the key includes
//     (AppendKey); "*" or any other header is not cached;
//   - a request with Authorization only with public, s-maxage or
//     must-revalidate (RFC 9111 §3.5);
//   - freshness from s-maxage, else max-age, else Expires − Date (or − now
//     without Date), minus the response's Age; an invalid value means
//     stale; a stale response is not stored;
//   - without explicit freshness, cfg.DefaultTTL (the prototype cached
//     static files for 3600 s) for 2xx and permanent redirects, if it is set.
func Cacheability(req Request, resp Response, now time.Time, cfg Config) (ttl time.Duration, ok bool, reason string) {
	if string(req.Method) != "GET" && string(req.Method) != "HEAD" {
		return 0, false, ReasonMethod
	}
	if !cfg.PathAllowed(req.Method, req.Path) {
		return 0, false, ReasonPath
	}
	var authorization bool
	var reqCC directives
	if req.Header != nil {
		for k, v := range req.Header.All() {
			switch {
			case equalFold(k, "Authorization"):
				authorization = true
			case equalFold(k, "Cache-Control"):
				reqCC.parse(v)
			}
		}
	}
	if reqCC.noStore {
		return 0, false, ReasonRequestNoStore
	}
	if !cacheableStatus(resp.Status) {
		return 0, false, ReasonStatus
	}
	var cc directives
	var hasCC, pragmaNoCache, setCookie, badVary bool
	// Values are parsed inside the loop: they are valid only there.
	var hasExpires, hasDate, hasAge bool
	var expires, date time.Time
	var expiresErr, dateErr error
	var age time.Duration
	if resp.Header != nil {
		for k, v := range resp.Header.All() {
			switch {
			case equalFold(k, "Cache-Control"):
				hasCC = true
				cc.parse(v)
			case equalFold(k, "Set-Cookie"), equalFold(k, "Set-Cookie2"):
				setCookie = true
			case equalFold(k, "Vary"):
				badVary = badVary || !varyAcceptEncodingOnly(v)
			case equalFold(k, "Pragma"):
				pragmaNoCache = pragmaNoCache || hasToken(v, "no-cache")
			case equalFold(k, "Expires") && !hasExpires:
				hasExpires = true
				expires, expiresErr = parseHTTPTime(v)
			case equalFold(k, "Date") && !hasDate:
				hasDate = true
				date, dateErr = parseHTTPTime(v)
			case equalFold(k, "Age") && !hasAge:
				hasAge = true
				age = parseAge(v)
			}
		}
	}
	switch {
	case setCookie:
		return 0, false, ReasonSetCookie
	case cc.noStore:
		return 0, false, ReasonNoStore
	case cc.private:
		return 0, false, ReasonPrivate
	case cc.noCache, !hasCC && pragmaNoCache:
		return 0, false, ReasonNoCache
	case badVary:
		return 0, false, ReasonVary
	case authorization && !cc.public && !cc.sMaxAge.set && !cc.mustRevalidate:
		return 0, false, ReasonAuthorization
	}
	var lifetime time.Duration
	switch {
	case cc.sMaxAge.set:
		lifetime, reason = cc.sMaxAge.d, ReasonSMaxAge
	case cc.maxAge.set:
		lifetime, reason = cc.maxAge.d, ReasonMaxAge
	case hasExpires:
		reason = ReasonExpires
		if expiresErr != nil {
			break // an invalid Expires (e.g. "0") means already expired
		}
		base := now
		if hasDate && dateErr == nil {
			base = date
		}
		lifetime = expires.Sub(base)
	default:
		if cfg.DefaultTTL <= 0 || !defaultTTLStatus(resp.Status) {
			return 0, false, ReasonNoFreshness
		}
		lifetime, reason = cfg.DefaultTTL, ReasonDefaultTTL
	}
	ttl = lifetime - age
	if ttl <= 0 {
		return 0, false, ReasonStale
	}
	return ttl, true, reason
}

// delta is a parsed delta-seconds directive value.
type delta struct {
	d   time.Duration
	set bool
}

// directives are the Cache-Control directives that matter here, merged over
// every Cache-Control line.
type directives struct {
	noStore, noCache, private, public, mustRevalidate bool
	maxAge, sMaxAge                                   delta
}

// parse reads one Cache-Control value: comma-separated directives, names
// case-insensitive, values plain or quoted.
func (d *directives) parse(v []byte) {
	for len(v) > 0 {
		var item []byte
		item, v = cutByte(v, ',')
		name, val := cutByte(item, '=')
		name = trimSpace(name)
		val = trimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		switch {
		case equalFold(name, "no-store"):
			d.noStore = true
		case equalFold(name, "no-cache"):
			// Also the qualified no-cache="field": without revalidation
			// the safe reading is the unqualified one.
			d.noCache = true
		case equalFold(name, "private"):
			d.private = true
		case equalFold(name, "public"):
			d.public = true
		case equalFold(name, "must-revalidate"):
			d.mustRevalidate = true
		case equalFold(name, "max-age"):
			d.maxAge.merge(val)
		case equalFold(name, "s-maxage"):
			d.sMaxAge.merge(val)
		}
	}
}

// merge sets the delta from a directive value; an invalid value counts as
// 0 (stale, RFC 9111 §4.2.1), and of repeated directives the shortest wins.
func (d *delta) merge(v []byte) {
	secs := int64(0)
	if n, ok := parseDelta(v); ok {
		secs = n
	}
	x := time.Duration(secs) * time.Second
	if !d.set || x < d.d {
		d.d, d.set = x, true
	}
}

// parseDelta parses delta-seconds: digits only, capped at 2^31.
func parseDelta(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta), true
}

func parseAge(v []byte) time.Duration {
	n, ok := parseDelta(trimSpace(v))
	if !ok {
		return 0
	}
	return time.Duration(n) * time.Second
}

// varyAcceptEncodingOnly reports whether a Vary value lists nothing but
// Accept-Encoding.
func varyAcceptEncodingOnly(v []byte) bool {
	for len(v) > 0 {
		var item []byte
		item, v = cutByte(v, ',')
		item = trimSpace(item)
		if len(item) > 0 && !equalFold(item, "Accept-Encoding") {
			return false
		}
	}
	return true
}

func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		item, v = cutByte(v, ',')
		if equalFold(trimSpace(item), token) {
			return true
		}
	}
	return false
}

// parseHTTPTime parses the date formats of RFC 9110 §5.6.7: IMF-fixdate and
// the two obsolete ones.
func parseHTTPTime(v []byte) (time.Time, error) {
	formats := [...]string{
		"Mon, 02 Jan 2006 15:04:05 GMT",
		"Monday, 02-Jan-06 15:04:05 GMT",
		"Mon Jan _2 15:04:05 2006",
	}
	s := string(trimSpace(v))
	var err error
	for _, f := range formats {
		var t time.Time
		if t, err = time.Parse(f, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

func cutByte(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
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
