package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

// TestNATSStoppedStillServing: with NATS gone the last route keeps serving;
// when NATS is back the proxy follows new queues again.
func TestNATSStoppedStillServing(t *testing.T) {
	t.Parallel()
	url, srv, b := natsBus(t)
	a, bk := startBackend(t, "a", nil), startBackend(t, "b", nil)
	p := startProxy(t, Options{Connect: connectTo(t, url)})
	publishQueue(t, b, queueOf(1, a.item(events.StateActive)))
	c := client()
	waitFor(t, 10*time.Second, "the queue served", func() bool { _, _, body := get(t, c, p.url+"/"); return body == "a" })

	srv.Shutdown()
	for i := range 50 {
		if code, _, body := get(t, c, p.url+"/"); code != 200 || body != "a" {
			t.Fatalf("request %d with NATS down: %d %q", i, code, body)
		}
	}
	if err := p.Ready(); err != nil {
		t.Fatalf("not ready with NATS down: %v", err)
	}

	natstest.Restart(t, srv)
	waitFor(t, 20*time.Second, "the new queue served after NATS came back", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		subj, _ := events.QueueSubject(testApp)
		ev := events.New("after-restart", time.Now(), "test", queueOf(2, bk.item(events.StateActive)))
		data, _ := events.Encode(ev)
		if b.Publish(ctx, subj, ev.ID, data) != nil {
			return false
		}
		_, _, body := get(t, c, p.url+"/")
		return body == "b"
	})
}

// TestColdStartFromRedis: started while NATS is unreachable, the proxy
// serves the queue snapshot from Redis; once NATS delivers a queue, that
// one wins, whatever its generation.
func TestColdStartFromRedis(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	st, err := store.New(store.Options{URL: rs.URL()}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, bk := startBackend(t, "a", nil), startBackend(t, "b", nil)
	ev := events.New("shop-7", time.Now(), "queuebuilder/test", queueOf(7, a.item(events.StateActive)))
	data, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutSnapshot(context.Background(), SnapshotKind, testApp, 7, data); err != nil {
		t.Fatal(err)
	}

	// NATS is down: Connect blocks (as app.Deps.Bus does) until it is given
	// a bus.
	natsUp := make(chan Bus)
	connect := func(ctx context.Context) (Bus, error) {
		select {
		case b := <-natsUp:
			return b, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p := startProxy(t, Options{Store: st, Connect: connect})
	waitFor(t, 10*time.Second, "ready from the Redis snapshot", func() bool { return p.Ready() == nil })
	c := client()
	for range 5 {
		if code, _, body := get(t, c, p.url+"/"); code != 200 || body != "a" {
			t.Fatalf("from the snapshot: %d %q", code, body)
		}
	}

	url, _, b := natsBus(t)
	publishQueue(t, b, queueOf(3, bk.item(events.StateActive)))
	natsUp <- natstest.Connect(t, url)
	waitFor(t, 10*time.Second, "the NATS queue served", func() bool { _, _, body := get(t, c, p.url+"/"); return body == "b" })
}

// TestGracefulShutdown: at stop, a request in flight finishes, then Run
// returns; new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, a.item(events.StateActive)))
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(p.url + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(body)
	}()
	<-entered
	p.cancel()
	waitFor(t, 5*time.Second, "not ready while stopping", func() bool { return p.Ready() != nil })
	waitFor(t, 5*time.Second, "new connections refused", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	if body := <-got; body != "done" {
		t.Fatalf("the request in flight ended with %q", body)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatal(err)
		}
		p.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}
