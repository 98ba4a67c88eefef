// Package events holds the wire contract of RustyBalancer: the event types,
// their envelope, the NATS subjects they travel on and the JetStream streams
// that keep them. External subscribers depend on it; every type has a golden
// JSON fixture under testdata/ (refresh with `go test ./events -update`).
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the envelope schema this code writes and reads.
const SchemaVersion = 1

// Kind names an event type on the wire. Kinds are string constants, never
// derived from Go type names, so renaming a type cannot change the wire.
type Kind string

// The event kinds.
const (
	KindSample        Kind = "sample"
	KindScore         Kind = "score"
	KindDecision      Kind = "decision"
	KindLifecycle     Kind = "lifecycle"
	KindQueue         Kind = "queue"
	KindProxyReport   Kind = "proxy_report"
	KindConfigChanged Kind = "config_changed"
)

// Payload is implemented by every event body.
type Payload interface {
	// EventKind returns the kind written into the envelope.
	EventKind() Kind
	// Validate reports the first field that makes the payload unusable.
	Validate() error
}

// Meta is the envelope around every payload: schema version, id, event time and source.
type Meta struct {
	Schema int       `json:"schema"`
	Kind   Kind      `json:"kind"`
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
}

// Event is an envelope with a typed payload.
type Event[T Payload] struct {
	Meta
	Data T `json:"data"`
}

// New wraps a payload in an envelope of the current schema.
func New[T Payload](id string, at time.Time, source string, data T) Event[T] {
	return Event[T]{Meta: Meta{Schema: SchemaVersion, Kind: data.EventKind(), ID: id, Time: at.UTC(), Source: source}, Data: data}
}

// Encode validates the event and marshals it to JSON.
func Encode[T Payload](e Event[T]) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s event %s: %w", e.Kind, e.ID, err)
	}
	return b, nil
}

// Sentinel errors of decoding; a *DecodeError wraps exactly one of them.
var (
	ErrMalformed   = errors.New("malformed event")
	ErrSchema      = errors.New("unsupported schema version")
	ErrWrongKind   = errors.New("unexpected event kind")
	ErrInvalid     = errors.New("invalid event")
	ErrMissingMeta = errors.New("missing envelope field")
)

// DecodeError says why a message could not be decoded. It never hides a panic:
// decoding does not panic on any input.
type DecodeError struct {
	Want   Kind
	Reason string
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s event: %v: %s", e.Want, e.Err, e.Reason)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Decode parses and validates an event of kind T.
func Decode[T Payload](b []byte) (Event[T], error) {
	var e Event[T]
	want := e.Data.EventKind()
	if err := json.Unmarshal(b, &e); err != nil {
		return e, &DecodeError{Want: want, Reason: err.Error(), Err: ErrMalformed}
	}
	if e.Kind != want {
		if e.Kind == "" {
			return e, &DecodeError{Want: want, Reason: "kind is empty", Err: ErrMissingMeta}
		}
		return e, &DecodeError{Want: want, Reason: fmt.Sprintf("got kind %q", e.Kind), Err: ErrWrongKind}
	}
	if err := e.check(); err != nil {
		return e, err
	}
	return e, nil
}

// PeekMeta decodes only the envelope, for consumers that route by kind.
func PeekMeta(b []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, &DecodeError{Reason: err.Error(), Err: ErrMalformed}
	}
	return m, nil
}

func (e Event[T]) check() error {
	want := e.Data.EventKind()
	switch {
	case e.Schema != SchemaVersion:
		return &DecodeError{Want: want, Reason: fmt.Sprintf("schema %d, this build reads %d", e.Schema, SchemaVersion), Err: ErrSchema}
	case e.Kind != want:
		return &DecodeError{Want: want, Reason: fmt.Sprintf("kind %q", e.Kind), Err: ErrWrongKind}
	case e.ID == "":
		return &DecodeError{Want: want, Reason: "id is empty", Err: ErrMissingMeta}
	case e.Time.IsZero():
		return &DecodeError{Want: want, Reason: "time is missing", Err: ErrMissingMeta}
	case e.Source == "":
		return &DecodeError{Want: want, Reason: "source is empty", Err: ErrMissingMeta}
	}
	if err := e.Data.Validate(); err != nil {
		return &DecodeError{Want: want, Reason: err.Error(), Err: ErrInvalid}
	}
	return nil
}
