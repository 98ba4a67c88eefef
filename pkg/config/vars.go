package config

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Var is one configuration variable: its environment name (also its key in
// the YAML file), its flag, what it means, and how it is parsed and printed.
type Var struct {
	Name string
	Help string
	// Allowed says what values are accepted, for error messages and docs.
	Allowed string
	// Secret values are redacted by -print-config.
	Secret bool
	// Runtime variables may be changed per app while running (Redis rb:config:<app>).
	Runtime bool
	set     func(c *Config, raw string) error
	get     func(c *Config) string
	// check validates the value in place (range checks that do not depend on parsing).
	check func(c *Config) string
}

// Flag is the command-line flag name of the variable: lower case, '-' for '_', no RB_ prefix.
func (v Var) Flag() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v.Name, "RB_")), "_", "-")
}

// Vars returns every variable, in documentation order.
func Vars() []Var { return vars() }

func lookupVar(name string) (Var, bool) {
	for _, v := range vars() {
		if v.Name == name {
			return v, true
		}
	}
	return Var{}, false
}

func vars() []Var {
	return []Var{
		// General.
		str("APP_IDENTIFIER", "application whose workers are managed (label value)", func(c *Config) *string { return &c.App }, nonEmptyToken),
		choice("RB_LOG_LEVEL", "log level", func(c *Config) *string { return &c.Log.Level }, "debug", "info", "warn", "error"),
		choice("RB_LOG_FORMAT", "log format", func(c *Config) *string { return &c.Log.Format }, "text", "json"),
		str("RB_ADMIN_ADDR", "admin listener (/healthz, /readyz, /metrics) host:port", func(c *Config) *string { return &c.Admin.Addr }, hostPort),

		// NATS.
		str("RB_NATS_URL", "NATS server URL(s); empty starts an embedded JetStream server", func(c *Config) *string { return &c.NATS.URL }, nil),
		str("RB_NATS_USER", "NATS user", func(c *Config) *string { return &c.NATS.User }, nil),
		secret(str("RB_NATS_PASSWORD", "NATS password", func(c *Config) *string { return &c.NATS.Password }, nil)),
		secret(str("RB_NATS_TOKEN", "NATS token", func(c *Config) *string { return &c.NATS.Token }, nil)),
		str("RB_NATS_NKEY_SEED_FILE", "file with the NATS nkey seed", func(c *Config) *string { return &c.NATS.NKeySeedFile }, nil),
		str("RB_NATS_TLS_CA", "CA file for NATS TLS", func(c *Config) *string { return &c.NATS.TLSCA }, nil),
		str("RB_NATS_TLS_CERT", "client certificate for NATS TLS", func(c *Config) *string { return &c.NATS.TLSCert }, nil),
		str("RB_NATS_TLS_KEY", "client key for NATS TLS", func(c *Config) *string { return &c.NATS.TLSKey }, nil),
		str("RB_NATS_STORE_DIR", "JetStream store directory of the embedded server", func(c *Config) *string { return &c.NATS.StoreDir }, nonEmpty),
		str("RB_NATS_LISTEN", "client listen address of the embedded server", func(c *Config) *string { return &c.NATS.Listen }, hostPort),
		integer("RB_NATS_MONITOR_PORT", "HTTP monitoring port of the embedded server (0: off)", func(c *Config) *int { return &c.NATS.MonitorPort }, 0, 65535),
		dur("RB_STATS_MAX_AGE", "retention of RB_STATS (the replay source)", func(c *Config) *time.Duration { return &c.Streams.StatsMaxAge }, time.Minute),
		dur("RB_SCORES_MAX_AGE", "retention of RB_SCORES", func(c *Config) *time.Duration { return &c.Streams.ScoresMaxAge }, time.Minute),
		dur("RB_DECISIONS_MAX_AGE", "retention of RB_DECISIONS (the audit log)", func(c *Config) *time.Duration { return &c.Streams.DecisionsMaxAge }, time.Minute),
		dur("RB_PROXY_MAX_AGE", "retention of RB_PROXY", func(c *Config) *time.Duration { return &c.Streams.ProxyMaxAge }, time.Minute),
		dur("RB_DLQ_MAX_AGE", "retention of RB_DLQ", func(c *Config) *time.Duration { return &c.Streams.DLQMaxAge }, time.Minute),

		// Redis.
		str("REDIS_HOST", "Redis host", func(c *Config) *string { return &c.Redis.Host }, nonEmpty),
		port("REDIS_PORT", "Redis port", func(c *Config) *int { return &c.Redis.Port }),
		secret(str("RB_REDIS_URL", "Redis URL, wins over REDIS_HOST/REDIS_PORT", func(c *Config) *string { return &c.Redis.URL }, nil)),

		// Docker and workers.
		str("DOCKER_HOST", "Docker daemon", func(c *Config) *string { return &c.Docker.Host }, nil),
		str("DOCKER_IMAGE", "worker image", func(c *Config) *string { return &c.Docker.Image }, nil),
		integer("TARGET_PORT", "worker's port inside the container", func(c *Config) *int { return &c.Docker.Port }, 0, 65535),
		str("RB_DOCKER_NETWORK", "Docker network workers are reached on (empty: their only network)", func(c *Config) *string { return &c.Docker.Network }, nil),
		float("RB_WORKER_CPUS", "CPU limit of each worker container in cores (0: none)", func(c *Config) *float64 { return &c.Docker.WorkerCPUs }, 0, 1024),
		bytesize("RB_WORKER_MEMORY", "memory limit of each worker container (0: none)", func(c *Config) *int64 { return &c.Docker.WorkerMemory }),
		boolean("RB_WORKER_PUBLISH_PORT", "publish each worker's TARGET_PORT on a random 127.0.0.1 host port (for a scaler outside Docker's networks)", func(c *Config) *bool { return &c.Docker.WorkerPublishPort }),
		durBetween("RB_WORKER_STOP_TIMEOUT", "grace between SIGTERM and SIGKILL when a worker is removed", func(c *Config) *time.Duration { return &c.Docker.WorkerStopTimeout }, 0, time.Hour),

		// Collector.
		dur("RB_COLLECT_INTERVAL", "interval between samples of a worker", func(c *Config) *time.Duration { return &c.Collect.Interval }, 10*time.Millisecond),
		choice("RB_PROBE", "how workers are probed", func(c *Config) *string { return &c.Collect.Probe }, "tcp", "http"),
		str("RB_PROBE_PATH", "path of the HTTP probe", func(c *Config) *string { return &c.Collect.ProbePath }, absPath),
		durBetween("RB_PROBE_TIMEOUT", "probe timeout (a later answer scores as none)", func(c *Config) *time.Duration { return &c.Collect.ProbeTimeout }, time.Millisecond, time.Hour),

		// Scoring.
		runtime(float("CPU_WEIGHT", "weight of the CPU score", func(c *Config) *float64 { return &c.Scoring.CPUWeight }, 0, 1)),
		runtime(float("MEMORY_WEIGHT", "weight of the memory score", func(c *Config) *float64 { return &c.Scoring.MemoryWeight }, 0, 1)),
		runtime(float("NETWORK_WEIGHT", "weight of the network score", func(c *Config) *float64 { return &c.Scoring.NetworkWeight }, 0, 1)),
		runtime(float("AVAILABILITY_WEIGHT", "weight of the availability score", func(c *Config) *float64 { return &c.Scoring.AvailabilityWeight }, 0, 1)),
		integer("HISTORY_SIZE", "response-time history length", func(c *Config) *int { return &c.Scoring.HistorySize }, 1, 10000),
		integer("BEST_TIME_WINDOW", "best-times list length", func(c *Config) *int { return &c.Scoring.BestTimeWindow }, 1, 10000),
		runtime(openFloat("EMA_ALPHA", "availability smoothing factor", func(c *Config) *float64 { return &c.Scoring.EMAAlpha }, 0, 1)),
		runtime(float("RB_LU_CUTOFF", "overall score at or above which a worker is LU", func(c *Config) *float64 { return &c.Scoring.LUCutoff }, 0, 100)),
		runtime(float("RB_MU_CUTOFF", "overall score at or above which a worker is MU (below: HU)", func(c *Config) *float64 { return &c.Scoring.MUCutoff }, 0, 100)),
		runtime(float("RB_NET_CAPACITY_BPS", "network capacity of a worker in bytes/s (network score = 100 − utilisation)", func(c *Config) *float64 { return &c.Scoring.NetCapacity }, 1, math.MaxFloat64)),
		choice("RB_SCORE_MODE", "scoring formulas (docs/scoring.md)", func(c *Config) *string { return &c.Scoring.Mode }, "legacy"),
		runtime(durBetween("RB_RESPONSE_THRESHOLD_START", "initial dynamic response-time threshold of a new worker", func(c *Config) *time.Duration { return &c.Scoring.ThresholdStart }, 0, time.Hour)),
		runtime(durBetween("RB_RESPONSE_THRESHOLD_FLOOR", "lower bound of the dynamic response-time threshold", func(c *Config) *time.Duration { return &c.Scoring.ThresholdFloor }, 0, time.Hour)),
		runtime(durBetween("RB_PROBE_RESOLUTION", "probe times below this count as it, so jitter the probe cannot resolve does not move the score (0: off)", func(c *Config) *time.Duration { return &c.Scoring.ProbeResolution }, 0, time.Hour)),

		// Scaling.
		runtime(integer("DEFAULT_CONTAINER", "minimum and start number of workers", func(c *Config) *int { return &c.Scaling.Min }, 1, 1000)),
		runtime(integer("MAX_CONTAINERS", "maximum number of workers", func(c *Config) *int { return &c.Scaling.Max }, 1, 1000)),
		runtime(float("HIGH_LOAD_THRESHOLD", "scale up when the mean score is below", func(c *Config) *float64 { return &c.Scaling.High }, 0, 100)),
		runtime(float("LOW_LOAD_THRESHOLD", "scale down when the mean score is above", func(c *Config) *float64 { return &c.Scaling.Low }, 0, 100)),
		runtime(float("CRITICAL_LOAD_THRESHOLD", "scale up when any worker's score is below", func(c *Config) *float64 { return &c.Scaling.Critical }, 0, 100)),
		runtime(dur("COOLDOWN_PERIOD", "time between scaling actions", func(c *Config) *time.Duration { return &c.Scaling.Cooldown }, 0)),
		runtime(integer("SCALE_STEP", "workers added or removed per action", func(c *Config) *int { return &c.Scaling.Step }, 1, 1000)),
		runtime(dur("SCALE_CHECK_PERIOD", "time between scaling checks", func(c *Config) *time.Duration { return &c.Scaling.CheckPeriod }, 0)),
		runtime(dur("RB_SCALE_UP_WINDOW", "the scale-up condition must have held this long", func(c *Config) *time.Duration { return &c.Scaling.ScaleUpWindow }, 0)),
		runtime(dur("RB_SCALE_DOWN_WINDOW", "the scale-down condition must have held this long", func(c *Config) *time.Duration { return &c.Scaling.ScaleDownWindow }, 0)),
		runtime(dur("RB_READY_TIMEOUT", "a worker not ready this long after it was requested fails and is replaced (0: never)", func(c *Config) *time.Duration { return &c.Scaling.ReadyTimeout }, 0)),
		runtime(dur("RB_DRAIN_GRACE", "a SUNDOWN worker every live proxy reports idle this long is drained", func(c *Config) *time.Duration { return &c.Scaling.DrainGrace }, 0)),
		runtime(dur("RB_DRAIN_TIMEOUT", "a SUNDOWN worker is removed this long after SUNDOWN even if not drained (0: never)", func(c *Config) *time.Duration { return &c.Scaling.DrainTimeout }, 0)),
		runtime(dur("RB_TREND_HORIZON", "act on the mean score projected this far ahead (0: off)", func(c *Config) *time.Duration { return &c.Scaling.TrendHorizon }, 0)),
		runtime(dur("RB_TREND_WINDOW", "how far back the trend's slope is fitted (≥ 3s when the trend is on)", func(c *Config) *time.Duration { return &c.Scaling.TrendWindow }, 0)),
		runtime(boolean("RB_SCALE_IN_GUARD", "skip a scale-down whose projected mean score would fall below HIGH_LOAD_THRESHOLD", func(c *Config) *bool { return &c.Scaling.ScaleInGuard })),
		runtime(dur("RB_REPLACE_BACKOFF", "delay before replacing after a start failure, doubled per failure in a row (at most ×32)", func(c *Config) *time.Duration { return &c.Scaling.ReplaceBackoff }, 0)),
		runtime(integer("RB_PROXY_GONE_INTERVALS", "a proxy silent this many report intervals no longer holds up a drain", func(c *Config) *int { return &c.Scaling.ProxyGoneIntervals }, 1, 1000)),
		dur("RB_SCALER_LEASE_TTL", "lease of the active scaler of an app; a standby takes over within it", func(c *Config) *time.Duration { return &c.Scaling.LeaseTTL }, 300*time.Millisecond),
		dur("RB_RECONCILE_INTERVAL", "time between the scaler's checks of Docker and Redis against its state", func(c *Config) *time.Duration { return &c.Scaling.ReconcileInterval }, 100*time.Millisecond),

		// Proxy.
		port("HOST_PORT_HTTP_BALANCER", "proxy listen port", func(c *Config) *int { return &c.Proxy.Port }),
		dur("REQUEST_TIMEOUT", "proxy → worker request timeout", func(c *Config) *time.Duration { return &c.Proxy.Timeout }, time.Millisecond),
		integer("CACHE_CAPACITY", "proxy cache entries (0: no cache)", func(c *Config) *int { return &c.Proxy.CacheCapacity }, 0, 100_000_000),
		runtime(choice("RB_BALANCE_POLICY", "balancing policy", func(c *Config) *string { return &c.Proxy.Policy }, "p2c", "weighted", "round-robin", "least-conn")),
		hostMap("RB_PROXY_HOSTS", "which app the proxy sends a request to by its Host header (host or host:port); other hosts go to APP_IDENTIFIER", func(c *Config) *map[string]string { return &c.Proxy.Hosts }),
		dur("RB_SLOW_START", "window over which the proxy ramps a new or INIT worker's share of traffic up from 10 % (0: off)", func(c *Config) *time.Duration { return &c.Proxy.SlowStart }, 0),
		size("RB_MAX_BODY_SIZE", "largest request body the proxy forwards; a larger one is answered 413", func(c *Config) *int64 { return &c.Proxy.MaxBodySize }, 1, 1<<40),
		size("RB_CACHE_MAX_BYTES", "memory bound of the proxy cache (bodies, headers and keys)", func(c *Config) *int64 { return &c.Proxy.CacheMaxBytes }, 1<<10, 1<<40),

		// Gateway.
		port("HOST_PORT_WS_DEPLOYMENT_AGENT", "gateway WebSocket port", func(c *Config) *int { return &c.Gateway.WSPort }),
		port("HOST_PORT_HTTP_DEPLOYMENT_AGENT", "gateway HTTP API and dashboard port", func(c *Config) *int { return &c.Gateway.HTTPPort }),
		port("PORT_DASHBOARD", "the prototype's dashboard port (the dashboard is served by the gateway's HTTP port)", func(c *Config) *int { return &c.Gateway.DashboardPort }),
		secret(str("RB_GATEWAY_TOKEN", "bearer token for gateway writes (config); empty: writes are refused", func(c *Config) *string { return &c.Gateway.Token }, nil)),
		str("RB_GATEWAY_HOST", "interface the gateway's ports listen on (empty: all)", func(c *Config) *string { return &c.Gateway.Host }, hostOnly),
		origins("RB_CORS_ORIGINS", "origins (scheme://host[:port], comma list) allowed to call the gateway from another site; empty: same-origin only", func(c *Config) *[]string { return &c.Gateway.CORSOrigins }),
		boolean("RB_GATEWAY_PROTECT_READS", "require RB_GATEWAY_TOKEN for reads too (API, /stats, WebSockets, /metrics)", func(c *Config) *bool { return &c.Gateway.ProtectReads }),
	}
}

