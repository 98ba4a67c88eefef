package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
)

// ConfigStore keeps the runtime config per app (a *store.Store).
type ConfigStore interface {
	GetConfig(ctx context.Context, app string) (store.AppConfig, error)
	SetConfig(ctx context.Context, app string, values map[string]string, expectVersion int64) (store.AppConfig, error)
}

// Publisher publishes a message on a JetStream subject (a *bus.Bus).
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
}

var (
	_ ConfigStore = (*store.Store)(nil)
	_ Publisher   = (*bus.Bus)(nil)
)

// ErrNotPublished is wrapped when a config change was stored but its
// rb.config.<app> event could not be published: services apply it when
// they next read the config from Redis, not live.
var ErrNotPublished = errors.New("config stored but not published")

// ErrBadApp is wrapped for an app name that cannot be stored or carried.
var ErrBadApp = errors.New("bad app name")

// conflictRetries bounds the read-merge-write rounds of an update without
// an expected version when other writers keep winning.
const conflictRetries = 5

// ConfigWriter reads and changes the runtime config of apps: it validates
// a change against Base (the environment's config) with the values already
// stored, stores it in Redis with a compare-and-swap on the version, and
// publishes events.ConfigChanged on rb.config.<app> so every service
// applies it live. The gateway's PUT /api/v1/apps/{app}/config and
// `rb config set` both use it.
type ConfigWriter struct {
	Store ConfigStore
	Bus   Publisher
	// Base is the config the stored values override.
	Base config.Config
	// Now stamps the events; Source names the writer in them ("gateway/host").
	Now    func() time.Time
	Source string
}

// ConfigUpdate is a change to one app's runtime config.
type ConfigUpdate struct {
	App string
	// Set maps variable names to new values, as in the environment.
	Set map[string]string
	// Unset names variables whose stored value is removed, so the base value applies again.
	Unset []string
	// Version, when not nil, is the stored version the change is based on:
	// a different stored version fails with an error wrapping store.ErrConflict.
	// When nil, a concurrent change is merged with and retried.
	Version *int64
	// By says who asked, for the event ("rb config set", "gateway PUT from 10.0.0.5").
	By string
}

