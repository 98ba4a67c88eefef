package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// ViewOptions bound the memory of a View. Zero fields take the defaults.
type ViewOptions struct {
	// MaxApps is how many apps are tracked; events of further apps are refused.
	MaxApps int
	// MaxWorkers is how many workers are tracked per app; the one longest
	// silent and off the queue is forgotten first.
	MaxWorkers int
	// ScorePoints is the score history kept per worker.
	ScorePoints int
	// Decisions is how many scaling decisions are kept per app.
	Decisions int
	// Timeline is how many lifecycle and config events are kept per app.
	Timeline int
	// CapacityPoints is the desired/actual history kept per app.
	CapacityPoints int
	// ProxyPoints is the proxy telemetry history kept per app.
	ProxyPoints int
	// ProxyStale is how old a proxy's last report may be and still count.
	ProxyStale time.Duration
	// WorkerStale is how long a worker that is not on the queue is still
	// listed after its last score.
	WorkerStale time.Duration
}

// Defaults of ViewOptions.
const (
	DefaultMaxApps        = 64
	DefaultMaxWorkers     = 200
	DefaultScorePoints    = 600
	DefaultDecisions      = 1000
	DefaultTimeline       = 500
	DefaultCapacityPoints = 720
	DefaultProxyPoints    = 600
	DefaultProxyStale     = 10 * time.Second
	DefaultWorkerStale    = 2 * time.Minute
)

func (o ViewOptions) withDefaults() ViewOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxApps, DefaultMaxApps)
	def(&o.MaxWorkers, DefaultMaxWorkers)
	def(&o.ScorePoints, DefaultScorePoints)
	def(&o.Decisions, DefaultDecisions)
	def(&o.Timeline, DefaultTimeline)
	def(&o.CapacityPoints, DefaultCapacityPoints)
	def(&o.ProxyPoints, DefaultProxyPoints)
	if o.ProxyStale <= 0 {
		o.ProxyStale = DefaultProxyStale
	}
	if o.WorkerStale <= 0 {
		o.WorkerStale = DefaultWorkerStale
	}
	return o
}

// ErrTooManyApps is returned by Apply for an event of an app beyond ViewOptions.MaxApps.
var ErrTooManyApps = errors.New("too many apps")

// View is the gateway's in-memory picture of every app, built from the
// events it watches: the queue, the latest score and a score history per
// worker, decisions, lifecycle facts, config changes, proxy telemetry and
// desired versus actual worker counts over time. Everything is bounded. It
// is safe for concurrent use.
type View struct {
	opts ViewOptions
	now  func() time.Time

	mu   sync.RWMutex
	apps map[string]*appState
}

// NewView returns an empty View; now is the clock that ages proxy reports
// and silent workers.
func NewView(opts ViewOptions, now func() time.Time) *View {
	if now == nil {
		now = time.Now
	}
	return &View{opts: opts.withDefaults(), now: now, apps: map[string]*appState{}}
}

type appState struct {
	queueSeq uint64
	queueRaw []byte
	queueAt  time.Time
	queue    events.QueueSnapshot

	workers map[string]*workerState

	desired     int
	desiredSeq  uint64
	desiredKnow bool

	decisions *series[[]byte] // decision envelopes
	timeline  *series[[]byte] // lifecycle and config envelopes
	capacity  *series[CapacityPoint]

	proxies   map[string]*proxyState
	proxyHist *series[ProxyPoint]

	configVersion int64
	configSeq     uint64
	updated       time.Time
}

type workerState struct {
	scoreSeq uint64
	scoreAt  time.Time
	score    events.Score
	history  *series[ScorePoint]

	phaseSeq    uint64
	phaseAt     time.Time
	phase       events.Phase
	phaseReason string

	seen time.Time // event time of the latest fact about the worker
}

type proxyState struct {
	seq    uint64
	at     time.Time
	report events.ProxyReport
}

// ScorePoint is one score of a worker, with the time in Unix milliseconds
// (compact for the dashboard's charts).
type ScorePoint struct {
	T            int64   `json:"t"`
	CPU          float64 `json:"cpu"`
	Memory       float64 `json:"mem"`
	Network      float64 `json:"net"`
	Availability float64 `json:"avail"`
	Overall      float64 `json:"overall"`
}

