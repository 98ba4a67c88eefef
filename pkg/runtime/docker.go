// Package runtime puts the Docker engine behind a small API: list, inspect,
// create, start, stop and remove the containers RustyBalancer manages,
// follow their events and stream their stats.
//
// A container is managed when it carries rb.app=<app> or the prototype's
// application=<app> label. Nothing else is ever started, stopped or removed:
// those calls inspect first and refuse with ErrNotManaged.
//
// The package also holds the pure arithmetic on stats samples (CPUPercent,
// NetRates), which needs no engine.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// ErrNotManaged is returned for a container that carries neither rb.app nor
// application: the runtime does not touch it.
var ErrNotManaged = errors.New("container not managed (no " + LabelApp + " or " + LabelLegacy + " label)")

// ErrNotFound is returned when Docker has no such container.
var ErrNotFound = errors.New("container not found")

// Environment variables Create sets for the worker.
const (
	EnvWorkerName = "WORKER_NAME"
	EnvPort       = "PORT"
)

// Docker talks to one Docker engine. It is safe for concurrent use.
type Docker struct {
	cli    *client.Client
	logger *slog.Logger

	negotiateMu sync.Mutex
	negotiated  atomic.Bool
}

// NewDocker connects to the engine at host (e.g. unix:///var/run/docker.sock,
// tcp://127.0.0.1:2375); host "" takes DOCKER_HOST and the other DOCKER_*
// variables, else the default socket. The API version is negotiated on the
// first call (the engines here speak 1.41). A nil logger discards.
func NewDocker(host string, logger *slog.Logger) (*Docker, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", host, err)
	}
	return &Docker{cli: cli, logger: logger}, nil
}

// Close releases the client's idle connections.
func (d *Docker) Close() error {
	if err := d.cli.Close(); err != nil {
		return fmt.Errorf("close docker client: %w", err)
	}
	return nil
}

// Host returns the engine address in use.
func (d *Docker) Host() string { return d.cli.DaemonHost() }

// Ping checks that the engine answers.
func (d *Docker) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker at %s: %w", d.cli.DaemonHost(), err)
	}
	return nil
}

// negotiate settles the API version once, before any other call. The
// client negotiates lazily on a request's way out, but Events and
// ContainerList read the version, unlocked, before that: a first List or
// Events running beside another first call is a data race, and may build
// its query for the wrong version.
func (d *Docker) negotiate(ctx context.Context) error {
	if d.negotiated.Load() {
		return nil
	}
	d.negotiateMu.Lock()
	defer d.negotiateMu.Unlock()
	if d.negotiated.Load() {
		return nil
	}
	// A versioned request runs the client's own locked negotiation first.
	if _, err := d.cli.ServerVersion(ctx); err != nil {
		return fmt.Errorf("negotiate docker API version with %s: %w", d.cli.DaemonHost(), err)
	}
	d.negotiated.Store(true)
	d.logger.Debug("docker API version negotiated", "host", d.cli.DaemonHost(), "version", d.cli.ClientVersion())
	return nil
}

// List returns the managed containers of app in every state, those labelled
// rb.app=<app> and those labelled application=<app>, sorted by name. When a
// container carries both labels with different values, rb.app names its app.
// App "" lists every managed container.
func (d *Docker) List(ctx context.Context, app string) ([]Container, error) {
	if err := d.negotiate(ctx); err != nil {
		return nil, fmt.Errorf("list containers of app %q: %w", app, err)
	}
	ids := map[string]bool{}
	var order []string
	for _, key := range []string{LabelApp, LabelLegacy} {
		label := key
		if app != "" {
			label = key + "=" + app
		}
		summaries, err := d.cli.ContainerList(ctx, container.ListOptions{
			All:     true,
			Filters: filters.NewArgs(filters.Arg("label", label)),
		})
		if err != nil {
			return nil, fmt.Errorf("list containers of app %q: %w", app, err)
		}
		for _, s := range summaries {
			if !ids[s.ID] {
				ids[s.ID] = true
				order = append(order, s.ID)
			}
		}
	}
	out := make([]Container, 0, len(order))
	for _, id := range order {
		c, err := d.Inspect(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrNotManaged):
			continue // removed (or relabelled) since the list
		case err != nil:
			return nil, fmt.Errorf("list containers of app %q: %w", app, err)
		}
		if app != "" && c.App != app {
			// application=<app> on a container whose rb.app names another app:
			// rb.app wins.
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Container) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Inspect returns one managed container by ID or name. It fails with
// ErrNotFound when there is no such container and ErrNotManaged when it
// carries neither label.
func (d *Docker) Inspect(ctx context.Context, id string) (Container, error) {
	r, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return Container{}, wrap("inspect", id, err)
	}
	c := fromInspect(r)
	if c.App == "" {
		return Container{}, fmt.Errorf("inspect container %s: %w", id, ErrNotManaged)
	}
	return c, nil
}

// CreateSpec describes a worker container to create.
type CreateSpec struct {
	App   string // required; written to rb.app and application
	Name  string // required; also WORKER_NAME
	Image string // required; must exist locally (no pulls)
	Port  int    // required; the worker's TCP port, also PORT
	// Network to attach to ("" = Docker's default bridge). Name lookup
	// between containers works only on user-defined networks.
	Network string
	Env     []string // extra KEY=value; must not set WORKER_NAME or PORT
	// Labels are extra labels; rb.app and application, if given, must equal App.
	Labels map[string]string
	CPUs   float64 // cores; 0 = no limit
	Memory int64   // bytes; 0 = no limit
	// PublishPort publishes Port on 127.0.0.1 with a random host port, for
	// callers outside Docker's networks.
	PublishPort bool
}

