// Package scaler is the service that runs an app's workers: it feeds scores,
// lifecycle facts and proxy reports to pkg/scale, publishes every decision on
// rb.scale.<app>, executes it on Docker through pkg/runtime and publishes
// each result as a lifecycle fact on rb.lifecycle.<app>.<container>
// (created, ready, sundown, drained, removed, failed).
//
// One scaler acts per app: it holds the Redis lease "scaler:<app>", renews
// it every third of RB_SCALER_LEASE_TTL and stops acting at once when a
// renewal fails; a standby polls every fifth of the TTL and takes over.
//
// A leader term rebuilds the scaling state from the decision log (RB_DECISIONS:
// decisions through State.ApplyDecision, facts through State.Observe, config
// changes in order), takes its first tick, reconciles Docker, Redis and the
// state, then steps every live input. The facts it publishes come back
// through the log like anyone else's, so pkg/scale sees exactly what is
// recorded. docs/scaling.md ("Live scaler") describes every choice.
package scaler
