package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/balance"
)

// route is what a request needs of its app: the table and, parallel to its
// backends, their connection pools and queue states. It is immutable.
type route struct {
	table  *balance.Table
	pools  []*pool
	states []events.State
	gen    uint64
}

// departed is a backend that left the queue with requests in flight: it is
// reported until they are done.
type departed struct {
	id, addr string
	stats    *balance.Stats
	pool     *pool
}

// appState is one app: its current route and policy, read by requests, and
// what the single writer (queue events, the cold start) and the reporter
// keep under mu.
type appState struct {
	name      string
	noBackend []byte // the JSON body of a 503
	route     atomic.Pointer[route]
	policy    atomic.Uint32 // balance.Policy

	// Per-app metric children, resolved once.
	byClass  [6]prometheus.Counter // by status class; 0: no answer
	duration prometheus.Observer

	mu         sync.Mutex
	fromNATS   bool             // a queue came from NATS: the Redis snapshot is stale
	pools      map[string]*pool // by address
	firstSeen  map[string]int64 // by backend ID, unix nanos
	departed   []departed       // left the queue with requests in flight
	reported   map[*balance.Stats]reported
	cfgVersion int64
}

// reported is what the last report said of a backend, to report deltas.
type reported struct {
	requests, errors uint64
	ejectedUntil     int64
}

func newAppState(name string, policy balance.Policy, m *metrics) *appState {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
		App   string `json:"app"`
	}{"no backend available", name})
	a := &appState{
		name: name, noBackend: body,
		pools: map[string]*pool{}, firstSeen: map[string]int64{}, reported: map[*balance.Stats]reported{},
	}
	a.policy.Store(uint32(policy))
	for i := range a.byClass {
		a.byClass[i] = m.requests.WithLabelValues(name, classNames[i])
	}
	a.duration = m.duration.WithLabelValues(name)
	return a
}

// picker returns the route's picker for the app's current policy.
func (a *appState) picker(r *route) balance.Picker {
	return r.table.Picker(balance.Policy(a.policy.Load()))
}

// apply builds a route from a queue and swaps it in. A queue from the Redis
// snapshot (fromNATS false) is applied only while none came from NATS.
// Backends listed for the first time after the app's first route, and INIT
// backends, ramp up from when this proxy first saw them.
func (s *Service) apply(a *appState, q events.QueueSnapshot, fromNATS bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !fromNATS && a.fromNATS {
		return nil
	}
	now := s.now().UnixNano()
	prev := a.route.Load()
	backends := make([]balance.Backend, 0, len(q.Items))
	states := make([]events.State, 0, len(q.Items))
	seen := make(map[string]bool, len(q.Items))
	for _, it := range q.Items {
		if seen[it.Container] {
			s.warnOnce("queue-dup/"+a.name, "queue lists a worker twice; the first entry is used", "app", a.name, "container", it.Container)
			continue
		}
		seen[it.Container] = true
		b := balance.Backend{ID: it.Container, Address: it.Address, Weight: it.Weight}
		switch it.State {
		case events.StateSundown:
			b.State = balance.Sundown
		case events.StateInit:
			b.State = balance.Init
		}
		first, known := a.firstSeen[it.Container]
		if !known {
			first = 0
			if prev != nil || it.State == events.StateInit {
				first = now
			}
			a.firstSeen[it.Container] = first
		}
		b.Added = first
		backends = append(backends, b)
		states = append(states, it.State)
	}
	var prevTable *balance.Table
	if prev != nil {
		prevTable = prev.table
	}
	t, err := balance.NewTable(backends, prevTable, s.balOpts)
	if err != nil {
		return fmt.Errorf("apply queue of %s generation %d: %w", a.name, q.Generation, err)
	}
	r := &route{table: t, pools: make([]*pool, len(backends)), states: states, gen: q.Generation}
	for _, b := range t.Backends() {
		p := a.pools[b.Address]
		if p == nil {
			p = s.newPool(b.Address)
			a.pools[b.Address] = p
		}
		r.pools[b.Index()] = p
	}
	for _, it := range q.Items {
		if it.ProbeSeconds > 0 && it.State != events.StateSundown {
			t.ObserveProbe(it.Container, time.Duration(math.Min(it.ProbeSeconds, 3600)*float64(time.Second)), now)
		}
	}
	// Backends that left keep their Stats (and pool) while requests run.
	if prev != nil {
		for _, b := range prev.table.Backends() {
			if t.Lookup(b.ID) != nil {
				continue
			}
			delete(a.firstSeen, b.ID)
			a.departed = append(a.departed, departed{id: b.ID, addr: b.Address, stats: b.Stats(), pool: prev.pools[b.Index()]})
		}
	}
	// A departed backend that is listed again is not departed.
	kept := a.departed[:0]
	for _, d := range a.departed {
		if t.Lookup(d.id) == nil {
			kept = append(kept, d)
		}
	}
	a.departed = kept
	a.dropUnusedPools(r)
	a.fromNATS = a.fromNATS || fromNATS
	a.route.Store(r)
	s.m.generation.WithLabelValues(a.name).Set(float64(q.Generation))
	s.m.tables.WithLabelValues(a.name).Inc()
	s.log.Debug("route updated", "app", a.name, "generation", q.Generation, "backends", len(backends), "eligible", t.Eligible(), "nats", fromNATS)
	return nil
}