// CapacityPoint is the desired and actual worker count of an app at one
// time: from a queue change (actual counted on the queue) or a decision
// (the scaler's own counts).
type CapacityPoint struct {
	T        int64  `json:"t"`
	Desired  *int   `json:"desired,omitempty"`
	Actual   int    `json:"actual"`
	Starting int    `json:"starting"`
	Sundown  int    `json:"sundown"`
	Source   string `json:"source"`
}

// ProxyPoint sums the reports of the live proxies of an app at one time.
type ProxyPoint struct {
	T           int64   `json:"t"`
	InFlight    int64   `json:"in_flight"`
	RequestRate float64 `json:"requests_per_second"`
	ErrorRate   float64 `json:"errors_per_second"`
	Proxies     int     `json:"proxies"`
}

// Update says what one applied message changed.
type Update struct {
	App  string
	Kind events.Kind
	// New is false for a message the view already had (or older than what it keeps).
	New bool
	// Data is the message as received: the event envelope.
	Data []byte
}

// Apply decodes msg as an event and folds it into the view. Messages may
// come twice or out of order (history read at start races the live watch);
// the stream sequence decides what is newest. A message that is not a valid
// event is an error and changes nothing.
func (v *View) Apply(msg bus.Msg) (Update, error) {
	meta, err := events.PeekMeta(msg.Data)
	if err != nil {
		return Update{}, fmt.Errorf("apply %s seq %d: %w", msg.Subject, msg.Sequence, err)
	}
	switch meta.Kind {
	case events.KindQueue:
		return apply(v, msg, v.applyQueue)
	case events.KindScore:
		return apply(v, msg, v.applyScore)
	case events.KindDecision:
		return apply(v, msg, v.applyDecision)
	case events.KindLifecycle:
		return apply(v, msg, v.applyLifecycle)
	case events.KindProxyReport:
		return apply(v, msg, v.applyProxy)
	case events.KindConfigChanged:
		return apply(v, msg, v.applyConfig)
	}
	return Update{}, fmt.Errorf("apply %s seq %d: %w: kind %q is not one the gateway shows", msg.Subject, msg.Sequence, events.ErrWrongKind, meta.Kind)
}

func apply[T events.Payload](v *View, msg bus.Msg, f func(a *appState, msg bus.Msg, ev events.Event[T]) bool) (Update, error) {
	ev, err := events.Decode[T](msg.Data)
	if err != nil {
		return Update{}, fmt.Errorf("apply %s seq %d: %w", msg.Subject, msg.Sequence, err)
	}
	app := appName(ev.Data)
	v.mu.Lock()
	defer v.mu.Unlock()
	a, err := v.app(app)
	if err != nil {
		return Update{}, fmt.Errorf("apply %s seq %d: %w", msg.Subject, msg.Sequence, err)
	}
	isNew := f(a, msg, ev)
	if isNew && ev.Time.After(a.updated) {
		a.updated = ev.Time
	}
	return Update{App: app, Kind: ev.Kind, New: isNew, Data: msg.Data}, nil
}

func appName(p events.Payload) string {
	switch d := p.(type) {
	case events.QueueSnapshot:
		return d.App
	case events.Score:
		return d.App
	case events.Decision:
		return d.App
	case events.Lifecycle:
		return d.App
	case events.ProxyReport:
		return d.App
	case events.ConfigChanged:
		return d.App
	}
	return ""
}

// app returns the state of name, creating it while there is room. Callers hold mu.
func (v *View) app(name string) (*appState, error) {
	if a, ok := v.apps[name]; ok {
		return a, nil
	}
	if len(v.apps) >= v.opts.MaxApps {
		return nil, fmt.Errorf("%w: app %q beyond the %d tracked", ErrTooManyApps, name, v.opts.MaxApps)
	}
	a := &appState{
		workers:   map[string]*workerState{},
		decisions: newSeries[[]byte](v.opts.Decisions),
		timeline:  newSeries[[]byte](v.opts.Timeline),
		capacity:  newSeries[CapacityPoint](v.opts.CapacityPoints),
		proxies:   map[string]*proxyState{},
		proxyHist: newSeries[ProxyPoint](v.opts.ProxyPoints),
	}
	v.apps[name] = a
	return a, nil
}

