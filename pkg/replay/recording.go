package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
)

// Sample is one recorded Sample, kept compact: only what scoring reads, the
// container as an index into Recording.Containers, the event time in Unix
// nanoseconds. A day of 100 workers at 1 Hz is 8.64 M of them.
type Sample struct {
	At       int64
	Ctr      uint32
	ProbeOK  bool
	CPU      float64
	MemUsage uint64
	MemLimit uint64
	Rx, Tx   float64
	Probe    float64
}

// Event is any recorded event other than a Sample: a decision, a lifecycle
// fact, a config change or a proxy report (the other fields are zero).
type Event struct {
	// Pos places the event in the timeline: it comes after Samples[:Pos]
	// and before Samples[Pos].
	Pos    int
	At     int64
	Kind   events.Kind
	Stream string
	Seq    uint64
	ID     string

	Decision  events.Decision
	Lifecycle events.Lifecycle
	Config    events.ConfigChanged
	Proxy     events.ProxyReport

	// scores counts the scores of its chunk read before it (Builder).
	scores int
}

// Time is the event time.
func (e *Event) Time() time.Time { return fromNanos(e.At) }

// Recording is the recorded history of one app, ready to replay: its
// Samples in RB_STATS order, and every other event merged with them into one
// timeline (see Event.Pos). It is read-only once built, and shared by every
// replay that runs on it.
type Recording struct {
	App        string
	Containers []string
	Samples    []Sample
	Events     []Event
	// Skipped counts what was left out, by reason ("other app",
	// "malformed sample", "score (recomputed)", ...).
	Skipped map[string]int
	// OtherApps counts the Samples of other apps, so an empty replay can say
	// which apps the recording holds.
	OtherApps map[string]int
	// Meta says which range an export (or a Fetch) holds; nil when unknown.
	Meta *ExportMeta
}

// Span is the first and last event time of the recording (zero when empty).
func (r *Recording) Span() (first, last time.Time) {
	lo, hi := int64(0), int64(0)
	take := func(at int64) {
		if lo == 0 || at < lo {
			lo = at
		}
		if at > hi {
			hi = at
		}
	}
	for i := range r.Samples {
		take(r.Samples[i].At)
	}
	for i := range r.Events {
		take(r.Events[i].At)
	}
	if lo == 0 {
		return time.Time{}, time.Time{}
	}
	return fromNanos(lo), fromNanos(hi)
}

// Count returns how many events of a kind the recording holds.
func (r *Recording) Count(k events.Kind) int {
	if k == events.KindSample {
		return len(r.Samples)
	}
	n := 0
	for i := range r.Events {
		if r.Events[i].Kind == k {
			n++
		}
	}
	return n
}

func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// ErrNoSamples is returned when a recording has no Sample of its app.
var ErrNoSamples = errors.New("no samples of the app in the recording")

// Check returns ErrNoSamples, naming the apps the recording does hold, when
// there is nothing to replay.
func (r *Recording) Check() error {
	if len(r.Samples) > 0 {
		return nil
	}
	if len(r.OtherApps) == 0 {
		return fmt.Errorf("app %q: %w (and none of any other app)", r.App, ErrNoSamples)
	}
	apps := make([]string, 0, len(r.OtherApps))
	for a, n := range r.OtherApps {
		apps = append(apps, fmt.Sprintf("%s (%d samples)", a, n))
	}
	sort.Strings(apps)
	return fmt.Errorf("app %q: %w; it holds %s (choose one with --app)", r.App, ErrNoSamples, strings.Join(apps, ", "))
}

// Builder assembles a Recording from export lines or stream messages, in
// the order they were stored (the order rb export writes and Fetch reads:
// every stream in its order, the streams merged by the time the server
// stored each message). That order is the nearest the recording has to the
// order the live scaler took its inputs in, so the timeline keeps it: an
// event comes after the Samples read before it. When the recording holds
// RB_SCORES, a Sample is placed where its Score was stored instead — the
// scaler stepped the Score, which the scorer published a little after the
// Sample — so a proxy report or a fact stored in between comes first, as
// it came first to the scaler.
//
// It is not safe for concurrent use; Load parses in parallel with one chunk
// per goroutine and adds the chunks in order.
type Builder struct {
	rec     *Recording
	pending *chunk
	index   map[string]uint32
	// placed counts the Samples whose Score was read (RB_SCORES): events
	// are placed after them. unscored maps a Sample not yet scored, by
	// container and time, to its index. byScores is set by the first Score.
	byScores bool
	placed   int
	unscored map[sampleKey]int
}

