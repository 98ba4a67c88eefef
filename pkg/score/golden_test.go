package score_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/score"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// scenario is a worker's life in 100 samples, built without randomness:
// idle, a load ramp, an outage, odd but finite inputs, slow answers that
// cross the dynamic threshold, and recovery.
func scenario() []events.Sample {
	const mib = 1 << 20
	base := events.Sample{
		App: "shop", Container: "shop-1a2b3c4d", ContainerID: "f00dbabe", State: "running",
		Address: "172.20.0.5:8080", WindowSeconds: 1, CPULimit: 1, MemLimit: 512 * mib,
	}
	var out []events.Sample
	add := func(f func(s *events.Sample)) {
		s := base
		f(&s)
		out = append(out, s)
	}
	for i := range 20 { // idle, ~1 ms answers
		add(func(s *events.Sample) {
			s.CPUPercent = 2 + float64(i%3)
			s.MemUsage = 100 * mib
			s.NetRxBps, s.NetTxBps = 10e3, 20e3
			s.ProbeOK, s.ProbeSeconds = true, 0.001+float64(i%4)*0.0001
		})
	}
	for i := range 20 { // load ramp: CPU past its allowance, memory and traffic up, answers slower
		add(func(s *events.Sample) {
			s.CPUPercent = 5 + 6*float64(i)
			s.MemUsage = uint64(100+20*i) * mib
			s.NetRxBps, s.NetTxBps = 5e6*float64(i), 2e6*float64(i)
			s.ProbeOK, s.ProbeSeconds = true, 0.001+0.0025*float64(i)
		})
	}
	for range 5 { // outage: probe times out
		add(func(s *events.Sample) {
			s.CPUPercent = 100
			s.MemUsage = 500 * mib
			s.ProbeOK, s.ProbeSeconds, s.ProbeError = false, 5, "dial tcp 172.20.0.5:8080: i/o timeout"
		})
	}
	odd := []func(s *events.Sample){ // odd but finite inputs
		func(s *events.Sample) { s.ProbeOK, s.ProbeSeconds = true, 0 },                        // zero latency
		func(s *events.Sample) { s.ProbeOK, s.ProbeSeconds = true, 0 },                        // zero again: effective may hit 0
		func(s *events.Sample) { s.MemLimit, s.MemUsage = 0, 0; s.ProbeOK = true },            // no memory figures
		func(s *events.Sample) { s.NetRxBps = 1e300; s.ProbeOK, s.ProbeSeconds = true, 1e-9 }, // huge rate, tiny latency
		func(s *events.Sample) { s.CPUPercent = 1e-300; s.ProbeOK, s.ProbeSeconds = true, 6 }, // past the timeout
		func(s *events.Sample) { s.MemUsage = 1 << 62; s.ProbeOK, s.ProbeSeconds = true, 0.002 },
	}
	for _, f := range odd {
		add(f)
	}
	for i := range 20 { // slow answers, 0.4 s to 2.3 s: the threshold rises and penalties apply
		add(func(s *events.Sample) {
			s.CPUPercent = 50
			s.MemUsage = 200 * mib
			s.ProbeOK, s.ProbeSeconds = true, 0.4+0.1*float64(i)
		})
	}
	for i := range 29 { // recovery
		add(func(s *events.Sample) {
			s.CPUPercent = 3
			s.MemUsage = 120 * mib
			s.NetRxBps, s.NetTxBps = 15e3, 15e3
			s.ProbeOK, s.ProbeSeconds = true, 0.0012-float64(i%5)*0.0001
		})
	}
	return out
}

type goldenLine struct {
	Sample events.Sample `json:"sample"`
	Score  events.Score  `json:"score"`
}

func run(p score.Params, samples []events.Sample) []events.Score {
	st := score.NewState(p)
	out := make([]events.Score, len(samples))
	for i, s := range samples {
		out[i] = st.Update(p, s)
	}
	return out
}

// TestGolden scores the scenario and compares every Score, inputs included,
// with testdata/legacy_golden.jsonl byte for byte (refresh with -update).
// Scoring the scenario twice must give identical results.
func TestGolden(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	samples := scenario()
	scores := run(p, samples)
	again := run(p, samples)
	for i := range scores {
		if scores[i] != again[i] {
			t.Fatalf("sample %d: two runs differ:\n%+v\n%+v", i, scores[i], again[i])
		}
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range samples {
		if err := scores[i].Validate(); err != nil {
			t.Errorf("sample %d: Score.Validate: %v", i, err)
		}
		if err := enc.Encode(goldenLine{samples[i], scores[i]}); err != nil {
			t.Fatalf("sample %d: encode: %v", i, err)
		}
	}
	path := filepath.Join("testdata", "legacy_golden.jsonl")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (create it with -update): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		gotLines, wantLines := bytes.Split(buf.Bytes(), []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range min(len(gotLines), len(wantLines)) {
			if !bytes.Equal(gotLines[i], wantLines[i]) {
				t.Fatalf("%s line %d differs:\ngot  %s\nwant %s", path, i+1, gotLines[i], wantLines[i])
			}
		}
		t.Fatalf("%s: %d lines, want %d", path, len(gotLines), len(wantLines))
	}

	// The scenario must exercise what it claims to.
	var penalised, failed, lu, mu, hu int
	for _, s := range scores {
		if s.Inputs.Penalty > 0 {
			penalised++
		}
		if !s.Inputs.ProbeOK {
			failed++
		}
		switch s.Category {
		case events.CategoryLU:
			lu++
		case events.CategoryMU:
			mu++
		case events.CategoryHU:
			hu++
		}
	}
	if penalised == 0 || failed == 0 || lu == 0 || mu == 0 || hu == 0 {
		t.Errorf("scenario coverage: %d penalised, %d failed probes, LU/MU/HU %d/%d/%d; want each > 0",
			penalised, failed, lu, mu, hu)
	}
}
