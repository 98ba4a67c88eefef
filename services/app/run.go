package app

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// Run builds the targets in registry order and runs them, with the admin
// listener and the store's health monitor, until ctx is done or one fails;
// the first failure cancels the rest. Shared clients are closed after every
// service has returned.
func Run(ctx context.Context, d *Deps, targets []Target) (err error) {
	defer d.close()
	for _, t := range targets {
		if len(t.Require) > 0 {
			if rerr := d.Config.Require(t.Require...); rerr != nil {
				return fmt.Errorf("target %s: %w", t.Name, rerr)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	// The process is not healthy until every target has been built, so a
	// healthcheck never passes half-way through start-up.
	var started atomic.Bool
	d.Admin.AddHealth("targets", func() error {
		if !started.Load() {
			return errors.New("starting")
		}
		return nil
	})
	g.Go(func() error { return d.Admin.Run(gctx) })
	built := make([]Service, 0, len(targets))
	for _, t := range targets {
		svc, berr := t.Build(gctx, d)
		if berr != nil {
			if gctx.Err() != nil && ctx.Err() != nil {
				// Stopped (signal) while starting: a clean stop, not a failure.
				d.Logger.Info("stopped while starting", "target", t.Name)
				err = nil
			} else {
				err = fmt.Errorf("start target %s: %w", t.Name, berr)
			}
			break
		}
		built = append(built, svc)
		d.Logger.Info("target started", "target", t.Name)
	}
	started.Store(len(built) == len(targets))
	if err == nil {
		if s := d.storeIfCreated(); s != nil {
			g.Go(func() error { return s.Run(gctx) })
		}
		for i, svc := range built {
			name := targets[i].Name
			g.Go(func() error {
				if rerr := svc.Run(gctx); rerr != nil && !errors.Is(rerr, context.Canceled) {
					d.Logger.Error("target failed; stopping the others", "target", name, "err", rerr)
					return fmt.Errorf("target %s: %w", name, rerr)
				}
				d.Logger.Info("target stopped", "target", name)
				return nil
			})
		}
	} else {
		// Stop the admin listener started above.
		g.Go(func() error { return err })
	}
	// A build cancelled because something else failed (the admin listener
	// could not bind, say) reports that cause, not the cancellation.
	if gerr := g.Wait(); gerr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = gerr
	}
	return err
}
