package replayctl

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tty  bool
		want []string
	}{
		{name: "a terminal gets a bar redrawn in place", tty: true, want: []string{"\r", "[===============               ]  50%", "1s left", "100%"}},
		{name: "a log gets lines", tty: false, want: []string{"50% (500 of 1000 samples, 500 samples/s, 1s left)", "100% (1000 of 1000 samples"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			now := start.Add(time.Second)
			// The reports alone, without the goroutine that times them.
			p := &progress{w: &b, tty: tt.tty, label: "sweep", total: 1000, now: func() time.Time { return now }, start: start}
			p.add(500)
			p.report(false)
			p.add(500)
			now = now.Add(time.Second)
			p.report(true)
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in %q", w, out)
				}
			}
			if strings.Contains(out, "\r") != tt.tty {
				t.Errorf("carriage returns in %q", out)
			}
		})
	}
	t.Run("started and finished", func(t *testing.T) {
		t.Parallel()
		var b bytes.Buffer
		p := startProgress(&b, false, "replay", 10, time.Now)
		p.add(10)
		p.finish()
		if !strings.Contains(b.String(), "100% (10 of 10 samples") {
			t.Fatalf("got %q", b.String())
		}
	})
}
