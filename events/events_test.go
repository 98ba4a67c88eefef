package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden fixtures in testdata/")

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func meta(kind Kind) Meta {
	return Meta{Schema: SchemaVersion, Kind: kind, ID: "01J-" + string(kind), Time: t0, Source: "test/host-1"}
}

// golden checks that ev encodes to testdata/<name>.json byte for byte and that
// the fixture decodes back to the same value.
func golden[T Payload](t *testing.T, name string, ev Event[T]) {
	t.Helper()
	got, err := Encode(ev)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Fatalf("%s changed on the wire:\n got: %s\nwant: %s", path, pretty.Bytes(), want)
	}
	back, err := Decode[T](want)
	if err != nil {
		t.Fatalf("decode golden: %v", err)
	}
	again, err := Encode(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, got) {
		t.Fatalf("round trip differs:\n got: %s\nwant: %s", again, got)
	}
}

func TestGolden(t *testing.T) {
	t.Run("sample", func(t *testing.T) {
		golden(t, "sample", Event[Sample]{Meta: meta(KindSample), Data: Sample{
			App: "shop", Container: "shop-1a2b3c4d", ContainerID: "f00dbabe", State: "running", Address: "172.20.0.5:8080",
			WindowSeconds: 1, CPUPercent: 37.5, CPULimit: 0.5, MemUsage: 12 << 20, MemLimit: 256 << 20,
			NetRxBps: 1200, NetTxBps: 5400, ProbeOK: true, ProbeSeconds: 0.0012,
		}})
	})
	t.Run("score", func(t *testing.T) {
		golden(t, "score", Event[Score]{Meta: meta(KindScore), Data: Score{
			App: "shop", Container: "shop-1a2b3c4d", ContainerID: "f00dbabe", Address: "172.20.0.5:8080", Mode: "legacy",
			CPU: 62.5, Memory: 95.3, Network: 99.9, Availability: 88.1, Overall: 81.2, Category: CategoryLU, SampleID: "01J-sample",
			Inputs: ScoreInputs{CPUPercent: 37.5, MemPercent: 4.7, NetPercent: 0.1, ProbeOK: true, ProbeSeconds: 0.0012,
				EffectiveSecs: 0.0013, BestSecs: 0.0011, ThresholdSecs: 0.5, Base: 77.9, Trend: 0.01, RawAvailability: 78, HistoryLen: 20},
		}})
	})
	t.Run("decision", func(t *testing.T) {
		golden(t, "decision", Event[Decision]{Meta: meta(KindDecision), Data: Decision{
			App: "shop", Action: ActionScaleUp, Reason: "mean score 41.0 < HIGH_LOAD_THRESHOLD 55.0", From: 2, To: 3,
			Targets: []string{"shop-9e8d7c6b"},
			Inputs: DecisionInputs{MeanScore: 41, MinScore: 30, Active: 2, Ready: 2, Desired: 2, Min: 1, Max: 3,
				HighThreshold: 55, LowThreshold: 80, CriticalThresh: 20, ConfigVersion: 3},
		}})
	})
	t.Run("lifecycle", func(t *testing.T) {
		golden(t, "lifecycle", Event[Lifecycle]{Meta: meta(KindLifecycle), Data: Lifecycle{
			App: "shop", Container: "shop-9e8d7c6b", ContainerID: "c0ffee", Phase: PhaseFailed, Reason: "create worker",
			Error: "no such image: demo:latest", DecisionID: "01J-decision",
		}})
	})
	t.Run("queue", func(t *testing.T) {
		golden(t, "queue", Event[QueueSnapshot]{Meta: meta(KindQueue), Data: QueueSnapshot{
			App: "shop", Generation: 42, Items: []QueueItem{
				{Container: "shop-1a2b3c4d", Address: "172.20.0.5:8080", Score: 81.2, Weight: 81.2, Category: CategoryLU, State: StateActive, ProbeSeconds: 0.0012},
				{Container: "shop-9e8d7c6b", Address: "172.20.0.6:8080", Score: 100, Weight: 100, Category: CategoryInit, State: StateInit},
				{Container: "shop-0f0f0f0f", Address: "172.20.0.7:8080", Score: 99, Weight: 0, Category: CategorySundown, State: StateSundown},
			},
		}})
	})
	t.Run("proxy_report", func(t *testing.T) {
		golden(t, "proxy_report", Event[ProxyReport]{Meta: meta(KindProxyReport), Data: ProxyReport{
			App: "shop", ProxyID: "proxy-a", IntervalSeconds: 1, QueueGeneration: 42, Backends: []BackendReport{
				{Container: "shop-1a2b3c4d", Address: "172.20.0.5:8080", State: StateActive, InFlight: 3, Requests: 812, Errors: 1, LatencySeconds: 0.0021},
				{Container: "shop-0f0f0f0f", Address: "172.20.0.7:8080", State: StateSundown, InFlight: 1, Requests: 2, LatencySeconds: 0.0019, Ejected: false},
			},
		}})
	})
	t.Run("config_changed", func(t *testing.T) {
		golden(t, "config_changed", Event[ConfigChanged]{Meta: meta(KindConfigChanged), Data: ConfigChanged{
			App: "shop", Version: 4, Values: map[string]string{"HIGH_LOAD_THRESHOLD": "50", "SCALE_STEP": "2"},
			Changed: []string{"HIGH_LOAD_THRESHOLD"}, By: "rb config set",
		}})
	})
}