// worker returns the state of a worker, creating it (and forgetting the
// longest-silent worker off the queue when full). Callers hold mu.
func (v *View) worker(a *appState, name string) *workerState {
	if w, ok := a.workers[name]; ok {
		return w
	}
	if len(a.workers) >= v.opts.MaxWorkers {
		onQueue := queueNames(a)
		var oldest string
		var oldestAt time.Time
		for n, w := range a.workers {
			if onQueue[n] {
				continue
			}
			if oldest == "" || w.seen.Before(oldestAt) || (w.seen.Equal(oldestAt) && n < oldest) {
				oldest, oldestAt = n, w.seen
			}
		}
		if oldest != "" {
			delete(a.workers, oldest)
		}
	}
	w := &workerState{history: newSeries[ScorePoint](v.opts.ScorePoints)}
	a.workers[name] = w
	return w
}

func queueNames(a *appState) map[string]bool {
	m := make(map[string]bool, len(a.queue.Items))
	for _, it := range a.queue.Items {
		m[it.Container] = true
	}
	return m
}

func (v *View) applyQueue(a *appState, msg bus.Msg, ev events.Event[events.QueueSnapshot]) bool {
	if msg.Sequence <= a.queueSeq {
		return false
	}
	a.queueSeq, a.queueRaw, a.queueAt, a.queue = msg.Sequence, msg.Data, ev.Time, ev.Data
	p := CapacityPoint{T: ev.Time.UnixMilli(), Source: "queue"}
	for _, it := range ev.Data.Items {
		switch it.State {
		case events.StateSundown:
			p.Sundown++
		case events.StateInit:
			p.Starting++
			p.Actual++
		default:
			p.Actual++
		}
	}
	if a.desiredKnow {
		d := a.desired
		p.Desired = &d
	}
	a.capacity.add(ev.Time, msg.Sequence, p)
	return true
}

func (v *View) applyScore(a *appState, msg bus.Msg, ev events.Event[events.Score]) bool {
	s := ev.Data
	w := v.worker(a, s.Container)
	added := w.history.add(ev.Time, msg.Sequence, ScorePoint{
		T: ev.Time.UnixMilli(), CPU: s.CPU, Memory: s.Memory, Network: s.Network, Availability: s.Availability, Overall: s.Overall,
	})
	newest := msg.Sequence > w.scoreSeq
	if newest {
		w.scoreSeq, w.scoreAt, w.score = msg.Sequence, ev.Time, s
	}
	if ev.Time.After(w.seen) {
		w.seen = ev.Time
	}
	return added || newest
}

func (v *View) applyDecision(a *appState, msg bus.Msg, ev events.Event[events.Decision]) bool {
	d := ev.Data
	if !a.decisions.add(ev.Time, msg.Sequence, msg.Data) {
		return false
	}
	if msg.Sequence > a.desiredSeq {
		a.desired, a.desiredSeq, a.desiredKnow = d.To, msg.Sequence, true
	}
	to := d.To
	a.capacity.add(ev.Time, msg.Sequence, CapacityPoint{
		T: ev.Time.UnixMilli(), Desired: &to, Actual: d.Inputs.Active, Starting: d.Inputs.Starting, Sundown: d.Inputs.Sundown, Source: "decision",
	})
	return true
}

func (v *View) applyLifecycle(a *appState, msg bus.Msg, ev events.Event[events.Lifecycle]) bool {
	l := ev.Data
	if !a.timeline.add(ev.Time, msg.Sequence, msg.Data) {
		return false
	}
	w := v.worker(a, l.Container)
	if msg.Sequence > w.phaseSeq {
		w.phaseSeq, w.phaseAt, w.phase = msg.Sequence, ev.Time, l.Phase
		w.phaseReason = l.Reason
		if l.Error != "" {
			w.phaseReason = l.Error
		}
	}
	if ev.Time.After(w.seen) {
		w.seen = ev.Time
	}
	return true
}

func (v *View) applyConfig(a *appState, msg bus.Msg, ev events.Event[events.ConfigChanged]) bool {
	if !a.timeline.add(ev.Time, msg.Sequence, msg.Data) {
		return false
	}
	if msg.Sequence > a.configSeq {
		a.configSeq, a.configVersion = msg.Sequence, ev.Data.Version
	}
	return true
}

