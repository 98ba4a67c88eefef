package queuebuilder

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the result label of rb_queuebuilder_inputs_total.
const (
	resultChanged   = "changed"   // the input changed its app's queue
	resultUnchanged = "unchanged" // a no-op: the queue stays as it was
	resultStale     = "stale"     // a score too old to apply while rebuilding
	resultInvalid   = "invalid"   // malformed: dead-lettered
)

type metrics struct {
	inputs       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	publishes    *prometheus.CounterVec
	delay        prometheus.Histogram
	generation   *prometheus.GaugeVec
	snapshots    *prometheus.CounterVec
	snapsPending prometheus.Gauge
	catchUp      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_queuebuilder_inputs_total",
			Help: "Score and lifecycle events consumed, by kind and result (changed, unchanged, stale, invalid).",
		}, []string{"kind", "result"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_queuebuilder_dead_lettered_total",
			Help: "Messages moved to rb.dlq.<stream>, by stream.",
		}, []string{"stream"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_queuebuilder_publishes_total",
			Help: "Queue snapshots published on rb.queue.<app>, by app and result (ok, error).",
		}, []string{"app", "result"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rb_queuebuilder_debounce_delay_seconds",
			Help:    "Time from the first change of a queue to the start of the publish that carries it.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .03, .04, .05, .06, .075, .1, .25, .5, 1, 5},
		}),
		generation: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rb_queuebuilder_generation",
			Help: "Generation of the last queue published, by app.",
		}, []string{"app"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_queuebuilder_snapshot_writes_total",
			Help: "Writes of the queue snapshot to Redis, by result (ok, stale: Redis has a newer one, unavailable: retried, error: dropped).",
		}, []string{"result"}),
		snapsPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_queuebuilder_snapshot_pending",
			Help: "Apps whose last published queue is not in Redis yet.",
		}),
		catchUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_queuebuilder_catch_up_seconds",
			Help: "How long the last start took to restore and rebuild the queues before going live.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.inputs, m.deadLettered, m.publishes, m.delay, m.generation,
		m.snapshots, m.snapsPending, m.catchUp} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register queuebuilder metrics: %w (one queue builder per registry)", err)
			}
			return nil, fmt.Errorf("register queuebuilder metrics: %w", err)
		}
	}
	return m, nil
}
