package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/admin"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// syncBuf is a goroutine-safe buffer for a process's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func runMain(t *testing.T, args []string, env map[string]string) (int, string, string) {
	t.Helper()
	var out, errb syncBuf
	code := Main(context.Background(), args, IO{Lookup: envOf(env), Stdout: &out, Stderr: &errb}, "v-test")
	return code, out.String(), errb.String()
}

func TestResolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    string
		want    []string
		wantErr string
	}{
		{name: "default is all", spec: "", want: names(Targets())},
		{name: "all", spec: "all", want: names(Targets())},
		{name: "one", spec: "nats", want: []string{"nats"}},
		{name: "spaces and empties", spec: " nats ,, ", want: []string{"nats"}},
		{name: "unknown named", spec: "nats,bogus", wantErr: "unknown target(s) bogus"},
		{name: "only commas", spec: ",", wantErr: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve(%q) err = %v, want %q", tc.spec, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(names(got), tc.want) {
				t.Fatalf("Resolve(%q) = %v, %v; want %v", tc.spec, names(got), err, tc.want)
			}
		})
	}
}

func names(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func TestMainCommands(t *testing.T) {
	t.Parallel()
	protoEnv := map[string]string{}
	b, err := os.ReadFile(filepath.Join("..", "..", "pkg", "config", "testdata", "prototype.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			protoEnv[k] = v
		}
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     string
		stderr     string
		notInOuput string
	}{
		{name: "version", args: []string{"version"}, code: 0, stdout: "rb v-test"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "list targets", args: []string{"-list-targets"}, code: 0, stdout: "nats"},
		{name: "bad flag", args: []string{"-no-such-flag"}, code: 2, stderr: "no-such-flag"},
		{name: "bad flag value", args: []string{"-high-load-threshold=x", "-verify-config"}, code: 2, stderr: "HIGH_LOAD_THRESHOLD"},
		{name: "stray argument", args: []string{"-verify-config", "extra"}, code: 2, stderr: "unexpected arguments"},
		{name: "unknown target", args: []string{"-target=nope", "-verify-config"}, code: 2, stderr: "unknown target(s) nope"},
		{name: "verify ok", args: []string{"-target=nats", "-verify-config"}, code: 0, stdout: "configuration is valid"},
		{name: "verify all needs the worker image", args: []string{"-verify-config"}, code: 2, stderr: "DOCKER_IMAGE"},
		{name: "verify all with the worker image", args: []string{"-verify-config"}, env: map[string]string{"DOCKER_IMAGE": "rb-worker", "TARGET_PORT": "8080"},
			code: 0, stdout: "configuration is valid"},
		{name: "verify bad env", args: []string{"-target=nats", "-verify-config"}, env: map[string]string{"HIGH_LOAD_THRESHOLD": "abc"}, code: 2,
			stderr: `HIGH_LOAD_THRESHOLD="abc" (from environment): not a number`},
		{name: "prototype env valid", args: []string{"-verify-config"}, env: protoEnv, code: 0, stdout: "configuration is valid"},
		{name: "print config redacts", args: []string{"-print-config"}, env: map[string]string{"RB_NATS_TOKEN": "sekrit", "SCALE_STEP": "3"},
			code: 0, stdout: "SCALE_STEP=3", notInOuput: "sekrit"},
		{name: "health without a listener", args: []string{"-health"}, env: map[string]string{"RB_ADMIN_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t))},
			code: 1, stderr: "unhealthy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runMain(t, tc.args, tc.env)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("rb %v: code %d, stdout %q, stderr %q; want code %d, stdout ∋ %q, stderr ∋ %q",
					tc.args, code, out, errOut, tc.code, tc.stdout, tc.stderr)
			}
			if tc.notInOuput != "" && strings.Contains(out+errOut, tc.notInOuput) {
				t.Fatalf("output shows %q:\n%s%s", tc.notInOuput, out, errOut)
			}
		})
	}
}

