package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func load(t testing.TB, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("rb", flag.ContinueOnError)
	l := NewLoader(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags: %v", err)
	}
	return l.Load(envMap(env))
}

func readEnvFile(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestPrototypeEnvRunsUnchanged(t *testing.T) {
	env := readEnvFile(t, filepath.Join("testdata", "prototype.env"))
	c, err := load(t, nil, env)
	if err != nil {
		t.Fatalf("prototype .env rejected: %v", err)
	}
	if c.Scaling.Cooldown != 5*time.Second || c.Scaling.CheckPeriod != 10*time.Second || c.Proxy.Timeout != 30*time.Second {
		t.Fatalf("bare seconds not read as seconds: %+v %+v", c.Scaling, c.Proxy)
	}
	if c.RedisURL() != "redis://redis:6379/0" {
		t.Fatalf("RedisURL = %q", c.RedisURL())
	}
	if err := c.Require("DOCKER_IMAGE", "TARGET_PORT"); err != nil {
		t.Fatal(err)
	}
}

// goodBad gives, for every variable, a value that must be accepted and one
// that must be rejected (or "" where every string is acceptable).
var goodBad = map[string][2]string{
	"APP_IDENTIFIER":                  {"shop", "two words"},
	"RB_LOG_LEVEL":                    {"DEBUG", "loud"},
	"RB_LOG_FORMAT":                   {"json", "xml"},
	"RB_ADMIN_ADDR":                   {":9000", "9000"},
	"RB_NATS_URL":                     {"nats://a:4222,nats://b:4222", "::nope"},
	"RB_NATS_USER":                    {"rb", ""},
	"RB_NATS_PASSWORD":                {"s3cret", ""},
	"RB_NATS_TOKEN":                   {"t0ken", ""},
	"RB_NATS_NKEY_SEED_FILE":          {"/run/secrets/seed", ""},
	"RB_NATS_TLS_CA":                  {"/etc/ca.pem", ""},
	"RB_NATS_TLS_CERT":                {"", "/etc/cert.pem"}, // alone (without the key) is rejected
	"RB_NATS_TLS_KEY":                 {"", "/etc/key.pem"},
	"RB_NATS_STORE_DIR":               {"/data/nats", " "},
	"RB_NATS_LISTEN":                  {"0.0.0.0:4222", "4222"},
	"RB_NATS_MONITOR_PORT":            {"8222", "70000"},
	"RB_STATS_MAX_AGE":                {"48h", "30s"},
	"RB_SCORES_MAX_AGE":               {"1h", "-1h"},
	"RB_DECISIONS_MAX_AGE":            {"2592000", "forever"},
	"RB_PROXY_MAX_AGE":                {"10m", "1s"},
	"RB_DLQ_MAX_AGE":                  {"168h", "0"},
	"REDIS_HOST":                      {"redis", " "},
	"REDIS_PORT":                      {"6380", "0"},
	"RB_REDIS_URL":                    {"redis://:pw@127.0.0.1:6379/0", "http://x"},
	"DOCKER_HOST":                     {"tcp://127.0.0.1:2375", ""},
	"DOCKER_IMAGE":                    {"rb-worker:dev", ""},
	"TARGET_PORT":                     {"8080", "-1"},
	"RB_DOCKER_NETWORK":               {"rb_workers", ""},
	"RB_WORKER_CPUS":                  {"0.5", "-1"},
	"RB_WORKER_MEMORY":                {"512m", "1m"}, // below Docker's 6 MiB
	"RB_WORKER_PUBLISH_PORT":          {"true", "yes please"},
	"RB_WORKER_STOP_TIMEOUT":          {"10s", "-1s"},
	"RB_SCALE_UP_WINDOW":              {"0", "-1s"},
	"RB_SCALE_DOWN_WINDOW":            {"5m", "soon"},
	"RB_READY_TIMEOUT":                {"0", "-60"},
	"RB_DRAIN_GRACE":                  {"2s", "-2s"},
	"RB_DRAIN_TIMEOUT":                {"1m", "x"},
	"RB_TREND_HORIZON":                {"30s", "-30s"},
	"RB_TREND_WINDOW":                 {"60s", "-1s"}, // < 3s with a horizon: TestTrendWindowNeedsThreeSeconds
	"RB_SCALE_IN_GUARD":               {"false", "maybe"},
	"RB_REPLACE_BACKOFF":              {"5s", "-5s"},
	"RB_PROXY_GONE_INTERVALS":         {"3", "0"},
	"RB_SCALER_LEASE_TTL":             {"15s", "100ms"},
	"RB_RECONCILE_INTERVAL":           {"10s", "10ms"},
	"RB_COLLECT_INTERVAL":             {"500ms", "1ms"},
	"RB_PROBE":                        {"HTTP", "icmp"},
	"RB_PROBE_PATH":                   {"/healthz", "healthz"},
	"RB_PROBE_TIMEOUT":                {"2", "3601"},
	"CPU_WEIGHT":                      {"0.35", "-0.1"},
	"MEMORY_WEIGHT":                   {"0.25", "1.5"},
	"NETWORK_WEIGHT":                  {"0.15", "NaN"},
	"AVAILABILITY_WEIGHT":             {"0.25", "abc"},
	"HISTORY_SIZE":                    {"30", "0"},
	"BEST_TIME_WINDOW":                {"5", "2.5"},
	"EMA_ALPHA":                       {"1", "0"},
	"RB_LU_CUTOFF":                    {"75", "101"},
	"RB_MU_CUTOFF":                    {"30", "80"}, // ≥ LU cut-off
	"RB_NET_CAPACITY_BPS":             {"1e9", "0"},
	"RB_SCORE_MODE":                   {"LEGACY", "adaptive"},
	"RB_RESPONSE_THRESHOLD_START":     {"2s", "0.4"}, // below the floor 0.5 s
	"RB_RESPONSE_THRESHOLD_FLOOR":     {"0", "2s"},   // above the start 1 s
	"RB_PROBE_RESOLUTION":             {"0", "6s"},   // above RB_PROBE_TIMEOUT 5 s
	"DEFAULT_CONTAINER":               {"2", "0"},
	"MAX_CONTAINERS":                  {"20", "3"}, // below DEFAULT_CONTAINER 5
	"HIGH_LOAD_THRESHOLD":             {"50", "abc"},
	"LOW_LOAD_THRESHOLD":              {"85", "50"}, // below HIGH
	"CRITICAL_LOAD_THRESHOLD":         {"10", "60"}, // above HIGH
	"COOLDOWN_PERIOD":                 {"1m", "-5"},
	"SCALE_STEP":                      {"2", "0"},
	"SCALE_CHECK_PERIOD":              {"10s", "ten"},
	"HOST_PORT_HTTP_BALANCER":         {"8080", "65536"},
	"REQUEST_TIMEOUT":                 {"2.5", "0s"},
	"CACHE_CAPACITY":                  {"0", "-1"},
	"RB_BALANCE_POLICY":               {"least-conn", "random"},
	"HOST_PORT_WS_DEPLOYMENT_AGENT":   {"2547", "x"},
	"HOST_PORT_HTTP_DEPLOYMENT_AGENT": {"2550", ""},
	"PORT_DASHBOARD":                  {"8501", "0"},
	"RB_GATEWAY_TOKEN":                {"t", ""},
	"RB_PROXY_HOSTS":                  {"Shop.example.com=shop, api.example.com:8080=api", "shop.example.com"},
	"RB_SLOW_START":                   {"0", "-1s"},
	"RB_MAX_BODY_SIZE":                {"64MiB", "12 parsecs"},
	"RB_CACHE_MAX_BYTES":              {"1g", "100"}, // below 1 KiB
	"RB_GATEWAY_HOST":                 {"127.0.0.1", "127.0.0.1:2550"},
	"RB_CORS_ORIGINS":                 {"https://ops.example.com, http://localhost:3000", "*"},
	"RB_GATEWAY_PROTECT_READS":        {"false", "sometimes"}, // true needs the token: TestProtectReadsNeedsToken
}

func TestEveryVariable(t *testing.T) {
	for _, v := range Vars() {
		if _, ok := goodBad[v.Name]; !ok {
			t.Errorf("variable %s has no good/bad row in this table", v.Name)
		}
	}
	for name, gb := range goodBad {
		if _, ok := lookupVar(name); !ok {
			t.Errorf("table names unknown variable %s", name)
		}
		t.Run(name+"/good", func(t *testing.T) {
			t.Parallel()
			if _, err := load(t, nil, map[string]string{name: gb[0]}); err != nil {
				t.Fatalf("%s=%q rejected: %v", name, gb[0], err)
			}
		})
		acceptsAny := gb[1] == "" && name != "HOST_PORT_HTTP_DEPLOYMENT_AGENT"
		if acceptsAny {
			continue
		}
		t.Run(name+"/bad", func(t *testing.T) {
			t.Parallel()
			_, err := load(t, nil, map[string]string{name: gb[1]})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("%s=%q accepted (err %v)", name, gb[1], err)
			}
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("error does not name %s: %v", name, err)
			}
		})
	}
}

