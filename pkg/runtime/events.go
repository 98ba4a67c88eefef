package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Event is a container event of a managed container.
type Event struct {
	// Action is Docker's action: create, start, restart, stop, kill, die,
	// oom, pause, unpause, rename, update, destroy, or
	// "health_status: healthy" / "health_status: unhealthy".
	Action   string
	ID       string
	Name     string
	App      string
	Time     time.Time
	ExitCode string // set on die
}

// eventActions are the container actions worth following; exec_* (every
// health probe), attach, resize, top, copy and the like are left out on the
// engine's side. health_status matches every health_status: ... action.
var eventActions = []string{
	"create", "start", "restart", "stop", "kill", "die", "oom",
	"pause", "unpause", "rename", "update", "destroy", "health_status",
}

// Events follows the container events of managed containers, from since
// (the engine replays its recent history) or from now when since is zero.
//
// The engine ANDs label filters, so Events opens two filtered streams, one
// for rb.app and one for application, and merges them; a container carrying
// both labels is taken from the rb.app stream only, so each event comes
// once, and the events of one container keep their order.
//
// Events arrive until the stream ends (ctx done, engine gone); then exactly
// one error is sent on the error channel (wrapping ctx.Err() after
// cancellation, io.EOF when the engine closed the stream) and both channels
// are closed. Reconnecting, with since set to the last event's time, is the
// caller's choice.
func (d *Docker) Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error) {
	out := make(chan Event)
	errc := make(chan error, 1)
	if err := d.negotiate(ctx); err != nil {
		errc <- fmt.Errorf("docker events: %w", err)
		close(errc)
		close(out)
		return out, errc
	}
	ctx, cancel := context.WithCancel(ctx)

	open := func(label string) (<-chan events.Message, <-chan error) {
		args := filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("label", label),
		)
		for _, a := range eventActions {
			args.Add("event", a)
		}
		opts := events.ListOptions{Filters: args}
		if !since.IsZero() {
			opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
		}
		return d.cli.Events(ctx, opts)
	}
	appMsgs, appErrs := open(LabelApp)
	legacyMsgs, legacyErrs := open(LabelLegacy)

	go func() {
		defer close(errc)
		defer close(out)
		defer cancel()
		var err error
		for err == nil {
			var m events.Message
			select {
			case m = <-appMsgs:
				if m.Actor.Attributes[LabelApp] == "" {
					continue // rb.app present but empty: the legacy stream decides
				}
			case m = <-legacyMsgs:
				if m.Actor.Attributes[LabelApp] != "" {
					continue // the rb.app stream carries it
				}
			case err = <-appErrs:
				continue
			case err = <-legacyErrs:
				continue
			}
			ev, ok := eventFrom(m)
			if !ok {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		errc <- fmt.Errorf("docker events: %w", err)
	}()
	return out, errc
}

// eventFrom converts a Docker message; it reports false for a container
// without a managed label value (a label present but empty).
func eventFrom(m events.Message) (Event, bool) {
	app, ok := managedApp(m.Actor.Attributes)
	if !ok {
		return Event{}, false
	}
	t := time.Unix(0, m.TimeNano)
	if m.TimeNano == 0 {
		t = time.Unix(m.Time, 0)
	}
	return Event{
		Action:   strings.TrimSpace(string(m.Action)),
		ID:       m.Actor.ID,
		Name:     m.Actor.Attributes["name"],
		App:      app,
		Time:     t,
		ExitCode: m.Actor.Attributes["exitCode"],
	}, true
}
