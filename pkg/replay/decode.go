package replay

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unsafe"

	"github.com/rustybalancer/rb/events"
)

// The fast path of decoding: a Sample envelope, the bulk of any recording,
// read field by field straight from the line without reflection or
// allocation. It accepts exactly what events.Decode[events.Sample] accepts
// and gives the same values; anything it is not sure about (an escaped
// string, a null, a number it cannot read, a time with an offset) makes it
// give up, and the caller decodes the line with encoding/json instead
// (TestFastDecodeMatchesEncodingJSON holds the two together).

// scanner walks JSON text. A method that returns false leaves the scanner
// unusable: the caller gives up on the fast path.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// lit consumes the byte c after white space.
func (s *scanner) lit(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek returns the next byte after white space, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string without escapes and returns its bytes (a view of the
// input). A string with an escape, a control byte or no end gives up.
// Strings here are short (keys, names, times): a loop over a table beats
// bytes.IndexByte's call.
func (s *scanner) str() ([]byte, bool) {
	if !s.lit('"') {
		return nil, false
	}
	b := s.b
	for i := s.i; i < len(b); i++ {
		if stop[b[i]] {
			if b[i] != '"' {
				return nil, false
			}
			out := b[s.i:i]
			s.i = i + 1
			return out, true
		}
	}
	return nil, false
}

// stop marks the bytes that end a plain string: the quote, the backslash
// of an escape and the control bytes JSON forbids unescaped.
var stop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// hasControl says whether b holds a byte below 0x20, which JSON forbids
// unescaped in a string; eight bytes at a time.
func hasControl(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if (x-0x20*lo)&^x&hi != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// num returns the bytes of a number.
func (s *scanner) num() ([]byte, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	return s.b[start:s.i], s.i > start
}

// float reads a number as encoding/json does (strconv.ParseFloat, which
// copies its input into any error, so a view of the line is safe here).
//
// Numbers whose decimal mantissa is at most 2^53 and whose power of ten is
// within ±22 (37.5, 0.0012, 1.25e+06, most 16-digit ones) take Clinger's
// fast path: the mantissa and the power are exact float64s, so one
// correctly rounded multiplication or division gives the correctly
// rounded value, the same ParseFloat gives. The rest go to ParseFloat.
func (s *scanner) float() (float64, bool) {
	s.ws()
	b, i := s.b, s.i
	start := i
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	var mant uint64
	digits, exp := 0, 0
	truncated := false
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if digits < 19 {
				mant = mant*10 + uint64(b[i]-'0')
				digits++
			} else {
				exp++
				truncated = true
			}
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if digits < 19 {
				if mant != 0 || b[i] != '0' {
					digits++
				}
				mant = mant*10 + uint64(b[i]-'0')
				exp--
			} else {
				truncated = true
			}
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		sign := 1
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			if b[i] == '-' {
				sign = -1
			}
			i++
		}
		d, e := i, 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if e < 10000 {
				e = e*10 + int(b[i]-'0')
			}
		}
		if i == d {
			return 0, false
		}
		exp += sign * e
	}
	s.i = i
	if !truncated && mant <= 1<<53 && exp >= -22 && exp <= 22 {
		f := float64(mant)
		if exp < 0 {
			f /= pow10[-exp]
		} else {
			f *= pow10[exp]
		}
		if neg {
			f = -f
		}
		return f, true
	}
	v, err := strconv.ParseFloat(unsafe.String(&b[start], i-start), 64)
	return v, err == nil
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

func (s *scanner) uint() (uint64, bool) {
	b, ok := s.num()
	if !ok || !jsonNumber(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(unsafe.String(&b[0], len(b)), 10, 64)
	return v, err == nil
}

func (s *scanner) int() (int64, bool) {
	b, ok := s.num()
	if !ok || !jsonNumber(b) {
		return 0, false
	}
	v, err := strconv.ParseInt(unsafe.String(&b[0], len(b)), 10, 64)
	return v, err == nil
}

func (s *scanner) bool() (bool, bool) {
	s.ws()
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// skip passes over any valid value; strings may hold escapes here.
func (s *scanner) skip() bool {
	switch c := s.peek(); {
	case c == '"':
		return s.skipString()
	case c == '{' || c == '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			case '"':
				if !s.skipString() {
					return false
				}
				continue
			}
			s.i++
		}
		return false
	case c == 't' || c == 'f' || c == 'n':
		for s.i < len(s.b) && s.b[s.i] >= 'a' && s.b[s.i] <= 'z' {
			s.i++
		}
		return true
	default:
		_, ok := s.num()
		return ok
	}
}

// skipString passes over a string at s.i, escapes included; a control byte
// gives up (encoding/json refuses it).
func (s *scanner) skipString() bool {
	i := s.i + 1
	for {
		end := bytes.IndexByte(s.b[i:], '"')
		if end < 0 {
			return false
		}
		j := i + end
		// The quote ends the string unless an odd run of backslashes escapes it.
		n := 0
		for k := j - 1; k >= i && s.b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			if hasControl(s.b[s.i+1 : j]) {
				return false
			}
			s.i = j + 1
			return true
		}
		i = j + 1
	}
}

