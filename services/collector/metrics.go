package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the kind label.
const (
	kindSample    = "sample"
	kindLifecycle = "lifecycle"
)

// metrics are the collector's rb_collector_* metrics.
type metrics struct {
	published     *prometheus.CounterVec // by kind
	publishErrors *prometheus.CounterVec // by kind
	probeSeconds  prometheus.Histogram
	probeFailures prometheus.Counter
	watched       prometheus.Gauge
	reconnects    prometheus.Counter
	dockerUp      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_collector_published_total",
			Help: "Events published, by kind (sample, lifecycle).",
		}, []string{"kind"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_collector_publish_errors_total",
			Help: "Failed publish attempts (and facts dropped), by kind (sample, lifecycle).",
		}, []string{"kind"}),
		probeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rb_collector_probe_seconds",
			Help:    "Latency of successful worker probes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 100 µs .. ~6 s
		}),
		probeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_collector_probe_failures_total",
			Help: "Worker probes that failed (refused, timed out, bad status, no address).",
		}),
		watched: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_collector_containers_watched",
			Help: "Running containers of the app the collector follows.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_collector_docker_reconnects_total",
			Help: "Times the Docker list or event stream failed and the collector backed off to reconnect.",
		}),
		dockerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_collector_docker_up",
			Help: "1 while the collector follows Docker's events, else 0.",
		}),
	}
	for _, k := range []string{kindSample, kindLifecycle} {
		m.published.WithLabelValues(k)
		m.publishErrors.WithLabelValues(k)
	}
	for _, c := range []prometheus.Collector{m.published, m.publishErrors, m.probeSeconds, m.probeFailures, m.watched, m.reconnects, m.dockerUp} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register collector metrics: %w", err)
		}
	}
	return m, nil
}