func (v *View) applyProxy(a *appState, msg bus.Msg, ev events.Event[events.ProxyReport]) bool {
	r := ev.Data
	p, ok := a.proxies[r.ProxyID]
	if !ok {
		p = &proxyState{}
		a.proxies[r.ProxyID] = p
	}
	newest := msg.Sequence > p.seq
	if newest {
		p.seq, p.at, p.report = msg.Sequence, ev.Time, r
	}
	// The point sums this report and the other proxies' reports that were
	// fresh at its time.
	pt := ProxyPoint{T: ev.Time.UnixMilli()}
	addReport(&pt, r)
	for id, o := range a.proxies {
		if id == r.ProxyID || o.at.After(ev.Time) || ev.Time.Sub(o.at) > v.opts.ProxyStale {
			continue
		}
		addReport(&pt, o.report)
	}
	added := a.proxyHist.add(ev.Time, msg.Sequence, pt)
	// Proxies that stopped reporting long ago are forgotten.
	for id, o := range a.proxies {
		if ev.Time.Sub(o.at) > 30*v.opts.ProxyStale {
			delete(a.proxies, id)
		}
	}
	return newest || added
}

func addReport(pt *ProxyPoint, r events.ProxyReport) {
	pt.Proxies++
	iv := r.IntervalSeconds
	for _, b := range r.Backends {
		pt.InFlight += b.InFlight
		if iv > 0 {
			pt.RequestRate += float64(b.Requests) / iv
			pt.ErrorRate += float64(b.Errors) / iv
		}
	}
}

