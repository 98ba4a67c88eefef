package replay

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// PlotSeries is one line of the plot: a name and a worker count per second
// from Start.
type PlotSeries struct {
	Name    string
	Detail  string
	Start   time.Time
	Workers []int32
}

// plot geometry, in SVG user units.
const (
	plotW      = 1000
	plotLeft   = 64
	plotRight  = 48
	plotTop    = 64
	plotHeight = 300
	legendLine = 22
)

// lineStyles: the recording first (wide, grey), then the candidates.
var lineStyles = []struct{ color, dash, width string }{
	{"#555555", "", "5"},
	{"#1f77b4", "", "2.5"},
	{"#d62728", "8 4", "2.5"},
	{"#2ca02c", "2 3", "2.5"},
	{"#9467bd", "12 4 2 4", "2.5"},
}

// WriteSVG draws the worker count over time of the series (the recording
// first) as a step chart with a legend, self-contained, no scripts or fonts
// to fetch. Lines are nudged apart vertically by a few pixels so equal
// lines stay visible side by side.
func WriteSVG(w io.Writer, title, subtitle string, series []PlotSeries) error {
	if len(series) == 0 {
		return fmt.Errorf("plot: no series")
	}
	start, end := series[0].Start, series[0].Start
	peak := int32(1)
	for _, s := range series {
		if s.Start.Before(start) {
			start = s.Start
		}
		if e := s.Start.Add(time.Duration(len(s.Workers)) * time.Second); e.After(end) {
			end = e
		}
		for _, v := range s.Workers {
			peak = max(peak, v)
		}
	}
	span := max(end.Sub(start).Seconds(), 1)
	innerW := float64(plotW - plotLeft - plotRight)
	yMax := float64(peak) + 1
	x := func(t time.Time) float64 { return plotLeft + t.Sub(start).Seconds()/span*innerW }
	y := func(v float64) float64 { return plotTop + plotHeight - v/yMax*plotHeight }
	height := plotTop + plotHeight + 48 + legendLine*len(series) + 16

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Verdana, Arial, sans-serif" font-size="13">`+"\n",
		plotW, height, plotW, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="17" font-weight="bold">%s</text>`+"\n", plotLeft, esc(title))
	if subtitle != "" {
		subtitle += ", "
	}
	endLayout := "15:04:05"
	if end.UTC().YearDay() != start.UTC().YearDay() || end.Sub(start) >= 24*time.Hour {
		endLayout = "2006-01-02 15:04:05"
	}
	fmt.Fprintf(&b, `<text x="%d" y="48" fill="#555555">%s%s → %s (UTC)</text>`+"\n", plotLeft, esc(subtitle),
		esc(start.UTC().Format("2006-01-02 15:04:05")), esc(end.UTC().Format(endLayout)))

	// Horizontal grid and worker ticks.
	stepY := int32(math.Max(1, math.Ceil(float64(peak+1)/10)))
	for v := int32(0); float64(v) <= yMax; v += stepY {
		yy := y(float64(v))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`+"\n", plotLeft, yy, plotW-plotRight, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#333333">%d</text>`+"\n", plotLeft-8, yy+4, v)
	}
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="#333333">workers</text>`+"\n", plotTop+plotHeight/2)

	// Time ticks.
	tick := niceTick(span)
	first := start.Truncate(tick)
	if first.Before(start) {
		first = first.Add(tick)
	}
	layout := "15:04:05"
	if tick >= time.Minute {
		layout = "15:04"
	}
	if span > 2*86400 {
		layout = "01-02 15:04"
	}
	for t := first; !t.After(end); t = t.Add(tick) {
		xx := x(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e0e0e0"/>`+"\n", xx, plotTop, xx, plotTop+plotHeight)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#333333">%s</text>`+"\n", xx, plotTop+plotHeight+18, t.UTC().Format(layout))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="none" stroke="#888888"/>`+"\n", plotLeft, plotTop, innerW, plotHeight)

	// Lines, the recording drawn first (under the others).
	for i, s := range series {
		st := lineStyles[i%len(lineStyles)]
		nudge := (float64(i) - float64(len(series)-1)/2) * 2.5
		var path strings.Builder
		prev := int32(-1)
		for k, v := range s.Workers {
			t := s.Start.Add(time.Duration(k) * time.Second)
			switch {
			case k == 0:
				fmt.Fprintf(&path, "M%.1f %.1f", x(t), y(float64(v))+nudge)
			case v != prev:
				fmt.Fprintf(&path, "H%.1fV%.1f", x(t), y(float64(v))+nudge)
			}
			prev = v
		}
		if len(s.Workers) > 0 {
			fmt.Fprintf(&path, "H%.1f", x(s.Start.Add(time.Duration(len(s.Workers))*time.Second)))
		}
		dash := ""
		if st.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
		}
		opacity := "1"
		if i == 0 {
			opacity = "0.45"
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="%s" stroke-opacity="%s"%s stroke-linejoin="round"/>`+"\n",
			path.String(), st.color, st.width, opacity, dash)
	}

	// Legend.
	ly := plotTop + plotHeight + 48
	for i, s := range series {
		st := lineStyles[i%len(lineStyles)]
		yy := ly + i*legendLine
		dash := ""
		if st.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
		}
		opacity := "1"
		if i == 0 {
			opacity = "0.45"
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%s" stroke-opacity="%s"%s/>`+"\n",
			plotLeft, yy-4, plotLeft+36, yy-4, st.color, st.width, opacity, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d"><tspan font-weight="bold">%s</tspan><tspan fill="#444444">  %s</tspan></text>`+"\n",
			plotLeft+46, yy, esc(s.Name), esc(s.Detail))
	}
	b.WriteString("</svg>\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	return nil
}

