package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPeerConfigsValid renders the HAProxy and NGINX configs of every
// algorithm the bench uses and has the real programs check them.
func TestPeerConfigsValid(t *testing.T) {
	t.Parallel()
	backends := []string{"127.0.0.1:1", "127.0.0.1:2"}
	tests := []struct {
		name  string
		bin   string
		tmpl  string
		conf  peerConf
		check func(bin, dir, path string) *exec.Cmd
	}{
		{name: "haproxy roundrobin", bin: "/usr/sbin/haproxy", tmpl: "haproxy", conf: peerConf{Balance: "roundrobin"}},
		{name: "haproxy leastconn", bin: "/usr/sbin/haproxy", tmpl: "haproxy", conf: peerConf{Balance: "leastconn"}},
		{name: "nginx round robin", bin: "/usr/sbin/nginx", tmpl: "nginx", conf: peerConf{}},
		{name: "nginx least_conn", bin: "/usr/sbin/nginx", tmpl: "nginx", conf: peerConf{Method: "least_conn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(tt.bin); err != nil {
				t.Skipf("%s not installed (bench/run.sh installs it): %v", tt.bin, err)
			}
			dir := t.TempDir()
			c := tt.conf
			c.Dir, c.Listen, c.Backends = dir, "127.0.0.1:1", backends
			var cmd *exec.Cmd
			if tt.tmpl == "haproxy" {
				path, err := renderConf(haproxyTmpl, c, "haproxy.cfg")
				if err != nil {
					t.Fatal(err)
				}
				cmd = exec.Command(tt.bin, "-c", "-f", path)
			} else {
				if err := os.MkdirAll(dir+"/nginx-tmp", 0o755); err != nil {
					t.Fatal(err)
				}
				path, err := renderConf(nginxTmpl, c, "nginx.conf")
				if err != nil {
					t.Fatal(err)
				}
				cmd = exec.Command(tt.bin, "-t", "-p", dir+"/", "-c", path, "-e", dir+"/nginx-error.log")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s rejects the config: %v\n%s", tt.bin, err, out)
			}
		})
	}
}

// TestBackendsCount sends a known number of requests to a backend and
// checks that it counted exactly those, and that sendN reports none failed.
func TestBackendsCount(t *testing.T) {
	t.Parallel()
	bs, err := startBackends([]time.Duration{0, time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bs.Close)
	tests := []struct {
		name string
		i, n int
	}{
		{name: "fast backend", i: 0, n: 500},
		{name: "sleeping backend", i: 1, n: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := bs.Hits()[tt.i]
			failed, _, err := sendN(context.Background(), "http://"+bs.Addrs()[tt.i]+"/", tt.n, 8)
			if err != nil || failed != 0 {
				t.Fatalf("sendN: failed %d, err %v", failed, err)
			}
			if got := bs.Hits()[tt.i] - before; got != int64(tt.n) {
				t.Fatalf("backend counted %d requests, want %d", got, tt.n)
			}
		})
	}
}

// TestProcStopsGroup starts a shell that forks a child, stops it and
// checks that the child is gone too.
func TestProcStopsGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := startProc("sleeper", "", dir, baseEnv(), "sh", "-c", "sleep 60 & echo $! > child.pid; wait")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	var child string
	err = p.waitFor(context.Background(), 5*time.Second, "write child.pid", func() bool {
		b, err := os.ReadFile(dir + "/child.pid")
		child = strings.TrimSpace(string(b))
		return err == nil && child != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(2 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat("/proc/" + child); err == nil {
		// The child may linger a moment as it is reaped by init.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat("/proc/" + child); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("child %s of the stopped process still runs", child)
	}
}
