package score_test

import (
	"math"
	"strings"
	"testing"

	"github.com/rustybalancer/rb/pkg/score"
)

func TestDefaultParamsAreValid(t *testing.T) {
	t.Parallel()
	p := score.DefaultParams()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultParams().Validate() = %v", err)
	}
	// The prototype's defaults (ORIGINAL.md).
	if p.CPUWeight != 0.35 || p.MemoryWeight != 0.25 || p.NetworkWeight != 0.15 || p.AvailabilityWeight != 0.25 ||
		p.HistorySize != 20 || p.BestTimeWindow != 10 || p.EMAAlpha != 0.2 || p.LUCutoff != 70 || p.MUCutoff != 40 ||
		p.ProbeTimeout != 5 || p.ThresholdStart != 1 || p.ThresholdFloor != 0.5 || p.Mode != score.ModeLegacy ||
		p.NetworkCapacity != 125e6 || p.ProbeResolution != 0.001 {
		t.Fatalf("DefaultParams() = %+v, not the prototype's defaults (and 1 Gbit/s, 1 ms)", p)
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(p *score.Params)
		want []string // substrings the error must contain; none: valid
	}{
		{"defaults", func(p *score.Params) {}, nil},
		{"weights summing to 1.009 are within tolerance", func(p *score.Params) { p.CPUWeight = 0.359 }, nil},
		{"all weight on availability", func(p *score.Params) {
			p.CPUWeight, p.MemoryWeight, p.NetworkWeight, p.AvailabilityWeight = 0, 0, 0, 1
		}, nil},
		{"EMA_ALPHA 1 (no smoothing)", func(p *score.Params) { p.EMAAlpha = 1 }, nil},
		{"HISTORY_SIZE 1", func(p *score.Params) { p.HistorySize = 1 }, nil},
		{"zero threshold floor", func(p *score.Params) { p.ThresholdFloor = 0 }, nil},
		{"zero probe resolution (the prototype's)", func(p *score.Params) { p.ProbeResolution = 0 }, nil},
		{"probe resolution equal to the timeout", func(p *score.Params) { p.ProbeResolution = 5 }, nil},
		{"cut-offs near the ends", func(p *score.Params) { p.LUCutoff, p.MUCutoff = 99.9, 0.1 }, nil},

		{"negative weight", func(p *score.Params) { p.CPUWeight = -0.1 }, []string{"CPU_WEIGHT: -0.1, want ≥ 0"}},
		{"NaN weight", func(p *score.Params) { p.NetworkWeight = math.NaN() }, []string{"NETWORK_WEIGHT: NaN, want ≥ 0"}},
		{"weights sum to 1.1", func(p *score.Params) { p.MemoryWeight = 0.35 },
			[]string{"CPU_WEIGHT+MEMORY_WEIGHT+NETWORK_WEIGHT+AVAILABILITY_WEIGHT: 1.1", "want 1 ± 0.01"}},
		{"weights sum to 0.98", func(p *score.Params) { p.AvailabilityWeight = 0.23 }, []string{"want 1 ± 0.01"}},
		{"HISTORY_SIZE 0", func(p *score.Params) { p.HistorySize = 0 }, []string{"HISTORY_SIZE: 0, want 1..10000"}},
		{"HISTORY_SIZE huge", func(p *score.Params) { p.HistorySize = 1 << 30 }, []string{"HISTORY_SIZE: 1073741824"}},
		{"BEST_TIME_WINDOW 0", func(p *score.Params) { p.BestTimeWindow = 0 }, []string{"BEST_TIME_WINDOW: 0, want 1..10000"}},
		{"EMA_ALPHA 0", func(p *score.Params) { p.EMAAlpha = 0 }, []string{"EMA_ALPHA: 0, want 0 < EMA_ALPHA ≤ 1"}},
		{"EMA_ALPHA 1.5", func(p *score.Params) { p.EMAAlpha = 1.5 }, []string{"EMA_ALPHA: 1.5"}},
		{"EMA_ALPHA NaN", func(p *score.Params) { p.EMAAlpha = math.NaN() }, []string{"EMA_ALPHA: NaN"}},
		{"MU above LU", func(p *score.Params) { p.MUCutoff = 80 }, []string{"RB_MU_CUTOFF: 80, want < RB_LU_CUTOFF (70)"}},
		{"MU equal to LU", func(p *score.Params) { p.MUCutoff = 70 }, []string{"RB_MU_CUTOFF: 70, want < RB_LU_CUTOFF (70)"}},
		{"LU at 100", func(p *score.Params) { p.LUCutoff = 100 }, []string{"RB_LU_CUTOFF: 100, want 0 < RB_LU_CUTOFF < 100"}},
		{"MU at 0", func(p *score.Params) { p.MUCutoff = 0 }, []string{"RB_MU_CUTOFF: 0, want 0 < RB_MU_CUTOFF < 100"}},
		{"zero network capacity", func(p *score.Params) { p.NetworkCapacity = 0 }, []string{"RB_NET_CAPACITY_BPS: 0"}},
		{"infinite network capacity", func(p *score.Params) { p.NetworkCapacity = math.Inf(1) }, []string{"RB_NET_CAPACITY_BPS: +Inf"}},
		{"zero probe timeout", func(p *score.Params) { p.ProbeTimeout = 0 }, []string{"RB_PROBE_TIMEOUT: 0"}},
		{"probe timeout over an hour", func(p *score.Params) { p.ProbeTimeout = 3601 }, []string{"RB_PROBE_TIMEOUT: 3601"}},
		{"negative floor", func(p *score.Params) { p.ThresholdFloor = -1 }, []string{"RB_RESPONSE_THRESHOLD_FLOOR: -1"}},
		{"negative probe resolution", func(p *score.Params) { p.ProbeResolution = -0.001 }, []string{"RB_PROBE_RESOLUTION: -0.001, want 0..3600 seconds"}},
		{"NaN probe resolution", func(p *score.Params) { p.ProbeResolution = math.NaN() }, []string{"RB_PROBE_RESOLUTION: NaN"}},
		{"probe resolution above the timeout", func(p *score.Params) { p.ProbeResolution = 6 },
			[]string{"RB_PROBE_RESOLUTION: 6, want ≤ RB_PROBE_TIMEOUT (5)"}},
		{"start under floor", func(p *score.Params) { p.ThresholdStart = 0.4 },
			[]string{"RB_RESPONSE_THRESHOLD_START: 0.4, want ≥ RB_RESPONSE_THRESHOLD_FLOOR (0.5)"}},
		{"unknown mode", func(p *score.Params) { p.Mode = "adaptive" }, []string{`RB_SCORE_MODE: "adaptive", want "legacy"`}},
		{"empty mode", func(p *score.Params) { p.Mode = "" }, []string{`RB_SCORE_MODE: ""`}},
		{"every problem reported at once", func(p *score.Params) { p.CPUWeight, p.HistorySize, p.EMAAlpha = -1, 0, 2 },
			[]string{"CPU_WEIGHT: -1", "HISTORY_SIZE: 0", "EMA_ALPHA: 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := score.DefaultParams()
			tt.edit(&p)
			err := p.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}
