package scaler

import (
	"context"
	"fmt"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/scale"
)

// startReconcile runs one reconciliation in the background unless one runs.
func (t *term) startReconcile(context.Context) {
	if t.reconBusy {
		return
	}
	t.reconBusy = true
	t.async(func(ctx context.Context) {
		defer func() { t.reconDone <- struct{}{} }()
		t.reconcile(ctx)
	})
}

// reconcile compares Docker, the Redis records and the scaling state, as the
// prototype compared Docker and Redis every cycle, and puts right what
// differs — through facts (which pkg/scale then acts on) and through the
// actions recorded decisions asked for:
//
//   - a worker requested by a decision but not created (the scaler stopped
//     between the decision and the action) is created, once: its name is
//     in the decision;
//   - a worker whose container is gone is reported removed; one whose
//     container stopped is reported died (pkg/scale replaces it);
//   - a worker whose removal was decided but whose container still exists
//     is removed again;
//   - a running labelled container the state does not know is adopted (a
//     started fact, then ready once it answers): pkg/scale raises the
//     desired count to include it and its rules scale the app back down if
//     it is not needed; a stopped one is removed;
//   - Redis records with no container are deleted, missing ones written.
//
// Workers the executor is acting on, or acted on since the listing began,
// are left alone: their facts are on the way.
func (t *term) reconcile(ctx context.Context) {
	begin := time.Now()
	docker := t.s.opts.Config.Docker
	var list []runtime.Container
	err := t.x.call("list", "", func(ctx context.Context) error {
		var err error
		list, err = t.s.rt.List(ctx, t.s.app)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("reconciliation skipped: containers not listed", "err", err)
		}
		return
	}
	recs, recErr := t.s.store.ListContainers(ctx, t.s.app)
	if recErr != nil && ctx.Err() == nil {
		t.log.Warn("reconciliation of Redis records skipped", "err", recErr)
	}
	reply := make(chan []workerView, 1)
	select {
	case t.snapshots <- reply:
	case <-ctx.Done():
		return
	}
	var workers []workerView
	select {
	case workers = <-reply:
	case <-ctx.Done():
		return
	}

	byName := make(map[string]runtime.Container, len(list))
	running := 0
	for _, c := range list {
		byName[c.Name] = c
		if c.State == "running" {
			running++
		}
	}
	t.s.m.containers.Set(float64(running))
	records := make(map[string]bool, len(recs))
	for _, r := range recs {
		records[r.Name] = true
	}
	busy := func(name string) bool { return t.x.busySince(name, begin) }
	known := make(map[string]bool, len(workers))
	for _, w := range workers {
		known[w.Name] = true
		if busy(w.Name) {
			continue
		}
		c, exists := byName[w.Name]
		switch {
		case w.Phase == scale.PhaseRemoved:
			if exists {
				t.x.enqueue(ctx, action{kind: actRemove, name: w.Name, reason: "the container of a removed worker still exists (reconciliation)"})
			}
		case !w.RemoveAt.IsZero():
			if exists {
				t.x.enqueue(ctx, action{kind: actRemove, name: w.Name, reason: "removal decided, the container still exists (reconciliation)"})
			} else if t.s.opts.Now().Sub(w.RemoveAt) > t.s.opts.Config.Scaling.ReconcileInterval {
				// Removed, but its removed fact never made it into the log.
				t.x.enqueue(ctx, action{kind: actRemove, name: w.Name, reason: "removal decided, the container is gone (reconciliation)"})
			}
		case w.Phase == scale.PhaseRequested:
			if !t.x.createdInTerm(w.Name) {
				t.x.enqueue(ctx, action{kind: actCreate, name: w.Name, reason: "requested by a recorded decision (reconciliation)"})
			}
		case !exists:
			t.x.publishFact(ctx, events.Lifecycle{App: t.s.app, Container: w.Name, Phase: events.PhaseRemoved,
				Reason: "the container is gone (reconciliation)"})
		case c.State != "running" && w.Phase != scale.PhaseFailed:
			t.x.publishFact(ctx, events.Lifecycle{App: t.s.app, Container: w.Name, ContainerID: c.ID, Phase: events.PhaseDied,
				Reason: fmt.Sprintf("the container is %s (reconciliation)", c.State)})
		case !records[w.Name] && recErr == nil:
			addr, _ := c.Address(docker.Network, docker.Port)
			t.x.putRecord(ctx, c, addr, recordState(w.Phase))
		}
	}
	for _, c := range list {
		if known[c.Name] || busy(c.Name) {
			continue
		}
		if c.State == "running" {
			t.x.enqueue(ctx, action{kind: actAdopt, name: c.Name,
				reason: "adopted: a running container labelled for the app that the scaler did not know (reconciliation)"})
		} else {
			t.x.enqueue(ctx, action{kind: actRemove, name: c.Name,
				reason: "a stopped container labelled for the app that the scaler did not know (reconciliation)"})
		}
	}
	if recErr != nil {
		return
	}
	for _, r := range recs {
		if _, ok := byName[r.Name]; !ok && !busy(r.Name) {
			if err := t.s.store.DeleteContainer(ctx, t.s.app, r.Name); err != nil && ctx.Err() == nil {
				t.log.Warn("stale container record not deleted", "container", r.Name, "err", err)
			}
		}
	}
}

// recordState is the state a Redis record carries for a phase.
func recordState(ph scale.Phase) string {
	switch ph {
	case scale.PhaseRequested, scale.PhaseInit:
		return "INIT"
	case scale.PhaseReady:
		return "ready"
	}
	return string(ph)
}
