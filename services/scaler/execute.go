package scaler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/runtime"
	"github.com/rustybalancer/rb/pkg/store"
)

// actionKind is what the executor does to one worker.
type actionKind uint8

const (
	// actCreate creates and starts the worker named in a scale-up or
	// replace decision (or adopts the container if it exists), publishes
	// created, probes it and publishes ready.
	actCreate actionKind = iota + 1
	// actSundown publishes the sundown fact of a scale-down victim.
	actSundown
	// actRemove stops (with the grace period) and removes the container,
	// publishing drained first for a SUNDOWN worker, then removed.
	actRemove
	// actAdopt takes in a running labelled container the state does not
	// know: started, then ready once it answers.
	actAdopt
)

// action is one thing to do to one worker.
type action struct {
	kind       actionKind
	name       string
	decisionID string
	reason     string
	// drain: the worker was SUNDOWN, so its removal ends a drain.
	drain bool
}

// touchedTTL is how long the executor remembers it acted on a worker.
const touchedTTL = 10 * time.Minute

// executor carries out actions on Docker, one at a time per worker (a
// worker's create, then its removal, in decision order) and several workers
// at once, and publishes each result as a lifecycle fact.
type executor struct {
	t   *term
	s   *Service
	ctx context.Context
	sem chan struct{}
	wg  sync.WaitGroup

	mu sync.Mutex
	// queues holds each worker's actions, the running one first; a key
	// exists while a goroutine drains it.
	queues map[string][]action
	// touched is when an action on the worker last started or ended.
	touched map[string]time.Time
	// started are the workers whose create finished in this term: their
	// created fact may still be on its way back.
	started map[string]bool
	// records caches the Redis records written, to update their state.
	records map[string]store.ContainerRecord
}

func newExecutor(t *term) *executor {
	return &executor{
		t: t, s: t.s,
		sem:     make(chan struct{}, t.s.opts.MaxParallel),
		queues:  map[string][]action{},
		touched: map[string]time.Time{},
		started: map[string]bool{},
		records: map[string]store.ContainerRecord{},
	}
}

// start sets the context every action runs under: the term's.
func (x *executor) start(ctx context.Context) { x.ctx = ctx }

// wait returns when every action has returned.
func (x *executor) wait() { x.wg.Wait() }

// enqueue adds a to its worker's queue.
func (x *executor) enqueue(_ context.Context, a action) {
	x.mu.Lock()
	defer x.mu.Unlock()
	q, running := x.queues[a.name]
	x.queues[a.name] = append(q, a)
	x.touched[a.name] = time.Now()
	if !running {
		x.wg.Add(1)
		go x.drain(a.name)
	}
}

func (x *executor) drain(name string) {
	defer x.wg.Done()
	for {
		x.mu.Lock()
		q := x.queues[name]
		if len(q) == 0 || x.ctx.Err() != nil {
			delete(x.queues, name)
			now := time.Now()
			x.touched[name] = now
			for n, at := range x.touched {
				if now.Sub(at) > touchedTTL {
					delete(x.touched, n)
				}
			}
			x.mu.Unlock()
			return
		}
		a := q[0]
		x.mu.Unlock()
		x.do(a)
		x.mu.Lock()
		x.queues[name] = x.queues[name][1:]
		x.touched[name] = time.Now()
		x.mu.Unlock()
	}
}

// busySince reports whether an action on the worker runs or waits, or one
// started or ended at or after since.
func (x *executor) busySince(name string, since time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.queues[name]; ok {
		return true
	}
	at, ok := x.touched[name]
	return ok && !at.Before(since)
}

// waiting reports whether another action on the worker waits behind the
// running one (a probe gives way to it).
func (x *executor) waiting(name string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.queues[name]) > 1
}

func (x *executor) createdInTerm(name string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.started[name]
}

func (x *executor) do(a action) {
	switch a.kind {
	case actCreate:
		x.create(a)
	case actSundown:
		x.sundown(a)
	case actRemove:
		x.remove(a)
	case actAdopt:
		x.adopt(a)
	}
}

