package app

import (
	"context"
	"fmt"

	"github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/services/scaler"
)

// scalerTarget runs the scaler: pkg/scale on the app's scores, lifecycle
// facts and proxy reports, its decisions executed on Docker. One scaler acts
// per app (a lease in Redis); others stand by.
func scalerTarget() Target {
	return Target{
		Name:    "scaler",
		Help:    "scales the app's workers on Docker (DOCKER_IMAGE, TARGET_PORT) from scores, lifecycle facts and proxy reports; one active per app (Redis lease), decisions on rb.scale.<app>",
		Require: []string{"DOCKER_IMAGE", "TARGET_PORT"},
		Build: func(ctx context.Context, d *Deps) (Service, error) {
			b, err := d.Bus(ctx)
			if err != nil {
				return nil, err
			}
			st, err := d.Store()
			if err != nil {
				return nil, err
			}
			logger := d.Logger.With("service", "scaler")
			rt, err := runtime.NewDocker(d.Config.Docker.Host, logger.With("component", "docker"))
			if err != nil {
				return nil, fmt.Errorf("scaler: %w", err)
			}
			d.onClose(func() { _ = rt.Close() })
			svc, err := scaler.New(scaler.Options{Config: *d.Config, Registerer: d.Admin.Registry()}, b, st, rt, logger)
			if err != nil {
				return nil, err
			}
			d.Admin.AddReady("scaler", svc.Ready)
			return svc, nil
		},
	}
}
