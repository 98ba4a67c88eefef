// Package dockertest gives tests a real Docker engine: a client, the demo
// worker image built FROM scratch through the API (no registry needed), a
// private bridge network, and containers, each removed in t.Cleanup, also
// when the test fails.
//
// Only a missing engine skips a test; any other Docker error fails it, so a
// broken engine cannot pass for an absent one.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// cleanupTimeout bounds each removal done in t.Cleanup, where the test's
// context is already cancelled.
const cleanupTimeout = 30 * time.Second

// Client returns a client for the engine named by the environment (DOCKER_HOST,
// else the default socket), with API version negotiation. It skips the test
// when no engine answers and fails it on any other error. The client is
// closed in cleanup.
func Client(tb testing.TB) *client.Client {
	tb.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		tb.Fatalf("docker: new client: %v", err)
	}
	tb.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		if client.IsErrConnectionFailed(err) {
			tb.Skipf("docker: no engine at DOCKER_HOST %s: %v", cli.DaemonHost(), err)
		}
		tb.Fatalf("docker: ping %s: %v", cli.DaemonHost(), err)
	}
	// Settle the version now: some client calls read it before their lazy
	// negotiation and would build their query for the wrong version.
	cli.NegotiateAPIVersion(ctx)
	return cli
}

// WorkerImage builds the demo worker (deploy/worker) as a static binary and
// an image FROM scratch with deploy/worker/Dockerfile, through the API and
// the legacy builder, tagged rb-test-worker:<random hex>. The image is
// removed in cleanup. Each call builds its own image (about a second): call
// it once in a parent test and share the tag between subtests.
func WorkerImage(tb testing.TB) string {
	tb.Helper()
	cli := Client(tb)
	ctx := tb.Context()
	root := moduleRoot(tb)
	dir := tb.TempDir()

	start := time.Now()
	bin := filepath.Join(dir, "worker")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./deploy/worker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./deploy/worker: %v\n%s", err, out)
	}
	goBuild := time.Since(start)

	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy", "worker", "Dockerfile"))
	if err != nil {
		tb.Fatalf("read worker Dockerfile: %v", err)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		tb.Fatalf("read worker binary: %v", err)
	}
	buildCtx, err := tarContext(map[string]tarFile{
		"Dockerfile": {data: dockerfile, mode: 0o644},
		"worker":     {data: binary, mode: 0o755},
	})
	if err != nil {
		tb.Fatalf("worker build context: %v", err)
	}

	tag := "rb-test-worker:" + randomHex(tb, 6)
	imgStart := time.Now()
	resp, err := cli.ImageBuild(ctx, buildCtx, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		tb.Fatalf("build image %s: %v", tag, err)
	}
	// Remove even a partly built image, whatever happens below.
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			tb.Errorf("remove image %s: %v", tag, err)
		}
	})
	err = readBuildStream(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		tb.Fatalf("build image %s: %v", tag, err)
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		tb.Fatalf("inspect built image %s: %v", tag, err)
	}
	tb.Logf("worker image %s built in %v (go build %v, image build %v)",
		tag, time.Since(start).Round(time.Millisecond), goBuild.Round(time.Millisecond), time.Since(imgStart).Round(time.Millisecond))
	return tag
}

// Network creates a user-defined bridge network named rb-test-<hex> (name
// lookup between containers works only on such networks) and removes it in
// cleanup. It returns the network's name.
func Network(tb testing.TB) string {
	tb.Helper()
	cli := Client(tb)
	name := "rb-test-" + randomHex(tb, 6)
	resp, err := cli.NetworkCreate(tb.Context(), name, network.CreateOptions{Driver: "bridge"})
	if err != nil {
		tb.Fatalf("create network %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := cli.NetworkRemove(ctx, resp.ID); err != nil && !cerrdefs.IsNotFound(err) {
			tb.Errorf("remove network %s: %v", name, err)
		}
	})
	return name
}

// RunSpec describes a container for Run.
type RunSpec struct {
	Image   string
	Name    string // "" → rb-test-<hex>
	Labels  map[string]string
	Env     []string
	Network string // "" → the default bridge
	Cmd     []string
	// Healthcheck overrides the image's HEALTHCHECK (nil keeps it).
	Healthcheck *container.HealthConfig
}

// Run creates and starts a container and force-removes it (by the ID it
// created) in cleanup, also when the test fails. It returns the container ID.
func Run(tb testing.TB, spec RunSpec) string {
	tb.Helper()
	cli := Client(tb)
	ctx := tb.Context()
	name := spec.Name
	if name == "" {
		name = "rb-test-" + randomHex(tb, 6)
	}
	cfg := &container.Config{
		Image:       spec.Image,
		Labels:      spec.Labels,
		Env:         spec.Env,
		Cmd:         spec.Cmd,
		Healthcheck: spec.Healthcheck,
	}
	host := &container.HostConfig{}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		host.NetworkMode = container.NetworkMode(spec.Network)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{spec.Network: {}}}
	}
	created, err := cli.ContainerCreate(ctx, cfg, host, netCfg, nil, name)
	if err != nil {
		tb.Fatalf("create container %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		err := cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			tb.Errorf("remove container %s: %v", name, err)
		}
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		tb.Fatalf("start container %s: %v", name, err)
	}
	return created.ID
}

// moduleRoot walks up from the working directory (the test's package) to
// the directory holding go.mod.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("find module root: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

type tarFile struct {
	data []byte
	mode int64
}

// tarContext packs files into an uncompressed tar, the build context the
// API expects. Names are sorted so that the same files make the same tar.
func tarContext(files map[string]tarFile) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := files[name]
		hdr := &tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar %s: %w", name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return &buf, nil
}

// readBuildStream drains the build's JSON message stream and returns the
// error it reports, with the build output for context.
func readBuildStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	var out strings.Builder
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read build output: %w", err)
		}
		out.WriteString(msg.Stream)
		if msg.Error != "" || msg.ErrorDetail.Message != "" {
			m := msg.ErrorDetail.Message
			if m == "" {
				m = msg.Error
			}
			return fmt.Errorf("%s\nbuild output:\n%s", m, out.String())
		}
	}
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("random name: %v", err)
	}
	return hex.EncodeToString(b)
}
