package replay

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/scale"
	"github.com/rustybalancer/rb/pkg/score"
)

// ParamsFunc maps a configuration to the scoring and scaling parameters the
// way the live scorer and scaler do (services/scorer.Params and the
// scaler's mapping), so a replay runs with exactly their parameters.
type ParamsFunc func(config.Config) (score.Params, scale.Params)

// Candidate is one set of overrides to replay under: runtime variables and
// their values, as `--set` or a point of a sweep gives them.
type Candidate struct {
	// Name says what the candidate is ("HIGH_LOAD_THRESHOLD=45 COOLDOWN_PERIOD=5s").
	Name string `json:"name"`
	// Set holds the overrides, VARIABLE → value. They pin the variable for
	// the whole replay: a recorded config change of other variables still
	// applies, and these stay as set.
	Set map[string]string `json:"set,omitempty"`
}

// CandidateOf names a candidate after its overrides, in the given order
// (sorted by name when order is nil).
func CandidateOf(set map[string]string, order []string) Candidate {
	if order == nil {
		order = slices.Sorted(maps.Keys(set))
	}
	parts := make([]string, 0, len(set))
	for _, k := range order {
		if v, ok := set[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	name := strings.Join(parts, " ")
	if name == "" {
		name = "recorded config"
	}
	return Candidate{Name: name, Set: set}
}

// epoch is the parameters in force from one config event on.
type epoch struct {
	sp score.Params
	cp scale.Params
	// refused says the config event's values (with the overrides) did not
	// validate: the live services keep their parameters, so does the replay.
	refused error
}

// ErrBadOverride marks an override that does not validate; the error names
// the variable.
var ErrBadOverride = errors.New("bad override")

// Validate checks overrides against a base configuration as the live
// services would check them (config.WithRuntime, then the parameters'
// own Validate), and returns an error naming every bad variable.
func Validate(base config.Config, pf ParamsFunc, set map[string]string) error {
	cfg, err := base.WithRuntime(set)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadOverride, err)
	}
	sp, cp := pf(cfg)
	if err := errors.Join(sp.Validate(), cp.Validate()); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOverride, err)
	}
	return nil
}

// epochs returns the parameters before the first config event of rec and
// after each one, for the overrides set. The first must validate; a later
// one that does not is refused (the previous parameters stay), as live.
func epochs(rec *Recording, base config.Config, pf ParamsFunc, set map[string]string) ([]epoch, error) {
	if err := Validate(base, pf, set); err != nil {
		return nil, err
	}
	cfg, _ := base.WithRuntime(set)
	sp, cp := pf(cfg)
	out := []epoch{{sp: sp, cp: cp}}
	for i := range rec.Events {
		e := &rec.Events[i]
		if e.Kind != kindConfig {
			continue
		}
		prev := out[len(out)-1]
		next := epoch{sp: prev.sp, cp: prev.cp}
		vals := make(map[string]string, len(e.Config.Values)+len(set))
		maps.Copy(vals, e.Config.Values)
		maps.Copy(vals, set)
		c, err := base.WithRuntime(vals)
		if err == nil {
			sp, cp := pf(c)
			if err = errors.Join(sp.Validate(), cp.Validate()); err == nil {
				cp.ConfigVersion = e.Config.Version
				next.sp, next.cp = sp, cp
			}
		}
		next.refused = err
		out = append(out, next)
	}
	return out, nil
}

// sameScoring says whether two epoch lists score alike at every config event.
func sameScoring(a, b []epoch) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].sp != b[i].sp {
			return false
		}
	}
	return true
}

// InferBase returns base corrected by what the recording's decisions say
// the scaler really ran with: each decision carries DEFAULT_CONTAINER,
// MAX_CONTAINERS and the three thresholds in its inputs. The first decision
// before any config event is compared with base (mapped by pf); values that
// differ are set on base, and a note says so. Operators often run `rb
// replay` from a shell that lacks the services' environment; without this
// the replay would scale between the wrong bounds.
func InferBase(rec *Recording, base config.Config, pf ParamsFunc) (config.Config, []string) {
	for i := range rec.Events {
		e := &rec.Events[i]
		if e.Kind == kindConfig {
			return base, nil
		}
		if e.Kind != kindDecision {
			continue
		}
		in := e.Decision.Inputs
		_, cp := pf(base)
		fix := map[string]string{}
		if in.Min > 0 && in.Min != cp.Min {
			fix["DEFAULT_CONTAINER"] = fmt.Sprint(in.Min)
		}
		if in.Max > 0 && in.Max != cp.Max {
			fix["MAX_CONTAINERS"] = fmt.Sprint(in.Max)
		}
		if in.HighThreshold != cp.High {
			fix["HIGH_LOAD_THRESHOLD"] = fmt.Sprint(in.HighThreshold)
		}
		if in.LowThreshold != cp.Low {
			fix["LOW_LOAD_THRESHOLD"] = fmt.Sprint(in.LowThreshold)
		}
		if in.CriticalThresh != cp.Critical {
			fix["CRITICAL_LOAD_THRESHOLD"] = fmt.Sprint(in.CriticalThresh)
		}
		if len(fix) == 0 {
			return base, nil
		}
		fixed, err := base.WithRuntime(fix)
		if err != nil {
			return base, []string{fmt.Sprintf("the recorded decisions disagree with the configuration (%s) but cannot be applied: %v", kv(fix), err)}
		}
		return fixed, []string{fmt.Sprintf("the recorded decisions were taken with %s; using these (the environment says otherwise)", kv(fix))}
	}
	return base, nil
}

func kv(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// Validate checks a candidate's overrides against the prepared base.
func (p *Prepared) Validate(c Candidate) error {
	_, err := epochs(p.rec, p.opt.Base, p.opt.Params, c.Set)
	return err
}

// IsRecorded says whether a candidate runs with the recorded parameters
// throughout (its overrides set what was recorded anyway).
func (p *Prepared) IsRecorded(c Candidate) bool {
	ep, err := epochs(p.rec, p.opt.Base, p.opt.Params, c.Set)
	if err != nil || len(ep) != len(p.recorded) {
		return false
	}
	for i := range ep {
		if ep[i].sp != p.recorded[i].sp || ep[i].cp != p.recorded[i].cp {
			return false
		}
	}
	return true
}
