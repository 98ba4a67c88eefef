// Package config is the typed configuration of rb: defaults, then an optional
// YAML file, then the environment, then flags. Every variable of the
// prototype is accepted under its old name so an existing .env runs
// unchanged; new settings are named RB_*. Validation collects every problem
// and names the variable, the bad value and what is allowed.
package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
)

// Config is the whole configuration of one rb process. Each service reads the
// sections it needs.
type Config struct {
	// App is the application whose workers this process manages (APP_IDENTIFIER).
	App string

	Log     Log
	Admin   Admin
	NATS    NATS
	Streams events.StreamLimits
	Redis   Redis
	Docker  Docker
	Collect Collect
	Scoring Scoring
	Scaling Scaling
	Proxy   Proxy
	Gateway Gateway
}

// Log configures structured logging.
type Log struct {
	Level  string // RB_LOG_LEVEL
	Format string // RB_LOG_FORMAT
}

// Admin configures the per-process admin listener (/healthz, /readyz, /metrics).
type Admin struct {
	Addr string // RB_ADMIN_ADDR
}

// NATS configures the connection to NATS, or the embedded server.
type NATS struct {
	URL          string // RB_NATS_URL; empty starts an embedded server
	User         string // RB_NATS_USER
	Password     string // RB_NATS_PASSWORD
	Token        string // RB_NATS_TOKEN
	NKeySeedFile string // RB_NATS_NKEY_SEED_FILE
	TLSCA        string // RB_NATS_TLS_CA
	TLSCert      string // RB_NATS_TLS_CERT
	TLSKey       string // RB_NATS_TLS_KEY
	StoreDir     string // RB_NATS_STORE_DIR
	Listen       string // RB_NATS_LISTEN
	MonitorPort  int    // RB_NATS_MONITOR_PORT
}

// Redis configures the store.
type Redis struct {
	Host string // REDIS_HOST
	Port int    // REDIS_PORT
	URL  string // RB_REDIS_URL, wins over host and port
}

// Docker configures the container runtime.
type Docker struct {
	Host    string // DOCKER_HOST
	Image   string // DOCKER_IMAGE
	Port    int    // TARGET_PORT
	Network string // RB_DOCKER_NETWORK
	// The scaler creates workers with these.
	WorkerCPUs        float64       // RB_WORKER_CPUS, cores; 0: no limit
	WorkerMemory      int64         // RB_WORKER_MEMORY, bytes; 0: no limit
	WorkerPublishPort bool          // RB_WORKER_PUBLISH_PORT
	WorkerStopTimeout time.Duration // RB_WORKER_STOP_TIMEOUT
}

// Collect configures the collector.
type Collect struct {
	Interval     time.Duration // RB_COLLECT_INTERVAL
	Probe        string        // RB_PROBE: tcp or http
	ProbePath    string        // RB_PROBE_PATH
	ProbeTimeout time.Duration // RB_PROBE_TIMEOUT
}

// Scoring holds the score parameters.
type Scoring struct {
	CPUWeight          float64       // CPU_WEIGHT
	MemoryWeight       float64       // MEMORY_WEIGHT
	NetworkWeight      float64       // NETWORK_WEIGHT
	AvailabilityWeight float64       // AVAILABILITY_WEIGHT
	HistorySize        int           // HISTORY_SIZE
	BestTimeWindow     int           // BEST_TIME_WINDOW
	EMAAlpha           float64       // EMA_ALPHA
	LUCutoff           float64       // RB_LU_CUTOFF
	MUCutoff           float64       // RB_MU_CUTOFF
	NetCapacity        float64       // RB_NET_CAPACITY_BPS, bytes per second
	Mode               string        // RB_SCORE_MODE
	ThresholdStart     time.Duration // RB_RESPONSE_THRESHOLD_START
	ThresholdFloor     time.Duration // RB_RESPONSE_THRESHOLD_FLOOR
	ProbeResolution    time.Duration // RB_PROBE_RESOLUTION
}

// Scaling holds the scaling policy.
type Scaling struct {
	Min         int           // DEFAULT_CONTAINER
	Max         int           // MAX_CONTAINERS
	High        float64       // HIGH_LOAD_THRESHOLD
	Low         float64       // LOW_LOAD_THRESHOLD
	Critical    float64       // CRITICAL_LOAD_THRESHOLD
	Cooldown    time.Duration // COOLDOWN_PERIOD
	Step        int           // SCALE_STEP
	CheckPeriod time.Duration // SCALE_CHECK_PERIOD
	// pkg/scale's guards (docs/scaling.md), runtime-tunable like the above.
	ScaleUpWindow      time.Duration // RB_SCALE_UP_WINDOW
	ScaleDownWindow    time.Duration // RB_SCALE_DOWN_WINDOW
	ReadyTimeout       time.Duration // RB_READY_TIMEOUT
	DrainGrace         time.Duration // RB_DRAIN_GRACE
	DrainTimeout       time.Duration // RB_DRAIN_TIMEOUT
	TrendHorizon       time.Duration // RB_TREND_HORIZON
	TrendWindow        time.Duration // RB_TREND_WINDOW
	ScaleInGuard       bool          // RB_SCALE_IN_GUARD
	ReplaceBackoff     time.Duration // RB_REPLACE_BACKOFF
	ProxyGoneIntervals int           // RB_PROXY_GONE_INTERVALS
	// The scaler service itself.
	LeaseTTL          time.Duration // RB_SCALER_LEASE_TTL
	ReconcileInterval time.Duration // RB_RECONCILE_INTERVAL
}

