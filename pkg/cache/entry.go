package cache

import (
	"iter"
	"time"
)

// Field is one header line.
type Field struct {
	Key, Value []byte
}

// Header is a list of header lines in their original order, independent of
// any HTTP library.
type Header []Field

// All yields every line; Header satisfies Headers.
func (h Header) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, f := range h {
			if !yield(f.Key, f.Value) {
				return
			}
		}
	}
}

// Entry is a stored response. It is immutable once stored: readers share it.
type Entry struct {
	Status int
	// Header holds the response's lines minus hop-by-hop ones, Set-Cookie
	// and Age (see Age).
	Header Header
	Body   []byte
	// StoredAt is when the cache stored the entry (its clock).
	StoredAt time.Time
	// TTL is how long the entry stays fresh after StoredAt.
	TTL time.Duration
	// InitialAge is the response's Age when it arrived.
	InitialAge time.Duration
}

// entryOverhead approximates the memory of an Entry and its map slot beyond
// the bytes of its key, header and body; fieldOverhead that of one Field.
const (
	entryOverhead = 160
	fieldOverhead = 48
)

// NewEntry copies a response into an Entry that Cache.Set can store: the
// header lines minus hop-by-hop ones (RFC 9110 §7.6.1, including those
// named by Connection), Set-Cookie and Age, and the body, all in one
// allocation besides the line index. ttl comes from Cacheability.
func NewEntry(status int, header Headers, body []byte, ttl time.Duration) *Entry {
	e := &Entry{Status: status, TTL: ttl}
	if header == nil {
		e.Body = append([]byte(nil), body...)
		return e
	}
	// First pass: the names Connection lists, the size to copy and the Age.
	var connection [8]string
	nConn := 0
	for k, v := range header.All() {
		if equalFold(k, "Connection") {
			for len(v) > 0 && nConn < len(connection) {
				var item []byte
				item, v = cutByte(v, ',')
				if item = trimSpace(item); len(item) > 0 {
					connection[nConn] = string(item)
					nConn++
				}
			}
		}
		if equalFold(k, "Age") && e.InitialAge == 0 {
			e.InitialAge = parseAge(v)
		}
	}
	keep := func(k []byte) bool {
		if hopByHop(k) {
			return false
		}
		for _, c := range connection[:nConn] {
			if equalFold(k, c) {
				return false
			}
		}
		return true
	}
	size, lines := len(body), 0
	for k, v := range header.All() {
		if keep(k) {
			size += len(k) + len(v)
			lines++
		}
	}
	buf := make([]byte, 0, size)
	e.Header = make(Header, 0, lines)
	for k, v := range header.All() {
		if !keep(k) {
			continue
		}
		buf = append(buf, k...)
		key := buf[len(buf)-len(k) : len(buf) : len(buf)]
		buf = append(buf, v...)
		val := buf[len(buf)-len(v) : len(buf) : len(buf)]
		e.Header = append(e.Header, Field{Key: key, Value: val})
	}
	buf = append(buf, body...)
	e.Body = buf[len(buf)-len(body) : len(buf) : len(buf)]
	return e
}

// hopByHop reports whether a header line must not be stored: the
// hop-by-hop headers, cookies being set, and Age (recomputed on each hit).
func hopByHop(k []byte) bool {
	switch len(k) {
	case 2:
		return equalFold(k, "TE")
	case 3:
		return equalFold(k, "Age")
	case 7:
		return equalFold(k, "Trailer") || equalFold(k, "Upgrade")
	case 10:
		return equalFold(k, "Connection") || equalFold(k, "Keep-Alive") || equalFold(k, "Set-Cookie")
	case 11:
		return equalFold(k, "Set-Cookie2")
	case 16:
		return equalFold(k, "Proxy-Connection")
	case 17:
		return equalFold(k, "Transfer-Encoding")
	case 18:
		return equalFold(k, "Proxy-Authenticate")
	case 19:
		return equalFold(k, "Proxy-Authorization")
	}
	return false
}

// Age is the entry's current age at now, for the Age header of a hit:
// its age on arrival plus the time it spent in the cache.
func (e *Entry) Age(now time.Time) time.Duration {
	return e.InitialAge + max(0, now.Sub(e.StoredAt))
}

// Size is the number of bytes the entry is accounted for, without its key.
func (e *Entry) Size() int64 {
	n := int64(entryOverhead + len(e.Body))
	for _, f := range e.Header {
		n += int64(fieldOverhead + len(f.Key) + len(f.Value))
	}
	return n
}