func secret(v Var) Var  { v.Secret = true; return v }
func runtime(v Var) Var { v.Runtime = true; return v }

func str(name, help string, field func(*Config) *string, check func(string) string) Var {
	v := Var{
		Name: name, Help: help, Allowed: "a string",
		set: func(c *Config, raw string) error { *field(c) = strings.TrimSpace(raw); return nil },
		get: func(c *Config) string { return *field(c) },
	}
	if check != nil {
		v.check = func(c *Config) string { return check(*field(c)) }
	}
	return v
}

func choice(name, help string, field func(*Config) *string, allowed ...string) Var {
	return Var{
		Name: name, Help: help, Allowed: "one of " + strings.Join(allowed, ", "),
		set: func(c *Config, raw string) error {
			s := strings.ToLower(strings.TrimSpace(raw))
			if !slices.Contains(allowed, s) {
				return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
			}
			*field(c) = s
			return nil
		},
		get: func(c *Config) string { return *field(c) },
	}
}

func integer(name, help string, field func(*Config) *int, lo, hi int) Var {
	allowed := fmt.Sprintf("a whole number from %d to %d", lo, hi)
	return Var{
		Name: name, Help: help, Allowed: allowed,
		set: func(c *Config, raw string) error {
			n, err := strconv.Atoi(strings.TrimSpace(raw))
			if err != nil {
				return fmt.Errorf("not a whole number; want %s", allowed)
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
		check: func(c *Config) string {
			if n := *field(c); n < lo || n > hi {
				return "want " + allowed
			}
			return ""
		},
	}
}

func port(name, help string, field func(*Config) *int) Var {
	return integer(name, help, field, 1, 65535)
}

func parseFloat(raw string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a number")
	}
	return f, nil
}

func float(name, help string, field func(*Config) *float64, lo, hi float64) Var {
	allowed := fmt.Sprintf("a number from %g to %g", lo, hi)
	return Var{
		Name: name, Help: help, Allowed: allowed,
		set: func(c *Config, raw string) error {
			f, err := parseFloat(raw)
			if err != nil {
				return fmt.Errorf("%w; want %s", err, allowed)
			}
			*field(c) = f
			return nil
		},
		get: func(c *Config) string { return strconv.FormatFloat(*field(c), 'g', -1, 64) },
		check: func(c *Config) string {
			if f := *field(c); f < lo || f > hi {
				return "want " + allowed
			}
			return ""
		},
	}
}

// openFloat is a float in (lo, hi]: EMA_ALPHA = 0 would freeze the average.
func openFloat(name, help string, field func(*Config) *float64, lo, hi float64) Var {
	v := float(name, help, field, lo, hi)
	v.Allowed = fmt.Sprintf("a number greater than %g and at most %g", lo, hi)
	v.check = func(c *Config) string {
		if f := *field(c); f <= lo || f > hi {
			return "want " + v.Allowed
		}
		return ""
	}
	return v
}

// ParseDuration accepts Go durations ("5s", "1m30s") and the prototype's bare
// seconds ("5", "2.5").
func ParseDuration(raw string) (time.Duration, error) {
	s := strings.TrimSpace(raw)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("not a duration")
	}
	return d, nil
}

