package runtime

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// LabelApp marks a container managed by RustyBalancer: rb.app=<app>.
const LabelApp = "rb.app"

// LabelLegacy is the prototype's label, application=<APP_IDENTIFIER>; a
// container carrying it is managed too, so an existing deployment is adopted.
const LabelLegacy = "application"

// Container is what the runtime knows of one managed container.
type Container struct {
	ID    string
	Name  string // without Docker's leading slash
	App   string // value of rb.app, else of application
	Image string // the image reference it was created from
	State string // created, running, paused, restarting, removing, exited, dead
	// Health is the Docker health status (starting, healthy, unhealthy), or
	// "" when the image has no health check.
	Health string
	Labels map[string]string
	// IPs maps each network the container is attached to its address there
	// (only networks where it has one, that is while it runs).
	IPs map[string]string
	// HostPorts maps a published container TCP port to its host port.
	HostPorts map[int]int
	CPULimit  float64 // cores; 0 = none
	MemLimit  uint64  // bytes; 0 = none
	Created   time.Time
	Started   time.Time // zero when never started
}

// Address returns host:port for reaching the container's port: its IP on
// the given network (or on its only network when network is ""), else the
// host port it is published on, on 127.0.0.1. It reports false when the
// container is reachable neither way.
func (c Container) Address(network string, port int) (string, bool) {
	if network != "" {
		if ip := c.IPs[network]; ip != "" {
			return net.JoinHostPort(ip, strconv.Itoa(port)), true
		}
	} else if len(c.IPs) == 1 {
		for _, ip := range c.IPs {
			return net.JoinHostPort(ip, strconv.Itoa(port)), true
		}
	}
	if hp := c.HostPorts[port]; hp > 0 {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(hp)), true
	}
	return "", false
}

// managedApp returns the app a container belongs to, from rb.app or else
// the legacy label, and whether it is managed at all.
func managedApp(labels map[string]string) (string, bool) {
	if app := labels[LabelApp]; app != "" {
		return app, true
	}
	if app := labels[LabelLegacy]; app != "" {
		return app, true
	}
	return "", false
}

// fromInspect converts Docker's inspect answer.
func fromInspect(r container.InspectResponse) Container {
	c := Container{IPs: map[string]string{}, HostPorts: map[int]int{}}
	if b := r.ContainerJSONBase; b != nil {
		c.ID = b.ID
		c.Name = strings.TrimPrefix(b.Name, "/")
		c.Created = parseTime(b.Created)
		if b.State != nil {
			c.State = string(b.State.Status)
			c.Started = parseTime(b.State.StartedAt)
			if b.State.Health != nil {
				c.Health = string(b.State.Health.Status)
			}
		}
		if b.HostConfig != nil {
			c.CPULimit = cpuLimit(b.HostConfig.Resources)
			if b.HostConfig.Memory > 0 {
				c.MemLimit = uint64(b.HostConfig.Memory)
			}
		}
	}
	if r.Config != nil {
		c.Image = r.Config.Image
		c.Labels = r.Config.Labels
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	c.App, _ = managedApp(c.Labels)
	if ns := r.NetworkSettings; ns != nil {
		for name, ep := range ns.Networks {
			if ep != nil && ep.IPAddress != "" {
				c.IPs[name] = ep.IPAddress
			}
		}
		for p, bindings := range ns.Ports {
			if p.Proto() != "tcp" {
				continue
			}
			for _, b := range bindings {
				if hp, err := strconv.Atoi(b.HostPort); err == nil && hp > 0 {
					c.HostPorts[p.Int()] = hp
					break
				}
			}
		}
	}
	return c
}

// cpuLimit returns the CPU allowance in cores set by --cpus (NanoCPUs) or
// by a CFS quota, 0 when there is none.
func cpuLimit(r container.Resources) float64 {
	if r.NanoCPUs > 0 {
		return float64(r.NanoCPUs) / 1e9
	}
	if r.CPUQuota > 0 {
		period := r.CPUPeriod
		if period <= 0 {
			period = 100000 // the kernel's default CFS period, in µs
		}
		return float64(r.CPUQuota) / float64(period)
	}
	return 0
}

// parseTime reads Docker's RFC 3339 times; Docker writes the zero time as
// 0001-01-01T00:00:00Z, which parses to the zero time.Time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
