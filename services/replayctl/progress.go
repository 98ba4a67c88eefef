package replayctl

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports how far a replay is on stderr: a bar redrawn in place
// when stderr is a terminal, else a line every few seconds (logs and CI
// output stay readable).
type progress struct {
	w     io.Writer
	tty   bool
	label string
	total int64
	done  atomic.Int64
	now   func() time.Time
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// Redraw and report periods.
const (
	barEvery  = 200 * time.Millisecond
	lineEvery = 5 * time.Second
	barWidth  = 30
)

func startProgress(w io.Writer, tty bool, label string, total int64, now func() time.Time) *progress {
	p := &progress{w: w, tty: tty, label: label, total: max(total, 1), now: now, start: now(), stop: make(chan struct{})}
	every := lineEvery
	if tty {
		every = barEvery
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.report(false)
			}
		}
	}()
	return p
}

// add counts n samples replayed; safe from any goroutine.
func (p *progress) add(n int) { p.done.Add(int64(n)) }

// finish stops the reports and writes the last one.
func (p *progress) finish() {
	close(p.stop)
	p.wg.Wait()
	p.report(true)
}

func (p *progress) report(last bool) {
	done := min(p.done.Load(), p.total)
	frac := float64(done) / float64(p.total)
	el := p.now().Sub(p.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	eta := ""
	if rate > 0 && !last {
		eta = fmt.Sprintf(", %s left", time.Duration(float64(p.total-done)/rate*float64(time.Second)).Round(time.Second))
	}
	if p.tty {
		n := int(frac * barWidth)
		bar := strings.Repeat("=", n) + strings.Repeat(" ", barWidth-n)
		end := ""
		if last {
			end = "\n"
		}
		fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %s samples/s%s\033[K%s", p.label, bar, 100*frac, human(rate), eta, end)
		return
	}
	fmt.Fprintf(p.w, "%s: %3.0f%% (%d of %d samples, %s samples/s%s)\n", p.label, 100*frac, done, p.total, human(rate), eta)
}

// human writes a rate with a k or M suffix.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