// plainKey says whether an unknown key cannot be one encoding/json would
// match to a known field: it matches keys case-insensitively, with Unicode
// folding, so any key with upper case or non-ASCII bytes gives up.
func plainKey(k []byte) bool {
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// jsonNumber checks the JSON number grammar, which ParseFloat is laxer than
// (it takes "+1", "0x10", "1_000", "Inf").
func jsonNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(b)
}

// line is the outer object of an export line, with data left undecoded,
// or, for a Sample whose stream came before its data (as Writer writes
// them), read by the fast path in the same pass (sampleOK).
type line struct {
	stream, subject []byte
	seq             uint64
	data            []byte
	sample          fastSample
	sampleOK        bool
}

// parseLine reads {"stream","subject","seq","data"} in any key order; false
// means the slow path must read it.
func parseLine(b []byte) (line, bool) {
	var l line
	s := scanner{b: b}
	if !s.lit('{') {
		return l, false
	}
	if s.lit('}') {
		return l, false
	}
	tried := false
	for {
		key, ok := s.str()
		if !ok || !s.lit(':') {
			return l, false
		}
		switch string(key) {
		case "stream":
			l.stream, ok = s.str()
		case "subject":
			l.subject, ok = s.str()
		case "seq":
			l.seq, ok = s.uint()
		case "data":
			start := s.peekIndex()
			if string(l.stream) == "RB_STATS" {
				tried = true
				sub := scanner{b: b[:len(b)], i: start}
				if l.sample, l.sampleOK = parseSampleAt(&sub); l.sampleOK {
					s.i = sub.i
					l.data = b[start:s.i]
					break
				}
			}
			ok = s.skip()
			l.data = b[start:s.i]
		default:
			ok = plainKey(key) && s.skip()
		}
		if !ok {
			return l, false
		}
		if s.lit(',') {
			continue
		}
		if !s.lit('}') {
			return l, false
		}
		s.ws()
		if tried && l.sampleOK && string(l.stream) != "RB_STATS" {
			// A second "stream" key changed it after the data: read again.
			l.sampleOK = false
		}
		return l, s.i == len(b) && l.data != nil
	}
}

func (s *scanner) peekIndex() int {
	s.ws()
	return s.i
}

// fastSample is what the fast path reads from a Sample envelope.
type fastSample struct {
	at        int64
	app, ctr  []byte
	cpu       float64
	memUsage  uint64
	memLimit  uint64
	rx, tx    float64
	probe     float64
	probeOK   bool
	hasID     bool
	hasSource bool
}

// parseSample reads a Sample envelope and checks it as events.Decode does
// (schema, kind, id, time, source, and Sample.Validate). ok is false when
// the fast path gave up or the event is not a valid Sample: the slow path
// then decides which.
func parseSample(b []byte) (fastSample, bool) {
	s := scanner{b: b}
	f, ok := parseSampleAt(&s)
	s.ws()
	return f, ok && s.i == len(b)
}

// parseSampleAt reads a Sample envelope at s.i and leaves s after it.
func parseSampleAt(s *scanner) (fastSample, bool) {
	var f fastSample
	if !s.lit('{') {
		return f, false
	}
	var schema int64
	var kindOK, hasTime, hasData bool
	for {
		key, ok := s.str()
		if !ok || !s.lit(':') {
			return f, false
		}
		switch string(key) {
		case "schema":
			schema, ok = s.int()
		case "kind":
			var k []byte
			k, ok = s.str()
			kindOK = string(k) == string(events.KindSample)
		case "id":
			var v []byte
			v, ok = s.str()
			f.hasID = len(v) > 0
		case "time":
			var v []byte
			if v, ok = s.str(); ok {
				f.at, ok = parseTime(v)
				hasTime = ok
			}
		case "source":
			var v []byte
			v, ok = s.str()
			f.hasSource = len(v) > 0
		case "data":
			ok = parseSampleData(s, &f)
			hasData = ok
		default:
			ok = plainKey(key) && s.skip()
		}
		if !ok {
			return f, false
		}
		if s.lit(',') {
			continue
		}
		if !s.lit('}') {
			return f, false
		}
		break
	}
	valid := schema == events.SchemaVersion && kindOK && f.hasID && hasTime && f.at != 0 && f.hasSource && hasData &&
		len(f.app) > 0 && len(f.ctr) > 0
	return f, valid
}

