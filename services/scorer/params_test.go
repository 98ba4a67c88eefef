package scorer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/services/scorer"
)

// TestParamsDefaults: the config's defaults are pkg/score's, so a scorer and
// a replay with default settings score alike.
func TestParamsDefaults(t *testing.T) {
	t.Parallel()
	if got, want := scorer.Params(config.Default()), score.DefaultParams(); got != want {
		t.Fatalf("Params(config.Default()) = %+v\nwant score.DefaultParams() = %+v", got, want)
	}
}

func TestParamsMapsEveryField(t *testing.T) {
	t.Parallel()
	c := config.Default()
	c.Scoring = config.Scoring{
		CPUWeight: 0.1, MemoryWeight: 0.2, NetworkWeight: 0.3, AvailabilityWeight: 0.4,
		HistorySize: 7, BestTimeWindow: 3, EMAAlpha: 0.5, LUCutoff: 80, MUCutoff: 30, NetCapacity: 1e9,
		Mode: "legacy", ThresholdStart: 2 * time.Second, ThresholdFloor: 250 * time.Millisecond, ProbeResolution: 500 * time.Microsecond,
	}
	c.Collect.ProbeTimeout = 1500 * time.Millisecond
	want := score.Params{
		Mode: "legacy", CPUWeight: 0.1, MemoryWeight: 0.2, NetworkWeight: 0.3, AvailabilityWeight: 0.4,
		HistorySize: 7, BestTimeWindow: 3, EMAAlpha: 0.5, LUCutoff: 80, MUCutoff: 30, NetworkCapacity: 1e9,
		ProbeTimeout: 1.5, ThresholdStart: 2, ThresholdFloor: 0.25, ProbeResolution: 0.0005,
	}
	if got := scorer.Params(c); got != want {
		t.Fatalf("Params = %+v\nwant %+v", got, want)
	}
}

func TestRebuildWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		edit     func(p *score.Params)
		interval time.Duration
		samples  int
		window   time.Duration
	}{
		// max(HISTORY_SIZE 20, ⌈ln 0.01 / ln 0.8⌉ = 21, ⌈ln 0.01 / ln 0.9⌉ = 44) = 44; × 1.5 × 1 s
		{name: "defaults", edit: func(*score.Params) {}, interval: time.Second, samples: 44, window: 66 * time.Second},
		{name: "long history", edit: func(p *score.Params) { p.HistorySize = 100 }, interval: time.Second, samples: 100, window: 150 * time.Second},
		// ⌈ln 0.01 / ln 0.95⌉ = 90
		{name: "slow EMA", edit: func(p *score.Params) { p.EMAAlpha = 0.05 }, interval: 500 * time.Millisecond, samples: 90, window: 67500 * time.Millisecond},
		{name: "no smoothing", edit: func(p *score.Params) { p.EMAAlpha = 1 }, interval: time.Second, samples: 44, window: 66 * time.Second},
		{name: "EMA that never forgets is capped", edit: func(p *score.Params) { p.EMAAlpha = 1e-9 }, interval: time.Second, samples: 3600, window: 5400 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := score.DefaultParams()
			tt.edit(&p)
			if got := scorer.RebuildSamples(p); got != tt.samples {
				t.Errorf("RebuildSamples = %d, want %d", got, tt.samples)
			}
			if got := scorer.RebuildWindow(p, tt.interval); got != tt.window {
				t.Errorf("RebuildWindow = %v, want %v", got, tt.window)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	bad := testConfig()
	bad.Scoring.CPUWeight = 0.9 // weights sum to 1.55
	tests := []struct {
		name string
		o    scorer.Options
		want string
	}{
		{name: "nothing", o: scorer.Options{Config: testConfig()}, want: "no bus"},
		{name: "bad weights", o: scorer.Options{Config: bad}, want: "CPU_WEIGHT+MEMORY_WEIGHT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := scorer.New(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