// Proxy configures the balancer.
type Proxy struct {
	Port          int           // HOST_PORT_HTTP_BALANCER
	Timeout       time.Duration // REQUEST_TIMEOUT
	CacheCapacity int           // CACHE_CAPACITY
	Policy        string        // RB_BALANCE_POLICY
	// Hosts maps a request's Host (lower case, with or without the port) to
	// the app it goes to (RB_PROXY_HOSTS); other hosts go to App.
	Hosts         map[string]string // RB_PROXY_HOSTS
	SlowStart     time.Duration     // RB_SLOW_START
	MaxBodySize   int64             // RB_MAX_BODY_SIZE, bytes
	CacheMaxBytes int64             // RB_CACHE_MAX_BYTES
}

// Gateway configures the WebSocket, HTTP API and dashboard.
type Gateway struct {
	WSPort        int      // HOST_PORT_WS_DEPLOYMENT_AGENT
	HTTPPort      int      // HOST_PORT_HTTP_DEPLOYMENT_AGENT
	DashboardPort int      // PORT_DASHBOARD
	Token         string   // RB_GATEWAY_TOKEN
	Host          string   // RB_GATEWAY_HOST, the interface both ports listen on; empty: all
	CORSOrigins   []string // RB_CORS_ORIGINS, origins allowed cross-origin; empty: same-origin only
	ProtectReads  bool     // RB_GATEWAY_PROTECT_READS, the token is required for reads too
}

// Default returns the defaults: the prototype's (its setup script) where it
// had one, documented choices elsewhere (docs/config.md).
func Default() Config {
	return Config{
		App:     "RUSTYBALANCER",
		Log:     Log{Level: "info", Format: "text"},
		Admin:   Admin{Addr: "127.0.0.1:2551"},
		NATS:    NATS{StoreDir: "./data/nats", Listen: "127.0.0.1:4222"},
		Streams: events.DefaultStreamLimits(),
		Redis:   Redis{Host: "127.0.0.1", Port: 6379},
		Docker:  Docker{Host: "unix:///var/run/docker.sock", WorkerStopTimeout: 10 * time.Second},
		Collect: Collect{Interval: time.Second, Probe: "tcp", ProbePath: "/healthz", ProbeTimeout: 5 * time.Second},
		Scoring: Scoring{
			CPUWeight: 0.35, MemoryWeight: 0.25, NetworkWeight: 0.15, AvailabilityWeight: 0.25,
			HistorySize: 20, BestTimeWindow: 10, EMAAlpha: 0.2, LUCutoff: 70, MUCutoff: 40, NetCapacity: 125e6,
			Mode: "legacy", ThresholdStart: time.Second, ThresholdFloor: 500 * time.Millisecond, ProbeResolution: time.Millisecond,
		},
		Scaling: Scaling{
			Min: 5, Max: 15, High: 55, Low: 80, Critical: 20,
			Cooldown: 5 * time.Second, Step: 1, CheckPeriod: 10 * time.Second,
			ScaleDownWindow: 30 * time.Second, ReadyTimeout: 60 * time.Second, DrainGrace: 2 * time.Second,
			DrainTimeout: 60 * time.Second, TrendWindow: 60 * time.Second, ScaleInGuard: true,
			ReplaceBackoff: 5 * time.Second, ProxyGoneIntervals: 3,
			LeaseTTL: 15 * time.Second, ReconcileInterval: 10 * time.Second,
		},
		Proxy: Proxy{Port: 2548, Timeout: 30 * time.Second, CacheCapacity: 10000, Policy: "p2c",
			SlowStart: 10 * time.Second, MaxBodySize: 64 << 20, CacheMaxBytes: 128 << 20},
		Gateway: Gateway{WSPort: 2547, HTTPPort: 2550, DashboardPort: 8501},
	}
}

// RedisURL is RB_REDIS_URL when set, else built from REDIS_HOST and REDIS_PORT.
func (c *Config) RedisURL() string {
	if c.Redis.URL != "" {
		return c.Redis.URL
	}
	return "redis://" + net.JoinHostPort(c.Redis.Host, strconv.Itoa(c.Redis.Port)) + "/0"
}

