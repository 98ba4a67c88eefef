package app

import (
	"context"
	"fmt"
	"os"

	"github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/services/collector"
)

// collectorTarget runs the collector: it follows the app's containers on the
// Docker engine and publishes a Sample per running worker per interval and
// the lifecycle facts Docker reports.
func collectorTarget() Target {
	return Target{
		Name: "collector",
		Help: "samples of the app's workers from Docker stats and probes (DOCKER_HOST, RB_COLLECT_INTERVAL, RB_PROBE)",
		Build: func(ctx context.Context, d *Deps) (Service, error) {
			b, err := d.Bus(ctx)
			if err != nil {
				return nil, err
			}
			logger := d.Logger.With("service", "collector")
			// The client connects lazily: an unreachable engine is the
			// collector's to report and ride out, not a start failure.
			docker, err := runtime.NewDocker(d.Config.Docker.Host, logger.With("component", "docker"))
			if err != nil {
				return nil, fmt.Errorf("collector: %w", err)
			}
			node, err := os.Hostname()
			if err != nil || node == "" {
				node = "unknown"
			}
			svc, err := collector.New(collector.FromConfig(d.Config, node), docker, b, logger, d.Admin.Registry())
			if err != nil {
				_ = docker.Close()
				return nil, err
			}
			d.onClose(func() { _ = docker.Close() })
			d.Admin.AddReady("collector", svc.Ready)
			return svc, nil
		},
	}
}
