package bus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

// BenchmarkPublish measures a JetStream publish that waits for the stream's
// acknowledgement (file storage, loopback TCP).
func BenchmarkPublish(b *testing.B) {
	bs, _ := newBus(b)
	data := make([]byte, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := bs.Publish(context.Background(), "rb.stats.app.c1", fmt.Sprint(i), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsume measures handling with a confirmed ack per message.
func BenchmarkConsume(b *testing.B) {
	bs, _ := newBus(b)
	data := make([]byte, 256)
	for i := range b.N {
		if err := bs.Publish(context.Background(), "rb.stats.app.c1", "", data); err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
	}
	var n atomic.Int64
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	consume(b, bs, bus.ConsumerOptions{Stream: events.StreamStats, Durable: "bench"}, func(context.Context, bus.Msg) error {
		if n.Add(1) == int64(b.N) {
			close(done)
		}
		return nil
	})
	<-done
	b.StopTimer()
}