// AppSummary is one app at a glance.
type AppSummary struct {
	App string `json:"app"`
	// Workers counts the workers on the queue; Active, Starting and Sundown split them by state.
	Workers  int `json:"workers"`
	Active   int `json:"active"`
	Starting int `json:"starting"`
	Sundown  int `json:"sundown"`
	// Desired is the worker count the scaler last decided on; nil before any decision.
	Desired *int `json:"desired,omitempty"`
	// MeanScore is the mean overall score of the scored workers on the queue (not SUNDOWN).
	MeanScore       *float64  `json:"mean_score,omitempty"`
	QueueGeneration uint64    `json:"queue_generation"`
	QueueAt         time.Time `json:"queue_at,omitzero"`
	Proxies         int       `json:"proxies"`
	InFlight        int64     `json:"in_flight"`
	RequestRate     float64   `json:"requests_per_second"`
	ErrorRate       float64   `json:"errors_per_second"`
	ConfigVersion   int64     `json:"config_version,omitempty"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Worker is one worker as the dashboard, /stats and `rb status` show it.
type Worker struct {
	Container   string `json:"container"`
	ContainerID string `json:"container_id,omitempty"`
	Address     string `json:"address,omitempty"`
	// OnQueue is true when the worker is on the app's current queue.
	OnQueue  bool            `json:"on_queue"`
	State    events.State    `json:"state,omitempty"`
	Category events.Category `json:"category"`
	// Score and Weight are the queue's; Share is the weight's part of all
	// non-SUNDOWN weights (0..1): the share of new requests a weighted pick gives it.
	Score  float64 `json:"score"`
	Weight float64 `json:"weight"`
	Share  float64 `json:"share"`
	// Scores is the latest score event's values; ScoredAt its time.
	Scores   *ScorePoint `json:"scores,omitempty"`
	ScoredAt time.Time   `json:"scored_at,omitzero"`
	// Phase is the latest lifecycle fact, with its reason.
	Phase       events.Phase `json:"phase,omitempty"`
	PhaseAt     time.Time    `json:"phase_at,omitzero"`
	PhaseReason string       `json:"phase_reason,omitempty"`
	// Proxy telemetry summed over the live proxies.
	InFlight       int64   `json:"in_flight"`
	RequestRate    float64 `json:"requests_per_second"`
	ErrorRate      float64 `json:"errors_per_second"`
	LatencySeconds float64 `json:"latency_seconds,omitempty"`
	Ejected        bool    `json:"ejected,omitempty"`
}

// ProxyStatus is one live proxy's last report.
type ProxyStatus struct {
	ProxyID         string    `json:"proxy_id"`
	At              time.Time `json:"at"`
	QueueGeneration uint64    `json:"queue_generation"`
	Backends        int       `json:"backends"`
	InFlight        int64     `json:"in_flight"`
	RequestRate     float64   `json:"requests_per_second"`
	ErrorRate       float64   `json:"errors_per_second"`
}

// AppDetail is everything the dashboard shows of one app.
type AppDetail struct {
	Summary      AppSummary              `json:"summary"`
	Workers      []Worker                `json:"workers"`
	ScoreHistory map[string][]ScorePoint `json:"score_history"`
	Capacity     []CapacityPoint         `json:"capacity"`
	Proxy        []ProxyPoint            `json:"proxy"`
	Proxies      []ProxyStatus           `json:"proxies"`
	// Timeline holds the decision, lifecycle and config envelopes, oldest first.
	Timeline []json.RawMessage `json:"timeline"`
}

// Apps returns a summary of every app, sorted by name.
func (v *View) Apps() []AppSummary {
	v.mu.RLock()
	defer v.mu.RUnlock()
	now := v.now()
	out := make([]AppSummary, 0, len(v.apps))
	for _, name := range slices.Sorted(maps.Keys(v.apps)) {
		out = append(out, v.summary(name, v.apps[name], now))
	}
	return out
}

// Summary returns the summary of app.
func (v *View) Summary(app string) (AppSummary, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	a, ok := v.apps[app]
	if !ok {
		return AppSummary{}, false
	}
	return v.summary(app, a, v.now()), true
}

func (v *View) summary(name string, a *appState, now time.Time) AppSummary {
	s := AppSummary{App: name, QueueGeneration: a.queue.Generation, QueueAt: a.queueAt, ConfigVersion: a.configVersion, UpdatedAt: a.updated}
	var sum float64
	var n int
	for _, it := range a.queue.Items {
		s.Workers++
		switch it.State {
		case events.StateSundown:
			s.Sundown++
			continue
		case events.StateInit:
			s.Starting++
		default:
			s.Active++
		}
		if w, ok := a.workers[it.Container]; ok && w.scoreSeq > 0 {
			sum += w.score.Overall
			n++
		}
	}
	if n > 0 {
		m := sum / float64(n)
		s.MeanScore = &m
	}
	if a.desiredKnow {
		d := a.desired
		s.Desired = &d
	}
	for _, p := range v.liveProxies(a, now) {
		var pt ProxyPoint
		addReport(&pt, p.report)
		s.Proxies++
		s.InFlight += pt.InFlight
		s.RequestRate += pt.RequestRate
		s.ErrorRate += pt.ErrorRate
	}
	return s
}

// liveProxies returns the proxies whose last report is fresh at now, by id.
func (v *View) liveProxies(a *appState, now time.Time) []*proxyState {
	var out []*proxyState
	for _, id := range slices.Sorted(maps.Keys(a.proxies)) {
		p := a.proxies[id]
		if now.Sub(p.at) <= v.opts.ProxyStale {
			out = append(out, p)
		}
	}
	return out
}

// Workers returns the current workers of app: those on the queue in queue
// order, then the others that are neither removed nor long silent, by name.
func (v *View) Workers(app string) ([]Worker, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	a, ok := v.apps[app]
	if !ok {
		return nil, false
	}
	return v.workers(a, v.now()), true
}

func (v *View) workers(a *appState, now time.Time) []Worker {
	type backendSum struct {
		inFlight     int64
		req, errs    float64
		latency      float64
		latencyCount int
		ejected      bool
	}
	backends := map[string]*backendSum{}
	for _, p := range v.liveProxies(a, now) {
		for _, b := range p.report.Backends {
			s := backends[b.Container]
			if s == nil {
				s = &backendSum{}
				backends[b.Container] = s
			}
			s.inFlight += b.InFlight
			if iv := p.report.IntervalSeconds; iv > 0 {
				s.req += float64(b.Requests) / iv
				s.errs += float64(b.Errors) / iv
			}
			if b.LatencySeconds > 0 {
				s.latency += b.LatencySeconds
				s.latencyCount++
			}
			s.ejected = s.ejected || b.Ejected
		}
	}
	var total float64
	for _, it := range a.queue.Items {
		if it.State != events.StateSundown {
			total += it.Weight
		}
	}
	fill := func(wk *Worker) {
		if w, ok := a.workers[wk.Container]; ok {
			if w.scoreSeq > 0 {
				p := scorePoint(w.scoreAt, w.score)
				wk.Scores, wk.ScoredAt = &p, w.scoreAt
				if wk.ContainerID == "" {
					wk.ContainerID = w.score.ContainerID
				}
				if wk.Address == "" {
					wk.Address = w.score.Address
				}
			}
			wk.Phase, wk.PhaseAt, wk.PhaseReason = w.phase, w.phaseAt, w.phaseReason
		}
		if b, ok := backends[wk.Container]; ok {
			wk.InFlight, wk.RequestRate, wk.ErrorRate, wk.Ejected = b.inFlight, b.req, b.errs, b.ejected
			if b.latencyCount > 0 {
				wk.LatencySeconds = b.latency / float64(b.latencyCount)
			}
		}
	}
	out := make([]Worker, 0, len(a.workers))
	onQueue := map[string]bool{}
	for _, it := range SortQueue(a.queue.Items) {
		onQueue[it.Container] = true
		wk := Worker{Container: it.Container, Address: it.Address, OnQueue: true, State: it.State,
			Category: it.Category, Score: it.Score, Weight: it.Weight}
		if it.State == events.StateSundown {
			wk.Category = events.CategorySundown
		} else if total > 0 {
			wk.Share = it.Weight / total
		}
		fill(&wk)
		out = append(out, wk)
	}
	var others []Worker
	for name, w := range a.workers {
		if onQueue[name] {
			continue
		}
		switch w.phase {
		case events.PhaseRemoved, events.PhaseDied, events.PhaseFailed:
			continue
		}
		if w.scoreSeq == 0 || now.Sub(w.seen) > v.opts.WorkerStale {
			continue
		}
		wk := Worker{Container: name, Category: w.score.Category, Score: w.score.Overall}
		fill(&wk)
		others = append(others, wk)
	}
	sort.Slice(others, func(i, j int) bool { return others[i].Container < others[j].Container })
	return append(out, others...)
}

func scorePoint(at time.Time, s events.Score) ScorePoint {
	return ScorePoint{T: at.UnixMilli(), CPU: s.CPU, Memory: s.Memory, Network: s.Network, Availability: s.Availability, Overall: s.Overall}
}

// SortQueue returns a copy of items in the prototype's order: SUNDOWN
// last, the others by score descending; ties keep the queue's order.
func SortQueue(items []events.QueueItem) []events.QueueItem {
	out := slices.Clone(items)
	slices.SortStableFunc(out, func(a, b events.QueueItem) int {
		as, bs := a.State == events.StateSundown, b.State == events.StateSundown
		switch {
		case as != bs:
			if as {
				return 1
			}
			return -1
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	return out
}

// Queue returns the envelope of app's current queue event as received.
func (v *View) Queue(app string) ([]byte, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	a, ok := v.apps[app]
	if !ok || a.queueSeq == 0 {
		return nil, false
	}
	return a.queueRaw, true
}

// LegacyItem is one entry of the prototype's WebSocket array.
type LegacyItem struct {
	DNSName  string          `json:"dns_name"`
	Score    float64         `json:"score"`
	Category events.Category `json:"utilization_category"`
}

// LegacyQueue returns app's queue in the prototype's wire format (SUNDOWN
// last, the others by score descending); ok is false before any queue.
func (v *View) LegacyQueue(app string) ([]LegacyItem, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	a, ok := v.apps[app]
	if !ok || a.queueSeq == 0 {
		return nil, false
	}
	out := make([]LegacyItem, 0, len(a.queue.Items))
	for _, it := range SortQueue(a.queue.Items) {
		cat := it.Category
		switch {
		case it.State == events.StateSundown:
			cat = events.CategorySundown
		case it.State == events.StateInit && cat == "":
			cat = events.CategoryInit
		}
		out = append(out, LegacyItem{DNSName: it.Container, Score: it.Score, Category: cat})
	}
	return out, true
}

// StatsItem is one entry of the prototype's GET /stats.
type StatsItem struct {
	ID                string          `json:"id"`
	Name              string          `json:"name"`
	CPUScore          float64         `json:"cpu_score"`
	MemoryScore       float64         `json:"memory_score"`
	NetworkScore      float64         `json:"network_score"`
	AvailabilityScore float64         `json:"availability_score"`
	OverallScore      float64         `json:"overall_score"`
	Category          events.Category `json:"utilization_category"`
}

// Stats returns app's workers in the prototype's /stats format. A worker
// not scored yet shows 100 everywhere, as the prototype's INIT did; id is
// the container id when known, else the name.
func (v *View) Stats(app string) []StatsItem {
	ws, _ := v.Workers(app)
	out := make([]StatsItem, 0, len(ws))
	for _, w := range ws {
		it := StatsItem{ID: w.ContainerID, Name: w.Container, Category: w.Category,
			CPUScore: 100, MemoryScore: 100, NetworkScore: 100, AvailabilityScore: 100, OverallScore: 100}
		if it.ID == "" {
			it.ID = w.Container
		}
		if w.Scores != nil {
			s := w.Scores
			it.CPUScore, it.MemoryScore, it.NetworkScore, it.AvailabilityScore, it.OverallScore = s.CPU, s.Memory, s.Network, s.Availability, s.Overall
		}
		if it.Category == "" {
			it.Category = events.CategoryInit
		}
		out = append(out, it)
	}
	return out
}

// WorkerScores is a worker's latest score event and its history.
type WorkerScores struct {
	Container string          `json:"container"`
	At        time.Time       `json:"at"`
	Score     events.Score    `json:"score"`
	History   []ScorePoint    `json:"history,omitempty"`
	Category  events.Category `json:"utilization_category"`
}

// Scores returns the latest score of every worker of app that has one, by
// name, with up to points history points each (0: none, negative: all).
func (v *View) Scores(app string, points int) ([]WorkerScores, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	a, ok := v.apps[app]
	if !ok {
		return nil, false
	}
	out := []WorkerScores{}
	for _, name := range slices.Sorted(maps.Keys(a.workers)) {
		w := a.workers[name]
		if w.scoreSeq == 0 {
			continue
		}
		ws := WorkerScores{Container: name, At: w.scoreAt, Score: w.score, Category: w.score.Category}
		if points != 0 {
			ws.History = tail(w.history.since(time.Time{}), points)
		}
		out = append(out, ws)
	}
	return out, true
}

func tail[T any](s []T, n int) []T {
	if n < 0 || len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Timeline kinds beyond decisions that Decisions can include.
const (
	IncludeLifecycle = "lifecycle"
	IncludeConfig    = "config"
)

// Decisions returns the decision envelopes of app at or after since (zero:
// all kept), oldest first, merged with lifecycle and/or config envelopes
// when asked.
func (v *View) Decisions(app string, since time.Time, lifecycle, config bool) ([]json.RawMessage, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	a, ok := v.apps[app]
	if !ok {
		return nil, false
	}
	return timeline(a, since, lifecycle, config), true
}

func timeline(a *appState, since time.Time, lifecycle, config bool) []json.RawMessage {
	type entry struct {
		at  time.Time
		seq uint64
		raw []byte
	}
	var all []entry
	for _, p := range a.decisions.items {
		if !p.at.Before(since) {
			all = append(all, entry{p.at, p.key, p.v})
		}
	}
	if lifecycle || config {
		for _, p := range a.timeline.items {
			if p.at.Before(since) {
				continue
			}
			m, err := events.PeekMeta(p.v)
			if err != nil {
				continue
			}
			if (m.Kind == events.KindLifecycle && lifecycle) || (m.Kind == events.KindConfigChanged && config) {
				all = append(all, entry{p.at, p.key, p.v})
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].at.Equal(all[j].at) {
			return all[i].at.Before(all[j].at)
		}
		return all[i].seq < all[j].seq
	})
	out := make([]json.RawMessage, len(all))
	for i, e := range all {
		out[i] = e.raw
	}
	return out
}

// Detail returns everything the dashboard shows of app, with up to points
// score history points per worker (negative: all).
func (v *View) Detail(app string, points int) (AppDetail, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	a, ok := v.apps[app]
	if !ok {
		return AppDetail{}, false
	}
	now := v.now()
	d := AppDetail{
		Summary:      v.summary(app, a, now),
		Workers:      v.workers(a, now),
		ScoreHistory: map[string][]ScorePoint{},
		Capacity:     a.capacity.since(time.Time{}),
		Proxy:        a.proxyHist.since(time.Time{}),
		Proxies:      []ProxyStatus{},
		Timeline:     timeline(a, time.Time{}, true, true),
	}
	for _, w := range d.Workers {
		if ws, ok := a.workers[w.Container]; ok && ws.history.len() > 0 {
			d.ScoreHistory[w.Container] = tail(ws.history.since(time.Time{}), points)
		}
	}
	for _, p := range v.liveProxies(a, now) {
		var pt ProxyPoint
		addReport(&pt, p.report)
		d.Proxies = append(d.Proxies, ProxyStatus{ProxyID: p.report.ProxyID, At: p.at, QueueGeneration: p.report.QueueGeneration,
			Backends: len(p.report.Backends), InFlight: pt.InFlight, RequestRate: pt.RequestRate, ErrorRate: pt.ErrorRate})
	}
	return d, true
}