func dur(name, help string, field func(*Config) *time.Duration, min time.Duration) Var {
	allowed := fmt.Sprintf("a duration ≥ %v such as 5s, 1m, or bare seconds", min)
	return Var{
		Name: name, Help: help, Allowed: allowed,
		set: func(c *Config, raw string) error {
			d, err := ParseDuration(raw)
			if err != nil {
				return fmt.Errorf("%w; want %s", err, allowed)
			}
			*field(c) = d
			return nil
		},
		get: func(c *Config) string { return field(c).String() },
		check: func(c *Config) string {
			if *field(c) < min {
				return "want " + allowed
			}
			return ""
		},
	}
}

// durBetween is a duration in [min, max]: the scorer bounds probe times by an
// hour (pkg/score).
func durBetween(name, help string, field func(*Config) *time.Duration, min, max time.Duration) Var {
	v := dur(name, help, field, min)
	v.Allowed = fmt.Sprintf("a duration from %v to %v such as 5s, 1m, or bare seconds", min, max)
	v.check = func(c *Config) string {
		if d := *field(c); d < min || d > max {
			return "want " + v.Allowed
		}
		return ""
	}
	return v
}

// bytesize is a byte count: plain bytes or a number with k, m or g (powers of
// 1024), as docker run --memory takes it. 0 means no limit; otherwise Docker
// wants at least 6 MiB.
func bytesize(name, help string, field func(*Config) *int64) Var {
	const allowed = "0 (no limit), or bytes ≥ 6m: a whole number with an optional k, m or g suffix (powers of 1024) such as 512m"
	return Var{
		Name: name, Help: help, Allowed: allowed,
		set: func(c *Config, raw string) error {
			s := strings.ToLower(strings.TrimSpace(raw))
			mult := int64(1)
			if n := len(s); n > 0 {
				switch s[n-1] {
				case 'b':
					s = s[:n-1]
				case 'k':
					s, mult = s[:n-1], 1<<10
				case 'm':
					s, mult = s[:n-1], 1<<20
				case 'g':
					s, mult = s[:n-1], 1<<30
				}
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 || n > math.MaxInt64/mult {
				return fmt.Errorf("want %s", allowed)
			}
			*field(c) = n * mult
			return nil
		},
		get: func(c *Config) string { return strconv.FormatInt(*field(c), 10) },
		check: func(c *Config) string {
			if n := *field(c); n != 0 && n < 6<<20 {
				return "want " + allowed
			}
			return ""
		},
	}
}

// size is a number of bytes, bare or with a binary unit (KiB, MiB, GiB, TiB;
// K, M, G, T and KB, MB, GB, TB mean the same), in [lo, hi].
func size(name, help string, field func(*Config) *int64, lo, hi int64) Var {
	allowed := fmt.Sprintf("a size from %s to %s: bytes, or a number with KiB, MiB, GiB such as 64MiB", formatSize(lo), formatSize(hi))
	return Var{
		Name: name, Help: help, Allowed: allowed,
		set: func(c *Config, raw string) error {
			n, err := parseSize(raw)
			if err != nil {
				return fmt.Errorf("%w; want %s", err, allowed)
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string { return formatSize(*field(c)) },
		check: func(c *Config) string {
			if n := *field(c); n < lo || n > hi {
				return "want " + allowed
			}
			return ""
		},
	}
}

var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"kib", 10}, {"mib", 20}, {"gib", 30}, {"tib", 40},
	{"kb", 10}, {"mb", 20}, {"gb", 30}, {"tb", 40},
	{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40},
	{"b", 0},
}

func parseSize(raw string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	shift := uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, shift = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("not a size")
	}
	return n << shift, nil
}

