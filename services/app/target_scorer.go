package app

import (
	"context"
	"os"
	"time"

	"github.com/rustybalancer/rb/services/scorer"
)

// scorerTarget runs the scorer of APP_IDENTIFIER: Samples in (rb.stats.<app>.*),
// Scores out (rb.score.<app>.<container>), state snapshotted to Redis.
func scorerTarget() Target {
	return Target{
		Name: "scorer",
		Help: "scores the app's Samples (rb.stats.<app>.*) into Scores (rb.score.<app>.*); state kept across restarts",
		Build: func(ctx context.Context, d *Deps) (Service, error) {
			b, err := d.Bus(ctx)
			if err != nil {
				return nil, err
			}
			st, err := d.Store()
			if err != nil {
				return nil, err
			}
			node, err := os.Hostname()
			if err != nil || node == "" {
				node = "unknown"
			}
			svc, err := scorer.New(scorer.Options{
				Config: *d.Config, Bus: b, Store: st, Logger: d.Logger.With("service", "scorer"),
				Metrics: d.Admin.Registry(), Node: node, Now: time.Now,
			})
			if err != nil {
				return nil, err
			}
			d.Admin.AddReady("scorer", svc.Ready)
			return svc, nil
		},
	}
}
