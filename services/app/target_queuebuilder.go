package app

import (
	"context"

	"github.com/rustybalancer/rb/services/queuebuilder"
)

// queuebuilderTarget runs the queue builder: the queue of each app from the
// latest scores and lifecycle facts, published on rb.queue.<app> and kept in
// Redis for proxies that start without NATS.
func queuebuilderTarget() Target {
	return Target{
		Name: "queuebuilder",
		Help: "builds each app's queue from rb.score.* and rb.lifecycle.*, publishes rb.queue.<app> (≤ 50 ms after a change) and the Redis snapshot",
		Build: func(ctx context.Context, d *Deps) (Service, error) {
			b, err := d.Bus(ctx)
			if err != nil {
				return nil, err
			}
			st, err := d.Store()
			if err != nil {
				return nil, err
			}
			opts := queuebuilder.Options{
				Apps:       []string{d.Config.App},
				Registerer: d.Admin.Registry(),
				// Replay the removal of every worker whose last score is
				// still kept, so that score cannot bring it back.
				LifecycleHistory: d.Config.Streams.ScoresMaxAge,
			}
			if opts.LifecycleHistory <= 0 {
				opts.LifecycleHistory = -1 // scores kept forever: read every fact
			}
			svc, err := queuebuilder.New(opts, b, st, d.Logger.With("service", "queuebuilder"))
			if err != nil {
				return nil, err
			}
			d.Admin.AddReady("queuebuilder", svc.Ready)
			d.Admin.AddHealth("queuebuilder-snapshots", svc.Health)
			return svc, nil
		},
	}
}
