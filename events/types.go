package events

import (
	"errors"
	"fmt"
	"math"
)

// Category is a worker's utilisation class, or its lifecycle state where the
// prototype's wire format mixed the two (INIT, SUNDOWN).
type Category string

// Categories of the prototype: LU/MU/HU by score, INIT before the first score,
// SUNDOWN once chosen for removal.
const (
	CategoryLU      Category = "LU"
	CategoryMU      Category = "MU"
	CategoryHU      Category = "HU"
	CategoryInit    Category = "INIT"
	CategorySundown Category = "SUNDOWN"
)

// State is a worker's place in its lifecycle as the queue carries it.
type State string

// Worker states on the queue.
const (
	StateInit    State = "INIT"
	StateActive  State = "ACTIVE"
	StateSundown State = "SUNDOWN"
)

// Sample is one observation of one worker container by the collector.
type Sample struct {
	App         string `json:"app"`
	Container   string `json:"container"`
	ContainerID string `json:"container_id"`
	// State is Docker's container state (running, exited, ...).
	State string `json:"state"`
	// Address is where the worker answers (host:port), if known.
	Address string `json:"address,omitempty"`
	// WindowSeconds is the time the rates below were measured over.
	WindowSeconds float64 `json:"window_seconds"`
	// CPUPercent is CPU use normalised by the container's CPU limit (or the
	// host's CPUs when it has none): 100 means the whole allowance.
	CPUPercent float64 `json:"cpu_percent"`
	// CPULimit is the container's CPU allowance in cores (0: none set).
	CPULimit float64 `json:"cpu_limit_cores"`
	MemUsage uint64  `json:"mem_usage_bytes"`
	MemLimit uint64  `json:"mem_limit_bytes"`
	NetRxBps float64 `json:"net_rx_bytes_per_second"`
	NetTxBps float64 `json:"net_tx_bytes_per_second"`
	// ProbeOK is true when the probe answered in time; ProbeSeconds is then its latency.
	ProbeOK      bool    `json:"probe_ok"`
	ProbeSeconds float64 `json:"probe_seconds"`
	ProbeError   string  `json:"probe_error,omitempty"`
}

// EventKind implements Payload.
func (Sample) EventKind() Kind { return KindSample }

// Validate implements Payload.
func (s Sample) Validate() error {
	return firstErr(
		need("app", s.App), need("container", s.Container),
		finite("window_seconds", s.WindowSeconds, 0),
		finite("cpu_percent", s.CPUPercent, 0),
		finite("cpu_limit_cores", s.CPULimit, 0),
		finite("net_rx_bytes_per_second", s.NetRxBps, 0),
		finite("net_tx_bytes_per_second", s.NetTxBps, 0),
		finite("probe_seconds", s.ProbeSeconds, 0),
	)
}

// ScoreInputs are the intermediate values a score was computed from, so a
// person or a replay can see why a worker scored as it did.
type ScoreInputs struct {
	CPUPercent      float64 `json:"cpu_percent"`
	MemPercent      float64 `json:"mem_percent"`
	NetPercent      float64 `json:"net_percent"`
	ProbeOK         bool    `json:"probe_ok"`
	ProbeSeconds    float64 `json:"probe_seconds"`
	EffectiveSecs   float64 `json:"effective_seconds"`
	BestSecs        float64 `json:"best_seconds"`
	ThresholdSecs   float64 `json:"threshold_seconds"`
	Base            float64 `json:"base"`
	Penalty         float64 `json:"penalty"`
	Trend           float64 `json:"trend"`
	RawAvailability float64 `json:"raw_availability"`
	HistoryLen      int     `json:"history_len"`
}

// Score is a worker's scores (0..100, higher is better: 100 − usage).
type Score struct {
	App          string      `json:"app"`
	Container    string      `json:"container"`
	ContainerID  string      `json:"container_id,omitempty"`
	Address      string      `json:"address,omitempty"`
	Mode         string      `json:"mode"`
	CPU          float64     `json:"cpu_score"`
	Memory       float64     `json:"memory_score"`
	Network      float64     `json:"network_score"`
	Availability float64     `json:"availability_score"`
	Overall      float64     `json:"overall_score"`
	Category     Category    `json:"utilization_category"`
	SampleID     string      `json:"sample_id"`
	Inputs       ScoreInputs `json:"inputs"`
}

