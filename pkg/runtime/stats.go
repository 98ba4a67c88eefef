package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
)

// StatsSample is one reading of a container's cumulative counters, as the
// engine reports it about once a second. CPU times are nanoseconds; the
// system CPU time is summed over all host CPUs.
type StatsSample struct {
	Read         time.Time
	CPUTotal     uint64 // container CPU time
	PreCPUTotal  uint64 // container CPU time at the engine's previous reading
	SystemCPU    uint64 // host CPU time
	PreSystemCPU uint64
	OnlineCPUs   uint32
	// MemUsage is the memory in use without the inactive page cache, as
	// `docker stats` shows it.
	MemUsage uint64
	MemLimit uint64 // the cgroup limit, or host memory when none is set
	RxBytes  uint64 // summed over the container's interfaces
	TxBytes  uint64
}

// Stats streams a managed container's stats over one streaming connection
// (stream=true), decoded continuously until ctx is done. An unlabelled
// container ends the stream at once with ErrNotManaged.
//
// The sample channel holds one sample and keeps the newest: a slow reader
// skips samples but never stalls the stream, and since the counters are
// cumulative the next pair still gives exact rates. When the stream ends
// exactly one error is sent (wrapping ctx.Err() after cancellation, io.EOF
// when the engine closed it, e.g. on removal) and both channels are closed.
func (d *Docker) Stats(ctx context.Context, id string) (<-chan StatsSample, <-chan error) {
	out := make(chan StatsSample, 1)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		defer close(out)
		errc <- d.streamStats(ctx, id, out)
	}()
	return out, errc
}

func (d *Docker) streamStats(ctx context.Context, id string, out chan StatsSample) error {
	c, err := d.managed(ctx, "stats", id)
	if err != nil {
		return err
	}
	resp, err := d.cli.ContainerStats(ctx, c.ID, true)
	if err != nil {
		return wrap("stats", id, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var s container.StatsResponse
		if err := dec.Decode(&s); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return fmt.Errorf("stats container %s: %w", id, err)
		}
		offerLatest(out, sampleFrom(s))
	}
}

// offerLatest puts v in the one-slot channel ch, replacing an unread value.
// The caller must be ch's only sender.
func offerLatest[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch: // drop the stale value
		default:
		}
	}
}

// sampleFrom keeps the counters the collector needs.
func sampleFrom(s container.StatsResponse) StatsSample {
	online := s.CPUStats.OnlineCPUs
	if online == 0 {
		online = uint32(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	mem := s.MemoryStats.Usage
	// cgroup v1 reports total_inactive_file, v2 inactive_file.
	if v, ok := s.MemoryStats.Stats["total_inactive_file"]; ok && v < mem {
		mem -= v
	} else if v, ok := s.MemoryStats.Stats["inactive_file"]; ok && v < mem {
		mem -= v
	}
	out := StatsSample{
		Read:         s.Read,
		CPUTotal:     s.CPUStats.CPUUsage.TotalUsage,
		PreCPUTotal:  s.PreCPUStats.CPUUsage.TotalUsage,
		SystemCPU:    s.CPUStats.SystemUsage,
		PreSystemCPU: s.PreCPUStats.SystemUsage,
		OnlineCPUs:   online,
		MemUsage:     mem,
		MemLimit:     s.MemoryStats.Limit,
	}
	for _, n := range s.Networks {
		out.RxBytes += n.RxBytes
		out.TxBytes += n.TxBytes
	}
	return out
}
