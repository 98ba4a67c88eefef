package scale

import (
	"fmt"
	"time"
)

// newWorkers names n new workers and records them as requested. Names are
// `<app>-<8 hex>` as the issue asks, derived from the app, the decision time
// and a counter rather than drawn at random, so a replay names the same
// workers and a scaler that restarts mid-action can find the one it meant.
func (s *State) newWorkers(n int, now time.Time) []string {
	names := make([]string, 0, n)
	for k := uint64(0); len(names) < n; k++ {
		name := workerName(s.App, now, k)
		if _, taken := s.find(name); taken {
			continue
		}
		s.insert(Worker{Name: name, Phase: PhaseRequested, CreatedAt: now})
		names = append(names, name)
	}
	return names
}

// workerName hashes app, time and counter with 64-bit FNV-1a and keeps 32 bits.
func workerName(app string, at time.Time, k uint64) string {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(app); i++ {
		h ^= uint64(app[i])
		h *= prime
	}
	for _, v := range [2]uint64{uint64(at.UnixNano()), k} {
		for b := 0; b < 64; b += 8 {
			h ^= (v >> b) & 0xff
			h *= prime
		}
	}
	return fmt.Sprintf("%s-%08x", app, uint32(h^h>>32))
}
