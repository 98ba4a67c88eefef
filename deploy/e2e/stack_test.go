//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rustybalancer/rb/events"
)

// stack is the dev stack under test, driven through deploy/stack.sh (what
// `task up` and `task down` run) with the settings of e2e.env.
type stack struct {
	repo    string
	envFile string
	env     map[string]string // e2e.env
}

func newStack(tb testing.TB) *stack {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	s := &stack{repo: filepath.Join(dir, "..", ".."), envFile: filepath.Join(dir, "e2e.env"), env: map[string]string{}}
	b, err := os.ReadFile(s.envFile)
	if err != nil {
		tb.Fatalf("read settings: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			s.env[k] = v
		}
	}
	for _, k := range []string{"COMPOSE_PROJECT_NAME", "APP_IDENTIFIER", "RB_DOCKER_NETWORK", "HOST_PORT_HTTP_BALANCER",
		"HOST_PORT_HTTP_DEPLOYMENT_AGENT", "NATS_HOST_PORT", "DEFAULT_CONTAINER", "MAX_CONTAINERS"} {
		if s.env[k] == "" {
			tb.Fatalf("%s: %s is not set", s.envFile, k)
		}
	}
	return s
}

func (s *stack) project() string { return s.env["COMPOSE_PROJECT_NAME"] }
func (s *stack) app() string     { return s.env["APP_IDENTIFIER"] }
func (s *stack) proxyURL(path string) string {
	return "http://127.0.0.1:" + s.env["HOST_PORT_HTTP_BALANCER"] + path
}
func (s *stack) gatewayURL(path string) string {
	return "http://127.0.0.1:" + s.env["HOST_PORT_HTTP_DEPLOYMENT_AGENT"] + path
}
func (s *stack) natsURL() string { return "nats://127.0.0.1:" + s.env["NATS_HOST_PORT"] }

// script runs deploy/stack.sh with the e2e settings; its output goes to the
// test log. The settings of the e2e file win over the caller's environment.
func (s *stack) script(ctx context.Context, tb testing.TB, extraEnv []string, args ...string) error {
	tb.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(s.repo, "deploy", "stack.sh"), args...)
	cmd.Dir = s.repo
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "ENV_FILE="+s.envFile, "ENV=dev")
	cmd.Env = append(cmd.Env, extraEnv...)
	out, err := cmd.CombinedOutput()
	tb.Logf("$ deploy/stack.sh %s\n%s", strings.Join(args, " "), strings.TrimRight(string(out), "\n"))
	if err != nil {
		return fmt.Errorf("deploy/stack.sh %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// docker runs the docker CLI and returns its trimmed output lines.
func docker(ctx context.Context, args ...string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "docker", args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, stderr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// runningWorkers lists the names of the app's running workers.
func (s *stack) runningWorkers(ctx context.Context) ([]string, error) {
	return docker(ctx, "ps", "--filter", "label=rb.app="+s.app(), "--filter", "status=running", "--format", "{{.Names}}")
}

// leftovers counts what is left of the stack on the engine: containers and
// networks by project label, workers by app label, the workers network by name.
func (s *stack) leftovers(ctx context.Context) (string, error) {
	var left []string
	checks := []struct {
		what string
		args []string
	}{
		{"containers of project " + s.project(), []string{"ps", "-aq", "--filter", "label=com.docker.compose.project=" + s.project()}},
		{"networks of project " + s.project(), []string{"network", "ls", "-q", "--filter", "label=com.docker.compose.project=" + s.project()}},
		{"workers of app " + s.app(), []string{"ps", "-aq", "--filter", "label=rb.app=" + s.app()}},
		{"network " + s.env["RB_DOCKER_NETWORK"], []string{"network", "ls", "-q", "--filter", "name=^" + s.env["RB_DOCKER_NETWORK"] + "$"}},
		{"volumes of project " + s.project(), []string{"volume", "ls", "-q", "--filter", "label=com.docker.compose.project=" + s.project()}},
	}
	for _, c := range checks {
		ids, err := docker(ctx, c.args...)
		if err != nil {
			return "", err
		}
		if len(ids) > 0 {
			left = append(left, fmt.Sprintf("%d %s", len(ids), c.what))
		}
	}
	return strings.Join(left, ", "), nil
}

// serviceRestarts returns each compose service's restart count.
func (s *stack) serviceRestarts(ctx context.Context) (map[string]int, error) {
	ids, err := docker(ctx, "ps", "-aq", "--filter", "label=com.docker.compose.project="+s.project())
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	lines, err := docker(ctx, append([]string{"inspect", "-f", `{{index .Config.Labels "com.docker.compose.service"}} {{.RestartCount}}`}, ids...)...)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, l := range lines {
		var svc string
		var n int
		if _, err := fmt.Sscan(l, &svc, &n); err == nil {
			out[svc] = n
		}
	}
	return out, nil
}

// load is a running deploy/loadgen process.
type load struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	done   chan error
}

// startLoad starts the load generator built by `stack.sh images`.
func (s *stack) startLoad(tb testing.TB, name string, args ...string) *load {
	tb.Helper()
	l := &load{name: name, done: make(chan error, 1)}
	l.cmd = exec.Command(filepath.Join(s.repo, "deploy", "build", "loadgen"), append(args, "-json", "-progress", "10s")...)
	l.cmd.Stdout = &l.stdout
	l.cmd.Stderr = &prefixWriter{tb: tb, prefix: name + ": "}
	if err := l.cmd.Start(); err != nil {
		tb.Fatalf("start %s load: %v", name, err)
	}
	go func() { l.done <- l.cmd.Wait() }()
	tb.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			_ = l.cmd.Process.Kill()
			<-l.done
		}
	})
	return l
}

