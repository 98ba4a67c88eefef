// Package scale decides how many workers an app runs, which ones leave and
// when they are removed: the prototype's threshold rules on the mean score
// (HIGH/LOW/CRITICAL, SCALE_STEP, DEFAULT_CONTAINER, MAX_CONTAINERS,
// COOLDOWN_PERIOD, SCALE_CHECK_PERIOD) plus stabilisation windows, readiness,
// a scale-in guard, an optional trend projection, replacement of failed
// workers and removal after a drain.
//
// It is pure, like the strategy plugins of the Nomad autoscaler: a State and
// Params go in with one Input (a score, a lifecycle fact, a proxy report or a
// tick, each with its event time), the next State and the decisions come out.
// There is no clock (time is the latest event time), no randomness, no I/O and
// no map iteration. The live scaler and `rb replay` call the same Step, so a
// replay of the recorded inputs with the recorded Params gives the recorded
// decisions byte for byte. docs/scaling.md describes every rule.
package scale