// formatSize prints n with the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// hostMap is a comma list of host=app pairs. Hosts are kept in lower case;
// a host without a port matches any port.
func hostMap(name, help string, field func(*Config) *map[string]string) Var {
	const allowed = "a comma list of host=app pairs such as shop.example.com=shop,api.example.com:8080=api (empty: every host goes to APP_IDENTIFIER)"
	return Var{
		Name: name, Help: help, Allowed: allowed,
		set: func(c *Config, raw string) error {
			out := map[string]string{}
			for _, pair := range strings.Split(raw, ",") {
				if pair = strings.TrimSpace(pair); pair == "" {
					continue
				}
				host, app, ok := strings.Cut(pair, "=")
				host, app = strings.ToLower(strings.TrimSpace(host)), strings.TrimSpace(app)
				if !ok || host == "" || app == "" || strings.ContainsAny(host, " \t/") || strings.ContainsAny(app, " \t") {
					return fmt.Errorf("%q is not host=app; want %s", pair, allowed)
				}
				if prev, dup := out[host]; dup && prev != app {
					return fmt.Errorf("host %q is mapped to both %q and %q", host, prev, app)
				}
				out[host] = app
			}
			if len(out) == 0 {
				out = nil
			}
			*field(c) = out
			return nil
		},
		get: func(c *Config) string {
			m := *field(c)
			hosts := make([]string, 0, len(m))
			for h := range m {
				hosts = append(hosts, h)
			}
			slices.Sort(hosts)
			for i, h := range hosts {
				hosts[i] = h + "=" + m[h]
			}
			return strings.Join(hosts, ",")
		},
	}
}