// niceTick picks a time tick giving about six labels.
func niceTick(span float64) time.Duration {
	for _, t := range []time.Duration{
		5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	} {
		if span/t.Seconds() <= 8 {
			return t
		}
	}
	return 7 * 24 * time.Hour
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// PlotBest draws the recording against the best n ranked candidates.
func (r *Report) PlotBest(w io.Writer, n int) error {
	rec := r.Recorded.Summary
	series := []PlotSeries{{
		Name: "recorded (what happened)",
		Detail: fmt.Sprintf("%d worker-s, risk %d s, %d up / %d down, %s", rec.WorkerSeconds, rec.RiskSeconds,
			rec.ScaleUps, rec.ScaleDowns, plural(rec.Flaps, "flap")),
		Start:   r.Recorded.Start,
		Workers: r.Recorded.Workers,
	}}
	for _, c := range r.Candidates[:min(n, len(r.Candidates))] {
		s := c.Result.Summary
		risk := fmt.Sprintf("risk %d s", s.RiskSeconds)
		if !c.Feasible {
			risk += " (above the recording's)"
		}
		series = append(series, PlotSeries{
			Name: fmt.Sprintf("#%d %s", c.Rank, c.Result.Candidate.Name),
			Detail: fmt.Sprintf("%d worker-s (%s), %s, %d up / %d down, %s",
				s.WorkerSeconds, versus(c.Delta.WorkerSeconds), risk, s.ScaleUps, s.ScaleDowns, plural(s.Flaps, "flap")),
			Start:   c.Result.Start,
			Workers: c.Result.Workers,
		})
	}
	title := fmt.Sprintf("Workers over time: app %s", r.App)
	sub := fmt.Sprintf("the best %d of %d candidates against the recording, model %s", len(series)-1, len(r.Candidates), r.Model)
	return WriteSVG(w, title, sub, series)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// versus says how a cost compares with the recording's.
func versus(d int64) string {
	if d == 0 {
		return "same as recorded"
	}
	return signed(d) + " vs recorded"
}