// Validate reports every problem of the spec.
func (s CreateSpec) Validate() error {
	var errs []error
	if s.App == "" {
		errs = append(errs, errors.New("app is empty"))
	}
	if s.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if s.Image == "" {
		errs = append(errs, errors.New("image is empty"))
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1 to 65535", s.Port))
	}
	if s.CPUs < 0 || math.IsNaN(s.CPUs) || math.IsInf(s.CPUs, 0) {
		errs = append(errs, fmt.Errorf("cpus %v: want a finite number >= 0", s.CPUs))
	}
	if s.Memory < 0 {
		errs = append(errs, fmt.Errorf("memory %d: want >= 0", s.Memory))
	}
	for _, kv := range s.Env {
		key, _, _ := strings.Cut(kv, "=")
		if key == EnvWorkerName || key == EnvPort {
			errs = append(errs, fmt.Errorf("env %s is set from the spec's name and port", key))
		}
	}
	for _, key := range []string{LabelApp, LabelLegacy} {
		if v, ok := s.Labels[key]; ok && v != s.App {
			errs = append(errs, fmt.Errorf("label %s=%q differs from app %q", key, v, s.App))
		}
	}
	return errors.Join(errs...)
}

// Create creates (does not start) a worker container labelled
// rb.app=<app> and application=<app>, with WORKER_NAME=<name> and
// PORT=<port> in its environment. When the container was created but could
// not be inspected, the returned Container still carries its ID, so that the
// caller can remove it.
func (d *Docker) Create(ctx context.Context, spec CreateSpec) (Container, error) {
	if err := spec.Validate(); err != nil {
		return Container{}, fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	labels := make(map[string]string, len(spec.Labels)+2)
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[LabelApp] = spec.App
	labels[LabelLegacy] = spec.App

	env := make([]string, 0, len(spec.Env)+2)
	env = append(env, spec.Env...)
	env = append(env, EnvWorkerName+"="+spec.Name, EnvPort+"="+strconv.Itoa(spec.Port))

	port, err := nat.NewPort("tcp", strconv.Itoa(spec.Port))
	if err != nil {
		return Container{}, fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Env:          env,
		Labels:       labels,
		ExposedPorts: nat.PortSet{port: {}},
	}
	host := &container.HostConfig{}
	host.NanoCPUs = int64(math.Round(spec.CPUs * 1e9))
	host.Memory = spec.Memory
	if spec.PublishPort {
		host.PortBindings = nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: ""}}}
	}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		host.NetworkMode = container.NetworkMode(spec.Network)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{spec.Network: {}}}
	}
	created, err := d.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, spec.Name)
	if err != nil {
		return Container{}, wrap("create", spec.Name, err)
	}
	for _, w := range created.Warnings {
		d.logger.Warn("docker warning on create", "container", spec.Name, "warning", w)
	}
	d.logger.Info("container created", "app", spec.App, "container", spec.Name, "id", shortID(created.ID), "image", spec.Image)
	c, err := d.Inspect(ctx, created.ID)
	if err != nil {
		return Container{ID: created.ID, Name: spec.Name, App: spec.App}, fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	return c, nil
}

// Start starts a managed container.
func (d *Docker) Start(ctx context.Context, id string) error {
	c, err := d.managed(ctx, "start", id)
	if err != nil {
		return err
	}
	if err := d.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return wrap("start", id, err)
	}
	d.logger.Info("container started", "app", c.App, "container", c.Name, "id", shortID(c.ID))
	return nil
}

// Stop sends the container its stop signal (SIGTERM) and kills it if it has
// not exited after timeout (rounded up to whole seconds; <= 0 uses the
// container's own stop timeout, 10 s by default). Stopping a stopped
// container succeeds.
func (d *Docker) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := d.managed(ctx, "stop", id)
	if err != nil {
		return err
	}
	var opts container.StopOptions
	if timeout > 0 {
		secs := int(math.Ceil(timeout.Seconds()))
		opts.Timeout = &secs
	}
	if err := d.cli.ContainerStop(ctx, c.ID, opts); err != nil {
		return wrap("stop", id, err)
	}
	d.logger.Info("container stopped", "app", c.App, "container", c.Name, "id", shortID(c.ID))
	return nil
}

// Remove force-removes a managed container (killing it if it runs) with its
// anonymous volumes.
func (d *Docker) Remove(ctx context.Context, id string) error {
	c, err := d.managed(ctx, "remove", id)
	if err != nil {
		return err
	}
	if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		return wrap("remove", id, err)
	}
	d.logger.Info("container removed", "app", c.App, "container", c.Name, "id", shortID(c.ID))
	return nil
}

// managed inspects id before an action and refuses unlabelled containers.
func (d *Docker) managed(ctx context.Context, action, id string) (Container, error) {
	r, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return Container{}, wrap(action, id, err)
	}
	c := fromInspect(r)
	if c.App == "" {
		return Container{}, fmt.Errorf("%s container %s: %w", action, id, ErrNotManaged)
	}
	return c, nil
}

// wrap names the action and the container and maps Docker's not-found
// errors to ErrNotFound; the engine's error stays in the chain.
func wrap(action, id string, err error) error {
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%s container %s: %w: %w", action, id, ErrNotFound, err)
	}
	return fmt.Errorf("%s container %s: %w", action, id, err)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
