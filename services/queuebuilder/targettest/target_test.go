// Package targettest runs the queuebuilder target through the rb command
// line (services/app). It lives apart from the service's own tests, so those
// do not depend on every other target compiling.
package targettest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	"github.com/rustybalancer/rb/services/app"
	"github.com/rustybalancer/rb/services/queuebuilder"
)

// TestTarget runs `rb -target=nats,queuebuilder` in-process on random ports
// and checks that scores published on NATS come out as the app's queue, on
// RB_QUEUE and in Redis, with the metrics on the admin listener.
func TestTarget(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	natsAddr, adminAddr := freeAddr(t), freeAddr(t)
	env := map[string]string{
		"RB_ADMIN_ADDR":     adminAddr,
		"RB_NATS_LISTEN":    natsAddr,
		"RB_NATS_STORE_DIR": t.TempDir(),
		"RB_REDIS_URL":      rs.URL(),
		"APP_IDENTIFIER":    "shop",
		"RB_LOG_LEVEL":      "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- app.Main(ctx, []string{"-target=nats,queuebuilder"}, app.IO{
			Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			Stdout: io.Discard, Stderr: &stderr,
		}, "v-test")
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("rb exited %d; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("rb did not stop within 10 s; stderr:\n%s", stderr.String())
		}
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, 20*time.Second, "rb ready", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	if _, body := get("/readyz"); !strings.Contains(body, `"queuebuilder":"ok"`) {
		t.Fatalf("/readyz does not list the queue builder: %s", body)
	}

	b := natstest.Connect(t, "nats://"+natsAddr)
	var (
		mu   sync.Mutex
		last events.Event[events.QueueSnapshot]
		data []byte
	)
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		_ = b.Watch(wctx, events.StreamQueue, []string{"rb.queue.shop"}, true, func(m bus.Msg) {
			ev, err := events.Decode[events.QueueSnapshot](m.Data)
			if err != nil {
				return
			}
			mu.Lock()
			last, data = ev, m.Data
			mu.Unlock()
		})
	}()
	t.Cleanup(func() { wcancel(); <-wdone })

	at := time.Now()
	for i, s := range []struct {
		ctr   string
		score float64
	}{{"shop-00000001", 42}, {"shop-00000002", 77}} {
		subj, err := events.ScoreSubject("shop", s.ctr)
		if err != nil {
			t.Fatal(err)
		}
		ev := events.New(fmt.Sprintf("score-%d", i), at, "test/scorer", events.Score{
			App: "shop", Container: s.ctr, Address: "10.0.0." + strconv.Itoa(i+1) + ":8080", Mode: "legacy",
			Overall: s.score, Category: events.CategoryMU, Inputs: events.ScoreInputs{ProbeOK: true}})
		if err := bus.PublishEvent(ctx, b, subj, ev); err != nil {
			t.Fatal(err)
		}
	}
	var (
		got       events.Event[events.QueueSnapshot]
		published []byte
	)
	waitFor(t, 10*time.Second, "the queue on rb.queue.shop", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got, published = last, data
		q := got.Data
		return len(q.Items) == 2 && q.Items[0].Container == "shop-00000002" && q.Items[1].Container == "shop-00000001"
	})
	gen := got.Data.Generation
	if !strings.HasPrefix(got.Source, "queuebuilder/") || got.ID != fmt.Sprintf("shop-%d", gen) || !got.Time.Equal(at) {
		t.Fatalf("queue event meta %+v", got.Meta)
	}

	st, err := store.New(store.Options{URL: rs.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	waitFor(t, 10*time.Second, "the queue in redis", func() bool {
		snap, err := st.GetSnapshot(ctx, queuebuilder.SnapshotKind, "shop")
		return err == nil && snap.Version == gen && bytes.Equal(snap.Data, published)
	})
	_, metrics := get("/metrics")
	for _, want := range []string{`rb_queuebuilder_publishes_total{app="shop",result="ok"}`, `rb_queuebuilder_generation{app="shop"} ` + strconv.FormatUint(gen, 10)} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuf is a goroutine-safe buffer for rb's log output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
