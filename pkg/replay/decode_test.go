package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
)

// slowSample is what the live scorer accepts and reads (events.Decode, then
// the subject check), as a compact Sample.
func slowSample(subject string, data []byte) (Sample, string, string, bool) {
	ev, err := events.Decode[events.Sample](data)
	if err != nil {
		return Sample{}, "", "", false
	}
	toks, err := events.Tokens(events.PrefixStats, subject)
	if err != nil || len(toks) != 2 || toks[0] != ev.Data.App || toks[1] != ev.Data.Container {
		return Sample{}, "", "", false
	}
	d := ev.Data
	return Sample{At: ev.Time.UnixNano(), ProbeOK: d.ProbeOK, CPU: d.CPUPercent, MemUsage: d.MemUsage, MemLimit: d.MemLimit,
		Rx: d.NetRxBps, Tx: d.NetTxBps, Probe: d.ProbeSeconds}, d.App, d.Container, true
}

// checkFast says whether the fast path read data, and fails the test if what
// it read differs from what encoding/json reads, or if it accepted what the
// live scorer refuses.
func checkFast(t *testing.T, subject string, data []byte) bool {
	t.Helper()
	f, ok := parseSample(data)
	ok = ok && subjectIs([]byte(subject), f.app, f.ctr)
	if !ok {
		return false
	}
	want, app, ctr, valid := slowSample(subject, data)
	if !valid {
		t.Errorf("fast path accepted what events.Decode refuses: %s", data)
		return true
	}
	got := Sample{At: f.at, ProbeOK: f.probeOK, CPU: f.cpu, MemUsage: f.memUsage, MemLimit: f.memLimit, Rx: f.rx, Tx: f.tx, Probe: f.probe}
	if got != want || string(f.app) != app || string(f.ctr) != ctr {
		t.Errorf("fast path read %+v %s/%s, encoding/json %+v %s/%s from %s", got, f.app, f.ctr, want, app, ctr, data)
	}
	return true
}

// checkLine reads an export line holding data as a chunk does (the Sample
// read in the same pass as the line) and checks it against encoding/json.
func checkLine(t *testing.T, subject, data string) {
	t.Helper()
	c := newChunk(testApp)
	c.line([]byte(`{"stream":"RB_STATS","subject":"` + subject + `","seq":7,"data":` + data + "}"))
	want, _, ctr, ok := slowSample(subject, []byte(data))
	switch {
	case !ok && len(c.samples) != 0:
		t.Errorf("line read a Sample from %s, which the scorer refuses", data)
	case ok && len(c.samples) != 1:
		t.Errorf("line read no Sample from %s (skipped %v)", data, c.skipped)
	case ok:
		got := c.samples[0]
		got.Ctr = 0
		if got != want || c.names[0] != ctr {
			t.Errorf("line read %+v %s, encoding/json %+v %s", got, c.names[0], want, ctr)
		}
	}
}