// EventKind implements Payload.
func (Score) EventKind() Kind { return KindScore }

// Validate implements Payload.
func (s Score) Validate() error {
	return firstErr(
		need("app", s.App), need("container", s.Container),
		score("cpu_score", s.CPU), score("memory_score", s.Memory), score("network_score", s.Network),
		score("availability_score", s.Availability), score("overall_score", s.Overall),
		oneOf("utilization_category", string(s.Category), string(CategoryLU), string(CategoryMU), string(CategoryHU)),
	)
}

// Action is what a scaling decision does.
type Action string

// Decision actions.
const (
	ActionScaleUp   Action = "scale_up"
	ActionScaleDown Action = "scale_down"
	ActionReplace   Action = "replace"
	ActionRemove    Action = "remove"
	ActionHold      Action = "hold"
)

// DecisionInputs are the values a decision was taken on.
type DecisionInputs struct {
	MeanScore      float64 `json:"mean_score"`
	MinScore       float64 `json:"min_score"`
	ProjectedMean  float64 `json:"projected_mean,omitempty"`
	Active         int     `json:"active"`
	Ready          int     `json:"ready"`
	Starting       int     `json:"starting"`
	Sundown        int     `json:"sundown"`
	Desired        int     `json:"desired"`
	Min            int     `json:"min"`
	Max            int     `json:"max"`
	HighThreshold  float64 `json:"high_threshold"`
	LowThreshold   float64 `json:"low_threshold"`
	CriticalThresh float64 `json:"critical_threshold"`
	ConfigVersion  int64   `json:"config_version,omitempty"`
}

// Decision is one scaling decision of the scaler, with its inputs and reason.
type Decision struct {
	App     string         `json:"app"`
	Action  Action         `json:"action"`
	Reason  string         `json:"reason"`
	From    int            `json:"from"`
	To      int            `json:"to"`
	Targets []string       `json:"targets,omitempty"`
	Inputs  DecisionInputs `json:"inputs"`
}

// EventKind implements Payload.
func (Decision) EventKind() Kind { return KindDecision }

// Validate implements Payload.
func (d Decision) Validate() error {
	return firstErr(
		need("app", d.App), need("reason", d.Reason),
		oneOf("action", string(d.Action), string(ActionScaleUp), string(ActionScaleDown), string(ActionReplace), string(ActionRemove), string(ActionHold)),
		nonNeg("from", d.From), nonNeg("to", d.To),
	)
}

// Phase is a lifecycle fact about one worker.
type Phase string

// Lifecycle phases: observed by the collector (started, died, removed) or
// produced by the scaler's actions (created, ready, sundown, drained, removed, failed).
const (
	PhaseCreated Phase = "created"
	PhaseStarted Phase = "started"
	PhaseReady   Phase = "ready"
	PhaseHealth  Phase = "health"
	PhaseSundown Phase = "sundown"
	PhaseDrained Phase = "drained"
	PhaseDied    Phase = "died"
	PhaseRemoved Phase = "removed"
	PhaseFailed  Phase = "failed"
)

