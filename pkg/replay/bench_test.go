package replay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/config"
)

// The replay's speed on a synthetic day: 100 workers sampled at 1 Hz for
// 24 h (8.64 M Samples), recorded by the live path (liveSim: pkg/score and
// pkg/scale with the scaler's tick rule) under a daily load curve, written
// as an export file. The recording is made once per benchmark run, in a
// temporary directory (about 4 GB for the full day), and removed after.
// RB_REPLAY_BENCH_WORKERS and RB_REPLAY_BENCH_DURATION (e.g. 1h) make it
// smaller. One op reads the file, prepares it (recorded scores, warm-up,
// what happened), replays it with the recorded config (checking that every
// recorded decision comes out again) and replays one what-if.
//
//	go test ./pkg/replay -run '^$' -bench ReplayDay -benchtime 1x -timeout 60m

func envOr[T any](tb testing.TB, name string, def T, parse func(string) (T, error)) T {
	tb.Helper()
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	out, err := parse(v)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, v, err)
	}
	return out
}

// dayLoad is a total demand of 65 % ± 40 % of the workers' worth over a
// day (two peaks; the scaler adds workers at them), shared by the ready
// workers with a small fixed imbalance.
func dayLoad(period time.Duration) loadFunc {
	return func(at time.Time, worker string, ready int) float64 {
		x := 2 * math.Pi * float64(at.Sub(t0)) / float64(period)
		total := 100 * (0.65 + 0.3*math.Sin(x) + 0.1*math.Sin(3*x))
		h := 0
		for i := 0; i < len(worker); i++ {
			h = h*31 + int(worker[i])
		}
		return total / float64(max(ready, 1)) * (0.95 + 0.1*float64(h%16)/16)
	}
}

// benchConfig keeps at least workers workers (at least a Sample per worker
// and second) and lets the scaler add a third more at the peaks.
func benchConfig(tb testing.TB, workers int) config.Config {
	tb.Helper()
	c, err := testConfig(tb).WithRuntime(map[string]string{
		"DEFAULT_CONTAINER": strconv.Itoa(workers), "MAX_CONTAINERS": strconv.Itoa(workers * 13 / 10),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// writeDay records the synthetic day into path and returns its Samples count.
func writeDay(tb testing.TB, path string, workers int, d time.Duration, base config.Config) (samples int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	// The lines Writer writes, without its checks: the events are ours.
	w := bufio.NewWriterSize(f, 1<<20)
	var line []byte
	seq := map[string]uint64{}
	var initial []string
	for i := range workers {
		initial = append(initial, fmt.Sprintf("shop-init%04d", i))
	}
	sim := newLiveSim(tb, base, dayLoad(d), initial...)
	sim.sink = func(m message) {
		seq[m.stream]++
		if m.stream == "RB_STATS" {
			samples++
		}
		line = append(line[:0], `{"stream":"`...)
		line = append(line, m.stream...)
		line = append(line, `","subject":"`...)
		line = append(line, m.subject...)
		line = append(line, `","seq":`...)
		line = strconv.AppendUint(line, seq[m.stream], 10)
		line = append(line, `,"data":`...)
		line = append(line, m.data...)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			tb.Fatal(err)
		}
	}
	sim.run(d)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return samples
}

func BenchmarkReplayDay(b *testing.B) {
	workers := envOr(b, "RB_REPLAY_BENCH_WORKERS", 100, strconv.Atoi)
	d := envOr(b, "RB_REPLAY_BENCH_DURATION", 24*time.Hour, time.ParseDuration)
	base := benchConfig(b, workers)
	path := filepath.Join(b.TempDir(), "day.ndjson")
	begin := time.Now()
	n := writeDay(b, path, workers, d, base)
	st, _ := os.Stat(path)
	b.Logf("recorded %d samples of %d workers over %s (%.1f GB) in %s", n, workers, d, float64(st.Size())/1e9, time.Since(begin).Round(time.Second))
	for _, procs := range []int{1, runtime.NumCPU()} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			prev := runtime.GOMAXPROCS(procs)
			defer runtime.GOMAXPROCS(prev)
			replayDay(b, path, base, n)
		})
	}
}

