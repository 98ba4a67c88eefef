package scaler_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/services/scaler"
)

func TestParamsDefaultsAreScaleDefaults(t *testing.T) {
	got, want := scaler.Params(config.Default()), scale.DefaultParams()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Params(config.Default()) = %+v\nwant scale.DefaultParams() = %+v", got, want)
	}
}

// TestParamsMapsEveryVariable sets every scaling variable to a value unlike
// its default and checks that each Params field moved.
func TestParamsMapsEveryVariable(t *testing.T) {
	values := map[string]string{
		"DEFAULT_CONTAINER": "2", "MAX_CONTAINERS": "7", "HIGH_LOAD_THRESHOLD": "50", "LOW_LOAD_THRESHOLD": "85",
		"CRITICAL_LOAD_THRESHOLD": "15", "SCALE_STEP": "2", "COOLDOWN_PERIOD": "7s", "SCALE_CHECK_PERIOD": "3s",
		"RB_SCALE_UP_WINDOW": "4s", "RB_SCALE_DOWN_WINDOW": "5m", "RB_READY_TIMEOUT": "90s", "RB_DRAIN_GRACE": "3s",
		"RB_DRAIN_TIMEOUT": "2m", "RB_TREND_HORIZON": "20s", "RB_TREND_WINDOW": "45s", "RB_SCALE_IN_GUARD": "false",
		"RB_REPLACE_BACKOFF": "9s", "RB_PROXY_GONE_INTERVALS": "5",
	}
	_, p, err := scaler.RuntimeParams(config.Default(), values, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := scale.Params{Min: 2, Max: 7, High: 50, Low: 85, Critical: 15, Step: 2, Cooldown: 7 * time.Second,
		CheckPeriod: 3 * time.Second, ScaleUpWindow: 4 * time.Second, ScaleDownWindow: 5 * time.Minute,
		ReadyTimeout: 90 * time.Second, DrainGrace: 3 * time.Second, DrainTimeout: 2 * time.Minute,
		TrendHorizon: 20 * time.Second, TrendWindow: 45 * time.Second, ScaleInGuard: false,
		ReplaceBackoff: 9 * time.Second, ProxyGoneIntervals: 5, ConfigVersion: 4}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("RuntimeParams = %+v\nwant %+v", p, want)
	}
	def := reflect.ValueOf(scale.DefaultParams())
	got := reflect.ValueOf(p)
	for i := range got.NumField() {
		if reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
			t.Errorf("field %s kept its default: no variable reaches it", got.Type().Field(i).Name)
		}
	}
}

func TestRuntimeParamsRefusals(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]string
		want   string
	}{
		{name: "not a runtime variable", values: map[string]string{"DOCKER_IMAGE": "x"}, want: "DOCKER_IMAGE"},
		{name: "thresholds out of order", values: map[string]string{"HIGH_LOAD_THRESHOLD": "90"}, want: "HIGH_LOAD_THRESHOLD"},
		{name: "trend window too short for the horizon", values: map[string]string{"RB_TREND_HORIZON": "10s", "RB_TREND_WINDOW": "1s"}, want: "RB_TREND_WINDOW"},
		{name: "bad number", values: map[string]string{"RB_PROXY_GONE_INTERVALS": "0"}, want: "RB_PROXY_GONE_INTERVALS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := scaler.RuntimeParams(config.Default(), tc.values, 2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}
