package scale

import (
	"errors"
	"fmt"
	"time"

	"github.com/rustybalancer/rb/events"
)

// InputKind says which field of an Input is set.
type InputKind uint8

// The kinds of input.
const (
	// InputTick only moves the clock: time-driven checks run without a fact.
	InputTick InputKind = iota + 1
	InputScore
	InputLifecycle
	InputProxy
)

// Input is one event for the engine, with its event time. The engine has no
// other clock: its time is the latest Time it was given.
type Input struct {
	Kind      InputKind
	Time      time.Time
	Score     events.Score
	Lifecycle events.Lifecycle
	Proxy     events.ProxyReport
}

// Tick is an input that only moves the clock to at.
func Tick(at time.Time) Input { return Input{Kind: InputTick, Time: at} }

// ScoreInput is a worker's score at its event time.
func ScoreInput(at time.Time, s events.Score) Input {
	return Input{Kind: InputScore, Time: at, Score: s}
}

// LifecycleInput is a lifecycle fact at its event time.
func LifecycleInput(at time.Time, l events.Lifecycle) Input {
	return Input{Kind: InputLifecycle, Time: at, Lifecycle: l}
}

// ProxyInput is a proxy report at its event time.
func ProxyInput(at time.Time, r events.ProxyReport) Input {
	return Input{Kind: InputProxy, Time: at, Proxy: r}
}

// Errors of Observe and Step. The state is unchanged when they are returned.
var (
	ErrOtherApp  = errors.New("input is for another app")
	ErrBadInput  = errors.New("unusable input")
	ErrNoAppName = errors.New("state has no app")
)

func (s *State) check(p Params, in Input) error {
	if s.App == "" {
		return ErrNoAppName
	}
	if p.Min < 1 || p.Max < p.Min || p.Step < 1 || p.ProxyGoneIntervals < 1 {
		return fmt.Errorf("%w: min %d, max %d, step %d, proxy gone intervals %d (call Validate)",
			ErrInvalidParams, p.Min, p.Max, p.Step, p.ProxyGoneIntervals)
	}
	if in.Time.IsZero() {
		return fmt.Errorf("%w: no event time", ErrBadInput)
	}
	app, name := "", ""
	switch in.Kind {
	case InputTick:
		return nil
	case InputScore:
		app, name = in.Score.App, in.Score.Container
		if v := in.Score.Overall; !(v >= 0 && v <= 100) {
			return fmt.Errorf("%w: score of %s is %v, want 0..100", ErrBadInput, name, v)
		}
	case InputLifecycle:
		app, name = in.Lifecycle.App, in.Lifecycle.Container
	case InputProxy:
		app, name = in.Proxy.App, in.Proxy.ProxyID
	default:
		return fmt.Errorf("%w: kind %d", ErrBadInput, in.Kind)
	}
	if app != s.App {
		return fmt.Errorf("%w: %q, this state is %q", ErrOtherApp, app, s.App)
	}
	if name == "" {
		return fmt.Errorf("%w: no container or proxy name", ErrBadInput)
	}
	return nil
}
