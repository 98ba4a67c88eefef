package main

import (
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/rustybalancer/rb/events"
)

// ewmaWatch records what the rb proxy believes about its backends: the
// latency EWMA of each, from the ProxyReports it publishes every second on
// rb.proxy.<app>.<id>. It explains p2c's choices in the heterogeneous runs.
type ewmaWatch struct {
	nc  *nats.Conn
	sub *nats.Subscription
	mu  sync.Mutex
	lat map[string][]float64 // by backend address, seconds
}

// watchEWMA subscribes to the app's proxy reports on the rb's NATS.
func watchEWMA(natsURL string) (*ewmaWatch, error) {
	nc, err := nats.Connect(natsURL, nats.Name("proxybench-telemetry"))
	if err != nil {
		return nil, fmt.Errorf("watch proxy reports: %w", err)
	}
	w := &ewmaWatch{nc: nc, lat: map[string][]float64{}}
	sub, err := nc.Subscribe(events.PrefixProxy+benchApp+".>", func(m *nats.Msg) {
		ev, err := events.Decode[events.ProxyReport](m.Data)
		if err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, b := range ev.Data.Backends {
			if b.Requests > 0 {
				w.lat[b.Address] = append(w.lat[b.Address], b.LatencySeconds)
			}
		}
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("watch proxy reports: %w", err)
	}
	w.sub = sub
	return w, nil
}

// Stop ends the watch and returns the median reported EWMA per address, in
// seconds, over the reports of intervals in which the backend got requests.
func (w *ewmaWatch) Stop() map[string]float64 {
	_ = w.sub.Unsubscribe()
	w.nc.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]float64{}
	for addr, v := range w.lat {
		s := slices.Clone(v)
		slices.Sort(s)
		out[addr] = s[len(s)/2]
	}
	return out
}