func TestDecodeErrors(t *testing.T) {
	good, err := Encode(New("id-1", t0, "test", Sample{App: "a", Container: "c"}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{name: "not json", in: "{nope", want: ErrMalformed},
		{name: "empty", in: "", want: ErrMalformed},
		{name: "wrong type for field", in: `{"schema":"one"}`, want: ErrMalformed},
		{name: "no kind", in: `{"schema":1}`, want: ErrMissingMeta},
		{name: "wrong kind", in: strings.Replace(string(good), `"sample"`, `"score"`, 1), want: ErrWrongKind},
		{name: "future schema", in: strings.Replace(string(good), `"schema":1`, `"schema":2`, 1), want: ErrSchema},
		{name: "no id", in: strings.Replace(string(good), `"id-1"`, `""`, 1), want: ErrMissingMeta},
		{name: "no time", in: strings.Replace(string(good), `"time":"2026-11-26T12:00:00Z",`, ``, 1), want: ErrMissingMeta},
		{name: "no source", in: strings.Replace(string(good), `"source":"test"`, `"source":""`, 1), want: ErrMissingMeta},
		{name: "no container", in: strings.Replace(string(good), `"container":"c"`, `"container":""`, 1), want: ErrInvalid},
		{name: "negative cpu", in: strings.Replace(string(good), `"cpu_percent":0`, `"cpu_percent":-3`, 1), want: ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode[Sample]([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%q) error = %v, want %v", tc.in, err, tc.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Want != KindSample {
				t.Fatalf("error %v is not a *DecodeError for %q", err, KindSample)
			}
		})
	}
	if _, err := Decode[Sample](good); err != nil {
		t.Fatalf("good sample: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		p     Payload
		field string
	}{
		{name: "score above 100", p: Score{App: "a", Container: "c", CPU: 101, Category: CategoryLU}, field: "cpu_score"},
		{name: "score bad category", p: Score{App: "a", Container: "c", Category: "XX"}, field: "utilization_category"},
		{name: "decision unknown action", p: Decision{App: "a", Reason: "r", Action: "jump"}, field: "action"},
		{name: "lifecycle unknown phase", p: Lifecycle{App: "a", Container: "c", Phase: "exploded"}, field: "phase"},
		{name: "queue item without address", p: QueueSnapshot{App: "a", Items: []QueueItem{{Container: "c", State: StateActive}}}, field: "items[0]: address"},
		{name: "proxy report negative in flight", p: ProxyReport{App: "a", ProxyID: "p", Backends: []BackendReport{{Container: "c", InFlight: -1}}}, field: "backends[0]: in_flight"},
		{name: "config version 0", p: ConfigChanged{App: "a"}, field: "version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.field)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		name    string
		build   func() (string, error)
		want    string
		wantErr bool
	}{
		{name: "stats", build: func() (string, error) { return StatsSubject("shop", "shop-1a2b") }, want: "rb.stats.shop.shop-1a2b"},
		{name: "dot escaped", build: func() (string, error) { return ScoreSubject("shop", "web.1") }, want: "rb.score.shop.web%2E1"},
		{name: "wildcards escaped", build: func() (string, error) { return LifecycleSubject("a*b", "c>d") }, want: "rb.lifecycle.a%2Ab.c%3Ed"},
		{name: "space and percent escaped", build: func() (string, error) { return QueueSubject("my app%") }, want: "rb.queue.my%20app%25"},
		{name: "tab escaped", build: func() (string, error) { return ScaleSubject("a\tb") }, want: "rb.scale.a%09b"},
		{name: "proxy", build: func() (string, error) { return ProxySubject("shop", "px-1") }, want: "rb.proxy.shop.px-1"},
		{name: "config", build: func() (string, error) { return ConfigSubject("shop") }, want: "rb.config.shop"},
		{name: "dlq", build: func() (string, error) { return DLQSubject(StreamStats) }, want: "rb.dlq.RB_STATS"},
		{name: "empty app rejected", build: func() (string, error) { return StatsSubject("", "c") }, wantErr: true},
		{name: "empty container rejected", build: func() (string, error) { return StatsSubject("a", "") }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.build()
			if tc.wantErr {
				if !errors.Is(err, ErrBadToken) {
					t.Fatalf("got %q, %v; want ErrBadToken", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestTokensRoundTrip(t *testing.T) {
	for _, name := range []string{"plain", "a.b.c", "x*y>z", "50%", "with space", "ünïcode.ok"} {
		subj, err := StatsSubject("app.1", name)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := Tokens(PrefixStats, subj)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != 2 || toks[0] != "app.1" || toks[1] != name {
			t.Fatalf("Tokens(%q) = %q, want [app.1 %s]", subj, toks, name)
		}
	}
	if _, err := Tokens(PrefixStats, "rb.score.a.b"); err == nil {
		t.Fatal("wrong prefix accepted")
	}
	if _, err := UnescapeToken("bad%2"); err == nil {
		t.Fatal("truncated escape accepted")
	}
}

func TestStreams(t *testing.T) {
	s := Streams(DefaultStreamLimits())
	byName := map[string]Stream{}
	for _, st := range s {
		byName[st.Name] = st
	}
	for _, name := range []string{StreamStats, StreamScores, StreamDecisions, StreamQueue, StreamProxy, StreamDLQ} {
		if _, ok := byName[name]; !ok {
			t.Fatalf("stream %s missing", name)
		}
	}
	if byName[StreamQueue].MaxMsgsPerSubject != 1 {
		t.Fatal("RB_QUEUE must keep one message per subject")
	}
	if byName[StreamStats].MaxAge != 24*time.Hour || byName[StreamDecisions].MaxAge != 30*24*time.Hour {
		t.Fatal("default retention changed")
	}
	// No two streams may claim overlapping subjects: JetStream rejects that.
	seen := map[string]string{}
	for _, st := range s {
		for _, subj := range st.Subjects {
			if other, dup := seen[subj]; dup {
				t.Fatalf("subject %s in %s and %s", subj, other, st.Name)
			}
			seen[subj] = st.Name
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"sample", "score", "decision", "lifecycle", "queue", "proxy_report", "config_changed"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"schema":1,"kind":"sample","data":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Decoding never panics; every failure is a *DecodeError.
		check := func(err error) {
			var de *DecodeError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
		_, err := Decode[Sample](b)
		check(err)
		_, err = Decode[Score](b)
		check(err)
		_, err = Decode[Decision](b)
		check(err)
		_, err = Decode[Lifecycle](b)
		check(err)
		_, err = Decode[QueueSnapshot](b)
		check(err)
		_, err = Decode[ProxyReport](b)
		check(err)
		_, err = Decode[ConfigChanged](b)
		check(err)
		_, err = PeekMeta(b)
		check(err)
	})
}
