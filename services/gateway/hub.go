package gateway

import (
	"context"
	"sync"
)

// Topics a /ws/v1 client can ask for (?events=), one per event kind shown.
const (
	TopicQueue     = "queue"
	TopicScore     = "score"
	TopicScale     = "scale"
	TopicLifecycle = "lifecycle"
	TopicProxy     = "proxy"
	TopicConfig    = "config"
)

// allTopics lists every topic, in the order the docs give them.
var allTopics = []string{TopicQueue, TopicScore, TopicScale, TopicLifecycle, TopicProxy, TopicConfig}

// Endpoints, as metric labels.
const (
	endpointLegacy = "ws"
	endpointV1     = "ws_v1"
)

// Reasons a client is dropped, as metric labels.
const (
	dropSlow  = "slow"
	dropWrite = "write_error"
	dropPing  = "ping_timeout"
)

// outbound is one message for the clients: an event envelope on a topic,
// and for queue changes the prototype's array as well.
type outbound struct {
	app    string
	topic  string
	data   []byte
	legacy []byte
}

// client is one WebSocket connection's subscription. Its send buffer is
// bounded: the hub never waits for a client, it drops one whose buffer is full.
type client struct {
	endpoint string
	app      string          // legacy: the app; v1: "" for every app
	topics   map[string]bool // v1 only
	send     chan []byte
	drop     context.CancelFunc
	reason   string // why it was dropped, set under the hub's lock
}

func (c *client) wants(m outbound) []byte {
	if c.app != "" && c.app != m.app {
		return nil
	}
	if c.endpoint == endpointLegacy {
		return m.legacy
	}
	if c.topics[m.topic] {
		return m.data
	}
	return nil
}

// hub fans messages out to the connected clients.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	metrics *metrics
}

func newHub(m *metrics) *hub {
	return &hub{clients: map[*client]struct{}{}, metrics: m}
}

// register adds c and queues initial for it, atomically with respect to
// publish: a change is either in initial or published after it.
func (h *hub) register(c *client, initial func() [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range initial() {
		select {
		case c.send <- b:
		default:
		}
	}
	h.clients[c] = struct{}{}
	h.metrics.wsClients.WithLabelValues(c.endpoint).Inc()
}

func (h *hub) unregister(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		h.metrics.wsClients.WithLabelValues(c.endpoint).Dec()
	}
}

// publish queues m for every client that wants it; a client whose buffer
// is full is dropped on the spot.
func (h *hub) publish(m outbound) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		b := c.wants(m)
		if b == nil {
			continue
		}
		select {
		case c.send <- b:
		default:
			h.dropLocked(c, dropSlow)
		}
	}
}

// dropLocked ends c's connection; callers hold mu.
func (h *hub) dropLocked(c *client, reason string) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	c.reason = reason
	h.metrics.wsClients.WithLabelValues(c.endpoint).Dec()
	h.metrics.wsDropped.WithLabelValues(c.endpoint, reason).Inc()
	c.drop()
}

func (h *hub) dropClient(c *client, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(c, reason)
}

// count returns the number of clients of endpoint.
func (h *hub) count(endpoint string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for c := range h.clients {
		if c.endpoint == endpoint {
			n++
		}
	}
	return n
}

// wantsLegacy reports whether any legacy client follows app, so the array
// is only built when someone reads it.
func (h *hub) wantsLegacy(app string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if c.endpoint == endpointLegacy && c.app == app {
			return true
		}
	}
	return false
}
