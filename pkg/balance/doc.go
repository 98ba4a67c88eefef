// Package balance chooses a backend for each request of the proxy: the
// routing table, the four policies of RB_BALANCE_POLICY, per-backend
// statistics, slow start and outlier ejection. It is pure: the clock (a
// `now int64` in unix nanoseconds) and randomness (Rand) come from the
// caller, so tests are seeded and simulated time is exact; it imports only
// the standard library.
//
// # Tables
//
// A Table is immutable and built per queue event by NewTable. The proxy
// swaps it in atomically; a pick takes no lock and allocates nothing. Each
// backend's mutable Stats (in flight, requests, errors, 5xx streak, latency,
// probe, ejection) are atomics shared by every table that lists the same ID,
// so a new queue event keeps what the proxy learned. SUNDOWN backends stay
// in the table (their Stats report in-flight requests until they reach
// zero) but are never picked. ErrNoBackend means no backend is eligible.
//
// # Policies
//
//   - weighted: the prototype's categorical pick, P(i) = w_i / Σw over the
//     non-SUNDOWN backends, with weight = score (out of 0..100 → 1, zero → a
//     tiny epsilon). O(1) through Vose's alias table, built by NewTable: one
//     64-bit random value gives the column (high half of a 64×64 product)
//     and the coin (low half). A pick calls Rand once; the further values it
//     may need (p2c's second candidate, rejections) come from a splitmix64
//     stream seeded by that call.
//   - p2c (the default): two distinct candidates drawn by weight, the one
//     with the lower cost = (in flight + 1) × latency taken.
//   - round-robin: one atomic counter over the non-SUNDOWN backends, weights
//     ignored. The shared counter is the one point of contention between
//     cores.
//   - least-conn: the fewest requests in flight, ties broken uniformly at
//     random, weights ignored. Exact (a scan) up to 64 backends; above that
//     it is approximate and O(1): the least loaded of 16 random backends.
//
// # Latency: Peak-EWMA with decay towards the probe
//
// The latency in p2c's cost is Linkerd's (Finagle's) peak-EWMA: a sample
// above the current estimate replaces it at once, so a backend that slows
// down loses its share as soon as its first slow answer returns (and even
// before, through its growing in-flight count); a lower sample pulls the
// estimate down with weight 1 - e^(-Δt/τ), Δt being the time since the last
// sample and τ Options.Tau (1 s). Errors only ever raise the estimate, so a
// backend that fails fast does not attract traffic.
//
// Finagle lets an estimate without samples decay towards zero, which
// recovers a healed backend by sending it live traffic on a guess. Here it
// decays with the same τ towards the backend's probe latency, fed by the
// proxy through ObserveProbe from the collector's probes carried by queue
// events, or towards the table's default latency when no probe is known:
//
//	latency(now) = target + (ewma - target) × e^(-(now - last sample)/τ)
//
// The probe (a connect time) is a lower bound of what the backend can do.
// A backend whose handler is slow but whose host answers probes drifts
// down to it within a few τ, gets the few requests that p2c then sends it,
// and either stays cheap (healed: it wins its share back, in about 2 s in
// the tests) or jumps back up at its first slow answer (still slow: its
// share stays well below 1 %). A backend whose probes are as slow as its
// answers is not retried at all, and nothing ever sends a backend random
// traffic. A backend that never answered costs the default latency:
// Options.InitialLatency, else the median known latency of the table when it
// was built (1 ms when none is known), so a new backend is neither starved
// (a high guess) nor flooded (a low one). The estimate lives in the Stats;
// picks only read it and compute the decay (a cheap e^-x).
//
// # Lifecycle on the pick path
//
// Slow start: a backend with Added set, or in state Init, gets weight ×
// clamp((now - Added)/SlowStart, SlowStartFloor, 1) (an Init backend
// without Added stays at the floor). The alias table holds static weights;
// the ramp is applied by rejection (a ramping backend is accepted with
// probability equal to its factor), which keeps picks O(1), allocation-free
// and exactly distributed. Round-robin and least-conn skip a ramping backend
// with the same probability.
//
// Outlier ejection: Stats.Done ejects a backend at a connect error or after
// ErrorStreak consecutive 5xx (default 5), for EjectBase (5 s) doubling with
// each consecutive ejection up to EjectMax (60 s); a success after the
// ejection ends resets the sequence. Ejected and excluded (PickExcept)
// backends are rejected the same way; after 8 rejected draws a pick falls
// back to an exact linear pass, so picks stay flat in the number of
// backends unless most of the weight is ejected. When every candidate is
// ejected, the one ejected longest ago is returned rather than an error.
package balance