func boolean(name, help string, field func(*Config) *bool) Var {
	return Var{
		Name: name, Help: help, Allowed: "true or false",
		set: func(c *Config, raw string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(raw))
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			*field(c) = b
			return nil
		},
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) },
	}
}

// origins is a comma list of web origins (scheme://host[:port]). A wildcard
// is refused: allowing any site would let every page read the gateway.
func origins(name, help string, field func(*Config) *[]string) Var {
	const allowed = "a comma list of origins such as https://ops.example.com,http://localhost:3000 (no *)"
	return Var{
		Name: name, Help: help, Allowed: allowed,
		set: func(c *Config, raw string) error {
			var out []string
			for _, o := range strings.Split(raw, ",") {
				if o = strings.TrimSpace(o); o != "" {
					out = append(out, strings.TrimSuffix(o, "/"))
				}
			}
			*field(c) = out
			return nil
		},
		get: func(c *Config) string { return strings.Join(*field(c), ",") },
		check: func(c *Config) string {
			for _, o := range *field(c) {
				if msg := checkOrigin(o); msg != "" {
					return fmt.Sprintf("%q %s; want %s", o, msg, allowed)
				}
			}
			return ""
		},
	}
}

func checkOrigin(o string) string {
	if strings.Contains(o, "*") {
		return "is a wildcard"
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return "has no http:// or https:// scheme"
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ ") {
		return "is not scheme://host[:port]"
	}
	return ""
}

func hostOnly(s string) string {
	if strings.ContainsAny(s, " /:") && net.ParseIP(s) == nil {
		return "want a host name or IP address without a port, e.g. 127.0.0.1, or empty for all interfaces"
	}
	return ""
}

func nonEmpty(s string) string {
	if s == "" {
		return "must not be empty"
	}
	return ""
}

func nonEmptyToken(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "must not contain white space"
	}
	return ""
}

func hostPort(s string) string {
	if _, p, err := net.SplitHostPort(s); err != nil || p == "" {
		return "want host:port, e.g. 127.0.0.1:2551 or :2551"
	}
	return ""
}

func absPath(s string) string {
	if !strings.HasPrefix(s, "/") {
		return "want a path starting with /"
	}
	return ""
}