// loadResult is the part of loadgen's JSON summary the test reads.
type loadResult struct {
	Sent         int64             `json:"sent"`
	OK           int64             `json:"ok"`
	Failed       int64             `json:"failed"`
	FailedWarmup int64             `json:"failed_warmup"`
	Skipped      int64             `json:"skipped"`
	Status       map[string]int64  `json:"status"`
	Errors       map[string]int64  `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples"`
	Workers      map[string]int64  `json:"workers"`
	LatencyMS    struct {
		P50, P90, P99, Max float64
	} `json:"latency_ms"`
}

// stop ends the load (SIGINT: requests in flight finish) and returns its
// summary; it waits at most timeout.
func (l *load) stop(timeout time.Duration) (loadResult, error) {
	_ = l.cmd.Process.Signal(syscall.SIGINT)
	return l.wait(timeout)
}

func (l *load) wait(timeout time.Duration) (loadResult, error) {
	var res loadResult
	select {
	case <-l.done:
	case <-time.After(timeout):
		_ = l.cmd.Process.Kill()
		<-l.done
		return res, fmt.Errorf("%s load did not stop within %s", l.name, timeout)
	}
	if err := json.Unmarshal(l.stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("%s load summary %q: %w", l.name, l.stdout.String(), err)
	}
	return res, nil
}

