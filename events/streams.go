package events

import "time"

// Stream names. They are part of the contract with external subscribers.
const (
	StreamStats     = "RB_STATS"
	StreamScores    = "RB_SCORES"
	StreamDecisions = "RB_DECISIONS"
	StreamQueue     = "RB_QUEUE"
	StreamProxy     = "RB_PROXY"
	StreamDLQ       = "RB_DLQ"
)

// Stream describes one JetStream stream as data, so the bus can ensure it and
// tests and docs can list it without a NATS dependency in this package.
type Stream struct {
	Name        string
	Description string
	Subjects    []string
	// MaxAge bounds how long messages are kept; 0 keeps them forever.
	MaxAge time.Duration
	// MaxMsgsPerSubject keeps only the last N messages of each subject; 0 is unlimited.
	MaxMsgsPerSubject int64
	// MaxBytes bounds the stream's size; 0 is unlimited.
	MaxBytes int64
	// Duplicates is the window in which a repeated message id is dropped.
	Duplicates time.Duration
}

// StreamLimits are the configurable retention settings of the streams.
type StreamLimits struct {
	StatsMaxAge     time.Duration
	ScoresMaxAge    time.Duration
	DecisionsMaxAge time.Duration
	ProxyMaxAge     time.Duration
	DLQMaxAge       time.Duration
}

// DefaultStreamLimits are the retention defaults: a day of samples for replay,
// thirty days of decisions as the audit log.
func DefaultStreamLimits() StreamLimits {
	return StreamLimits{
		StatsMaxAge:     24 * time.Hour,
		ScoresMaxAge:    24 * time.Hour,
		DecisionsMaxAge: 30 * 24 * time.Hour,
		ProxyMaxAge:     time.Hour,
		DLQMaxAge:       7 * 24 * time.Hour,
	}
}

// Streams returns the stream definitions of the system for the given limits.
func Streams(l StreamLimits) []Stream {
	const dedupe = 2 * time.Minute
	return []Stream{
		{Name: StreamStats, Description: "resource samples per worker (the replay source)",
			Subjects: []string{PrefixStats + ">"}, MaxAge: l.StatsMaxAge, Duplicates: dedupe},
		{Name: StreamScores, Description: "scores per worker",
			Subjects: []string{PrefixScore + ">"}, MaxAge: l.ScoresMaxAge, Duplicates: dedupe},
		{Name: StreamDecisions, Description: "scaling decisions, lifecycle facts and config changes (the audit log)",
			Subjects: []string{PrefixScale + ">", PrefixLifecycle + ">", PrefixConfig + ">"}, MaxAge: l.DecisionsMaxAge, Duplicates: dedupe},
		{Name: StreamQueue, Description: "the current queue per app (last message per subject)",
			Subjects: []string{PrefixQueue + ">"}, MaxMsgsPerSubject: 1, Duplicates: dedupe},
		{Name: StreamProxy, Description: "proxy telemetry (in-flight, errors, latency per backend)",
			Subjects: []string{PrefixProxy + ">"}, MaxAge: l.ProxyMaxAge, Duplicates: dedupe},
		{Name: StreamDLQ, Description: "messages a consumer could not decode or process, with the reason",
			Subjects: []string{PrefixDLQ + ">"}, MaxAge: l.DLQMaxAge, Duplicates: dedupe},
	}
}