func parseSampleData(s *scanner, f *fastSample) bool {
	if !s.lit('{') {
		return false
	}
	if s.lit('}') {
		return true
	}
	for {
		key, ok := s.str()
		if !ok || !s.lit(':') {
			return false
		}
		switch string(key) {
		case "app":
			f.app, ok = s.str()
		case "container":
			f.ctr, ok = s.str()
		case "cpu_percent":
			f.cpu, ok = s.nonNeg()
		case "mem_usage_bytes":
			f.memUsage, ok = s.uint()
		case "mem_limit_bytes":
			f.memLimit, ok = s.uint()
		case "net_rx_bytes_per_second":
			f.rx, ok = s.nonNeg()
		case "net_tx_bytes_per_second":
			f.tx, ok = s.nonNeg()
		case "probe_ok":
			f.probeOK, ok = s.bool()
		case "probe_seconds":
			f.probe, ok = s.nonNeg()
		case "window_seconds", "cpu_limit_cores":
			// Validated like the rest, but the engine does not use them.
			_, ok = s.nonNeg()
		case "container_id", "state", "address", "probe_error":
			// Strings the engine does not use; a null here would be
			// accepted by encoding/json too, but give up on it anyway.
			if s.peek() != '"' {
				return false
			}
			ok = s.skip()
		default:
			ok = plainKey(key) && s.skip()
		}
		if !ok {
			return false
		}
		if s.lit(',') {
			continue
		}
		return s.lit('}')
	}
}

// nonNeg reads a number Sample.Validate accepts: finite and ≥ 0 (JSON cannot
// carry NaN or ±Inf; ParseFloat's overflow is an error here as there).
func (s *scanner) nonNeg() (float64, bool) {
	v, ok := s.float()
	return v, ok && v >= 0
}

// parseTime reads the form events are written in, RFC 3339 in UTC with
// optional fractional seconds ("2026-11-26T12:00:00.5Z"), as Unix
// nanoseconds. Other forms (an offset, a leap second) give up.
func parseTime(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	// Unix nanoseconds hold years 1678..2262; keep well inside.
	if year < 1700 || year > 2200 {
		return 0, false
	}
	var frac int64
	rest := b[19 : len(b)-1]
	if len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return 0, false
		}
		n := len(rest) - 1
		v, ok := digits(rest[1:])
		if !ok {
			return 0, false
		}
		for ; n < 9; n++ {
			v *= 10
		}
		frac = int64(v)
	}
	days := daysFromCivil(int64(year), int64(month), int64(day))
	return (days*86400+int64(hour)*3600+int64(minute)*60+int64(sec))*1e9 + frac, true
}

func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// parseScoreKey reads what placing a Score needs from its envelope: the
// container and the event time (the Sample's). A Score it gives up on is
// decoded by events.Decode.
func parseScoreKey(b []byte) (ctr []byte, at int64, ok bool) {
	s := scanner{b: b}
	if !s.lit('{') {
		return nil, 0, false
	}
	var kindOK, hasTime, hasData bool
	for {
		key, ok := s.str()
		if !ok || !s.lit(':') {
			return nil, 0, false
		}
		switch string(key) {
		case "kind":
			var k []byte
			k, ok = s.str()
			kindOK = string(k) == string(events.KindScore)
		case "time":
			var v []byte
			if v, ok = s.str(); ok {
				at, ok = parseTime(v)
				hasTime = ok
			}
		case "data":
			ctr, ok = scoreContainer(&s)
			hasData = ok
		default:
			ok = plainKey(key) && s.skip()
		}
		if !ok {
			return nil, 0, false
		}
		if s.lit(',') {
			continue
		}
		if !s.lit('}') {
			return nil, 0, false
		}
		return ctr, at, kindOK && hasTime && hasData && len(ctr) > 0
	}
}

// scoreContainer reads the container of a Score's data object.
func scoreContainer(s *scanner) ([]byte, bool) {
	var ctr []byte
	if !s.lit('{') {
		return nil, false
	}
	if s.lit('}') {
		return nil, true
	}
	for {
		k, ok := s.str()
		if !ok || !s.lit(':') {
			return nil, false
		}
		if string(k) == "container" {
			ctr, ok = s.str()
		} else {
			ok = plainKey(k) && s.skip()
		}
		if !ok {
			return nil, false
		}
		if s.lit(',') {
			continue
		}
		return ctr, s.lit('}')
	}
}

// The fastest path: a Sample line exactly as Writer and events.Encode write
// it — the keys in their order, no white space, no escape. It compares the
// fixed parts of the line as a whole and reads only the values; anything
// else (another order, an optional field it does not know, an escape) gives
// up, and parseLine reads the line.

