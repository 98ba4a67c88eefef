package app

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/rustybalancer/rb/services/proxy"
)

// proxyTarget runs the proxy: HTTP on HOST_PORT_HTTP_BALANCER to the workers
// of the queue on rb.queue.<app> (or of the Redis snapshot while NATS is
// down), with rb.proxy.<app>.<proxy-id> telemetry. NATS is connected in the
// background, so the proxy starts serving without it.
func proxyTarget() Target {
	return Target{
		Name: "proxy",
		Help: "HTTP proxy on HOST_PORT_HTTP_BALANCER to the app's workers as listed on rb.queue.<app>; reports on rb.proxy.<app>.<proxy-id>",
		Build: func(ctx context.Context, d *Deps) (Service, error) {
			st, err := d.Store()
			if err != nil {
				return nil, err
			}
			host, err := os.Hostname()
			if err != nil || host == "" {
				host = "proxy"
			}
			svc, err := proxy.New(proxy.Options{
				Config: *d.Config,
				Connect: func(ctx context.Context) (proxy.Bus, error) {
					b, err := d.Bus(ctx)
					if err != nil {
						return nil, err
					}
					return b, nil
				},
				Store:   st,
				Logger:  d.Logger.With("service", "proxy"),
				Metrics: d.Admin.Registry(),
				Now:     time.Now,
				ID:      host + "-" + strconv.Itoa(d.Config.Proxy.Port),
			})
			if err != nil {
				return nil, err
			}
			d.Admin.AddReady("proxy", svc.Ready)
			return svc, nil
		},
	}
}
