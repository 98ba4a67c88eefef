package replayctl_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/replay"
	"github.com/rustybalancer/rb/services/replayctl"
)

// rb runs `rb <args>` in-process with env as the environment.
func rb(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = replayctl.Main(context.Background(), args, replayctl.IO{
		Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Stdout: &out, Stderr: &errb,
		Now: func() time.Time { return time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC) },
	})
	return code, out.String(), errb.String()
}

func TestReplayOfTheLiveServices(t *testing.T) {
	run := record(t, 150*time.Second)
	if run.decisions < 5 {
		t.Fatalf("the live run took %d decisions, want at least 5 (up, up, down, remove, ...)", run.decisions)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "recording.ndjson.gz")

	code, _, stderr := rb(t, run.env, "export", "-o", file)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "RB_STATS") || !strings.Contains(stderr, "RB_DECISIONS") {
		t.Errorf("export says %q", stderr)
	}

	var fromStream string
	t.Run("from the stream, with the recorded config, reproduces every decision", func(t *testing.T) {
		code, stdout, stderr := rb(t, run.env, "replay", "-verify")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		want := "reproduces all " + itoa(run.decisions) + " recorded decisions, byte for byte"
		if !strings.Contains(stdout, want) {
			t.Fatalf("want %q in\n%s", want, stdout)
		}
		fromStream = stdout
	})
	t.Run("from the export file, the same as from the stream", func(t *testing.T) {
		code, stdout, stderr := rb(t, run.env, "replay", "-verify", "-file", file)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if stdout != fromStream {
			t.Fatalf("file replay:\n%s\nstream replay:\n%s", stdout, fromStream)
		}
	})
	t.Run("a file knows its app", func(t *testing.T) {
		env := maps.Clone(run.env)
		delete(env, "APP_IDENTIFIER")
		code, stdout, stderr := rb(t, env, "replay", "-verify", "-file", file)
		if code != 0 || stdout != fromStream {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
	})
	t.Run("a sequence range, with its warm-up, reproduces its decisions; the export file replays as the stream does", func(t *testing.T) {
		part := filepath.Join(dir, "part.ndjson")
		if code, _, stderr := rb(t, run.env, "export", "-seq", "100:200", "-o", part); code != 0 {
			t.Fatalf("export: exit %d: %s", code, stderr)
		}
		code, fromStream, stderr := rb(t, run.env, "replay", "-seq", "100:200", "-verify")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, fromStream, stderr)
		}
		code, fromFile, stderr := rb(t, run.env, "replay", "-file", part, "-verify")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, fromFile, stderr)
		}
		if fromFile != fromStream {
			t.Fatalf("file replay:\n%s\nstream replay:\n%s", fromFile, fromStream)
		}
		if !strings.Contains(fromStream, "101 samples") {
			t.Errorf("want the 101 samples of the range measured in\n%s", fromStream)
		}
	})
	t.Run("a sweep ranks the candidates and writes CSV, JSON and SVG", func(t *testing.T) {
		out := filepath.Join(dir, "sweep")
		code, stdout, stderr := rb(t, run.env, "replay", "-file", file, "-sweep", "HIGH_LOAD_THRESHOLD=45:65:5", "-out", out)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		for _, want := range []string{"HIGH_LOAD_THRESHOLD=45", "HIGH_LOAD_THRESHOLD=55 (= recorded)", "recorded (what happened)", "workers.svg"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("want %q in\n%s", want, stdout)
			}
		}
		rows := readCSV(t, filepath.Join(out, "report.csv"))
		if len(rows) != 1+5+1 {
			t.Fatalf("CSV has %d rows, want a header, 5 candidates and the recording", len(rows))
		}
		var rep replay.Report
		readJSON(t, filepath.Join(out, "report.json"), &rep)
		if len(rep.Candidates) != 5 || rep.Candidates[0].Rank != 1 || rep.Recorded == nil {
			t.Fatalf("JSON report: %d candidates", len(rep.Candidates))
		}
		checkSVG(t, filepath.Join(out, "workers.svg"), 4)
	})
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }

func fmtInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// checkSVG parses the plot as XML and counts its lines (paths).
func checkSVG(t *testing.T, path string, lines int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	paths := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plot is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "path" {
			paths++
		}
	}
	if paths != lines {
		t.Errorf("plot has %d lines, want %d", paths, lines)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "an override out of range", args: []string{"replay", "-set", "HIGH_LOAD_THRESHOLD=150"}, want: "HIGH_LOAD_THRESHOLD"},
		{name: "an override against another", args: []string{"replay", "-set", "HIGH_LOAD_THRESHOLD=85"}, want: "HIGH_LOAD_THRESHOLD"},
		{name: "an unknown variable", args: []string{"replay", "-set", "HIGH_LOAD=50"}, want: "HIGH_LOAD"},
		{name: "a variable that is not runtime", args: []string{"replay", "-set", "HISTORY_SIZE=5"}, want: "HISTORY_SIZE"},
		{name: "not VAR=VALUE", args: []string{"replay", "-set", "HIGH_LOAD_THRESHOLD"}, want: "VAR=VALUE"},
		{name: "a bad value in a sweep", args: []string{"replay", "-sweep", "COOLDOWN_PERIOD=5s,soon"}, want: "COOLDOWN_PERIOD"},
		{name: "a range backwards", args: []string{"replay", "-sweep", "HIGH_LOAD_THRESHOLD=65:45:5"}, want: "HIGH_LOAD_THRESHOLD"},
		{name: "a sweep out of range", args: []string{"replay", "-sweep", "HIGH_LOAD_THRESHOLD=45:105:5"}, want: "HIGH_LOAD_THRESHOLD=80"},
		{name: "a sweep with a valid grid", args: []string{"replay", "-sweep", "HIGH_LOAD_THRESHOLD=60,85", "-sweep", "LOW_LOAD_THRESHOLD=70,90", "-nats-url", "nats://127.0.0.1:1", "-from", "bad"}, want: "-from"},
		{name: "swept and set", args: []string{"replay", "-set", "SCALE_STEP=2", "-sweep", "SCALE_STEP=1,3"}, want: "SCALE_STEP"},
		{name: "an unknown model", args: []string{"replay", "-model", "linear"}, want: "linear"},
		{name: "two ranges", args: []string{"replay", "-since", "10m", "-from", "2026-11-26T12:00:00Z"}, want: "one of"},
		{name: "a bad time", args: []string{"export", "-from", "yesterday"}, want: "RFC3339"},
		{name: "an unknown stream", args: []string{"export", "-streams", "RB_FOO"}, want: "RB_FOO"},
		{name: "an argument", args: []string{"replay", "now"}, want: "unexpected"},
		{name: "a bad environment", env: map[string]string{"COOLDOWN_PERIOD": "soon"}, args: []string{"replay"}, want: "COOLDOWN_PERIOD"},
		{name: "a bad override file", args: []string{"replay", "-config", "/nonexistent/overrides.yaml"}, want: "-config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := rb(t, tt.env, tt.args...)
			if code != replayctl.ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestOverrideFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.yaml")
	if err := os.WriteFile(path, []byte("HIGH_LOAD_THRESHOLD: 150\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := rb(t, nil, "replay", "-config", path)
	if code != replayctl.ExitUsage || !strings.Contains(stderr, "HIGH_LOAD_THRESHOLD") {
		t.Fatalf("exit %d, %q", code, stderr)
	}
	// -set wins over the file.
	code, _, stderr = rb(t, nil, "replay", "-config", path, "-set", "HIGH_LOAD_THRESHOLD=50", "-nats-url", "nats://127.0.0.1:1")
	if code != replayctl.ExitFailure || !strings.Contains(stderr, "nats") {
		t.Fatalf("exit %d, %q; want a connection failure, the overrides being valid", code, stderr)
	}
}
