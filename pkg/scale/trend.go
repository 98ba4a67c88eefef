package scale

import "time"

// trendResolution is the width of one point of the mean-score series: the
// latest mean within each second is kept.
const trendResolution = time.Second

// recordTrend adds the current mean to the series. When a new second starts,
// the points older than the window are dropped and the line is refitted over
// the closed points, so the fit costs nothing on the other steps.
func (s *State) recordTrend(p Params, now time.Time, mean float64) {
	bucket := now.Truncate(trendResolution)
	if n := len(s.Trend); n > 0 && !s.Trend[n-1].At.Before(bucket) {
		s.Trend[n-1].Mean = mean
		return
	}
	cut := now.Add(-p.TrendWindow)
	i := 0
	for i < len(s.Trend) && s.Trend[i].At.Before(cut) {
		i++
	}
	if i > 0 {
		s.Trend = s.Trend[:copy(s.Trend, s.Trend[i:])]
	}
	s.TrendSlope, s.TrendFit = fit(s.Trend)
	s.Trend = append(s.Trend, TrendPoint{At: bucket, Mean: mean})
}

// fit returns the least-squares slope of the points in score points per
// second. Fewer than three points, or all at one time, fit nothing.
func fit(pts []TrendPoint) (slope float64, ok bool) {
	if len(pts) < 3 {
		return 0, false
	}
	t0 := pts[0].At
	var sx, sy float64
	for _, pt := range pts {
		sx += pt.At.Sub(t0).Seconds()
		sy += pt.Mean
	}
	n := float64(len(pts))
	mx, my := sx/n, sy/n
	var sxy, sxx float64
	for _, pt := range pts {
		dx := pt.At.Sub(t0).Seconds() - mx
		sxy += dx * (pt.Mean - my)
		sxx += dx * dx
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}

// projection is the mean score projected over the trend horizon.
type projection struct {
	// Mean is the projected mean score, clamped to 0..100.
	Mean float64
	// Slope is the least-squares slope in score points per second.
	Slope float64
	// OK says whether the series was long enough to project from; without it
	// Mean is the current mean.
	OK bool
}

// project moves the current mean along the fitted slope over the horizon.
func (s *State) project(p Params, mean float64) projection {
	if !s.TrendFit {
		return projection{Mean: mean}
	}
	return projection{Mean: clampScore(mean + s.TrendSlope*p.TrendHorizon.Seconds()), Slope: s.TrendSlope, OK: true}
}

func clampScore(v float64) float64 {
	switch {
	case v < 0:
		return 0
	case v > 100:
		return 100
	}
	return v
}
