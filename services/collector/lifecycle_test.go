package collector

import (
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/runtime"
)

func TestFactFrom(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	ev := func(action, exit string) runtime.Event {
		return runtime.Event{Action: action, ID: "abc123", Name: "worker-1", App: "shop", Time: at, ExitCode: exit}
	}
	tests := []struct {
		name   string
		in     runtime.Event
		addr   string
		want   events.Lifecycle
		wantID string
		wantOK bool
	}{
		{name: "start", in: ev("start", ""), addr: "172.18.0.2:8080", wantOK: true, wantID: "worker-1-1777636800123456789-started",
			want: events.Lifecycle{App: "shop", Container: "worker-1", ContainerID: "abc123", Phase: events.PhaseStarted, Address: "172.18.0.2:8080"}},
		{name: "die with exit code", in: ev("die", "137"), wantOK: true, wantID: "worker-1-1777636800123456789-died",
			want: events.Lifecycle{App: "shop", Container: "worker-1", ContainerID: "abc123", Phase: events.PhaseDied, Reason: "exit code 137"}},
		{name: "healthy", in: ev("health_status: healthy", ""), wantOK: true, wantID: "worker-1-1777636800123456789-health",
			want: events.Lifecycle{App: "shop", Container: "worker-1", ContainerID: "abc123", Phase: events.PhaseHealth, Reason: "healthy"}},
		{name: "unhealthy", in: ev("health_status: unhealthy", ""), wantOK: true, wantID: "worker-1-1777636800123456789-health",
			want: events.Lifecycle{App: "shop", Container: "worker-1", ContainerID: "abc123", Phase: events.PhaseHealth, Reason: "unhealthy"}},
		{name: "destroy drops the address", in: ev("destroy", ""), addr: "172.18.0.2:8080", wantOK: true, wantID: "worker-1-1777636800123456789-removed",
			want: events.Lifecycle{App: "shop", Container: "worker-1", ContainerID: "abc123", Phase: events.PhaseRemoved}},
		{name: "no name: the id names it", in: runtime.Event{Action: "start", ID: "abc123", App: "shop", Time: at}, wantOK: true,
			wantID: "abc123-1777636800123456789-started",
			want:   events.Lifecycle{App: "shop", Container: "abc123", ContainerID: "abc123", Phase: events.PhaseStarted}},
		{name: "create is no fact", in: ev("create", "")},
		{name: "stop is no fact", in: ev("stop", "")},
		{name: "kill is no fact", in: ev("kill", "")},
		{name: "pause is no fact", in: ev("pause", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := factFrom("shop", "collector/n1", tt.in, tt.addr)
			if ok != tt.wantOK {
				t.Fatalf("factFrom ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if got.Data != tt.want {
				t.Errorf("fact = %+v, want %+v", got.Data, tt.want)
			}
			if got.ID != tt.wantID || got.Source != "collector/n1" || !got.Time.Equal(at) {
				t.Errorf("meta = %+v, want id %s, source collector/n1, time %v", got.Meta, tt.wantID, at)
			}
			if _, err := events.Encode(got); err != nil {
				t.Errorf("the fact does not encode: %v", err)
			}
		})
	}
}