// Validate checks every variable and the relations between them, and returns
// all problems at once as an *Error, or nil.
func (c *Config) Validate() error {
	var errs Error
	for _, v := range vars() {
		if v.check != nil {
			if msg := v.check(c); msg != "" {
				errs.add(v.Name, v.get(c), "", msg)
			}
		}
	}
	s := c.Scaling
	if !(s.Critical < s.High && s.High < s.Low) {
		errs.add("CRITICAL_LOAD_THRESHOLD/HIGH_LOAD_THRESHOLD/LOW_LOAD_THRESHOLD",
			fmt.Sprintf("%g/%g/%g", s.Critical, s.High, s.Low), "",
			"want CRITICAL < HIGH < LOW on the score scale (a low score means high load)")
	}
	if s.TrendHorizon > 0 && s.TrendWindow < 3*time.Second {
		errs.add("RB_TREND_WINDOW", s.TrendWindow.String(), "",
			"want ≥ 3s when RB_TREND_HORIZON is set (the slope is fitted over one-second points, at least three)")
	}
	if s.Min > s.Max {
		errs.add("DEFAULT_CONTAINER", strconv.Itoa(s.Min), "", fmt.Sprintf("want ≤ MAX_CONTAINERS (%d)", s.Max))
	}
	w := c.Scoring
	if sum := w.CPUWeight + w.MemoryWeight + w.NetworkWeight + w.AvailabilityWeight; sum < 0.99 || sum > 1.01 {
		errs.add("CPU_WEIGHT+MEMORY_WEIGHT+NETWORK_WEIGHT+AVAILABILITY_WEIGHT", strconv.FormatFloat(sum, 'g', 4, 64), "",
			"want the four weights to sum to 1 ± 0.01")
	}
	if w.MUCutoff >= w.LUCutoff {
		errs.add("RB_MU_CUTOFF", strconv.FormatFloat(w.MUCutoff, 'g', -1, 64), "",
			fmt.Sprintf("want < RB_LU_CUTOFF (%g)", w.LUCutoff))
	}
	if w.ThresholdStart < w.ThresholdFloor {
		errs.add("RB_RESPONSE_THRESHOLD_START", w.ThresholdStart.String(), "",
			fmt.Sprintf("want ≥ RB_RESPONSE_THRESHOLD_FLOOR (%v)", w.ThresholdFloor))
	}
	if w.ProbeResolution > c.Collect.ProbeTimeout {
		errs.add("RB_PROBE_RESOLUTION", w.ProbeResolution.String(), "",
			fmt.Sprintf("want ≤ RB_PROBE_TIMEOUT (%v)", c.Collect.ProbeTimeout))
	}
	if c.Redis.URL != "" {
		if u, err := url.Parse(c.Redis.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			errs.add("RB_REDIS_URL", redactURL(c.Redis.URL), "", "want redis://[user:password@]host:port/db or rediss://…")
		}
	}
	if c.NATS.URL != "" {
		for _, one := range strings.Split(c.NATS.URL, ",") {
			if u, err := url.Parse(strings.TrimSpace(one)); err != nil || u.Host == "" {
				errs.add("RB_NATS_URL", redactURL(c.NATS.URL), "", "want nats://host:port (comma-separated for a cluster), or empty for the embedded server")
				break
			}
		}
	}
	if p := c.Proxy; p.CacheCapacity > 0 && p.CacheMaxBytes/int64(p.CacheCapacity) > math.MaxUint32 {
		errs.add("RB_CACHE_MAX_BYTES", formatSize(p.CacheMaxBytes), "",
			fmt.Sprintf("want at most 4 GiB per entry of CACHE_CAPACITY (%d)", p.CacheCapacity))
	}
	if c.Gateway.ProtectReads && c.Gateway.Token == "" {
		errs.add("RB_GATEWAY_PROTECT_READS", "true", "", "needs RB_GATEWAY_TOKEN: set the token or turn this off")
	}
	if (c.NATS.TLSCert == "") != (c.NATS.TLSKey == "") {
		errs.add("RB_NATS_TLS_CERT/RB_NATS_TLS_KEY", "", "", "set both or neither")
	}
	return errs.orNil()
}

// Require reports the named variables that are empty or zero; services call
// it for what they cannot run without (the scaler needs DOCKER_IMAGE and TARGET_PORT).
func (c *Config) Require(names ...string) error {
	var errs Error
	for _, n := range names {
		v, ok := lookupVar(n)
		if !ok {
			errs.add(n, "", "", "unknown variable")
			continue
		}
		if val := v.get(c); val == "" || val == "0" {
			errs.add(n, val, "", "required: "+v.Help)
		}
	}
	return errs.orNil()
}

// StreamLimits are the retention limits of the streams.
func (c *Config) StreamLimits() events.StreamLimits { return c.Streams }