func TestProtectReadsNeedsToken(t *testing.T) {
	if _, err := load(t, nil, map[string]string{"RB_GATEWAY_PROTECT_READS": "true", "RB_GATEWAY_TOKEN": "s3cret"}); err != nil {
		t.Fatal(err)
	}
	_, err := load(t, nil, map[string]string{"RB_GATEWAY_PROTECT_READS": "true"})
	if err == nil || !strings.Contains(err.Error(), "RB_GATEWAY_TOKEN") {
		t.Fatalf("protect reads without a token: err = %v, want one naming RB_GATEWAY_TOKEN", err)
	}
}

func TestTrendWindowNeedsThreeSeconds(t *testing.T) {
	if _, err := load(t, nil, map[string]string{"RB_TREND_WINDOW": "2s"}); err != nil {
		t.Fatalf("a short window without a horizon: %v", err)
	}
	_, err := load(t, nil, map[string]string{"RB_TREND_HORIZON": "30s", "RB_TREND_WINDOW": "2s"})
	if err == nil || !strings.Contains(err.Error(), "RB_TREND_WINDOW") {
		t.Fatalf("horizon with a 2s window: err = %v, want one naming RB_TREND_WINDOW", err)
	}
}

func TestWorkerMemorySizes(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      int64
	}{
		{name: "bytes", raw: "67108864", want: 64 << 20},
		{name: "megabytes", raw: "512m", want: 512 << 20},
		{name: "gigabytes upper case", raw: "1G", want: 1 << 30},
		{name: "kilobytes", raw: "8192k", want: 8 << 20},
		{name: "no limit", raw: "0", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, nil, map[string]string{"RB_WORKER_MEMORY": tc.raw})
			if err != nil {
				t.Fatal(err)
			}
			if c.Docker.WorkerMemory != tc.want {
				t.Fatalf("RB_WORKER_MEMORY=%s read as %d, want %d", tc.raw, c.Docker.WorkerMemory, tc.want)
			}
		})
	}
}