// create makes the worker exist and run, whatever part of that an earlier
// scaler already did: a restart in the middle of a scale-up neither
// duplicates nor orphans a worker, because the name is in the decision.
func (x *executor) create(a action) {
	ctx := x.ctx
	docker := x.s.opts.Config.Docker
	begin := time.Now()
	how := "created and started"
	c, err := x.inspect(a.name)
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		c, err = x.createContainer(a)
	case errors.Is(err, runtime.ErrNotManaged):
		err = fmt.Errorf("the name %s is taken by a container without the %s label, which is left alone: %w", a.name, runtime.LabelApp, err)
	case err == nil:
		how = "found existing (" + c.State + ")"
	}
	if err != nil {
		x.failed(a, "create", "", err)
		return
	}
	if c.State != "running" {
		if err := x.call("start", a.name, func(ctx context.Context) error { return x.s.rt.Start(ctx, c.ID) }); err != nil {
			x.failed(a, "start", c.ID, err)
			return
		}
		after, err := x.inspect(c.ID)
		if err != nil {
			x.failed(a, "inspect", c.ID, err)
			return
		}
		c = after
		if how != "created and started" {
			how += ", started"
		}
	}
	took := time.Since(begin)
	x.s.m.startSeconds.WithLabelValues("create_start").Observe(took.Seconds())
	addr, _ := c.Address(docker.Network, docker.Port)
	x.putRecord(ctx, c, addr, "INIT")
	x.publishFact(ctx, events.Lifecycle{App: x.s.app, Container: a.name, ContainerID: c.ID, Phase: events.PhaseCreated,
		Address: addr, DecisionID: a.decisionID, Reason: fmt.Sprintf("%s in %s", how, took.Round(time.Millisecond))})
	x.mu.Lock()
	x.started[a.name] = true
	x.mu.Unlock()
	x.probeReady(a, c, addr, time.Now())
}

func (x *executor) createContainer(a action) (runtime.Container, error) {
	d := x.s.opts.Config.Docker
	spec := runtime.CreateSpec{
		App: x.s.app, Name: a.name, Image: d.Image, Port: d.Port, Network: d.Network,
		CPUs: d.WorkerCPUs, Memory: d.WorkerMemory, PublishPort: d.WorkerPublishPort,
	}
	var c runtime.Container
	err := x.call("create", a.name, func(ctx context.Context) error {
		var err error
		c, err = x.s.rt.Create(ctx, spec)
		return err
	})
	switch {
	case err == nil:
		return c, nil
	case cerrdefs.IsConflict(err):
		// Created by an earlier attempt whose answer was lost, or by a
		// scaler that stopped halfway: the name is the worker.
		return x.inspect(a.name)
	case c.ID != "":
		// Created, but the inspection after it failed.
		return x.inspect(c.ID)
	}
	return c, err
}

// probeReady connects to the worker's port until it answers, then publishes
// ready; it gives up at RB_READY_TIMEOUT (pkg/scale fails the worker then),
// when ctx ends, or when another action on the worker is waiting.
func (x *executor) probeReady(a action, c runtime.Container, addr string, started time.Time) {
	ctx := x.ctx
	if addr == "" {
		x.t.log.Warn("worker has no address to probe; it becomes ready only through a score", "container", a.name,
			"network", x.s.opts.Config.Docker.Network)
		return
	}
	limit := x.t.currentParams().ReadyTimeout
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	deadline := started.Add(limit)
	dialer := net.Dialer{Timeout: x.s.opts.ProbeTimeout}
	for {
		if x.waiting(a.name) {
			return
		}
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			took := time.Since(started)
			x.s.m.startSeconds.WithLabelValues("probe").Observe(took.Seconds())
			x.putRecord(ctx, c, addr, "ready")
			x.publishFact(ctx, events.Lifecycle{App: x.s.app, Container: a.name, ContainerID: c.ID, Phase: events.PhaseReady,
				Address: addr, DecisionID: a.decisionID,
				Reason: fmt.Sprintf("TCP probe of %s answered %s after start", addr, took.Round(time.Millisecond))})
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return
		}
		sleep(ctx, x.s.opts.ProbeInterval)
	}
}

