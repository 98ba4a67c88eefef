package scorer

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scorer's Prometheus metrics, all prefixed rb_scorer_.
type metrics struct {
	samples       prometheus.Counter
	scores        prometheus.Counter
	rejected      *prometheus.CounterVec
	deadLettered  prometheus.Counter
	skipped       prometheus.Counter
	publishErrors prometheus.Counter
	latency       prometheus.Histogram
	processing    prometheus.Histogram
	containers    prometheus.Gauge
	forgotten     *prometheus.CounterVec
	snapshots     *prometheus.CounterVec
	snapshotBytes prometheus.Gauge
	restored      *prometheus.CounterVec
	configVersion prometheus.Gauge
	configRefused prometheus.Counter
	badEvents     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_scorer_samples_total", Help: "Sample messages received from RB_STATS, valid or not.",
		}),
		scores: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_scorer_scores_published_total", Help: "Scores published on rb.score.<app>.<container>.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scorer_samples_rejected_total", Help: "Samples that could not be scored, by reason; they go to rb.dlq.RB_STATS.",
		}, []string{"reason"}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_scorer_dead_lettered_total", Help: "Sample messages moved to the dead letter queue.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_scorer_samples_skipped_total", Help: "Samples acknowledged without being applied: their container had applied them (a redelivery) or a later one.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_scorer_publish_errors_total", Help: "Score publications that failed or went unanswered; the Score is sent again until stored or superseded.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rb_scorer_score_latency_seconds",
			Help:    "Time from a Sample's event time to its Score being stored in RB_SCORES.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10},
		}),
		processing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rb_scorer_processing_seconds",
			Help:    "Time from a Sample being stored in RB_STATS to its Score being stored in RB_SCORES: the scorer's own share of the latency.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}),
		containers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_scorer_containers", Help: "Containers whose score state is held.",
		}),
		forgotten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scorer_containers_forgotten_total", Help: "Container states dropped, by reason (removed, died, idle).",
		}, []string{"reason"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scorer_snapshots_total", Help: "Snapshots of the score states written to Redis, by result (stored, stale, failed).",
		}, []string{"result"}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_scorer_snapshot_bytes", Help: "Size of the last snapshot written.",
		}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scorer_restored_samples_total", Help: "Samples applied at start without publishing, by way (catch-up after a snapshot, rebuild without one).",
		}, []string{"way"}),
		configVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_scorer_config_version", Help: "Version of the runtime config whose score parameters are in use (0: none, the process's own).",
		}),
		configRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rb_scorer_config_refused_total", Help: "Runtime config changes not applied because they were invalid.",
		}),
		badEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scorer_events_ignored_total", Help: "Lifecycle and config events that could not be decoded, by kind.",
		}, []string{"kind"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.samples, m.scores, m.rejected, m.deadLettered, m.skipped, m.publishErrors, m.latency, m.processing,
		m.containers, m.forgotten, m.snapshots, m.snapshotBytes, m.restored, m.configVersion, m.configRefused, m.badEvents,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register scorer metrics: %w", err)
	}
	return m, nil
}