// Lifecycle is one fact about a worker's life.
type Lifecycle struct {
	App         string `json:"app"`
	Container   string `json:"container"`
	ContainerID string `json:"container_id,omitempty"`
	Phase       Phase  `json:"phase"`
	Address     string `json:"address,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Error carries the runtime's error text for PhaseFailed.
	Error string `json:"error,omitempty"`
	// DecisionID links an action's result to the decision that caused it.
	DecisionID string `json:"decision_id,omitempty"`
}

// EventKind implements Payload.
func (Lifecycle) EventKind() Kind { return KindLifecycle }

// Validate implements Payload.
func (l Lifecycle) Validate() error {
	return firstErr(
		need("app", l.App), need("container", l.Container),
		oneOf("phase", string(l.Phase), string(PhaseCreated), string(PhaseStarted), string(PhaseReady), string(PhaseHealth),
			string(PhaseSundown), string(PhaseDrained), string(PhaseDied), string(PhaseRemoved), string(PhaseFailed)),
	)
}

// QueueItem is one worker on an app's queue.
type QueueItem struct {
	Container string   `json:"container"`
	Address   string   `json:"address"`
	Score     float64  `json:"score"`
	Weight    float64  `json:"weight"`
	Category  Category `json:"category"`
	State     State    `json:"state"`
	// ProbeSeconds is the last probe latency, so proxies can judge a backend they do not send to.
	ProbeSeconds float64 `json:"probe_seconds,omitempty"`
}

// QueueSnapshot is the whole queue of one app: SUNDOWN last, others by score descending.
type QueueSnapshot struct {
	App        string      `json:"app"`
	Generation uint64      `json:"generation"`
	Items      []QueueItem `json:"items"`
}

// EventKind implements Payload.
func (QueueSnapshot) EventKind() Kind { return KindQueue }

// Validate implements Payload.
func (q QueueSnapshot) Validate() error {
	if err := need("app", q.App); err != nil {
		return err
	}
	for i, it := range q.Items {
		if err := firstErr(
			need("container", it.Container), need("address", it.Address),
			score("score", it.Score), finite("weight", it.Weight, 0), finite("probe_seconds", it.ProbeSeconds, 0),
			oneOf("state", string(it.State), string(StateInit), string(StateActive), string(StateSundown)),
		); err != nil {
			return fmt.Errorf("items[%d]: %w", i, err)
		}
	}
	return nil
}

// BackendReport is one proxy's view of one backend over a report interval.
type BackendReport struct {
	Container      string  `json:"container"`
	Address        string  `json:"address"`
	State          State   `json:"state"`
	InFlight       int64   `json:"in_flight"`
	Requests       uint64  `json:"requests"`
	Errors         uint64  `json:"errors"`
	LatencySeconds float64 `json:"latency_ewma_seconds"`
	Ejected        bool    `json:"ejected,omitempty"`
}

// ProxyReport is a proxy's telemetry for one app, published every second.
type ProxyReport struct {
	App             string          `json:"app"`
	ProxyID         string          `json:"proxy_id"`
	IntervalSeconds float64         `json:"interval_seconds"`
	QueueGeneration uint64          `json:"queue_generation"`
	Backends        []BackendReport `json:"backends"`
}

// EventKind implements Payload.
func (ProxyReport) EventKind() Kind { return KindProxyReport }

// Validate implements Payload.
func (p ProxyReport) Validate() error {
	if err := firstErr(need("app", p.App), need("proxy_id", p.ProxyID), finite("interval_seconds", p.IntervalSeconds, 0)); err != nil {
		return err
	}
	for i, b := range p.Backends {
		if err := firstErr(need("container", b.Container), nonNeg("in_flight", int(b.InFlight)), finite("latency_ewma_seconds", b.LatencySeconds, 0)); err != nil {
			return fmt.Errorf("backends[%d]: %w", i, err)
		}
	}
	return nil
}

// ConfigChanged says that an app's runtime config changed, and to what.
type ConfigChanged struct {
	App     string            `json:"app"`
	Version int64             `json:"version"`
	Values  map[string]string `json:"values"`
	Changed []string          `json:"changed"`
	By      string            `json:"by,omitempty"`
}

// EventKind implements Payload.
func (ConfigChanged) EventKind() Kind { return KindConfigChanged }

// Validate implements Payload.
func (c ConfigChanged) Validate() error {
	if err := need("app", c.App); err != nil {
		return err
	}
	if c.Version < 1 {
		return fmt.Errorf("version: %d, want ≥ 1", c.Version)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

var errEmpty = errors.New("is empty")

func need(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s: %w", field, errEmpty)
	}
	return nil
}

func finite(field string, v, min float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < min {
		return fmt.Errorf("%s: %v, want a finite number ≥ %v", field, v, min)
	}
	return nil
}

func score(field string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 100 {
		return fmt.Errorf("%s: %v, want 0..100", field, v)
	}
	return nil
}

func nonNeg(field string, v int) error {
	if v < 0 {
		return fmt.Errorf("%s: %d, want ≥ 0", field, v)
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s: %q, want one of %v", field, v, allowed)
}
