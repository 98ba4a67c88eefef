package app

import (
	"context"
	"fmt"

	"github.com/rustybalancer/rb/pkg/bus"
)

// natsTarget runs a standalone embedded NATS server with JetStream, so compose
// needs no NATS image. The streams are ensured at start, so outside clients
// (`nats stream ls`) see them before any service publishes.
func natsTarget() Target {
	return Target{
		Name: "nats",
		Help: "embedded NATS server with JetStream (RB_NATS_LISTEN, RB_NATS_STORE_DIR)",
		Build: func(ctx context.Context, d *Deps) (Service, error) {
			opts := d.BusOptions()
			opts.URL = ""
			srv, err := bus.EmbeddedServer(ctx, opts, d.Logger)
			if err != nil {
				return nil, fmt.Errorf("start embedded NATS on %s: %w", opts.Listen, err)
			}
			d.setNATSURL(srv.ClientURL())
			// Ensure the streams with a short-lived client, so they exist even
			// when this process runs nothing else.
			opts.URL = srv.ClientURL()
			c, err := bus.Connect(ctx, opts, d.Logger.With("component", "bus"))
			if err != nil {
				srv.Shutdown()
				return nil, fmt.Errorf("ensure streams on the embedded server: %w", err)
			}
			_ = c.Close()
			d.Admin.AddHealth("nats-server", srv.Health)
			d.onClose(srv.Shutdown)
			return natsService{}, nil
		},
	}
}

// natsService keeps the target alive; the server is shut down after every
// other service of the process has stopped, so they can flush on the way out.
type natsService struct{}

func (natsService) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
