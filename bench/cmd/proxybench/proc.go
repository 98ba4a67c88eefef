package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the bench started: a proxy under test. It runs in
// its own session and so its own process group, so stopping it also stops
// the workers it forked (NGINX), and it dies with the bench (Pdeathsig) if
// the bench is killed. Its own session also gives it its own scheduler
// autogroup (Linux sched_autogroup): on a machine busy with other work, a
// proxy's CPU share then does not depend on how many threads it runs (a Go
// process has several, HAProxy and NGINX one each).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // valid once done is closed
}

// startProc starts bin with args, pinned to the CPU list cpus when it is not
// empty (taskset -c), with exactly env as its environment; its output goes
// to dir/<name>.log.
func startProc(name, cpus, dir string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if cpus != "" {
		args = append([]string{"-c", cpus, bin}, args...)
		bin = "taskset"
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (taskset execs the program, so it is the program's).
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after timeout.
func (p *proc) Stop(timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("stop %s (pid %d): killed after %s", p.name, pgid, timeout)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop %s (pid %d): still running after SIGKILL", p.name, pgid)
	}
}

// LogTail returns the last lines of the process's output, for error messages.
func (p *proc) LogTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// waitDial waits until addr accepts TCP connections, failing early when p
// exits.
func (p *proc) waitDial(ctx context.Context, addr string, timeout time.Duration) error {
	return p.waitFor(ctx, timeout, "listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// waitFor polls ok every 20 ms until it holds, the process exits, timeout
// passes or ctx ends.
func (p *proc) waitFor(ctx context.Context, timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before it could %s: %v\n%s", p.name, what, p.err, p.LogTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not %s within %s\n%s", p.name, what, timeout, p.LogTail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to %s: %w", p.name, what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procs is the set of running children, stopped by StopAll whatever happens.
type procs struct{ list []*proc }

func (s *procs) add(p *proc) { s.list = append(s.list, p) }

// stop stops p and forgets it.
func (s *procs) stop(p *proc) error {
	for i, q := range s.list {
		if q == p {
			s.list = append(s.list[:i], s.list[i+1:]...)
			break
		}
	}
	return p.Stop(5 * time.Second)
}

// StopAll stops every child still running.
func (s *procs) StopAll() error {
	var errs []error
	for _, p := range s.list {
		errs = append(errs, p.Stop(5*time.Second))
	}
	s.list = nil
	return errors.Join(errs...)
}

// freePort returns a loopback port that was free a moment ago, taken
// below the kernel's ephemeral range (ip_local_port_range), so the
// thousands of client connections of a load run cannot take it between the
// check and the child's listen. A child that still fails to listen is
// reported, not hidden.
func freePort() (int, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	const base = 10000
	if lo-base < 1000 {
		return 0, fmt.Errorf("find a free port: ephemeral range starts at %d, too low", lo)
	}
	for range 100 {
		port := base + rand.IntN(lo-base)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, errors.New("find a free port: 100 tries below the ephemeral range failed")
}
