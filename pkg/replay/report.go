package replay

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything a replay or a sweep found, as written to JSON.
type Report struct {
	App   string    `json:"app"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Model Model     `json:"model"`
	// Samples is the number of recorded Samples replayed (after the warm-up).
	Samples    int    `json:"samples"`
	Objective  string `json:"objective"`
	FlapWindow string `json:"flap_window"`
	Risk       struct {
		High     float64 `json:"high_load_threshold"`
		Critical float64 `json:"critical_load_threshold"`
	} `json:"risk_thresholds"`
	Delays     Delays   `json:"simulated_delays"`
	Notes      []string `json:"notes,omitempty"`
	Recorded   *Result  `json:"recorded"`
	Candidates []Ranked `json:"candidates"`
}

// NewReport puts a ranking together with what it was measured against.
func (p *Prepared) NewReport(ranked []Ranked) *Report {
	r := &Report{
		App: p.rec.App, From: p.Start(), To: p.End(), Model: p.opt.Model, Samples: p.Measured(),
		Objective: Objective, FlapWindow: p.opt.FlapWindow.String(), Delays: p.delays,
		Notes: p.Notes(), Recorded: p.Actual(), Candidates: ranked,
	}
	r.Risk.High, r.Risk.Critical = p.riskHigh, p.riskCrit
	return r
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report JSON: %w", err)
	}
	return nil
}

// sweptVars are the variables the candidates set, sorted.
func (r *Report) sweptVars() []string {
	set := map[string]bool{}
	for _, c := range r.Candidates {
		for k := range c.Result.Candidate.Set {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// WriteCSV writes one row per candidate in rank order, and the recording last.
func (r *Report) WriteCSV(w io.Writer) error {
	vars := r.sweptVars()
	cw := csv.NewWriter(w)
	head := []string{"rank", "candidate"}
	head = append(head, vars...)
	head = append(head, "feasible", "scale_ups", "scale_downs", "replaces", "removes", "holds", "flaps",
		"worker_seconds", "mean_workers", "peak_workers", "risk_seconds", "critical_seconds", "high_seconds",
		"d_scale_ups", "d_scale_downs", "d_flaps", "d_worker_seconds", "d_peak_workers", "d_risk_seconds")
	if err := cw.Write(head); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	row := func(rank, feasible string, res *Result, d Delta) []string {
		s := res.Summary
		out := []string{rank, res.Candidate.Name}
		for _, v := range vars {
			out = append(out, res.Candidate.Set[v])
		}
		i := strconv.Itoa
		i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
		return append(out, feasible, i(s.ScaleUps), i(s.ScaleDowns), i(s.Replaces), i(s.Removes), i(s.Holds), i(s.Flaps),
			i64(s.WorkerSeconds), strconv.FormatFloat(s.MeanWorkers, 'f', 3, 64), i(s.PeakWorkers),
			i64(s.RiskSeconds), i64(s.CriticalSeconds), i64(s.HighSeconds),
			i(d.ScaleUps), i(d.ScaleDowns), i(d.Flaps), i64(d.WorkerSeconds), i(d.PeakWorkers), i64(d.RiskSeconds))
	}
	for _, c := range r.Candidates {
		if err := cw.Write(row(strconv.Itoa(c.Rank), strconv.FormatBool(c.Feasible), c.Result, c.Delta)); err != nil {
			return fmt.Errorf("write CSV: %w", err)
		}
	}
	if err := cw.Write(row("", "", r.Recorded, Delta{})); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	return nil
}

// WriteTable writes the ranking as an aligned text table, the recording
// last, with a header saying what was replayed and how candidates rank.
func (r *Report) WriteTable(w io.Writer) error {
	rec := r.Recorded.Summary
	fmt.Fprintf(w, "app %s, %s → %s (%s), %d samples, model %s\n", r.App,
		r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.To.Sub(r.From).Round(time.Second), r.Samples, r.Model)
	fmt.Fprintf(w, "risk = seconds with a worker below CRITICAL_LOAD_THRESHOLD %g or the mean below HIGH_LOAD_THRESHOLD %g; flap = reversal within %s\n",
		r.Risk.Critical, r.Risk.High, r.FlapWindow)
	fmt.Fprintf(w, "ranked by %s (the recording's risk: %d s)\n\n", r.Objective, rec.RiskSeconds)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rank\tcandidate\tups\tdowns\tflaps\tworker-s\tΔworker-s\tmean\tpeak\trisk-s\tΔrisk-s\t")
	line := func(rank string, res *Result, d Delta, mark string) {
		s := res.Summary
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%.2f\t%d\t%d%s\t%s\t\n", rank, res.Candidate.Name,
			s.ScaleUps, s.ScaleDowns, s.Flaps, s.WorkerSeconds, signed(d.WorkerSeconds), s.MeanWorkers, s.PeakWorkers,
			s.RiskSeconds, mark, signed(d.RiskSeconds))
	}
	for _, c := range r.Candidates {
		mark := " "
		if !c.Feasible {
			mark = "!"
		}
		line(strconv.Itoa(c.Rank), c.Result, c.Delta, mark)
	}
	line("-", r.Recorded, Delta{}, " ")
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if slices.ContainsFunc(r.Candidates, func(c Ranked) bool { return !c.Feasible }) {
		fmt.Fprintln(w, "! risk above the recording's")
	}
	return nil
}

func signed(v int64) string {
	if v > 0 {
		return "+" + strconv.FormatInt(v, 10)
	}
	return strconv.FormatInt(v, 10)
}

// WriteTimeline writes decisions one per line: time, action, desired
// from → to, targets, reason. Holds are left out unless holds is true.
func WriteTimeline(w io.Writer, ds []Decided, holds bool) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, d := range ds {
		if d.Action == "hold" && !holds {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d → %d\t%s\t%s\n", d.Time.Format("2006-01-02T15:04:05.000Z07:00"), d.Action, d.From, d.To,
			strings.Join(d.Targets, ","), d.Reason)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write timeline: %w", err)
	}
	return nil
}