// ConfigState is an app's runtime config as stored, and in effect.
type ConfigState struct {
	App       string    `json:"app"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Overrides are the values stored for the app.
	Overrides map[string]string `json:"overrides"`
	// Effective is every runtime variable's value: the override, else the base.
	Effective map[string]string `json:"effective"`
	// Changed names the variables the update changed (empty for a read or a no-op).
	Changed []string `json:"changed,omitempty"`
	// Problems lists stored values the base config rejects (written by a
	// process with another environment); Effective then ignores them.
	Problems []string `json:"problems,omitempty"`
}

// CheckApp reports whether app can name an app: a NATS subject token once
// escaped and a Redis key part, so no white space and not empty.
func CheckApp(app string) error {
	if app == "" {
		return fmt.Errorf("%w: empty", ErrBadApp)
	}
	if strings.ContainsFunc(app, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: %q contains white space or control characters", ErrBadApp, app)
	}
	return nil
}

// Get returns app's stored and effective runtime config. A config never
// set is version 0 with no overrides.
func (w *ConfigWriter) Get(ctx context.Context, app string) (ConfigState, error) {
	if err := CheckApp(app); err != nil {
		return ConfigState{}, fmt.Errorf("get config of app %q: %w", app, err)
	}
	cur, err := w.Store.GetConfig(ctx, app)
	if err != nil {
		return ConfigState{}, fmt.Errorf("get config of app %q: %w", app, err)
	}
	return w.state(app, cur, nil), nil
}

func (w *ConfigWriter) state(app string, cur store.AppConfig, changed []string) ConfigState {
	st := ConfigState{App: app, Version: cur.Version, UpdatedAt: cur.UpdatedAt, Overrides: maps.Clone(cur.Values), Changed: changed}
	if st.Overrides == nil {
		st.Overrides = map[string]string{}
	}
	eff, err := w.Base.WithRuntime(cur.Values)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				st.Problems = append(st.Problems, p.String())
			}
		} else {
			st.Problems = append(st.Problems, err.Error())
		}
		eff = w.Base
	}
	st.Effective = eff.RuntimeValues()
	return st
}

// Update validates, stores and publishes u. A validation failure is a
// *config.Error naming every bad variable; a version mismatch wraps
// store.ErrConflict; a stored change that could not be published wraps
// ErrNotPublished and still returns the stored state. A change that sets
// what is already stored writes nothing and publishes nothing.
func (w *ConfigWriter) Update(ctx context.Context, u ConfigUpdate) (ConfigState, error) {
	if err := CheckApp(u.App); err != nil {
		return ConfigState{}, fmt.Errorf("update config of app %q: %w", u.App, err)
	}
	if len(u.Set) == 0 && len(u.Unset) == 0 {
		return ConfigState{}, fmt.Errorf("update config of app %q: nothing to change: give at least one KEY=VALUE", u.App)
	}
	// Validate the change alone first, so its own mistakes are reported even
	// when the stored values are broken.
	if _, err := w.Base.WithRuntime(u.Set); err != nil {
		return ConfigState{}, err
	}
	for attempt := 1; ; attempt++ {
		cur, err := w.Store.GetConfig(ctx, u.App)
		if err != nil {
			return ConfigState{}, fmt.Errorf("update config of app %q: read the stored config: %w", u.App, err)
		}
		if u.Version != nil && *u.Version != cur.Version {
			return ConfigState{}, fmt.Errorf("update config of app %q: %w: stored version is %d, the change was based on %d; read it again",
				u.App, store.ErrConflict, cur.Version, *u.Version)
		}
		if err := checkUnset(u.Unset, cur.Values); err != nil {
			return ConfigState{}, err
		}
		next := maps.Clone(cur.Values)
		if next == nil {
			next = map[string]string{}
		}
		maps.Copy(next, u.Set)
		for _, k := range u.Unset {
			delete(next, k)
		}
		changed := changedKeys(cur.Values, next)
		if len(changed) == 0 {
			return w.state(u.App, cur, nil), nil
		}
		if _, err := w.Base.WithRuntime(next); err != nil {
			return ConfigState{}, err
		}
		stored, err := w.Store.SetConfig(ctx, u.App, next, cur.Version)
		if errors.Is(err, store.ErrConflict) && u.Version == nil && attempt < conflictRetries {
			continue // another writer won: merge with its values and try again
		}
		if err != nil {
			return ConfigState{}, fmt.Errorf("update config of app %q: %w", u.App, err)
		}
		st := w.state(u.App, stored, changed)
		if err := w.publish(ctx, u, stored, changed); err != nil {
			return st, err
		}
		return st, nil
	}
}

func (w *ConfigWriter) publish(ctx context.Context, u ConfigUpdate, stored store.AppConfig, changed []string) error {
	subj, err := events.ConfigSubject(u.App)
	if err != nil {
		return fmt.Errorf("%w: version %d of app %q: %w", ErrNotPublished, stored.Version, u.App, err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	// The id is stable for the version, so a retried publish is deduplicated.
	id := fmt.Sprintf("config-%s-%d", u.App, stored.Version)
	ev := events.New(id, now(), w.Source, events.ConfigChanged{
		App: u.App, Version: stored.Version, Values: stored.Values, Changed: changed, By: u.By,
	})
	data, err := events.Encode(ev)
	if err == nil {
		err = w.Bus.Publish(ctx, subj, id, data)
	}
	if err != nil {
		return fmt.Errorf("%w: version %d of app %q on %s (services apply it when they next read Redis): %w",
			ErrNotPublished, stored.Version, u.App, subj, err)
	}
	return nil
}

// checkUnset refuses names that are neither stored nor runtime variables,
// so a typo in an unset is reported instead of doing nothing, while a stored
// value this build no longer knows can still be removed.
func checkUnset(names []string, stored map[string]string) error {
	var ce config.Error
	for _, n := range names {
		if _, ok := stored[n]; ok {
			continue
		}
		v, ok := runtimeVar(n)
		switch {
		case !ok:
			ce.Problems = append(ce.Problems, config.Problem{Var: n, Reason: "unknown variable"})
		case !v.Runtime:
			ce.Problems = append(ce.Problems, config.Problem{Var: n, Reason: "cannot be changed at run time; set it in the environment and restart"})
		}
	}
	if len(ce.Problems) > 0 {
		return &ce
	}
	return nil
}

func runtimeVar(name string) (config.Var, bool) {
	for _, v := range config.Vars() {
		if v.Name == name {
			return v, true
		}
	}
	return config.Var{}, false
}

// changedKeys names the variables whose value differs between a and b, sorted.
func changedKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if old, ok := a[k]; !ok || old != v {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