// prefixWriter sends a process's stderr lines to the test log.
type prefixWriter struct {
	tb     testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.tb.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// observer records what the stack says on NATS about the app: scaling
// decisions, lifecycle facts and queue snapshots.
type observer struct {
	start time.Time

	mu        sync.Mutex
	decisions []stamped[events.Decision]
	lifecycle []stamped[events.Lifecycle]
	sundown   map[string]bool // containers seen SUNDOWN on the queue
	maxQueue  int
	bad       []string // messages that did not decode
}

type stamped[T any] struct {
	at time.Duration // since the observer started
	ev T
}

func observe(tb testing.TB, url, app string) *observer {
	tb.Helper()
	nc, err := nats.Connect(url, nats.Name("rb-e2e"), nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatalf("connect to NATS at %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	o := &observer{start: time.Now(), sundown: map[string]bool{}}
	subj := func(f func(string) (string, error)) string {
		s, err := f(app)
		if err != nil {
			tb.Fatalf("subject for app %q: %v", app, err)
		}
		return s
	}
	scale := subj(events.ScaleSubject)
	queue := subj(events.QueueSubject)
	lifecycle := events.PrefixLifecycle + strings.TrimPrefix(queue, events.PrefixQueue) + ".>"
	handlers := map[string]nats.MsgHandler{
		scale: func(m *nats.Msg) {
			ev, err := events.Decode[events.Decision](m.Data)
			o.record(err, m, func(at time.Duration) { o.decisions = append(o.decisions, stamped[events.Decision]{at, ev.Data}) })
		},
		lifecycle: func(m *nats.Msg) {
			ev, err := events.Decode[events.Lifecycle](m.Data)
			o.record(err, m, func(at time.Duration) { o.lifecycle = append(o.lifecycle, stamped[events.Lifecycle]{at, ev.Data}) })
		},
		queue: func(m *nats.Msg) {
			ev, err := events.Decode[events.QueueSnapshot](m.Data)
			o.record(err, m, func(time.Duration) {
				o.maxQueue = max(o.maxQueue, len(ev.Data.Items))
				for _, it := range ev.Data.Items {
					if it.State == events.StateSundown {
						o.sundown[it.Container] = true
					}
				}
			})
		},
	}
	for s, h := range handlers {
		if _, err := nc.Subscribe(s, h); err != nil {
			tb.Fatalf("subscribe %s: %v", s, err)
		}
	}
	if err := nc.Flush(); err != nil {
		tb.Fatalf("NATS flush: %v", err)
	}
	return o
}

func (o *observer) record(err error, m *nats.Msg, f func(time.Duration)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.bad = append(o.bad, fmt.Sprintf("%s: %v", m.Subject, err))
		return
	}
	f(time.Since(o.start))
}

// counts returns how many decisions of each action and lifecycle facts of
// each phase were seen.
func (o *observer) counts() (actions map[events.Action]int, phases map[events.Phase]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	actions, phases = map[events.Action]int{}, map[events.Phase]int{}
	for _, d := range o.decisions {
		actions[d.ev.Action]++
	}
	for _, l := range o.lifecycle {
		phases[l.ev.Phase]++
	}
	return actions, phases
}

// phaseContainers returns the containers with a lifecycle fact of phase p.
func (o *observer) phaseContainers(p events.Phase) map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]bool{}
	for _, l := range o.lifecycle {
		if l.ev.Phase == p {
			out[l.ev.Container] = true
		}
	}
	return out
}

// timeline returns the decisions and lifecycle facts in order, one a line.
func (o *observer) timeline() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	type line struct {
		at time.Duration
		s  string
	}
	var lines []line
	for _, d := range o.decisions {
		lines = append(lines, line{d.at, fmt.Sprintf("decision %-10s %d→%d mean=%.1f min=%.1f ready=%d sundown=%d: %s",
			d.ev.Action, d.ev.From, d.ev.To, d.ev.Inputs.MeanScore, d.ev.Inputs.MinScore, d.ev.Inputs.Ready, d.ev.Inputs.Sundown, d.ev.Reason)})
	}
	for _, l := range o.lifecycle {
		s := fmt.Sprintf("lifecycle %-8s %s", l.ev.Phase, l.ev.Container)
		if l.ev.Reason != "" {
			s += " (" + l.ev.Reason + ")"
		}
		if l.ev.Error != "" {
			s += " error: " + l.ev.Error
		}
		lines = append(lines, line{l.at, s})
	}
	// Stable by time: both lists are in arrival order already.
	for i := 1; i < len(lines); i++ {
		for j := i; j > 0 && lines[j].at < lines[j-1].at; j-- {
			lines[j], lines[j-1] = lines[j-1], lines[j]
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = fmt.Sprintf("%6.1fs %s", l.at.Seconds(), l.s)
	}
	return out
}
