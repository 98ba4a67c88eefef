package dockertest

import (
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
)

func TestClientSkipsWithoutEngine(t *testing.T) {
	// Not parallel: it changes DOCKER_HOST for the process.
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
	var inner *testing.T
	t.Run("no engine", func(t *testing.T) {
		inner = t
		Client(t)
		t.Error("Client returned without an engine")
	})
	if !inner.Skipped() {
		t.Errorf("Client did not skip when no engine answers")
	}
}

func TestHelpersCleanUp(t *testing.T) {
	cli := Client(t)
	ctx := t.Context()
	var image, netw, id string
	t.Run("use", func(t *testing.T) {
		image = WorkerImage(t)
		if !strings.HasPrefix(image, "rb-test-worker:") {
			t.Errorf("image tag %q", image)
		}
		netw = Network(t)
		id = Run(t, RunSpec{Image: image, Network: netw, Labels: map[string]string{"rb.test": "dockertest"}})
		c, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !c.State.Running || c.Config.Labels["rb.test"] != "dockertest" || c.NetworkSettings.Networks[netw] == nil {
			t.Errorf("container running %v, labels %v, networks %v; want running, labelled, on %s",
				c.State.Running, c.Config.Labels, c.NetworkSettings.Networks, netw)
		}
		if !strings.HasPrefix(strings.TrimPrefix(c.Name, "/"), "rb-test-") {
			t.Errorf("default name %q, want rb-test-<hex>", c.Name)
		}
	})
	if _, err := cli.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Errorf("container after cleanup: %v, want not found", err)
	}
	if _, err := cli.NetworkInspect(ctx, netw, network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network after cleanup: %v, want not found", err)
	}
	if _, err := cli.ImageInspect(ctx, image); !cerrdefs.IsNotFound(err) {
		t.Errorf("image after cleanup: %v, want not found", err)
	}
}