// adopt takes in a running labelled container unknown to the state.
func (x *executor) adopt(a action) {
	ctx := x.ctx
	docker := x.s.opts.Config.Docker
	c, err := x.inspect(a.name)
	if err != nil || c.State != "running" {
		return // gone or stopped since the reconciliation: the next one decides
	}
	addr, _ := c.Address(docker.Network, docker.Port)
	x.putRecord(ctx, c, addr, "INIT")
	x.publishFact(ctx, events.Lifecycle{App: x.s.app, Container: a.name, ContainerID: c.ID, Phase: events.PhaseStarted,
		Address: addr, Reason: a.reason})
	x.probeReady(a, c, addr, time.Now())
}

func (x *executor) sundown(a action) {
	ctx := x.ctx
	x.setRecordState(ctx, a.name, "SUNDOWN")
	x.publishFact(ctx, events.Lifecycle{App: x.s.app, Container: a.name, Phase: events.PhaseSundown,
		DecisionID: a.decisionID, Reason: a.reason})
}

// remove stops the container with RB_WORKER_STOP_TIMEOUT of grace and
// removes it. A container that does not exist is removed already: the
// removed fact is published all the same, so removal is idempotent.
func (x *executor) remove(a action) {
	ctx := x.ctx
	if a.drain {
		x.publishFact(ctx, events.Lifecycle{App: x.s.app, Container: a.name, Phase: events.PhaseDrained,
			DecisionID: a.decisionID, Reason: a.reason})
	}
	how := "stopped and removed"
	c, err := x.inspect(a.name)
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		how = "no such container: already gone"
	case errors.Is(err, runtime.ErrNotManaged):
		how = "the name is held by a container without the " + runtime.LabelApp + " label, left alone"
	case err != nil:
		x.failed(a, "inspect", "", err)
		return
	default:
		if c.State == "running" || c.State == "restarting" || c.State == "paused" {
			grace := x.s.opts.Config.Docker.WorkerStopTimeout
			err := x.call("stop", a.name, func(ctx context.Context) error { return x.s.rt.Stop(ctx, c.ID, grace) })
			if err != nil && !errors.Is(err, runtime.ErrNotFound) {
				if ctx.Err() != nil {
					return
				}
				// Remove forces it; say why it was not graceful.
				x.t.log.Warn("worker did not stop gracefully; removing it by force", "container", a.name, "err", err)
			}
		} else {
			how = "removed (was " + c.State + ")"
		}
		err = x.call("remove", a.name, func(ctx context.Context) error { return x.s.rt.Remove(ctx, c.ID) })
		if err != nil && !errors.Is(err, runtime.ErrNotFound) {
			x.failed(a, "remove", c.ID, err)
			return
		}
	}
	x.deleteRecord(ctx, a.name)
	x.publishFact(ctx, events.Lifecycle{App: x.s.app, Container: a.name, ContainerID: c.ID, Phase: events.PhaseRemoved,
		DecisionID: a.decisionID, Reason: how})
}

// failed reports an action that did not succeed after its retries, with
// Docker's error text. Nothing is reported when the term is ending: the
// action was cut short, not failed, and the next leader reconciles.
func (x *executor) failed(a action, op, id string, err error) {
	ctx := x.ctx
	if ctx.Err() != nil {
		return
	}
	x.t.log.Error("docker action failed", "op", op, "container", a.name, "err", err)
	x.publishFact(ctx, events.Lifecycle{App: x.s.app, Container: a.name, ContainerID: id, Phase: events.PhaseFailed,
		DecisionID: a.decisionID, Reason: op + " failed", Error: err.Error()})
}

// inspect looks a container up by name or ID; not found is an answer, not
// an error worth retrying.
func (x *executor) inspect(id string) (runtime.Container, error) {
	var c runtime.Container
	err := x.call("inspect", id, func(ctx context.Context) error {
		var err error
		c, err = x.s.rt.Inspect(ctx, id)
		return err
	})
	return c, err
}

