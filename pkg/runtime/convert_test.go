package runtime

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

func TestFromInspect(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	started := created.Add(200 * time.Millisecond)
	full := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:      "abc123",
			Name:    "/worker-1a2b3c4d",
			Created: created.Format(time.RFC3339Nano),
			State: &container.State{
				Status:    container.StateRunning,
				StartedAt: started.Format(time.RFC3339Nano),
				Health:    &container.Health{Status: container.Healthy},
			},
			HostConfig: &container.HostConfig{Resources: container.Resources{NanoCPUs: 1_500_000_000, Memory: 64 << 20}},
		},
		Config: &container.Config{Image: "rb-worker:dev", Labels: map[string]string{LabelApp: "shop", "team": "core"}},
		NetworkSettings: &container.NetworkSettings{
			NetworkSettingsBase: container.NetworkSettingsBase{Ports: nat.PortMap{
				"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}},
				"9000/udp": {{HostIP: "127.0.0.1", HostPort: "49154"}},
				"9100/tcp": nil, // exposed, not published
			}},
			Networks: map[string]*network.EndpointSettings{
				"rb-net": {IPAddress: "172.20.0.5"},
				"other":  {IPAddress: ""}, // attached, not running
			},
		},
	}
	tests := []struct {
		name string
		in   container.InspectResponse
		want Container
	}{
		{name: "running, limited, published", in: full, want: Container{
			ID: "abc123", Name: "worker-1a2b3c4d", App: "shop", Image: "rb-worker:dev", State: "running", Health: "healthy",
			Labels:    map[string]string{LabelApp: "shop", "team": "core"},
			IPs:       map[string]string{"rb-net": "172.20.0.5"},
			HostPorts: map[int]int{8080: 49153},
			CPULimit:  1.5, MemLimit: 64 << 20, Created: created, Started: started,
		}},
		{name: "legacy label, never started, CFS quota", in: container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{
				ID: "def", Name: "/old", Created: created.Format(time.RFC3339Nano),
				State:      &container.State{Status: container.StateCreated, StartedAt: "0001-01-01T00:00:00Z"},
				HostConfig: &container.HostConfig{Resources: container.Resources{CPUQuota: 50000, CPUPeriod: 100000}},
			},
			Config: &container.Config{Labels: map[string]string{LabelLegacy: "RUSTYBALANCER"}},
		}, want: Container{
			ID: "def", Name: "old", App: "RUSTYBALANCER", State: "created",
			Labels: map[string]string{LabelLegacy: "RUSTYBALANCER"}, IPs: map[string]string{}, HostPorts: map[int]int{},
			CPULimit: 0.5, Created: created,
		}},
		{name: "both labels: rb.app wins", in: container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{ID: "x"},
			Config:            &container.Config{Labels: map[string]string{LabelLegacy: "old", LabelApp: "new"}},
		}, want: Container{
			ID: "x", App: "new", Labels: map[string]string{LabelLegacy: "old", LabelApp: "new"},
			IPs: map[string]string{}, HostPorts: map[int]int{},
		}},
		{name: "empty answer does not panic", in: container.InspectResponse{}, want: Container{
			Labels: map[string]string{}, IPs: map[string]string{}, HostPorts: map[int]int{},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := fromInspect(tt.in)
			if !got.Created.Equal(tt.want.Created) || !got.Started.Equal(tt.want.Started) {
				t.Errorf("times = %v, %v; want %v, %v", got.Created, got.Started, tt.want.Created, tt.want.Started)
			}
			got.Created, got.Started, tt.want.Created, tt.want.Started = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("fromInspect =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		c       Container
		network string
		port    int
		want    string
		wantOK  bool
	}{
		{name: "named network", c: Container{IPs: map[string]string{"a": "10.0.0.2", "b": "10.1.0.2"}},
			network: "b", port: 8080, want: "10.1.0.2:8080", wantOK: true},
		{name: "only network", c: Container{IPs: map[string]string{"a": "10.0.0.2"}},
			port: 80, want: "10.0.0.2:80", wantOK: true},
		{name: "two networks, none named, published", c: Container{
			IPs: map[string]string{"a": "10.0.0.2", "b": "10.1.0.2"}, HostPorts: map[int]int{8080: 49000}},
			port: 8080, want: "127.0.0.1:49000", wantOK: true},
		{name: "unknown network falls back to the host port", c: Container{
			IPs: map[string]string{"a": "10.0.0.2"}, HostPorts: map[int]int{8080: 49000}},
			network: "z", port: 8080, want: "127.0.0.1:49000", wantOK: true},
		{name: "unknown network, not published", c: Container{IPs: map[string]string{"a": "10.0.0.2"}},
			network: "z", port: 8080},
		{name: "other port published", c: Container{HostPorts: map[int]int{9000: 49000}}, port: 8080},
		{name: "IPv6 is bracketed", c: Container{IPs: map[string]string{"v6": "fd00::5"}},
			network: "v6", port: 8080, want: "[fd00::5]:8080", wantOK: true},
		{name: "stopped", c: Container{}, port: 8080},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.c.Address(tt.network, tt.port)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Address(%q, %d) = %q, %v; want %q, %v", tt.network, tt.port, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCreateSpecValidate(t *testing.T) {
	t.Parallel()
	good := CreateSpec{App: "shop", Name: "worker-1", Image: "rb-worker", Port: 8080}
	with := func(f func(*CreateSpec)) CreateSpec { s := good; f(&s); return s }
	tests := []struct {
		name    string
		spec    CreateSpec
		wantErr []string // substrings, all present
	}{
		{name: "minimal", spec: good},
		{name: "full", spec: with(func(s *CreateSpec) {
			s.Env = []string{"A=1"}
			s.Labels = map[string]string{LabelApp: "shop", LabelLegacy: "shop", "x": "y"}
			s.CPUs, s.Memory, s.Network, s.PublishPort = 0.5, 64<<20, "rb", true
		})},
		{name: "everything missing", spec: CreateSpec{}, wantErr: []string{"app is empty", "name is empty", "image is empty", "port 0"}},
		{name: "port too big", spec: with(func(s *CreateSpec) { s.Port = 70000 }), wantErr: []string{"port 70000"}},
		{name: "negative cpus", spec: with(func(s *CreateSpec) { s.CPUs = -1 }), wantErr: []string{"cpus -1"}},
		{name: "negative memory", spec: with(func(s *CreateSpec) { s.Memory = -5 }), wantErr: []string{"memory -5"}},
		{name: "env sets PORT", spec: with(func(s *CreateSpec) { s.Env = []string{"PORT=1"} }), wantErr: []string{"env PORT"}},
		{name: "env sets WORKER_NAME", spec: with(func(s *CreateSpec) { s.Env = []string{"WORKER_NAME"} }), wantErr: []string{"env WORKER_NAME"}},
		{name: "label names another app", spec: with(func(s *CreateSpec) { s.Labels = map[string]string{LabelLegacy: "other"} }),
			wantErr: []string{`label application="other" differs from app "shop"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.spec.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestEventFrom(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 12, 0, 0, 5, time.UTC)
	tests := []struct {
		name   string
		in     events.Message
		want   Event
		wantOK bool
	}{
		{name: "die of an rb.app container", in: events.Message{
			Type: events.ContainerEventType, Action: events.ActionDie, TimeNano: at.UnixNano(),
			Actor: events.Actor{ID: "abc", Attributes: map[string]string{"name": "w1", LabelApp: "shop", "exitCode": "137"}},
		}, want: Event{Action: "die", ID: "abc", Name: "w1", App: "shop", Time: at, ExitCode: "137"}, wantOK: true},
		{name: "health of a legacy container, seconds only", in: events.Message{
			Action: events.ActionHealthStatusHealthy, Time: at.Unix(),
			Actor: events.Actor{ID: "def", Attributes: map[string]string{"name": "w2", LabelLegacy: "RUSTYBALANCER"}},
		}, want: Event{Action: "health_status: healthy", ID: "def", Name: "w2", App: "RUSTYBALANCER", Time: at.Truncate(time.Second)}, wantOK: true},
		{name: "empty label value is not managed", in: events.Message{
			Action: events.ActionStart, Actor: events.Actor{ID: "x", Attributes: map[string]string{LabelApp: ""}},
		}},
		{name: "unlabelled", in: events.Message{Action: events.ActionStart, Actor: events.Actor{ID: "y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := eventFrom(tt.in)
			if ok != tt.wantOK {
				t.Fatalf("eventFrom ok = %v, want %v", ok, tt.wantOK)
			}
			if !got.Time.Equal(tt.want.Time) {
				t.Errorf("time = %v, want %v", got.Time, tt.want.Time)
			}
			got.Time, tt.want.Time = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("eventFrom = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSampleFrom(t *testing.T) {
	t.Parallel()
	read := time.Date(2026, 5, 1, 12, 0, 1, 0, time.UTC)
	tests := []struct {
		name string
		in   container.StatsResponse
		want StatsSample
	}{
		{name: "cgroup v2", in: container.StatsResponse{
			Read:        read,
			CPUStats:    container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 300}, SystemUsage: 9000, OnlineCPUs: 2},
			PreCPUStats: container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 100}, SystemUsage: 7000, OnlineCPUs: 2},
			MemoryStats: container.MemoryStats{Usage: 10 << 20, Limit: 64 << 20, Stats: map[string]uint64{"inactive_file": 2 << 20}},
			Networks:    map[string]container.NetworkStats{"eth0": {RxBytes: 100, TxBytes: 10}, "eth1": {RxBytes: 50, TxBytes: 5}},
		}, want: StatsSample{Read: read, CPUTotal: 300, PreCPUTotal: 100, SystemCPU: 9000, PreSystemCPU: 7000, OnlineCPUs: 2,
			MemUsage: 8 << 20, MemLimit: 64 << 20, RxBytes: 150, TxBytes: 15}},
		{name: "cgroup v1 counts CPUs from percpu", in: container.StatsResponse{
			Read:        read,
			CPUStats:    container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 5, PercpuUsage: []uint64{1, 2, 1, 1}}, SystemUsage: 50},
			MemoryStats: container.MemoryStats{Usage: 10 << 20, Limit: 1 << 30, Stats: map[string]uint64{"total_inactive_file": 1 << 20, "inactive_file": 1 << 19}},
		}, want: StatsSample{Read: read, CPUTotal: 5, SystemCPU: 50, OnlineCPUs: 4, MemUsage: 9 << 20, MemLimit: 1 << 30}},
		{name: "cache larger than usage is ignored", in: container.StatsResponse{
			MemoryStats: container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 200}},
		}, want: StatsSample{MemUsage: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sampleFrom(tt.in); got != tt.want {
				t.Errorf("sampleFrom =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestWrapMapsNotFound(t *testing.T) {
	t.Parallel()
	notFound := fmt.Errorf("Error response from daemon: No such container: x: %w", cerrdefs.ErrNotFound)
	err := wrap("stop", "x", notFound)
	if !errors.Is(err, ErrNotFound) || !cerrdefs.IsNotFound(err) {
		t.Errorf("wrap(not found) = %v: want ErrNotFound and the engine's error in the chain", err)
	}
	if got, want := err.Error(), "stop container x: container not found: "; !strings.Contains(got, want) {
		t.Errorf("message %q does not start with %q", got, want)
	}
	other := wrap("start", "y", errors.New("boom"))
	if errors.Is(other, ErrNotFound) || other.Error() != "start container y: boom" {
		t.Errorf("wrap(other) = %v", other)
	}
}

func TestOfferLatestKeepsNewest(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 1)
	for i := 1; i <= 5; i++ {
		offerLatest(ch, i)
	}
	if got := <-ch; got != 5 {
		t.Errorf("read %d, want the newest value 5", got)
	}
	select {
	case v := <-ch:
		t.Errorf("channel still holds %d", v)
	default:
	}
}
