package app

import (
	"context"

	"github.com/rustybalancer/rb/services/gateway"
)

// gatewayTarget runs the gateway: the prototype's /ws and /stats, the
// /ws/v1 event stream, the HTTP API with config writes, and the dashboard.
func gatewayTarget() Target {
	return Target{
		Name: "gateway",
		Help: "WebSocket /ws (HOST_PORT_WS_DEPLOYMENT_AGENT), HTTP API and dashboard (HOST_PORT_HTTP_DEPLOYMENT_AGENT)",
		Build: func(ctx context.Context, d *Deps) (Service, error) {
			b, err := d.Bus(ctx)
			if err != nil {
				return nil, err
			}
			st, err := d.Store()
			if err != nil {
				return nil, err
			}
			logger := d.Logger.With("service", "gateway")
			opts := gateway.OptionsFromConfig(d.Config)
			opts.Registerer, opts.Gatherer = d.Admin.Registry(), d.Admin.Registry()
			opts.Config = &gateway.ConfigWriter{Store: st, Bus: b, Base: *d.Config, Source: gateway.Source("gateway")}
			svc, err := gateway.New(opts, b, logger)
			if err != nil {
				return nil, err
			}
			d.Admin.AddReady("gateway", svc.Ready)
			return svc, nil
		},
	}
}
