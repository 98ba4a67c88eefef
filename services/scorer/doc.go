// Package scorer is the live scorer: it consumes one app's Samples from
// RB_STATS (rb.stats.<app>.<container>) with a durable consumer, keeps a
// score.State per container, and publishes an events.Score for every valid
// Sample on rb.score.<app>.<container>. The scoring itself is pkg/score, the
// same pure code replay runs; this package adds the I/O around it.
//
// A Score is a function of its Sample: its event time is the Sample's, its
// SampleID the Sample's event id, and its own id is derived from that id
// (ScoreID), so a redelivered Sample yields the same Score and RB_SCORES drops
// the copy.
//
// Samples are applied one at a time, in stream order. Their Scores are
// published without waiting for the stream's ack (a wait per Sample would
// queue Samples behind a round trip each); a second goroutine awaits the acks
// in order and sends a Score again until it is stored or a newer Score of
// its container supersedes it (publish.go).
//
// # Surviving a restart
//
// The state of a container is a pure function of the sequence of its
// Samples, so it can be rebuilt; the scorer makes sure that after a restart
// every Sample is applied exactly once:
//
//   - Every few seconds, and when it stops, it writes a snapshot of all its
//     states to Redis (store.PutSnapshot, kind "scorer") with the stream
//     sequence of the last Sample applied as its version. With each
//     container it keeps the sequence of that container's last Sample, and
//     that Sample's Score while it is not confirmed stored (published again
//     at the next start; the stream drops it if it has it).
//   - At start it restores the snapshot, then reads RB_STATS from the
//     snapshot's sequence + 1 up to the durable consumer's ack floor (the
//     Samples a previous run applied and acknowledged after the snapshot:
//     their Scores are already published, so they are applied without
//     publishing). The durable consumer then resumes after its ack floor,
//     and a Sample at or below a container's last sequence (a redelivery) is
//     acknowledged without being applied again.
//   - Without a usable snapshot (none, Redis down, undecodable, from an older
//     stream, or more than one rebuild window behind) it rebuilds from the
//     stream: it applies, without publishing, the Samples of the last
//     rebuild window before the consumer's position. The window
//     (RebuildWindow) is long enough for the history to fill and for the
//     availability EMA and the dynamic threshold to forget their starting
//     values to 1 %, so scores go on from where they were, not from 100.
//   - A durable consumer created for the first time starts at the last
//     Sample read while rebuilding: old Samples are not scored again.
//
// A crash (no clean stop) costs at most the Scores not yet confirmed when it
// happened; the containers' next Samples bring fresh ones. docs/scoring.md
// ("Live scorer") says the same for operators.
//
// # Config, lifecycle and memory
//
// Score parameters come from the config (Params). The scorer reads the app's
// runtime config from Redis at start and follows rb.config.<app>
// (events.ConfigChanged); new values are applied with config.WithRuntime and
// take effect with the next Sample; invalid ones are logged and the current
// parameters kept. A container's state is forgotten when a lifecycle fact
// says it was removed or died (rb.lifecycle.<app>.<container>), and when it
// has sent no Sample for IdleTimeout (measured in Sample event times), so
// memory stays bounded.
//
// Malformed Samples go to the dead letter queue (rb.dlq.RB_STATS), are
// counted, and logged once per kind; the next valid one is scored. Run one
// scorer per app: two would share the durable consumer and split each
// container's Samples between them.
package scorer