func sampleJSON(t testing.TB, at time.Time, s events.Sample) []byte {
	t.Helper()
	b, err := events.Encode(events.New("id-1", at, "collector/test", s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	subj := "rb.stats.shop.shop-1a2b3c4d"
	good := `{"schema":1,"kind":"sample","id":"x","time":"2026-11-26T12:00:00.25Z","source":"c","data":{"app":"shop","container":"shop-1a2b3c4d","container_id":"f00d","state":"running","window_seconds":1,"cpu_percent":37.5,"cpu_limit_cores":0.5,"mem_usage_bytes":12582912,"mem_limit_bytes":268435456,"net_rx_bytes_per_second":1200,"net_tx_bytes_per_second":5400,"probe_ok":true,"probe_seconds":0.0012}}`
	tests := []struct {
		name string
		data string
		// fast: whether the fast path must read it (else it must give up,
		// or agree with encoding/json).
		fast bool
	}{
		{name: "as encoded", data: good, fast: true},
		{name: "white space", data: strings.ReplaceAll(strings.ReplaceAll(good, `":`, `" :  `), `,"`, " ,\n \""), fast: true},
		{name: "keys in another order", data: `{"data":{"probe_seconds":0.5,"container":"shop-1a2b3c4d","app":"shop","probe_ok":false},"source":"c","time":"2026-11-26T12:00:00Z","id":"x","kind":"sample","schema":1}`, fast: true},
		{name: "unknown fields", data: strings.Replace(good, `"state"`, `"extra":{"a":[1,"}",{"b":null}]},"state"`, 1), fast: true},
		{name: "exponent and negative zero", data: strings.Replace(strings.Replace(good, "37.5", "3.75e1", 1), "1200", "-0", 1)},
		{name: "escaped container", data: strings.Replace(good, `"container":"shop-1a2b3c4d"`, `"container":"shop-1a2b3c4\u0064"`, 1)},
		{name: "upper-case key", data: strings.Replace(good, `"cpu_percent"`, `"CPU_percent"`, 1)},
		{name: "folded key", data: strings.Replace(good, `"state"`, `"ſtate"`, 1)},
		{name: "null", data: strings.Replace(good, "37.5", "null", 1)},
		{name: "time with an offset", data: strings.Replace(good, "12:00:00.25Z", "13:00:00.25+01:00", 1)},
		{name: "nanoseconds", data: strings.Replace(good, "12:00:00.25Z", "12:00:00.123456789Z", 1), fast: true},
		{name: "negative cpu", data: strings.Replace(good, "37.5", "-1", 1)},
		{name: "fractional bytes", data: strings.Replace(good, "12582912", "1.5", 1)},
		{name: "huge number", data: strings.Replace(good, "37.5", "1e400", 1)},
		{name: "wrong kind", data: strings.Replace(good, `"kind":"sample"`, `"kind":"score"`, 1)},
		{name: "wrong schema", data: strings.Replace(good, `"schema":1`, `"schema":2`, 1)},
		{name: "no id", data: strings.Replace(good, `"id":"x"`, `"id":""`, 1)},
		{name: "no source", data: strings.Replace(good, `"source":"c"`, `"source":""`, 1)},
		{name: "no app", data: strings.Replace(good, `"app":"shop"`, `"app":""`, 1)},
		{name: "bad date", data: strings.Replace(good, "2026-11-26", "2026-02-30", 1)},
		{name: "truncated", data: good[:len(good)-3]},
		{name: "trailing garbage", data: good + "x"},
		{name: "leading plus", data: strings.Replace(good, "37.5", "+37.5", 1)},
		{name: "hex", data: strings.Replace(good, "1200", "0x10", 1)},
		{name: "raw control byte", data: strings.Replace(good, `"f00d"`, "\"f0\t0d\"", 1)},
		{name: "raw control byte in an unknown field", data: strings.Replace(good, `"state"`, "\"x\":\"a\nb\",\"state\"", 1)},
		{name: "escaped quote in a skipped string", data: strings.Replace(good, `"f00d"`, `"f0\"0\\d"`, 1), fast: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if fast := checkFast(t, subj, []byte(tt.data)); tt.fast && !fast {
				t.Errorf("fast path gave up on %s", tt.data)
			}
			checkLine(t, subj, tt.data)
		})
	}
	t.Run("wrong subject", func(t *testing.T) {
		t.Parallel()
		if checkFast(t, "rb.stats.shop.other", []byte(good)) {
			t.Error("fast path accepted a sample on another container's subject")
		}
	})
}

func TestFastDecodeRandomSamples(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []float64{0, 1, 0.1, 1e-9, 37.5, 99.99999999999999, 1e300, math.SmallestNonzeroFloat64, 5e-324, 123456789.123456789}
	pick := func() float64 {
		if rng.IntN(2) == 0 {
			return vals[rng.IntN(len(vals))]
		}
		return rng.Float64() * math.Pow(10, float64(rng.IntN(20)-10))
	}
	for i := range 5000 {
		at := time.Unix(0, rng.Int64N(4e18)).UTC()
		s := events.Sample{App: "shop", Container: fmt.Sprintf("shop-%08x", rng.Uint32()), State: "running",
			WindowSeconds: pick(), CPUPercent: pick(), CPULimit: pick(), MemUsage: rng.Uint64(), MemLimit: rng.Uint64() >> rng.IntN(64),
			NetRxBps: pick(), NetTxBps: pick(), ProbeOK: rng.IntN(2) == 0, ProbeSeconds: pick()}
		data := sampleJSON(t, at, s)
		subj, _ := events.StatsSubject(s.App, s.Container)
		if !checkFast(t, subj, data) {
			t.Fatalf("sample %d: fast path gave up on %s", i, data)
		}
		line := `{"stream":"RB_STATS","subject":"` + subj + `","seq":1,"data":` + string(data) + "}"
		if _, _, ok := canonicalSample([]byte(line)); !ok {
			t.Fatalf("sample %d: the canonical path gave up on %s", i, line)
		}
		checkLine(t, subj, string(data))
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		at := time.Unix(rng.Int64N(7e9), rng.Int64N(1e9)).UTC()
		b, _ := at.MarshalJSON()
		ns, ok := parseTime(b[1 : len(b)-1])
		if !ok || ns != at.UnixNano() {
			t.Fatalf("%s: got %d %v, want %d", b, ns, ok, at.UnixNano())
		}
	}
}

func TestExportFileRoundTrip(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	msgs := newLiveSim(t, base, rampLoad, "shop-seed0001").run(2 * time.Minute)
	want := recordingOf(t, msgs)
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w := NewWriter(&buf, gz)
			seq := map[string]uint64{}
			for _, m := range msgs {
				seq[m.stream]++
				if err := w.Write(Record{Stream: m.stream, Subject: m.subject, Seq: seq[m.stream], Data: m.data}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Write(Record{Stream: "RB_STATS", Subject: "rb.stats.shop.x", Data: []byte("not json")}); err == nil {
				t.Fatal("wrote a line that is not JSON")
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := Load(context.Background(), &buf, testApp)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(want)
			b, _ := json.Marshal(got)
			if !bytes.Equal(a, b) {
				t.Fatalf("the file's recording differs from the messages'")
			}
		})
	}
}

func TestTrimAfter(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	msgs := newLiveSim(t, base, rampLoad, "shop-seed0001").run(3 * time.Minute)
	full := recordingOf(t, msgs)
	cut := t0.Add(90 * time.Second)
	rec := recordingOf(t, msgs)
	rec.TrimAfter(cut)
	if len(rec.Samples) == 0 || len(rec.Samples) >= len(full.Samples) {
		t.Fatalf("%d of %d samples kept", len(rec.Samples), len(full.Samples))
	}
	for _, s := range rec.Samples {
		if s.At > cut.UnixNano() {
			t.Fatalf("a sample at %s kept", fromNanos(s.At))
		}
	}
	// Every event kept sits where it sat among the samples kept.
	for _, e := range rec.Events {
		if e.At > cut.UnixNano() || e.Pos > len(rec.Samples) {
			t.Fatalf("event %s at %s, position %d of %d", e.Kind, e.Time(), e.Pos, len(rec.Samples))
		}
		if e.Pos > 0 && rec.Samples[e.Pos-1].At > e.At {
			t.Fatalf("event at %s after a sample at %s", e.Time(), fromNanos(rec.Samples[e.Pos-1].At))
		}
	}
	p := prepare(t, rec, base, Options{})
	if _, last := rec.Span(); !p.End().Equal(last) || last.After(cut) {
		t.Fatalf("replay ends at %s", p.End())
	}
}

func TestFloatMatchesParseFloat(t *testing.T) {
	t.Parallel()
	nums := []string{"0", "-0", "0.0", "1", "37.5", "0.1", "0.0012", "0.30000000000000004", "123456789012345",
		"1234567890123456", "12345678901234567890123", "9007199254740993", "1e22", "1e23", "1E-22", "1e-23", "4.35",
		"5e-324", "2.2250738585072014e-308", "1.7976931348623157e308", "62500000", "6.25e+07", "1.5e-7",
		"0.000000000000000000000000001", "100.00000000000000000000001", "999999999999999.9"}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		v := math.Float64frombits(rng.Uint64())
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		nums = append(nums, strconv.FormatFloat(v, 'g', -1, 64), strconv.FormatFloat(math.Abs(v)*1e-300, 'f', -1, 64))
		nums = append(nums, strconv.FormatFloat(rng.Float64()*100, 'f', rng.IntN(8), 64))
	}
	for _, n := range nums {
		s := scanner{b: []byte(n)}
		got, ok := s.float()
		want, err := strconv.ParseFloat(n, 64)
		if !ok || err != nil || math.Float64bits(got) != math.Float64bits(want) || s.i != len(n) {
			t.Fatalf("%s: got %v %v (read %d), ParseFloat %v %v", n, got, ok, s.i, want, err)
		}
	}
}