// sampleKey identifies a Sample by container and event time, as its Score
// (same container, the Sample's event time) does.
type sampleKey struct {
	ctr uint32
	at  int64
}

// NewBuilder starts a Recording of app.
func NewBuilder(app string) *Builder {
	return &Builder{
		rec:   &Recording{App: app, Skipped: map[string]int{}, OtherApps: map[string]int{}},
		index: map[string]uint32{},
	}
}

// AddLine adds one export line.
func (b *Builder) AddLine(l []byte) { b.chunk().line(l) }

// AddMessage adds one stored message (stream, subject, sequence, data).
func (b *Builder) AddMessage(stream, subject string, seq uint64, data []byte) {
	b.chunk().message([]byte(stream), []byte(subject), seq, data)
}

func (b *Builder) chunk() *chunk {
	if b.pending == nil {
		b.pending = newChunk(b.rec.App)
	}
	return b.pending
}

// addChunk appends a parsed chunk, mapping its container indices and
// placing its events.
func (b *Builder) addChunk(c *chunk) {
	if p := b.pending; p != nil && p != c {
		b.pending = nil
		b.addChunk(p)
	}
	if b.rec.Meta == nil {
		b.rec.Meta = c.meta
	}
	remap := make([]uint32, len(c.names))
	for i, n := range c.names {
		g, ok := b.index[n]
		if !ok {
			g = uint32(len(b.rec.Containers))
			b.index[n] = g
			b.rec.Containers = append(b.rec.Containers, n)
		}
		remap[i] = g
	}
	base := len(b.rec.Samples)
	// Walk the chunk's messages in read order: the samples (by count), the
	// scores and the events, each knowing how many came before it.
	si, ki := 0, 0
	addSamples := func(upTo int) {
		for ; si < upTo; si++ {
			s := c.samples[si]
			s.Ctr = remap[s.Ctr]
			if b.byScores {
				b.unscored[sampleKey{s.Ctr, s.At}] = len(b.rec.Samples)
			}
			b.rec.Samples = append(b.rec.Samples, s)
		}
	}
	addScores := func(upTo int) {
		for ; ki < upTo; ki++ {
			sc := c.scores[ki]
			addSamples(sc.samples)
			if !b.byScores {
				// From the first Score on, Samples are placed by their
				// Scores; those read before it count as placed.
				b.byScores, b.placed = true, len(b.rec.Samples)
				b.unscored = map[sampleKey]int{}
			}
			k := sampleKey{remap[sc.ctr], sc.at}
			if i, ok := b.unscored[k]; ok {
				delete(b.unscored, k)
				b.placed = max(b.placed, i+1)
			}
		}
	}
	for _, e := range c.events {
		addScores(e.scores)
		addSamples(e.Pos)
		if b.byScores {
			e.Pos = b.placed
		} else {
			e.Pos = base + e.Pos
		}
		b.rec.Events = append(b.rec.Events, e)
	}
	addScores(len(c.scores))
	addSamples(len(c.samples))
	for k, n := range c.skipped {
		b.rec.Skipped[k] += n
	}
	for k, n := range c.otherApps {
		b.rec.OtherApps[k] += n
	}
}

// Finish returns the Recording.
func (b *Builder) Finish() *Recording {
	if p := b.pending; p != nil {
		b.pending = nil
		b.addChunk(p)
	}
	if b.rec.Events == nil {
		b.rec.Events = []Event{}
	}
	return b.rec
}

// chunk is the parse of a run of lines, with its own container table.
// Events and scores record how many of its samples (and scores) were read
// before them.
type chunk struct {
	app       string
	names     []string
	index     map[string]uint32
	samples   []Sample
	scores    []scoreRef
	events    []Event
	skipped   map[string]int
	otherApps map[string]int
	meta      *ExportMeta
}