// dropUnusedPools closes the idle connections of pools no backend of r nor
// any departed backend uses. Requests still holding such a pool (picked from
// the previous route) work: a HostClient dials again when it must.
func (a *appState) dropUnusedPools(r *route) {
	for addr, p := range a.pools {
		used := false
		for _, q := range r.pools {
			if q == p {
				used = true
				break
			}
		}
		for _, d := range a.departed {
			if d.pool == p {
				used = true
			}
		}
		if !used {
			p.hc.CloseIdleConnections()
			delete(a.pools, addr)
		}
	}
}

// inFlight counts the app's requests in flight, departed backends included.
func (a *appState) inFlight() int64 {
	var n int64
	if r := a.route.Load(); r != nil {
		for _, b := range r.table.Backends() {
			n += b.Stats().InFlight()
		}
	}
	a.mu.Lock()
	for _, d := range a.departed {
		n += d.stats.InFlight()
	}
	a.mu.Unlock()
	return n
}

// appFor maps a Host header to its app: the exact host (lower case), then
// the host without its port, else the default app.
func (s *Service) appFor(host []byte) *appState {
	if len(s.hosts) == 0 || len(host) == 0 {
		return s.dflt
	}
	var buf [256]byte
	if len(host) > len(buf) {
		return s.dflt
	}
	h := buf[:len(host)]
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h[i] = c
	}
	if a, ok := s.hosts[string(h)]; ok {
		return a
	}
	if i := bytes.LastIndexByte(h, ':'); i > 0 && i > bytes.LastIndexByte(h, ']') {
		if a, ok := s.hosts[string(h[:i])]; ok {
			return a
		}
	}
	return s.dflt
}

// pool is the connection pool of one worker address.
type pool struct {
	addr string
	hc   *fasthttp.HostClient
}

func (s *Service) newPool(addr string) *pool {
	timeout := s.cfg.Timeout
	dial := s.dial
	return &pool{addr: addr, hc: &fasthttp.HostClient{
		Addr: addr,
		DialTimeout: func(addr string, d time.Duration) (net.Conn, error) {
			if d <= 0 || d > maxConnectTimeout {
				d = min(timeout, maxConnectTimeout)
			}
			c, err := dial(addr, d)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		MaxConns:                 maxConnsPerBackend,
		MaxIdleConnDuration:      idleConnTimeout,
		MaxConnWaitTimeout:       timeout,
		ReadBufferSize:           maxHeaderBytes,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		ConnPoolStrategy:         fasthttp.LIFO,
	}}
}
