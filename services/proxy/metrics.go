package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// classNames label rb_proxy_requests_total by status class; "none" is a
// request that got no status (a tunnel cut before its answer).
var classNames = [6]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

// Kinds of requests rejected before they reach the handler.
const (
	rejectedBad = iota
	rejectedHeader
	rejectedTooLarge
	rejectedTimeout
	numRejected
)

var rejectedNames = [numRejected]string{"bad_request", "header_too_large", "body_too_large", "timeout"}

type metrics struct {
	collectors    []prometheus.Collector
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	cacheStores   prometheus.Counter
	retries       prometheus.Counter
	ejections     prometheus.Counter
	noBackend     prometheus.Counter
	panics        prometheus.Counter
	configRefused prometheus.Counter
	tunnels       prometheus.Gauge
	rejected      [numRejected]prometheus.Counter
	backendErrors struct {
		connect, timeout, badResponse prometheus.Counter
	}
	generation  *prometheus.GaugeVec
	tables      *prometheus.CounterVec
	queueEvents *prometheus.CounterVec
	reports     *prometheus.CounterVec
}

// newMetrics builds the proxy's metrics; register registers them once the
// apps exist.
func newMetrics(s *Service) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_proxy_requests_total",
			Help: "Requests answered, by app and status class (1xx..5xx; none: no status).",
		}, []string{"app", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rb_proxy_request_duration_seconds",
			Help:    "Time from a request's arrival to its response header (cache hits included), by app.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"app"}),
		cacheHits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_cache_hits_total", Help: "Requests answered from the cache."}),
		cacheMisses:   prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_cache_misses_total", Help: "Cacheable requests not found in the cache (or asked not to be served from it)."}),
		cacheStores:   prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_cache_stores_total", Help: "Responses stored in the cache."}),
		retries:       prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_retries_total", Help: "Requests sent again to another worker after a connect error."}),
		ejections:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_ejections_total", Help: "Workers ejected (connect error or 5xx streak), counted at the report after the ejection."}),
		noBackend:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_no_backend_total", Help: "Requests answered 503 because the app had no worker that could take them."}),
		panics:        prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_panics_total", Help: "Requests that hit a bug (answered 500)."}),
		configRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "rb_proxy_config_refused_total", Help: "Runtime config changes refused as invalid."}),
		tunnels:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "rb_proxy_websockets", Help: "WebSocket tunnels open."}),
		generation: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rb_proxy_table_generation",
			Help: "Generation of the queue the app's routing table was built from.",
		}, []string{"app"}),
		tables: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_proxy_tables_total",
			Help: "Routing tables built (one per queue applied), by app.",
		}, []string{"app"}),
		queueEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_proxy_queue_events_total",
			Help: "Queue events received from NATS, by result (applied, invalid, ignored: another app).",
		}, []string{"result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_proxy_reports_total",
			Help: "Proxy reports published on rb.proxy.<app>.<proxy-id>, by result (ok, error).",
		}, []string{"result"}),
	}
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rb_proxy_rejected_total",
		Help: "Requests refused before routing, by reason (bad_request 400, header_too_large 431, body_too_large 413, timeout 408).",
	}, []string{"reason"})
	for i, n := range rejectedNames {
		m.rejected[i] = rejected.WithLabelValues(n)
	}
	backendErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rb_proxy_backend_errors_total",
		Help: "Failed attempts to get an answer from a worker, by kind (connect, timeout, bad_response).",
	}, []string{"kind"})
	m.backendErrors.connect = backendErrors.WithLabelValues("connect")
	m.backendErrors.timeout = backendErrors.WithLabelValues("timeout")
	m.backendErrors.badResponse = backendErrors.WithLabelValues("bad_response")
	inFlight := &inFlightCollector{s: s, desc: prometheus.NewDesc("rb_proxy_in_flight",
		"Requests in flight to workers (tunnels included), by app.", []string{"app"}, nil)}
	cs := []prometheus.Collector{m.requests, m.duration, m.cacheHits, m.cacheMisses, m.cacheStores, m.retries,
		m.ejections, m.noBackend, m.panics, m.configRefused, m.tunnels, m.generation, m.tables, m.queueEvents,
		m.reports, rejected, backendErrors, inFlight}
	if s.cache != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rb_proxy_cache_entries", Help: "Entries in the cache (approximate)."},
				func() float64 { return float64(s.cache.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rb_proxy_cache_bytes", Help: "Bytes held by the cache entries."},
				func() float64 { return float64(s.cache.Bytes()) }))
	}
	m.collectors = cs
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("register proxy metrics: %w", err)
	}
	return nil
}

// inFlightCollector reports each app's requests in flight at scrape time,
// so the request path does not update a gauge.
type inFlightCollector struct {
	s    *Service
	desc *prometheus.Desc
}

func (c *inFlightCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *inFlightCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.s.appNames {
		a := c.s.apps[name]
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(a.inFlight()), name)
	}
}