// replayDay reads, prepares and replays the file, timing each phase.
func replayDay(b *testing.B, path string, base config.Config, n int) {
	ctx := context.Background()
	// wall and CPU time per phase: read, prepare, faithful replay, what-if.
	var wall, cpu [4]time.Duration
	for b.Loop() {
		var marks [5]time.Time
		var cpus [5]int64
		mark := func(i int) { marks[i], cpus[i] = time.Now(), processCPU() }
		mark(0)
		rec, err := ReadFile(ctx, path, testApp)
		if err != nil {
			b.Fatal(err)
		}
		mark(1)
		p, err := Prepare(rec, Options{Base: base, Params: testParams})
		if err != nil {
			b.Fatal(err)
		}
		mark(2)
		_, cmp, err := p.Faithful(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !cmp.Equal || cmp.Recorded == 0 {
			b.Fatalf("the replay reproduced %d of %d decisions (%d replayed):\n%s\n%s", cmp.Identical, cmp.Recorded, cmp.Replayed, cmp.FirstRecorded, cmp.FirstReplayed)
		}
		mark(3)
		if _, err := p.Run(ctx, CandidateOf(map[string]string{"HIGH_LOAD_THRESHOLD": "60"}, nil), nil); err != nil {
			b.Fatal(err)
		}
		mark(4)
		for i := range 4 {
			wall[i] += marks[i+1].Sub(marks[i])
			cpu[i] += time.Duration(cpus[i+1] - cpus[i])
		}
		b.Logf("GOMAXPROCS %d: %d samples, %d decisions reproduced; wall (CPU): read %s (%s), prepare %s (%s), faithful replay %s (%s), what-if %s (%s)",
			runtime.GOMAXPROCS(0), len(rec.Samples), cmp.Recorded,
			r(marks[1].Sub(marks[0])), r(time.Duration(cpus[1]-cpus[0])), r(marks[2].Sub(marks[1])), r(time.Duration(cpus[2]-cpus[1])),
			r(marks[3].Sub(marks[2])), r(time.Duration(cpus[3]-cpus[2])), r(marks[4].Sub(marks[3])), r(time.Duration(cpus[4]-cpus[3])))
	}
	k := float64(b.N)
	per := func(d time.Duration) float64 { return float64(n) / (d.Seconds() / k) }
	total := wall[0] + wall[1] + wall[2]
	b.ReportMetric(total.Seconds()/k, "s/read+prepare+faithful")
	b.ReportMetric(per(total), "samples/s")
	b.ReportMetric(per(cpu[0]+cpu[1]+cpu[2]), "samples/cpu-s")
	b.ReportMetric(per(wall[0]), "read-samples/s")
	b.ReportMetric(per(wall[1]), "prepare-samples/s")
	b.ReportMetric(per(wall[2]), "faithful-samples/s")
	b.ReportMetric(per(wall[3]), "whatif-samples/s")
}

func r(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

// BenchmarkDecode reads export lines (Samples through the fast path, and
// the few decisions and facts through encoding/json) on one goroutine:
// one op is one read of a few minutes of three workers.
func BenchmarkDecode(b *testing.B) {
	base := testConfig(b)
	var out bytes.Buffer
	w := NewWriter(&out, false)
	lines := 0
	sim := newLiveSim(b, base, rampLoad, "shop-a", "shop-b", "shop-c")
	sim.sink = func(m message) {
		_ = w.Write(Record{Stream: m.stream, Subject: m.subject, Seq: uint64(lines), Data: m.data})
		lines++
	}
	sim.run(10 * time.Minute)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	buf := out.Bytes()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	n := 0
	cpu0 := processCPU()
	for b.Loop() {
		c := newChunk(testApp)
		c.lines(buf)
		n += lines
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/line")
	if cpu0 >= 0 {
		b.ReportMetric(float64(processCPU()-cpu0)/float64(n), "cpu-ns/line")
	}
}
