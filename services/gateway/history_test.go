package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
)

// At start the gateway reads the recent history (charts and timeline), not
// only the last message of each subject; with the history turned off it
// has the last ones only.
func TestHistoryReadAtStart(t *testing.T) {
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	start := time.Now().Add(-5 * time.Minute)
	for i := range 50 {
		publish(t, b, "rb.score.shop.w1", scoreAt("shop", "w1", start.Add(time.Duration(i)*6*time.Second), float64(i)))
	}
	for i := range 3 {
		publish(t, b, "rb.scale.shop", events.New(fmt.Sprintf("d%d", i), start.Add(time.Duration(i)*time.Minute), "scaler/test",
			events.Decision{App: "shop", Action: events.ActionScaleUp, Reason: "r", From: i + 1, To: i + 2}))
	}
	tests := []struct {
		name      string
		history   time.Duration
		points    int
		decisions int
	}{
		{name: "with history", history: 0, points: 50, decisions: 3},
		{name: "last message only", history: -1, points: 1, decisions: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startGatewayOn(t, b, Options{App: "shop", ScoreHistory: tc.history, DecisionHistory: tc.history})
			eventually(t, "the last score and decision", func() bool {
				ws, _ := h.svc.View().Scores("shop", -1)
				d, _ := h.svc.View().Decisions("shop", time.Time{}, false, false)
				return len(ws) == 1 && ws[0].Score.Overall == 49 && len(d) >= tc.decisions
			})
			eventually(t, fmt.Sprintf("%d score points", tc.points), func() bool {
				ws, _ := h.svc.View().Scores("shop", -1)
				return len(ws[0].History) == tc.points
			})
			if d, _ := h.svc.View().Decisions("shop", time.Time{}, false, false); len(d) != tc.decisions {
				t.Fatalf("%d decisions, want %d", len(d), tc.decisions)
			}
		})
	}
}