// call runs one Docker call with the parallelism bound, metrics, and retries
// with backoff for errors that may pass.
func (x *executor) call(op, name string, f func(ctx context.Context) error) error {
	ctx := x.ctx
	delay := x.s.opts.DockerBackoff
	for attempt := 1; ; attempt++ {
		select {
		case x.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		begin := time.Now()
		err := f(ctx)
		<-x.sem
		x.s.m.dockerSeconds.WithLabelValues(op).Observe(time.Since(begin).Seconds())
		if err == nil || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, runtime.ErrNotFound) && op != "create" {
			return err // an answer
		}
		x.s.m.dockerErrors.WithLabelValues(op).Inc()
		if permanent(err) || attempt >= x.s.opts.DockerAttempts {
			return err
		}
		x.t.log.Warn("docker call failed; retrying", "op", op, "container", name, "attempt", attempt, "retry_in", delay, "err", err)
		sleep(ctx, delay)
		delay *= 2
	}
}

// permanent says whether retrying a Docker call cannot help.
func permanent(err error) bool {
	return errors.Is(err, runtime.ErrNotFound) || errors.Is(err, runtime.ErrNotManaged) ||
		cerrdefs.IsConflict(err) || cerrdefs.IsInvalidArgument(err)
}

// publishFact publishes a lifecycle fact stamped with the scaler's clock,
// retrying until NATS takes it or the term ends.
func (x *executor) publishFact(ctx context.Context, l events.Lifecycle) {
	now := x.s.opts.Now()
	subj, err := events.LifecycleSubject(l.App, l.Container)
	if err != nil {
		x.t.log.Error("lifecycle fact not published", "container", l.Container, "phase", l.Phase, "err", err)
		return
	}
	// A worker goes through each phase once, so the id is stable and the
	// stream drops a repeat (a ready from the probe after one from a score,
	// a created re-published by a restarted scaler). Failures can repeat.
	id := fmt.Sprintf("scaler-%s-%s", l.Container, l.Phase)
	if l.Phase == events.PhaseFailed {
		id = fmt.Sprintf("%s-%d", id, now.UnixNano())
	}
	if err := publishRetry(ctx, x.s.bus, subj, events.New(id, now, x.s.source, l)); err != nil {
		if ctx.Err() == nil {
			x.t.log.Error("lifecycle fact not published", "container", l.Container, "phase", l.Phase, "err", err)
		}
		return
	}
	x.s.m.facts.WithLabelValues(string(l.Phase)).Inc()
	x.t.log.Debug("lifecycle fact", "container", l.Container, "phase", l.Phase, "reason", l.Reason)
}

// putRecord writes the worker's record to Redis. Redis being down is
// logged: the record is rewritten at the next change or reconciliation.
func (x *executor) putRecord(ctx context.Context, c runtime.Container, addr, state string) {
	rec := store.ContainerRecord{
		App: x.s.app, Name: c.Name, ID: c.ID, Image: c.Image, Address: addr, State: state,
		Port: x.s.opts.Config.Docker.Port, Created: c.Created, Labels: c.Labels,
	}
	x.mu.Lock()
	x.records[c.Name] = rec
	x.mu.Unlock()
	if err := x.s.store.PutContainer(ctx, rec); err != nil && ctx.Err() == nil {
		x.t.log.Warn("container record not written", "container", c.Name, "err", err)
	}
}

func (x *executor) setRecordState(ctx context.Context, name, state string) {
	x.mu.Lock()
	rec, ok := x.records[name]
	x.mu.Unlock()
	if !ok {
		var err error
		if rec, err = x.s.store.GetContainer(ctx, x.s.app, name); err != nil {
			return // no record to update; the reconciliation writes one
		}
	}
	rec.State = state
	x.mu.Lock()
	x.records[name] = rec
	x.mu.Unlock()
	if err := x.s.store.PutContainer(ctx, rec); err != nil && ctx.Err() == nil {
		x.t.log.Warn("container record not updated", "container", name, "state", state, "err", err)
	}
}

func (x *executor) deleteRecord(ctx context.Context, name string) {
	x.mu.Lock()
	delete(x.records, name)
	x.mu.Unlock()
	if err := x.s.store.DeleteContainer(ctx, x.s.app, name); err != nil && ctx.Err() == nil {
		x.t.log.Warn("container record not deleted", "container", name, "err", err)
	}
}