// Fixed parts of a Sample line.
const (
	tplLine      = `{"stream":"RB_STATS","subject":"`
	tplSeq       = `","seq":`
	tplData      = `,"data":{"schema":1,"kind":"sample","id":"`
	tplTime      = `","time":"`
	tplSource    = `","source":"`
	tplApp       = `","data":{"app":"`
	tplCtr       = `","container":"`
	tplCtrID     = `","container_id":"`
	tplState     = `","state":"`
	tplAddress   = `","address":"`
	tplWindow    = `","window_seconds":`
	tplCPU       = `,"cpu_percent":`
	tplCPULimit  = `,"cpu_limit_cores":`
	tplMemUsage  = `,"mem_usage_bytes":`
	tplMemLimit  = `,"mem_limit_bytes":`
	tplRx        = `,"net_rx_bytes_per_second":`
	tplTx        = `,"net_tx_bytes_per_second":`
	tplProbeOK   = `,"probe_ok":`
	tplProbe     = `,"probe_seconds":`
	tplProbeErr  = `,"probe_error":"`
	tplEnd       = `}}}`
	tplEndErr    = `"}}}`
	tplSampleMin = len(tplLine) + len(tplData) + len(tplEnd)
)

// fixed consumes lit at s.i.
func (s *scanner) fixed(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// plain reads string bytes up to the closing quote (not consumed); an
// escape or a control byte gives up.
func (s *scanner) plain() ([]byte, bool) {
	b := s.b
	for i := s.i; i < len(b); i++ {
		if stop[b[i]] {
			if b[i] != '"' {
				return nil, false
			}
			out := b[s.i:i]
			s.i = i
			return out, true
		}
	}
	return nil, false
}

// canonicalSample reads a Sample line of the canonical form; ok is false
// when the line is not of that form or the Sample is not valid.
func canonicalSample(l []byte) (subject []byte, f fastSample, ok bool) {
	if len(l) < tplSampleMin {
		return nil, f, false
	}
	s := scanner{b: l}
	var v []byte
	if !s.fixed(tplLine) {
		return nil, f, false
	}
	if subject, ok = s.plain(); !ok || !s.fixed(tplSeq) {
		return nil, f, false
	}
	if _, ok = s.uint(); !ok || !s.fixed(tplData) {
		return nil, f, false
	}
	if v, ok = s.plain(); !ok || len(v) == 0 || !s.fixed(tplTime) {
		return nil, f, false
	}
	if v, ok = s.plain(); !ok {
		return nil, f, false
	}
	if f.at, ok = parseTime(v); !ok || f.at == 0 || !s.fixed(tplSource) {
		return nil, f, false
	}
	if v, ok = s.plain(); !ok || len(v) == 0 || !s.fixed(tplApp) {
		return nil, f, false
	}
	if f.app, ok = s.plain(); !ok || len(f.app) == 0 || !s.fixed(tplCtr) {
		return nil, f, false
	}
	if f.ctr, ok = s.plain(); !ok || len(f.ctr) == 0 || !s.fixed(tplCtrID) {
		return nil, f, false
	}
	if _, ok = s.plain(); !ok || !s.fixed(tplState) {
		return nil, f, false
	}
	if _, ok = s.plain(); !ok {
		return nil, f, false
	}
	if s.fixed(tplAddress) {
		if _, ok = s.plain(); !ok {
			return nil, f, false
		}
	}
	var x float64
	if !s.fixed(tplWindow) {
		return nil, f, false
	}
	if x, ok = s.float(); !ok || x < 0 || !s.fixed(tplCPU) {
		return nil, f, false
	}
	if f.cpu, ok = s.float(); !ok || f.cpu < 0 || !s.fixed(tplCPULimit) {
		return nil, f, false
	}
	if x, ok = s.float(); !ok || x < 0 || !s.fixed(tplMemUsage) {
		return nil, f, false
	}
	if f.memUsage, ok = s.uint(); !ok || !s.fixed(tplMemLimit) {
		return nil, f, false
	}
	if f.memLimit, ok = s.uint(); !ok || !s.fixed(tplRx) {
		return nil, f, false
	}
	if f.rx, ok = s.float(); !ok || f.rx < 0 || !s.fixed(tplTx) {
		return nil, f, false
	}
	if f.tx, ok = s.float(); !ok || f.tx < 0 || !s.fixed(tplProbeOK) {
		return nil, f, false
	}
	if f.probeOK, ok = s.bool(); !ok || !s.fixed(tplProbe) {
		return nil, f, false
	}
	if f.probe, ok = s.float(); !ok || f.probe < 0 {
		return nil, f, false
	}
	if s.fixed(tplProbeErr) {
		if _, ok = s.plain(); !ok || !s.fixed(tplEndErr) {
			return nil, f, false
		}
	} else if !s.fixed(tplEnd) {
		return nil, f, false
	}
	f.hasID, f.hasSource = true, true
	return subject, f, s.i == len(l)
}
