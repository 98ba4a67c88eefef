package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/services/gateway"
)

// openStore returns the Redis store of the configuration (RB_REDIS_URL,
// else REDIS_HOST:REDIS_PORT), or -redis-url.
func (r *runner) openStore(redisURL string) (*store.Store, error) {
	cfg, err := r.config()
	if err != nil {
		return nil, err
	}
	if redisURL == "" {
		redisURL = cfg.RedisURL()
	}
	logger := slog.New(slog.NewTextHandler(r.io.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	st, err := store.New(store.Options{URL: redisURL}, logger)
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	return st, nil
}

// configGet prints an app's runtime config: every runtime variable's
// effective value and whether it is stored for the app (override) or comes
// from this command's environment (base).
func (r *runner) configGet(ctx context.Context, args []string) int {
	var c common
	fs := r.flags(&c)
	redisURL := fs.String("redis-url", "", "Redis URL (default RB_REDIS_URL, else REDIS_HOST:REDIS_PORT)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) != 1 {
		return r.usage("rb config get APP [-json]")
	}
	cfg, err := r.config()
	if err != nil {
		return r.fail(ExitUsage, "%v", err)
	}
	st, err := r.openStore(*redisURL)
	if err != nil {
		return r.fail(ExitUsage, "%v", err)
	}
	defer st.Close()
	w := &gateway.ConfigWriter{Store: st, Base: *cfg}
	gctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	state, err := w.Get(gctx, pos[0])
	if err != nil {
		code := ExitFailure
		if errors.Is(err, gateway.ErrBadApp) {
			code = ExitUsage
		}
		return r.fail(code, "%v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(r.io.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(state); err != nil {
			return r.fail(ExitFailure, "%v", err)
		}
		return ExitOK
	}
	r.printConfig(state)
	return ExitOK
}

func (r *runner) printConfig(st gateway.ConfigState) {
	if st.Version == 0 {
		fmt.Fprintf(r.io.Stdout, "app %s: no runtime config stored (version 0); base values apply\n", st.App)
	} else {
		fmt.Fprintf(r.io.Stdout, "app %s: config version %d, updated %s\n", st.App, st.Version, st.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	for _, p := range st.Problems {
		fmt.Fprintf(r.io.Stdout, "  ignored: %s\n", p)
	}
	tw := tabwriter.NewWriter(r.io.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tSOURCE")
	for _, k := range slices.Sorted(maps.Keys(st.Effective)) {
		src := "base"
		if _, ok := st.Overrides[k]; ok {
			src = "override"
		}
		mark := ""
		if slices.Contains(st.Changed, k) {
			mark = "  (changed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\n", k, st.Effective[k], src, mark)
	}
	_ = tw.Flush()
}

// configSet validates KEY=VALUE pairs (KEY= removes the stored value),
// stores them for the app and publishes rb.config.<app>.
func (r *runner) configSet(ctx context.Context, args []string) int {
	var c common
	fs := r.flags(&c)
	redisURL := fs.String("redis-url", "", "Redis URL (default RB_REDIS_URL, else REDIS_HOST:REDIS_PORT)")
	version := fs.Int64("version", -1, "the stored version this change is based on; a different one fails (default: merge with the latest)")
	pos, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) < 2 {
		return r.usage("rb config set APP KEY=VALUE... [-version N]")
	}
	u := gateway.ConfigUpdate{App: pos[0], Set: map[string]string{}, By: "rb config set"}
	if *version >= 0 {
		u.Version = version
	}
	for _, kv := range pos[1:] {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return r.fail(ExitUsage, "%q: want KEY=VALUE (KEY= removes the stored value)", kv)
		}
		if v == "" {
			u.Unset = append(u.Unset, k)
			continue
		}
		u.Set[k] = v
	}
	cfg, err := r.config()
	if err != nil {
		return r.fail(ExitUsage, "%v", err)
	}
	// Reject bad values before connecting to anything.
	if _, err := cfg.WithRuntime(u.Set); err != nil {
		return r.fail(ExitUsage, "%v", err)
	}
	if err := gateway.CheckApp(u.App); err != nil {
		return r.fail(ExitUsage, "%v", err)
	}
	// NATS first: a change that could not be published must not be stored.
	b, err := r.connect(ctx, c)
	if err != nil {
		return r.fail(exitFor(err), "%v", err)
	}
	defer b.Close()
	st, err := r.openStore(*redisURL)
	if err != nil {
		return r.fail(ExitUsage, "%v", err)
	}
	defer st.Close()
	w := &gateway.ConfigWriter{Store: st, Bus: b, Base: *cfg, Source: gateway.Source("rb-config")}
	uctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	state, err := w.Update(uctx, u)
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		return r.fail(ExitUsage, "%v", err)
	case errors.Is(err, gateway.ErrNotPublished):
		r.printConfig(state)
		return r.fail(ExitFailure, "%v", err)
	case err != nil:
		return r.fail(ExitFailure, "%v", err)
	}
	subj, _ := events.ConfigSubject(u.App)
	if len(state.Changed) == 0 {
		fmt.Fprintf(r.io.Stdout, "app %s: no change (config version %d)\n", u.App, state.Version)
		return ExitOK
	}
	changed := make([]string, len(state.Changed))
	for i, k := range state.Changed {
		if v, ok := state.Overrides[k]; ok {
			changed[i] = k + "=" + v
		} else {
			changed[i] = k + " (removed: " + state.Effective[k] + " from the base applies)"
		}
	}
	fmt.Fprintf(r.io.Stdout, "app %s: config version %d: %s; published on %s\n", u.App, state.Version, strings.Join(changed, ", "), subj)
	return ExitOK
}
