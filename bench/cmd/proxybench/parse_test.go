package main

import (
	"encoding/csv"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

const wrkReport = `Running 10s test @ http://127.0.0.1:40000/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us    0.89ms  12.92ms   93.69%
    Req/Sec    56.20k     8.07k   62.00k    86.54%
  Latency Distribution
     50%  250.00us
     75%  491.00us
     90%  700.00us
     99%    5.00ms
  1120000 requests in 10.00s, 142.00MB read
`

func TestParseWrk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		out     string
		want    wrkResult
		wantErr string
	}{
		{
			name: "clean run",
			out:  wrkReport + "Requests/sec: 112000.50\nTransfer/sec:     14.20MB\n",
			want: wrkResult{Requests: 1120000, ReqPerSec: 112000.5, P50: 250 * time.Microsecond, P99: 5 * time.Millisecond},
		},
		{
			name: "socket errors and non-2xx answers count as errors",
			out: wrkReport + "  Socket errors: connect 1, read 2, write 3, timeout 4\n" +
				"  Non-2xx or 3xx responses: 10\nRequests/sec: 5.00\n",
			want: wrkResult{Requests: 1120000, ReqPerSec: 5, P50: 250 * time.Microsecond, P99: 5 * time.Millisecond, Errors: 20},
		},
		{
			name:    "no rate",
			out:     wrkReport,
			wantErr: "missing",
		},
		{
			name:    "bad latency unit",
			out:     strings.Replace(wrkReport, "5.00ms", "5.00xs", 1) + "Requests/sec: 1\n",
			wantErr: "parse wrk duration",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseWrk(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseWrk error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseWrk: %v", err)
			}
			if got != tt.want {
				t.Fatalf("parseWrk = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseWrkDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{name: "microseconds", in: "250.00us", want: 250 * time.Microsecond},
		{name: "milliseconds", in: "1.20ms", want: 1200 * time.Microsecond},
		{name: "seconds", in: "2.00s", want: 2 * time.Second},
		{name: "minutes", in: "1.50m", want: 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseWrkDuration(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("parseWrkDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseVegetaCSV(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	w := csv.NewWriter(&b)
	// 1000 requests sent 1 ms apart with latencies 1..1000 ms; the last
	// one failed (timeout), one answered 500.
	for i := 1; i <= 1000; i++ {
		code, errMsg := 200, ""
		switch i {
		case 1000:
			code, errMsg = 0, "Get \"http://x/\": context deadline exceeded"
		case 500:
			code = 500
		}
		ts := int64(1_700_000_000_000_000_000) + int64(i-1)*int64(time.Millisecond)
		if err := w.Write([]string{
			itoa64(ts), itoa64(int64(code)), itoa64(int64(i) * int64(time.Millisecond)), "0", "64", errMsg, "", "", itoa64(int64(i)), "GET", "http://x/", "",
		}); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	got, err := parseVegetaCSV(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("parseVegetaCSV: %v", err)
	}
	want := vegetaResult{Requests: 1000, OK: 998, P50: 500 * time.Millisecond, P99: 990 * time.Millisecond, P999: 999 * time.Millisecond, Max: time.Second}
	if math.Abs(got.Rate-1000) > 1e-6 {
		t.Errorf("rate = %v, want 1000", got.Rate)
	}
	got.Rate = 0
	if got != want {
		t.Fatalf("parseVegetaCSV = %+v, want %+v", got, want)
	}
	if _, err := parseVegetaCSV(strings.NewReader("")); err == nil {
		t.Fatal("parseVegetaCSV of nothing: no error")
	}
	if _, err := parseVegetaCSV(strings.NewReader("x,200,5,0,0,\n")); err == nil {
		t.Fatal("parseVegetaCSV of a bad timestamp: no error")
	}
}

func itoa64(v int64) string { return strconv.FormatInt(v, 10) }

func TestPercentile(t *testing.T) {
	t.Parallel()
	vals := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{name: "median", q: 0.5, want: 5},
		{name: "p99 of ten is the max", q: 0.99, want: 10},
		{name: "p10", q: 0.1, want: 1},
		{name: "zero clamps to the min", q: 0, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(vals, tt.q); got != tt.want {
				t.Fatalf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestEfficiency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		counts  []int64
		weights []float64
		want    float64
		wantErr bool
	}{
		{name: "exact shares", counts: []int64{5000, 2500, 1250, 250}, weights: []float64{100, 50, 25, 5}, want: 1},
		{name: "one backend short", counts: []int64{1000, 900}, weights: []float64{1, 1}, want: 0.9},
		{name: "unequal weights", counts: []int64{100, 100}, weights: []float64{100, 50}, want: 0.5},
		{name: "length mismatch", counts: []int64{1}, weights: []float64{1, 2}, wantErr: true},
		{name: "zero weight", counts: []int64{1, 1}, weights: []float64{1, 0}, wantErr: true},
		{name: "nothing counted", counts: []int64{0, 0}, weights: []float64{1, 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := efficiency(tt.counts, tt.weights)
			if (err != nil) != tt.wantErr {
				t.Fatalf("efficiency error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("efficiency = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIdealEfficiency(t *testing.T) {
	t.Parallel()
	w := []float64{100, 50, 25, 5}
	a := idealEfficiency(w, 100000, 21, 7)
	if b := idealEfficiency(w, 100000, 21, 7); a != b {
		t.Fatalf("idealEfficiency not deterministic: %v then %v", a, b)
	}
	// The smallest backend expects 2,778 requests (sd ≈ 52): the median η
	// of an exact sampler is close to, but below, 1.
	if a < 0.93 || a >= 1 {
		t.Fatalf("idealEfficiency = %v, want in [0.93, 1)", a)
	}
	// Fewer draws, more noise.
	if small := idealEfficiency(w, 1000, 21, 7); small >= a {
		t.Fatalf("idealEfficiency at 1,000 draws = %v, not below %v at 100,000", small, a)
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		pgrp    int
		cpu     time.Duration
		wantErr bool
	}{
		{
			name: "plain command",
			in:   "28128 (cat) R 28125 28125 4797 0 -1 4194304 98 0 0 0 150 25 0 0 20 0 1 0 372908",
			pgrp: 28125, cpu: 175 * clockTick,
		},
		{
			name: "command with spaces and parentheses",
			in:   "7 (nginx: worker (x)) S 6 6 6 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1",
			pgrp: 6, cpu: 7 * clockTick,
		},
		{name: "truncated", in: "7 (x) S 6 6", wantErr: true},
		{name: "no command", in: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pg, cpu, err := parseStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (pg != tt.pgrp || cpu != tt.cpu) {
				t.Fatalf("parseStat = %d, %v; want %d, %v", pg, cpu, tt.pgrp, tt.cpu)
			}
		})
	}
}

func TestParsePressure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		want   time.Duration
		wantOK bool
	}{
		{
			name: "some and full",
			in:   "some avg10=77.64 avg60=81.48 avg300=86.06 total=4430580189\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
			want: 4430580189 * time.Microsecond, wantOK: true,
		},
		{name: "no some line", in: "full avg10=0.00 total=5\n"},
		{name: "bad total", in: "some total=x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parsePressure(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("parsePressure = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
