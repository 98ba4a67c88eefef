package natstest

import (
	"context"
	"testing"

	"github.com/rustybalancer/rb/events"
)

func TestRestartKeepsAddressAndStreams(t *testing.T) {
	t.Parallel()
	url, srv := Start(t)
	b := Connect(t, url)
	if err := b.Publish(context.Background(), "rb.queue.app", "q1", []byte("queue")); err != nil {
		t.Fatal(err)
	}
	again := Restart(t, srv)
	if again.ClientURL() != url {
		t.Fatalf("restarted server at %s, want %s", again.ClientURL(), url)
	}
	other := Connect(t, again.ClientURL())
	st, err := other.JetStream().Stream(context.Background(), events.StreamQueue)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("%d messages in %s after restart, want 1", n, events.StreamQueue)
	}
}

func TestTwoServersAreDistinct(t *testing.T) {
	t.Parallel()
	a, sa := Start(t)
	b, sb := Start(t)
	if a == b || sa.Options().StoreDir == sb.Options().StoreDir {
		t.Fatalf("two servers share %s or a store dir", a)
	}
}