func TestTLSCertNeedsKey(t *testing.T) {
	if _, err := load(t, nil, map[string]string{"RB_NATS_TLS_CERT": "/c", "RB_NATS_TLS_KEY": "/k"}); err != nil {
		t.Fatal(err)
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, err := load(t, nil, map[string]string{"HIGH_LOAD_THRESHOLD": "abc", "SCALE_STEP": "0", "RB_PROBE": "icmp"})
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`HIGH_LOAD_THRESHOLD="abc" (from environment): not a number`, "SCALE_STEP", "RB_PROBE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rb.yaml")
	if err := os.WriteFile(file, []byte("high_load_threshold: 50\nSCALE_STEP: 3\nMAX_CONTAINERS: 9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		high float64
		step int
		max  int
	}{
		{name: "defaults", high: 55, step: 1, max: 15},
		{name: "file", env: map[string]string{EnvConfigFile: file}, high: 50, step: 3, max: 9},
		{name: "env beats file", env: map[string]string{EnvConfigFile: file, "SCALE_STEP": "4"}, high: 50, step: 4, max: 9},
		{name: "flag beats env", args: []string{"-config.file", file, "-scale-step", "5", "-max-containers=7"}, env: map[string]string{"SCALE_STEP": "4"}, high: 50, step: 5, max: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Scaling.High != tc.high || c.Scaling.Step != tc.step || c.Scaling.Max != tc.max {
				t.Fatalf("got high %v step %v max %v", c.Scaling.High, c.Scaling.Step, c.Scaling.Max)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("HIGH_LOAD_THRESHOLD: [1, 2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, []string{"-config.file", bad}, nil); err == nil || !strings.Contains(err.Error(), "HIGH_LOAD_THRESHOLD") {
		t.Fatalf("nested value: %v", err)
	}
	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte("HIGH_LOAD_TRESHOLD: 50\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, []string{"-config.file", typo}, nil); err == nil || !strings.Contains(err.Error(), "HIGH_LOAD_TRESHOLD") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := load(t, []string{"-config.file", filepath.Join(dir, "missing.yaml")}, nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "5", want: 5 * time.Second},
		{in: "2.5", want: 2500 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: " 250ms ", want: 250 * time.Millisecond},
		{in: "5 s", bad: true},
		{in: "1e300", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("ParseDuration(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestPrintRedactsSecrets(t *testing.T) {
	c, err := load(t, nil, map[string]string{
		"RB_NATS_PASSWORD": "hunter2", "RB_NATS_TOKEN": "tok123", "RB_GATEWAY_TOKEN": "gw456",
		"RB_REDIS_URL": "redis://user:pa55@redis:6379/0", "RB_NATS_URL": "nats://u:natspw@n:4222",
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.Print(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range []string{"hunter2", "tok123", "gw456", "pa55", "natspw"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed config shows secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "RB_REDIS_URL=redis://user:redacted@redis:6379/0") || !strings.Contains(out, "HIGH_LOAD_THRESHOLD=55") {
		t.Errorf("unexpected print:\n%s", out)
	}
}

func TestWithRuntime(t *testing.T) {
	base := Default()
	tests := []struct {
		name    string
		values  map[string]string
		wantErr string
		check   func(Config) bool
	}{
		{name: "threshold", values: map[string]string{"HIGH_LOAD_THRESHOLD": "50"}, check: func(c Config) bool { return c.Scaling.High == 50 }},
		{name: "policy", values: map[string]string{"RB_BALANCE_POLICY": "weighted"}, check: func(c Config) bool { return c.Proxy.Policy == "weighted" }},
		{name: "bad value named", values: map[string]string{"HIGH_LOAD_THRESHOLD": "abc"}, wantErr: "HIGH_LOAD_THRESHOLD"},
		{name: "relation broken", values: map[string]string{"HIGH_LOAD_THRESHOLD": "90"}, wantErr: "CRITICAL < HIGH < LOW"},
		{name: "not runtime", values: map[string]string{"REDIS_HOST": "x"}, wantErr: "cannot be changed at run time"},
		{name: "unknown", values: map[string]string{"NOPE": "1"}, wantErr: "unknown variable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := base.WithRuntime(tc.values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(got) {
				t.Fatalf("got %+v, %v", got.Scaling, err)
			}
		})
	}
	if base.Scaling.High != 55 {
		t.Fatal("WithRuntime changed its receiver")
	}
	rv := base.RuntimeValues()
	if rv["HIGH_LOAD_THRESHOLD"] != "55" || rv["COOLDOWN_PERIOD"] != "5s" {
		t.Fatalf("RuntimeValues = %v", rv)
	}
	if _, ok := rv["REDIS_HOST"]; ok {
		t.Fatal("REDIS_HOST is not a runtime variable")
	}
}

func TestRequire(t *testing.T) {
	c := Default()
	err := c.Require("DOCKER_IMAGE", "TARGET_PORT")
	if err == nil || !strings.Contains(err.Error(), "DOCKER_IMAGE") || !strings.Contains(err.Error(), "TARGET_PORT") {
		t.Fatalf("Require = %v", err)
	}
}

func TestProxySizesAndHosts(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(*Config) bool
	}{
		{name: "sizes with units", env: map[string]string{"RB_MAX_BODY_SIZE": "50 MiB", "RB_CACHE_MAX_BYTES": "2048"},
			check: func(c *Config) bool { return c.Proxy.MaxBodySize == 50<<20 && c.Proxy.CacheMaxBytes == 2048 }},
		{name: "size short unit", env: map[string]string{"RB_MAX_BODY_SIZE": "1g"},
			check: func(c *Config) bool { return c.Proxy.MaxBodySize == 1<<30 }},
		{name: "hosts lower-cased", env: map[string]string{"RB_PROXY_HOSTS": "Shop.Example.com=shop,api:8080=api,"},
			check: func(c *Config) bool {
				return len(c.Proxy.Hosts) == 2 && c.Proxy.Hosts["shop.example.com"] == "shop" && c.Proxy.Hosts["api:8080"] == "api"
			}},
		{name: "host mapped twice", env: map[string]string{"RB_PROXY_HOSTS": "a=x,A=y"}, wantErr: "mapped to both"},
		{name: "cache bytes per entry", env: map[string]string{"CACHE_CAPACITY": "1", "RB_CACHE_MAX_BYTES": "5GiB"}, wantErr: "4 GiB per entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, nil, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("got %+v, %v", c.Proxy, err)
			}
		})
	}
	if got := Default(); formatSize(got.Proxy.MaxBodySize) != "64MiB" {
		t.Fatalf("default RB_MAX_BODY_SIZE prints as %s", formatSize(got.Proxy.MaxBodySize))
	}
}
