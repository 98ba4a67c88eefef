// Package redistest starts a real redis-server for tests.
//
// Each Server is a child process of the test binary, bound to 127.0.0.1 on a
// free port, without persistence, its working directory in tb.TempDir(). It is
// killed by tb.Cleanup through its own *exec.Cmd, never by name, so parallel
// tests and other users of the machine are left alone. Stop and Restart keep the
// port, which lets a test observe a client while Redis is down and after it
// comes back.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fallbackPath is where Debian and Ubuntu install redis-server; it is tried
// when the binary is not on PATH (test runners often run with a reduced PATH).
const fallbackPath = "/usr/bin/redis-server"

// readyTimeout bounds the wait for a started server to answer PING.
const readyTimeout = 10 * time.Second

// startAttempts is how many free ports Start tries: another process may bind
// the port between our probe closing it and redis-server binding it.
const startAttempts = 5

// Server is one redis-server child process owned by a test.
type Server struct {
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	exited chan struct{} // closed when cmd.Wait returned
	err    error         // cmd.Wait's result, valid once exited is closed
}

// Start starts a redis-server on a free loopback port and waits until it
// answers PING. The server is killed when the test ends. Start fails the test
// when redis-server is not installed or does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := findBinary(fallbackPath)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	s := &Server{bin: bin, dir: tb.TempDir()}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("redistest: %v", err)
		}
	})

	var errs []error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		s.port = port
		if err := s.start(); err != nil {
			errs = append(errs, err)
			continue
		}
		return s
	}
	tb.Fatalf("redistest: start redis-server (%d attempts): %v", startAttempts, errors.Join(errs...))
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns a redis:// URL for database 0 of the server.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Stop kills the server and waits for it to exit. The port is kept for
// Restart. Stopping a stopped server does nothing.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.stop(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
}

// Restart starts the server again on the same port, with an empty dataset
// (nothing is persisted), and waits until it answers PING. It fails the test
// when the server is running or cannot be started.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		tb.Fatalf("redistest: restart redis-server on %s: still running, call Stop first", s.Addr())
	}
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: restart: %v", err)
	}
}

// start launches redis-server on s.port and waits for PING. On failure the
// process is gone and the error carries its output.
func (s *Server) start() error {
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s on port %d: %w", s.bin, s.port, err)
	}
	p := &process{cmd: cmd, output: out, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()

	if err := waitReady(s.Addr(), p); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("redis-server on port %d: %w; output:\n%s", s.port, err, out.String())
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// stop kills the running process, if any, and waits for it.
func (s *Server) stop() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.exited:
		return fmt.Errorf("redis-server on port %d had exited on its own (%v); output:\n%s", s.port, p.err, p.output.String())
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill redis-server pid %d: %w", p.cmd.Process.Pid, err)
	}
	<-p.exited
	return nil
}

// waitReady polls addr until the redis-server there reports our process id,
// the process exits, or readyTimeout passes. Checking the pid, not only PONG,
// guards against a server of another test that won the race for the port.
func waitReady(addr string, p *process) error {
	deadline := time.Now().Add(readyTimeout)
	want := p.cmd.Process.Pid
	var lastErr error
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("exited before answering PING: %v", p.err)
		default:
		}
		pid, err := serverPID(addr)
		switch {
		case err != nil:
			lastErr = err
		case pid == want:
			return nil
		default:
			lastErr = fmt.Errorf("port answered by another redis-server (pid %d, ours is %d)", pid, want)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %s: %w", readyTimeout, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverPID sends PING and INFO server and returns the process_id reported.
func serverPID(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, err
	}
	if _, err := conn.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read PING answer: %w", err)
	}
	if got := strings.TrimSpace(line); got != "+PONG" {
		return 0, fmt.Errorf("PING answered %q", got)
	}
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read INFO answer: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(head), "$"))
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, fmt.Errorf("read INFO body: %w", err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// findBinary looks for redis-server on PATH, then at fallback.
func findBinary(fallback string) (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	if st, err := os.Stat(fallback); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", errors.New("redis-server not found: install it (apt-get install -y redis-server)")
}

// freePort asks the kernel for a free loopback port and releases it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("release port %d: %w", port, err)
	}
	return port, nil
}

// syncBuffer collects the child's output; exec copies it from another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