// TestNATSTarget runs `rb -target=nats` in-process: outside clients see the
// streams, -health says healthy, and cancelling stops it cleanly.
func TestNATSTarget(t *testing.T) {
	t.Parallel()
	natsPort, adminPort := freePort(t), freePort(t)
	env := map[string]string{
		"RB_NATS_LISTEN":    "127.0.0.1:" + strconv.Itoa(natsPort),
		"RB_NATS_STORE_DIR": t.TempDir(),
		"RB_ADMIN_ADDR":     "127.0.0.1:" + strconv.Itoa(adminPort),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuf
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"-target=nats"}, IO{Lookup: envOf(env), Stdout: &out, Stderr: &errb}, "v-test")
	}()
	url := "nats://" + env["RB_NATS_LISTEN"]
	var nc *nats.Conn
	waitFor(t, 20*time.Second, "nats target accepts clients", func() bool {
		var err error
		nc, err = nats.Connect(url)
		return err == nil
	})
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	waitFor(t, 10*time.Second, "streams ensured", func() bool {
		got = got[:0]
		lister := js.StreamNames(ctx)
		for n := range lister.Name() {
			got = append(got, n)
		}
		return len(got) == len(events.Streams(events.DefaultStreamLimits()))
	})
	slices.Sort(got)
	for _, want := range []string{"RB_DECISIONS", "RB_QUEUE", "RB_SCORES", "RB_STATS"} {
		if !slices.Contains(got, want) {
			t.Fatalf("streams %v lack %s", got, want)
		}
	}
	waitFor(t, 10*time.Second, "-health reports healthy", func() bool {
		code, _, _ := runMain(t, []string{"-health"}, env)
		return code == 0
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("rb exited %d; stderr:\n%s", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("rb did not stop within 5 s of cancellation; stderr:\n%s", errb.String())
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type funcService func(ctx context.Context) error

func (f funcService) Run(ctx context.Context) error { return f(ctx) }

func testDeps(t *testing.T, cfg *config.Config) *Deps {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg == nil {
		c := config.Default()
		cfg = &c
	}
	cfg.Admin.Addr = "127.0.0.1:0"
	return &Deps{Config: cfg, Logger: logger, Admin: admin.New(cfg.Admin.Addr, logger)}
}

// TestOneTargetFailingStopsTheOthers checks the group semantics of Run.
func TestOneTargetFailingStopsTheOthers(t *testing.T) {
	t.Parallel()
	d := testDeps(t, nil)
	stopped := make(chan struct{})
	boom := errors.New("boom")
	targets := []Target{
		{Name: "steady", Build: func(context.Context, *Deps) (Service, error) {
			return funcService(func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil }), nil
		}},
		{Name: "failing", Build: func(context.Context, *Deps) (Service, error) {
			return funcService(func(context.Context) error { time.Sleep(50 * time.Millisecond); return boom }), nil
		}},
	}
	errc := make(chan error, 1)
	go func() { errc <- Run(context.Background(), d, targets) }()
	select {
	case err := <-errc:
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "target failing") {
			t.Fatalf("Run = %v, want the failing target's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after a target failed")
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the steady target was not stopped")
	}
}

func TestBuildFailureAndRequire(t *testing.T) {
	t.Parallel()
	d := testDeps(t, nil)
	err := Run(context.Background(), d, []Target{{Name: "needs-image", Require: []string{"DOCKER_IMAGE"},
		Build: func(context.Context, *Deps) (Service, error) {
			t.Error("built despite a missing requirement")
			return nil, nil
		}}})
	if err == nil || !strings.Contains(err.Error(), "DOCKER_IMAGE") {
		t.Fatalf("Run = %v, want DOCKER_IMAGE named", err)
	}
	d = testDeps(t, nil)
	err = Run(context.Background(), d, []Target{{Name: "broken", Build: func(context.Context, *Deps) (Service, error) {
		return nil, errors.New("cannot start")
	}}})
	if err == nil || !strings.Contains(err.Error(), "start target broken: cannot start") {
		t.Fatalf("Run = %v", err)
	}
}

// TestRedisOutageIsReportedNotFatal: a target that uses the store keeps
// running while Redis is down; /healthz says so, and recovers with Redis.
func TestRedisOutageIsReportedNotFatal(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	c := config.Default()
	c.Redis.URL = rs.URL()
	d := testDeps(t, &c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	targets := []Target{{Name: "uses-redis", Build: func(_ context.Context, d *Deps) (Service, error) {
		if _, err := d.Store(); err != nil {
			return nil, err
		}
		return funcService(func(ctx context.Context) error { <-ctx.Done(); return nil }), nil
	}}}
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, d, targets) }()
	addr, err := d.Admin.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	healthz := func() (int, string) {
		resp, err := http.Get("http://" + addr.String() + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, 10*time.Second, "healthy with redis up", func() bool { code, _ := healthz(); return code == 200 })
	rs.Stop(t)
	waitFor(t, 15*time.Second, "redis outage reported", func() bool {
		code, body := healthz()
		return code == 503 && strings.Contains(body, "redis")
	})
	rs.Restart(t)
	waitFor(t, 30*time.Second, "healthy again after redis returns", func() bool { code, _ := healthz(); return code == 200 })
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// TestBinaryStopsOnSIGTERM builds rb and checks the signal path of main.
func TestBinaryStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "rb")
	build := exec.Command("go", "build", "-o", bin, "../rb")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build rb: %v\n%s", err, out)
	}
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	env := append(os.Environ(),
		"RB_NATS_LISTEN=127.0.0.1:"+strconv.Itoa(freePort(t)),
		"RB_NATS_STORE_DIR="+t.TempDir(),
		"RB_ADMIN_ADDR="+adminAddr,
	)
	var stderr syncBuf
	cmd := exec.Command(bin, "-target=nats")
	cmd.Env = env
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	health := func() int {
		h := exec.Command(bin, "-health")
		h.Env = env
		_ = h.Run()
		return h.ProcessState.ExitCode()
	}
	waitFor(t, 30*time.Second, "rb -health exits 0", func() bool { return health() == 0 })
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("rb exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("rb took %v to stop", d)
		}
	case <-time.After(6 * time.Second):
		t.Fatalf("rb still running 6 s after SIGTERM; stderr:\n%s", stderr.String())
	}
	if code := health(); code != 1 {
		t.Fatalf("rb -health after stop exits %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "rb stopped") {
		t.Fatalf("no clean stop logged:\n%s", stderr.String())
	}
}

// TestAdminBindFailureIsReported: a taken admin port is the error rb
// reports, not the cancellation it causes in the targets being started.
func TestAdminBindFailureIsReported(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := map[string]string{
		"RB_ADMIN_ADDR":     ln.Addr().String(),
		"RB_NATS_LISTEN":    "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"RB_NATS_STORE_DIR": t.TempDir(),
	}
	code, _, stderr := runMain(t, []string{"-target=nats"}, env)
	if code != 1 || !strings.Contains(stderr, "RB_ADMIN_ADDR") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 naming RB_ADMIN_ADDR", code, stderr)
	}
}