// scoreRef is a Score read from RB_SCORES: which Sample it scores, and how
// many samples of the chunk were read before it.
type scoreRef struct {
	ctr     uint32
	at      int64
	samples int
}

func newChunk(app string) *chunk {
	return &chunk{app: app, index: map[string]uint32{}, skipped: map[string]int{}, otherApps: map[string]int{}}
}

// lines parses every line of data.
func (c *chunk) lines(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		if len(trimSpace(l)) == 0 {
			continue
		}
		c.line(l)
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

func (c *chunk) line(l []byte) {
	if subject, f, ok := canonicalSample(l); ok {
		if subjectIs(subject, f.app, f.ctr) {
			c.add(f.app, f.ctr, Sample{At: f.at, ProbeOK: f.probeOK, CPU: f.cpu, MemUsage: f.memUsage, MemLimit: f.memLimit,
				Rx: f.rx, Tx: f.tx, Probe: f.probe})
			return
		}
	}
	pl, ok := parseLine(l)
	if !ok {
		var r Record
		if err := json.Unmarshal(l, &r); err != nil || r.Data == nil {
			c.skipped["unreadable line"]++
			return
		}
		pl = line{stream: []byte(r.Stream), subject: []byte(r.Subject), seq: r.Seq, data: r.Data}
	}
	if pl.sampleOK {
		c.fastSample(pl.subject, &pl.sample, pl.data)
		return
	}
	c.message(pl.stream, pl.subject, pl.seq, pl.data)
}

// message adds one stored message. Samples are read by the fast path when
// it can; everything else, and every Sample it gives up on, is decoded and
// validated by events.Decode, as the live consumers do. What the live
// consumers would dead-letter is skipped and counted.
func (c *chunk) message(stream, subject []byte, seq uint64, data []byte) {
	switch string(stream) {
	case events.StreamStats:
		c.sample(subject, data)
		return
	case events.StreamScores:
		if ctr, at, ok := parseScoreKey(data); ok {
			c.score(ctr, at)
			return
		}
	case ExportStream:
		var m ExportMeta
		if err := json.Unmarshal(data, &m); err != nil {
			c.skipped["unreadable export header"]++
		} else if c.meta == nil {
			c.meta = &m
		}
		return
	}
	meta, err := events.PeekMeta(data)
	if err != nil {
		c.skipped["malformed event"]++
		return
	}
	e := Event{Kind: meta.Kind, Stream: string(stream), Seq: seq}
	var app string
	switch meta.Kind {
	case events.KindDecision:
		ev, err := events.Decode[events.Decision](data)
		if err != nil {
			c.skipped["malformed decision"]++
			return
		}
		e.At, e.ID, e.Decision, app = ev.Time.UnixNano(), ev.ID, ev.Data, ev.Data.App
	case events.KindLifecycle:
		ev, err := events.Decode[events.Lifecycle](data)
		if err != nil {
			c.skipped["malformed lifecycle"]++
			return
		}
		e.At, e.ID, e.Lifecycle, app = ev.Time.UnixNano(), ev.ID, ev.Data, ev.Data.App
	case events.KindConfigChanged:
		ev, err := events.Decode[events.ConfigChanged](data)
		if err != nil {
			c.skipped["malformed config_changed"]++
			return
		}
		e.At, e.ID, e.Config, app = ev.Time.UnixNano(), ev.ID, ev.Data, ev.Data.App
	case events.KindProxyReport:
		ev, err := events.Decode[events.ProxyReport](data)
		if err != nil {
			c.skipped["malformed proxy_report"]++
			return
		}
		e.At, e.ID, e.Proxy, app = ev.Time.UnixNano(), ev.ID, ev.Data, ev.Data.App
	case events.KindScore:
		// Recomputed from the Sample; its place in the read order is kept.
		ev, err := events.Decode[events.Score](data)
		if err != nil {
			c.skipped["malformed score"]++
			return
		}
		if ev.Data.App == c.app {
			c.score([]byte(ev.Data.Container), ev.Time.UnixNano())
		}
		return
	default:
		c.skipped["kind "+string(meta.Kind)]++
		return
	}
	if app != c.app {
		c.skipped["other app"]++
		return
	}
	e.Pos, e.scores = len(c.samples), len(c.scores)
	c.events = append(c.events, e)
}

// score notes a Score of the app: its container and time.
func (c *chunk) score(ctr []byte, at int64) {
	idx, seen := c.index[string(ctr)]
	if !seen {
		idx = uint32(len(c.names))
		name := string(ctr)
		c.index[name] = idx
		c.names = append(c.names, name)
	}
	c.scores = append(c.scores, scoreRef{ctr: idx, at: at, samples: len(c.samples)})
}

func (c *chunk) sample(subject, data []byte) {
	f, ok := parseSample(data)
	if !ok {
		c.slowSample(subject, data)
		return
	}
	c.fastSample(subject, &f, data)
}

// fastSample adds a Sample the fast path read, after the scorer's subject
// check (done by the slow path when the tokens need escaping).
func (c *chunk) fastSample(subject []byte, f *fastSample, data []byte) {
	if !subjectIs(subject, f.app, f.ctr) {
		c.slowSample(subject, data)
		return
	}
	c.add(f.app, f.ctr, Sample{At: f.at, ProbeOK: f.probeOK, CPU: f.cpu, MemUsage: f.memUsage, MemLimit: f.memLimit,
		Rx: f.rx, Tx: f.tx, Probe: f.probe})
}

// slowSample decodes and checks a Sample as the live scorer does.
func (c *chunk) slowSample(subject, data []byte) {
	ev, err := events.Decode[events.Sample](data)
	if err != nil {
		c.skipped["malformed sample"]++
		return
	}
	toks, err := events.Tokens(events.PrefixStats, string(subject))
	if err != nil || len(toks) != 2 || toks[0] != ev.Data.App || toks[1] != ev.Data.Container {
		c.skipped["sample on the wrong subject"]++
		return
	}
	if y := ev.Time.Year(); y < 1700 || y > 2200 {
		c.skipped["sample time out of range"]++
		return
	}
	d := ev.Data
	c.add([]byte(d.App), []byte(d.Container), Sample{At: ev.Time.UnixNano(), ProbeOK: d.ProbeOK, CPU: d.CPUPercent,
		MemUsage: d.MemUsage, MemLimit: d.MemLimit, Rx: d.NetRxBps, Tx: d.NetTxBps, Probe: d.ProbeSeconds})
}

func (c *chunk) add(app, ctr []byte, s Sample) {
	if string(app) != c.app {
		c.otherApps[string(app)]++
		return
	}
	idx, seen := c.index[string(ctr)]
	if !seen {
		idx = uint32(len(c.names))
		name := string(ctr)
		c.index[name] = idx
		c.names = append(c.names, name)
	}
	s.Ctr = idx
	c.samples = append(c.samples, s)
}

// subjectIs says whether subject is rb.stats.<app>.<ctr> with both tokens
// needing no escape; anything else is left to the slow path's check.
func subjectIs(subject, app, ctr []byte) bool {
	p := events.PrefixStats
	if len(subject) != len(p)+len(app)+1+len(ctr) || string(subject[:len(p)]) != p {
		return false
	}
	rest := subject[len(p):]
	if string(rest[:len(app)]) != string(app) || rest[len(app)] != '.' || string(rest[len(app)+1:]) != string(ctr) {
		return false
	}
	return validToken(app) && validToken(ctr)
}

func validToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%' {
			return false
		}
	}
	return len(b) > 0
}

// TrimAfter drops, in place, every Sample and event with an event time
// after to (the end of a range asked of a file that holds more).
func (r *Recording) TrimAfter(to time.Time) {
	end := to.UnixNano()
	// kept[i] is how many Samples before i are kept, to move the events.
	kept := make([]int, len(r.Samples)+1)
	n := 0
	for i := range r.Samples {
		kept[i] = n
		if r.Samples[i].At <= end {
			r.Samples[n] = r.Samples[i]
			n++
		}
	}
	kept[len(r.Samples)] = n
	r.Samples = r.Samples[:n]
	m := 0
	for i := range r.Events {
		if r.Events[i].At <= end {
			e := r.Events[i]
			e.Pos = kept[e.Pos]
			r.Events[m] = e
			m++
		}
	}
	clear(r.Events[m:])
	r.Events = r.Events[:m]
}
