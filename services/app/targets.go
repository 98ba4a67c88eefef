// Package app wires rb's services: the registry of targets, the shared
// dependencies (NATS bus, Redis store, admin listener) and running a set of
// targets under one group where the first failure stops the others.
package app

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Service is what every target runs: Run blocks until ctx is done (then
// returns nil) or the service fails.
type Service interface {
	Run(ctx context.Context) error
}

// Target is one runnable service of the rb binary.
type Target struct {
	Name string
	Help string
	// Require names the variables the target cannot run without.
	Require []string
	// Build creates the service; it may use (and so create) shared dependencies.
	Build func(ctx context.Context, d *Deps) (Service, error)
}

// Targets is the registry, in start order: the embedded NATS server first so
// the others in the same process can connect to it.
func Targets() []Target {
	return []Target{
		natsTarget(),
		collectorTarget(),
		gatewayTarget(),
		scorerTarget(),
		scalerTarget(),
		queuebuilderTarget(),
		proxyTarget(),
	}
}

// TargetAll selects every target.
const TargetAll = "all"

// Resolve turns "all" or a comma list into targets, in registry order.
func Resolve(spec string) ([]Target, error) {
	all := Targets()
	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.Name
	}
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == TargetAll {
		return all, nil
	}
	want := map[string]bool{}
	var unknown []string
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case n == TargetAll:
			return all, nil
		case slices.Contains(names, n):
			want[n] = true
		default:
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("-target: unknown target(s) %s; want %q or a comma list of %s",
			strings.Join(unknown, ", "), TargetAll, strings.Join(names, ", "))
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("-target: empty; want %q or a comma list of %s", TargetAll, strings.Join(names, ", "))
	}
	var out []Target
	for _, t := range all {
		if want[t.Name] {
			out = append(out, t)
		}
	}
	return out, nil
}
