package redistest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if _, err := serverPID(s.Addr()); err != nil {
		t.Fatalf("started server does not answer: %v", err)
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Fatalf("URL() = %q, want %q", s.URL(), want)
	}

	s.Stop(t)
	if _, err := serverPID(s.Addr()); err == nil {
		t.Fatalf("server on %s still answers after Stop", s.Addr())
	}
	s.Stop(t) // idempotent

	addr := s.Addr()
	s.Restart(t)
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	if _, err := serverPID(s.Addr()); err != nil {
		t.Fatalf("restarted server does not answer: %v", err)
	}
}

func TestTwoServersAreDistinct(t *testing.T) {
	t.Parallel()
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	pa, err := serverPID(a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	pb, err := serverPID(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if pa == pb {
		t.Fatalf("both addresses answered by pid %d", pa)
	}
}

func TestFindBinary(t *testing.T) {
	// Not parallel: t.Setenv changes PATH for the whole process.
	onPath := t.TempDir()
	pathBin := filepath.Join(onPath, "redis-server")
	writeExecutable(t, pathBin)
	fallback := filepath.Join(t.TempDir(), "redis-server")
	writeExecutable(t, fallback)
	empty := t.TempDir()

	tests := []struct {
		name     string
		path     string
		fallback string
		want     string
		wantErr  string
	}{
		{name: "on PATH", path: onPath, fallback: fallback, want: pathBin},
		{name: "fallback", path: empty, fallback: fallback, want: fallback},
		{name: "missing", path: empty, fallback: filepath.Join(empty, "nope"), wantErr: "redis-server not found: install it (apt-get install -y redis-server)"},
		{name: "fallback is a directory", path: empty, fallback: empty, wantErr: "redis-server not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			got, err := findBinary(tt.fallback)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("findBinary() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findBinary() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func writeExecutable(tb testing.TB, path string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
}
