package scaler

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scaler's Prometheus metrics (prefix rb_scaler_).
type metrics struct {
	decisions     *prometheus.CounterVec
	facts         *prometheus.CounterVec
	inputs        *prometheus.CounterVec
	invalid       *prometheus.CounterVec
	dockerSeconds *prometheus.HistogramVec
	dockerErrors  *prometheus.CounterVec
	startSeconds  *prometheus.HistogramVec
	desired       prometheus.Gauge
	workers       *prometheus.GaugeVec
	containers    prometheus.Gauge
	leaseHeld     prometheus.Gauge
	rebuildInputs prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scaler_decisions_total", Help: "Decisions published on rb.scale.<app>, by action.",
		}, []string{"action"}),
		facts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scaler_lifecycle_published_total", Help: "Lifecycle facts published by the scaler, by phase.",
		}, []string{"phase"}),
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scaler_inputs_total", Help: "Inputs stepped through pkg/scale, by kind (tick, score, lifecycle, proxy).",
		}, []string{"kind"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scaler_inputs_invalid_total", Help: "Messages the scaler could not use (malformed, or refused by pkg/scale), by stream.",
		}, []string{"stream"}),
		dockerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rb_scaler_docker_action_seconds", Help: "Latency of each Docker call, by action (inspect, create, start, stop, remove, list).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		dockerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rb_scaler_docker_errors_total", Help: "Failed Docker calls (each attempt), by action.",
		}, []string{"action"}),
		startSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rb_scaler_worker_start_seconds", Help: "Time to start a worker, by stage: create_start (Docker create + start), probe (start to first successful probe).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60},
		}, []string{"stage"}),
		desired: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_scaler_desired_workers", Help: "Desired number of live workers (the prototype's DEFAULT_CONTAINER counter).",
		}),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rb_scaler_workers", Help: "Workers by role in the scaler's state (live = starting + ready, sundown).",
		}, []string{"role"}),
		containers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_scaler_containers_running", Help: "Running labelled containers of the app at the last reconciliation.",
		}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_scaler_lease_held", Help: "1 while this scaler holds the app's lease and acts, else 0.",
		}),
		rebuildInputs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rb_scaler_rebuild_messages", Help: "Decision-log messages read to rebuild the state at the start of the current term.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.facts, m.inputs, m.invalid, m.dockerSeconds, m.dockerErrors,
		m.startSeconds, m.desired, m.workers, m.containers, m.leaseHeld, m.rebuildInputs} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register scaler metrics: %w (one scaler per registry)", err)
			}
			return nil, fmt.Errorf("register scaler metrics: %w", err)
		}
	}
	return m, nil
}
