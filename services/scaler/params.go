package scaler

import (
	"fmt"

	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/scale"
)

// Params maps the scaling section of cfg to pkg/scale's parameters, one field
// per variable. The live scaler and `rb replay` both call it, so a replay with
// the recorded config takes the recorded decisions. ConfigVersion is left 0;
// RuntimeParams sets it.
func Params(cfg config.Config) scale.Params {
	s := cfg.Scaling
	return scale.Params{
		Min:                s.Min,
		Max:                s.Max,
		High:               s.High,
		Low:                s.Low,
		Critical:           s.Critical,
		Step:               s.Step,
		Cooldown:           s.Cooldown,
		CheckPeriod:        s.CheckPeriod,
		ScaleUpWindow:      s.ScaleUpWindow,
		ScaleDownWindow:    s.ScaleDownWindow,
		ReadyTimeout:       s.ReadyTimeout,
		DrainGrace:         s.DrainGrace,
		DrainTimeout:       s.DrainTimeout,
		TrendHorizon:       s.TrendHorizon,
		TrendWindow:        s.TrendWindow,
		ScaleInGuard:       s.ScaleInGuard,
		ReplaceBackoff:     s.ReplaceBackoff,
		ProxyGoneIntervals: s.ProxyGoneIntervals,
	}
}

// RuntimeParams applies an app's runtime overrides (the values of
// rb:config:<app>, or of an rb.config.<app> event) to base and returns the
// config and the parameters, validated both ways, with ConfigVersion set to
// version. On error nothing should change: the caller keeps what it had.
func RuntimeParams(base config.Config, values map[string]string, version int64) (config.Config, scale.Params, error) {
	cfg, err := base.WithRuntime(values)
	if err != nil {
		return base, scale.Params{}, fmt.Errorf("runtime config version %d: %w", version, err)
	}
	p := Params(cfg)
	p.ConfigVersion = version
	if err := p.Validate(); err != nil {
		return base, scale.Params{}, fmt.Errorf("runtime config version %d: %w", version, err)
	}
	return cfg, p, nil
}
