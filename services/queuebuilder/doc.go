// Package queuebuilder is the queue-builder service: it consumes the latest
// score of each worker (rb.score.<app>.<container>, stream RB_SCORES) and
// the lifecycle facts (rb.lifecycle.<app>.<container>, stream RB_DECISIONS:
// created, started, ready, sundown, drained from the scaler; died, removed
// from the collector; failed), builds one queue per app with pkg/queue (the
// same pure code `rb replay` runs), and publishes each app's whole queue,
// an events.QueueSnapshot, on rb.queue.<app> (stream RB_QUEUE, which keeps
// the last message per subject) whenever it changes.
//
// # Publishing
//
// A change is published at once when the app's last publish started at
// least Debounce (50 ms) ago, and otherwise when that window ends: at most
// one publish per app per window, none later than one window after the
// first change it carries. Faster changes are coalesced, and the last
// publish of a burst carries its final state. Inputs that change nothing,
// or changes that cancel out before the publish, publish nothing: the
// generation grows only with the content (pkg/queue), and a queue is
// published only at a generation above the last one published.
//
// Each event's id is "<app>-<generation>" (JetStream drops a retried
// publish), its time the latest event time of the inputs that changed the
// queue since the previous publish (never the wall clock, so a replay
// reproduces it), and its source "queuebuilder/<node>". A publish that
// fails (NATS down) is retried with backoff; the changes wait, coalesced.
//
// After each publish the same encoded event (envelope and all, the bytes
// stored on RB_QUEUE) is written to Redis with store.PutSnapshot(ctx,
// "queue", app, generation, data), for a proxy that starts while NATS is
// down: it decodes store.GetSnapshot(ctx, "queue", app).Data with
// events.Decode[events.QueueSnapshot]. The write happens off the publishing
// path; while Redis is down the newest snapshot per app waits and is retried
// with backoff, publishing on NATS goes on, and Health says so.
//
// # Starting: restore, rebuild, then go live
//
//  1. Restore. For every app with a message on RB_QUEUE, and for the apps
//     named in Options.Apps, the last queue on RB_QUEUE and the one in Redis
//     are read; the one with the higher generation is restored into the
//     builder, so generations keep growing across restarts and a
//     generation is never published twice with different content. Redis is
//     brought up to RB_QUEUE's generation when it is behind; a Redis that is
//     down only costs that comparison.
//  2. Rebuild. The two durable consumers are deleted and created afresh:
//     scores with DeliverLastPerSubject (the last score of every worker),
//     applied only when stored within ScoreHistory (default 10 min) so a
//     worker that vanished without a lifecycle fact does not come back;
//     lifecycle facts with DeliverByStartTime, LifecycleHistory back (the
//     target sets it to the scores' retention, so the removal of any worker
//     whose score is still kept is replayed and wins over that score).
//     Applying them on top of the restored queue is idempotent: facts are
//     sticky (removed workers stay removed, SUNDOWN stays SUNDOWN) and the
//     scores are the latest ones, so how the two streams interleave does not
//     change the result (unless a score and a fact disagree on an address).
//  3. Go live. Nothing is published until each consumer exists and its ack
//     floor has reached the last message of its subjects stored before it
//     was created (or CatchUpTimeout has passed, with a warning), so proxies
//     never see a half-rebuilt queue. Then an app is published if its
//     rebuilt queue differs from the restored one, or if the restored
//     generation came from Redis and is not on RB_QUEUE; otherwise nothing
//     is published. Ready reports nil from then on.
//
// The consumers deliver from where they were after a NATS outage. Because
// they are recreated at every start, run one queue builder at a time: two
// would share the durable consumers and split the inputs between them.
//
// Malformed inputs go to rb.dlq.<stream> (bus.DecodeEvent), are counted in
// rb_queuebuilder_inputs_total{result="invalid"} and logged once per stream
// and kind; they never stop the service.
package queuebuilder
