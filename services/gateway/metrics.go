package gateway

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics (prefix rb_gateway_).
type metrics struct {
	events       *prometheus.CounterVec
	invalid      *prometheus.CounterVec
	wsClients    *prometheus.GaugeVec
	wsSent       *prometheus.CounterVec
	wsDropped    *prometheus.CounterVec
	httpRequests *prometheus.CounterVec
	configWrites *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_gateway_events_total", Help: "Events applied to the gateway's view, by kind (new ones only).",
		}, []string{"kind"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_gateway_events_invalid_total", Help: "Messages the gateway could not use (malformed, unknown kind, too many apps), by stream.",
		}, []string{"stream"}),
		wsClients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rb_gateway_ws_clients", Help: "Connected WebSocket clients, by endpoint (ws: the prototype's array, ws_v1: event envelopes).",
		}, []string{"endpoint"}),
		wsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_gateway_ws_messages_sent_total", Help: "WebSocket messages written, by endpoint.",
		}, []string{"endpoint"}),
		wsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_gateway_ws_dropped_total", Help: "WebSocket clients disconnected by the gateway, by endpoint and reason (slow: its buffer filled up).",
		}, []string{"endpoint", "reason"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_gateway_http_requests_total", Help: "HTTP requests, by route pattern and status code.",
		}, []string{"route", "code"}),
		configWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_gateway_config_writes_total", Help: "Config writes through the API, by result (ok, unchanged, invalid, conflict, not_published, error).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.events, m.invalid, m.wsClients, m.wsSent, m.wsDropped, m.httpRequests, m.configWrites} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register gateway metrics: %w (one gateway per registry)", err)
			}
			return nil, fmt.Errorf("register gateway metrics: %w", err)
		}
	}
	return m, nil
}
