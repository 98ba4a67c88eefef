package queuebuilder

import "time"

// pacer decides when an app's queue is published: at once when the last
// publish started at least one window ago, otherwise when that window ends.
// So at most one publish starts per window, and none starts later than one
// window after the first change it carries. It also holds back a publish
// that failed until its retry time. It does no I/O and reads no clock: the
// caller passes the times.
type pacer struct {
	window  time.Duration
	dirty   bool      // changes wait for a publish
	first   time.Time // when the first of them happened
	last    time.Time // when the last publish started; zero before the first
	retryAt time.Time // a failed publish is not retried before this
}

// changed records a change of the queue at now.
func (p *pacer) changed(now time.Time) {
	if !p.dirty {
		p.dirty, p.first = true, now
	}
}

// due returns when the pending changes should be published; false when
// there are none.
func (p *pacer) due() (time.Time, bool) {
	if !p.dirty {
		return time.Time{}, false
	}
	at := p.first
	if !p.last.IsZero() {
		if next := p.last.Add(p.window); next.After(at) {
			at = next
		}
	}
	if p.retryAt.After(at) {
		at = p.retryAt
	}
	return at, true
}

// start marks a publish started at now and returns the time of the first
// change it carries.
func (p *pacer) start(now time.Time) time.Time {
	first := p.first
	p.dirty, p.first, p.retryAt, p.last = false, time.Time{}, time.Time{}, now
	return first
}

// skip drops the pending changes without a publish: they cancelled out.
func (p *pacer) skip() {
	p.dirty, p.first, p.retryAt = false, time.Time{}, time.Time{}
}

// failed puts back the changes of a publish that failed, first being the
// time of the first of them, to be retried no earlier than retryAt.
func (p *pacer) failed(first, retryAt time.Time) {
	if !p.dirty || first.Before(p.first) {
		p.first = first
	}
	p.dirty, p.retryAt = true, retryAt
}
