package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rustybalancer/rb/pkg/config"
)

// Axis is one swept variable and the values it takes.
type Axis struct {
	Var    string
	Values []string
}

// maxAxisValues bounds one axis, so a typo in a range cannot ask for a
// million replays.
const maxAxisValues = 1000

// ErrBadSweep marks a sweep specification that cannot be read.
var ErrBadSweep = errors.New("bad sweep")

// ParseAxis reads VAR=FROM:TO:STEP (inclusive; numbers, or durations such
// as 5s:30s:5s) or VAR=V1,V2,... (any values the variable takes).
func ParseAxis(spec string) (Axis, error) {
	name, vals, ok := strings.Cut(spec, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || vals == "" {
		return Axis{}, fmt.Errorf("%w %q: want VAR=FROM:TO:STEP or VAR=V1,V2,...", ErrBadSweep, spec)
	}
	a := Axis{Var: name}
	if parts := strings.Split(vals, ":"); len(parts) == 3 && !strings.Contains(vals, ",") {
		v, err := rangeValues(parts[0], parts[1], parts[2])
		if err != nil {
			return Axis{}, fmt.Errorf("%w %s: %w", ErrBadSweep, name, err)
		}
		a.Values = v
		return a, nil
	}
	for _, v := range strings.Split(vals, ",") {
		if v = strings.TrimSpace(v); v != "" {
			a.Values = append(a.Values, v)
		}
	}
	if len(a.Values) == 0 {
		return Axis{}, fmt.Errorf("%w %s: no values", ErrBadSweep, name)
	}
	if len(a.Values) > maxAxisValues {
		return Axis{}, fmt.Errorf("%w %s: %d values, at most %d", ErrBadSweep, name, len(a.Values), maxAxisValues)
	}
	return a, nil
}

// rangeValues expands FROM:TO:STEP. Numbers keep the decimals written
// (0.1:0.3:0.1 gives 0.1, 0.2, 0.3, not 0.30000000000000004); durations are
// written as Go durations.
func rangeValues(from, to, step string) ([]string, error) {
	from, to, step = strings.TrimSpace(from), strings.TrimSpace(to), strings.TrimSpace(step)
	a, e1 := strconv.ParseFloat(from, 64)
	b, e2 := strconv.ParseFloat(to, 64)
	s, e3 := strconv.ParseFloat(step, 64)
	if e1 == nil && e2 == nil && e3 == nil {
		if !(s > 0) || math.IsInf(a, 0) || math.IsInf(b, 0) || b < a {
			return nil, fmt.Errorf("range %s:%s:%s: want FROM ≤ TO and STEP > 0", from, to, step)
		}
		n := int(math.Floor((b-a)/s+1e-9)) + 1
		if n > maxAxisValues {
			return nil, fmt.Errorf("range %s:%s:%s has %d values, at most %d", from, to, step, n, maxAxisValues)
		}
		dec := max(decimals(from), decimals(to), decimals(step))
		out := make([]string, n)
		for i := range out {
			out[i] = strconv.FormatFloat(a+float64(i)*s, 'f', dec, 64)
		}
		return out, nil
	}
	da, e1 := config.ParseDuration(from)
	db, e2 := config.ParseDuration(to)
	ds, e3 := config.ParseDuration(step)
	if e1 != nil || e2 != nil || e3 != nil {
		return nil, fmt.Errorf("range %s:%s:%s: want three numbers or three durations", from, to, step)
	}
	if ds <= 0 || db < da {
		return nil, fmt.Errorf("range %s:%s:%s: want FROM ≤ TO and STEP > 0", from, to, step)
	}
	n := int((db-da)/ds) + 1
	if n > maxAxisValues {
		return nil, fmt.Errorf("range %s:%s:%s has %d values, at most %d", from, to, step, n, maxAxisValues)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = (da + time.Duration(i)*ds).String()
	}
	return out, nil
}

func decimals(s string) int {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// Grid is every combination of the axes' values on top of fixed overrides
// (the first axis varies slowest), named after the swept values.
func Grid(fixed map[string]string, axes []Axis) []Candidate {
	order := make([]string, len(axes))
	for i, a := range axes {
		order[i] = a.Var
	}
	out := []Candidate{}
	var walk func(i int, set map[string]string)
	walk = func(i int, set map[string]string) {
		if i == len(axes) {
			c := CandidateOf(set, order)
			all := make(map[string]string, len(fixed)+len(set))
			for k, v := range fixed {
				all[k] = v
			}
			for k, v := range set {
				all[k] = v
			}
			c.Set = all
			out = append(out, c)
			return
		}
		for _, v := range axes[i].Values {
			next := make(map[string]string, len(set)+1)
			for k, x := range set {
				next[k] = x
			}
			next[axes[i].Var] = v
			walk(i+1, next)
		}
	}
	walk(0, map[string]string{})
	return out
}

// RunAll runs the candidates on workers goroutines (GOMAXPROCS when ≤ 0)
// and returns their results in the candidates' order. progress, if set, is
// called from the workers with the number of Samples just replayed.
func (p *Prepared) RunAll(ctx context.Context, cands []Candidate, workers int, progress func(int)) ([]*Result, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(cands))
	out := make([]*Result, len(cands))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res, err := p.Run(ctx, cands[i], progress)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("candidate %s: %w", cands[i].Name, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				out[i] = res
			}
		}()
	}
feed:
	for i := range cands {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Objective is how candidates are ranked, in words.
const Objective = "least worker-seconds among the candidates whose risk-seconds are at most the recording's; " +
	"ties by fewer flaps, then by fewer scale-ups + scale-downs; candidates above the recording's risk " +
	"come after, by risk-seconds then worker-seconds"

// Ranked is a candidate's place in a sweep.
type Ranked struct {
	Rank int `json:"rank"`
	// Feasible says its risk-seconds are at most the recording's.
	Feasible bool    `json:"feasible"`
	Result   *Result `json:"result"`
	// Delta is its summary minus the recording's.
	Delta Delta `json:"delta"`
}

// Rank orders results by the Objective against the recording's summary.
// The sort is stable: equal candidates keep their grid order.
func Rank(results []*Result, recorded Summary) []Ranked {
	out := make([]Ranked, len(results))
	for i, r := range results {
		out[i] = Ranked{Result: r, Feasible: r.Summary.RiskSeconds <= recorded.RiskSeconds, Delta: r.Summary.Minus(recorded)}
	}
	slices.SortStableFunc(out, func(a, b Ranked) int {
		sa, sb := a.Result.Summary, b.Result.Summary
		if a.Feasible != b.Feasible {
			if a.Feasible {
				return -1
			}
			return 1
		}
		if !a.Feasible {
			if c := cmp.Compare(sa.RiskSeconds, sb.RiskSeconds); c != 0 {
				return c
			}
		}
		return cmp.Or(
			cmp.Compare(sa.WorkerSeconds, sb.WorkerSeconds),
			cmp.Compare(sa.Flaps, sb.Flaps),
			cmp.Compare(sa.ScaleUps+sa.ScaleDowns, sb.ScaleUps+sb.ScaleDowns),
		)
	})
	for i := range out {
		out[i].Rank = i + 1
	}
	return out
}
