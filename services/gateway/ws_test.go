package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rustybalancer/rb/events"
)

func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, code)
	}
	c.SetReadLimit(1 << 24)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func readMsg(t testing.TB, c *websocket.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type %v, want text", typ)
	}
	return b
}

func queueEvent(app string, gen uint64, items ...events.QueueItem) events.Event[events.QueueSnapshot] {
	return events.New(fmt.Sprintf("%s-q-%d", app, gen), time.Now(), "queue-builder/test", events.QueueSnapshot{App: app, Generation: gen, Items: items})
}

func item(name string, score float64, state events.State, cat events.Category) events.QueueItem {
	return events.QueueItem{Container: name, Address: name + ":8080", Score: score, Weight: score, Category: cat, State: state}
}

func TestLegacyAndV1Streams(t *testing.T) {
	h := startGateway(t, Options{App: "shop"})
	// The queue-builder's order is not trusted: the gateway sorts.
	publish(t, h.bus, "rb.queue.shop", queueEvent("shop", 1,
		item("w-sun", 99, events.StateSundown, events.CategorySundown),
		item("w-low", 30, events.StateActive, events.CategoryHU),
		item("w-new", 100, events.StateInit, events.CategoryInit),
		item("w-mid", 60, events.StateActive, events.CategoryMU),
	))
	eventually(t, "the queue in the view", func() bool { _, ok := h.svc.View().Queue("shop"); return ok })

	legacy := dial(t, h.ws+"/ws")
	other := dial(t, h.ws+"/ws?app=other")
	v1 := dial(t, h.ws+"/ws/v1?app=shop&events=queue,score")
	v1scale := dial(t, h.base+"/ws/v1?events=scale") // the HTTP port serves the WebSockets too

	want := `[{"dns_name":"w-new","score":100,"utilization_category":"INIT"},` +
		`{"dns_name":"w-mid","score":60,"utilization_category":"MU"},` +
		`{"dns_name":"w-low","score":30,"utilization_category":"HU"},` +
		`{"dns_name":"w-sun","score":99,"utilization_category":"SUNDOWN"}]`
	if got := string(readMsg(t, legacy)); got != want {
		t.Fatalf("legacy array on connect:\n got %s\nwant %s", got, want)
	}
	first, err := events.Decode[events.QueueSnapshot](readMsg(t, v1))
	if err != nil || first.Data.Generation != 1 {
		t.Fatalf("v1 first message: %+v, %v; want the current queue (generation 1)", first, err)
	}

	score := events.New("s-1", time.Now(), "scorer/test", events.Score{App: "shop", Container: "w-mid", Mode: "legacy",
		CPU: 50, Memory: 60, Network: 70, Availability: 80, Overall: 62.5, Category: events.CategoryMU})
	publish(t, h.bus, "rb.score.shop.w-mid", score)
	gotScore, err := events.Decode[events.Score](readMsg(t, v1))
	if err != nil || gotScore.ID != "s-1" || gotScore.Data.Overall != 62.5 {
		t.Fatalf("v1 score: %+v, %v", gotScore, err)
	}

	publish(t, h.bus, "rb.queue.shop", queueEvent("shop", 2,
		item("w-mid", 62.5, events.StateActive, events.CategoryMU),
		item("w-low", 30, events.StateActive, events.CategoryHU),
	))
	want2 := `[{"dns_name":"w-mid","score":62.5,"utilization_category":"MU"},{"dns_name":"w-low","score":30,"utilization_category":"HU"}]`
	if got := string(readMsg(t, legacy)); got != want2 {
		t.Fatalf("legacy array after the change:\n got %s\nwant %s", got, want2)
	}
	q2, err := events.Decode[events.QueueSnapshot](readMsg(t, v1))
	if err != nil || q2.Data.Generation != 2 {
		t.Fatalf("v1 queue change: %+v, %v", q2, err)
	}

	dec := events.New("d-1", time.Now(), "scaler/test", events.Decision{App: "shop", Action: events.ActionScaleDown, Reason: "mean score 85 > LOW_LOAD_THRESHOLD 80", From: 3, To: 2})
	publish(t, h.bus, "rb.scale.shop", dec)
	gotDec, err := events.Decode[events.Decision](readMsg(t, v1scale))
	if err != nil || gotDec.ID != "d-1" {
		t.Fatalf("v1 scale-only client: first message %+v, %v; want the decision (no queue, no score)", gotDec, err)
	}

	// The client of another app got nothing: its first message is the
	// queue of its own app, published last.
	publish(t, h.bus, "rb.queue.other", queueEvent("other", 1, item("o-1", 50, events.StateActive, events.CategoryMU)))
	if got := string(readMsg(t, other)); got != `[{"dns_name":"o-1","score":50,"utilization_category":"MU"}]` {
		t.Fatalf("legacy client of app other got %s", got)
	}
}

func TestV1RejectsUnknownTopic(t *testing.T) {
	h := startGateway(t, Options{App: "shop"})
	code, body, _ := get(t, h.base+"/ws/v1?events=queue,gossip", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, `"error"`) || !strings.Contains(body, "events") || !strings.Contains(body, "gossip") {
		t.Fatalf("GET /ws/v1?events=queue,gossip = %d %s; want 400 naming events and the topic", code, body)
	}
}

// A client that never reads fills its socket, then its bounded buffer, and
// is dropped; a client that reads gets every message meanwhile.
func TestSlowClientDroppedOthersUnaffected(t *testing.T) {
	h := startGateway(t, Options{App: "shop", ClientBuffer: 4, WriteTimeout: time.Minute, PingInterval: time.Hour})
	slow := dial(t, h.ws+"/ws/v1?app=shop&events=score")
	fast := dial(t, h.ws+"/ws/v1?app=shop&events=score")
	eventually(t, "two clients", func() bool { return h.svc.hub.count(endpointV1) == 2 })

	got := make(chan []byte, 1)
	go func() {
		for {
			_, b, err := fast.Read(context.Background())
			if err != nil {
				close(got)
				return
			}
			got <- b
		}
	}()
	payload := bytes.Repeat([]byte("x"), 64<<10)
	start := time.Now()
	sent := 0
	// Loopback buffers hold a few MB: the slow client is dropped well
	// before 100 MB; past that the test fails.
	for ; sent < 1600 && h.svc.hub.count(endpointV1) == 2; sent++ {
		msg := append([]byte(fmt.Sprintf(`{"n":%d,"pad":"`, sent)), payload...)
		msg = append(msg, `"}`...)
		h.svc.hub.publish(outbound{app: "shop", topic: TopicScore, data: msg})
		select {
		case b, ok := <-got:
			if !ok {
				t.Fatalf("fast client closed after %d messages", sent)
			}
			if !bytes.HasPrefix(b, []byte(fmt.Sprintf(`{"n":%d,`, sent))) {
				t.Fatalf("fast client got message %.20s, want n=%d", b, sent)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("fast client waited over 5 s for message %d: the slow one held it up", sent)
		}
	}
	if n := h.svc.hub.count(endpointV1); n != 1 {
		t.Fatalf("after %d messages of 64 KiB, %d clients remain; want the slow one dropped", sent, n)
	}
	t.Logf("slow client dropped after %d messages (%.1f MiB) in %v", sent, float64(sent)*64/1024, time.Since(start).Round(time.Millisecond))
	if v := counterValue(t, h.svc.metrics.wsDropped.WithLabelValues(endpointV1, dropSlow)); v != 1 {
		t.Fatalf("rb_gateway_ws_dropped_total{reason=slow} = %v, want 1", v)
	}
	// The slow client finds its connection closed once it reads.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := slow.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the dropped client's connection is still open after 10 s")
			}
			break
		}
	}
	// The fast client goes on.
	h.svc.hub.publish(outbound{app: "shop", topic: TopicScore, data: []byte(`{"n":"after"}`)})
	select {
	case b := <-got:
		if string(b) != `{"n":"after"}` {
			t.Fatalf("fast client after the drop got %.30s", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("fast client got nothing after the drop")
	}
}

// A client that does not answer pings is dropped.
func TestUnansweredPingDrops(t *testing.T) {
	h := startGateway(t, Options{App: "shop", PingInterval: 50 * time.Millisecond})
	live := dial(t, h.ws+"/ws")
	go func() {
		for {
			if _, _, err := live.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	_ = dial(t, h.ws+"/ws") // never reads, so never answers a ping
	eventually(t, "the silent client dropped", func() bool {
		return counterValue(t, h.svc.metrics.wsDropped.WithLabelValues(endpointLegacy, dropPing)) == 1
	})
	if n := h.svc.hub.count(endpointLegacy); n != 1 {
		t.Fatalf("%d legacy clients left, want the reading one", n)
	}
}

func TestLegacyArrayIsJSON(t *testing.T) {
	// A worker name needing escapes travels as valid JSON.
	h := startGateway(t, Options{App: "shop"})
	publish(t, h.bus, "rb.queue.shop", queueEvent("shop", 1, item(`w"1`, 50, events.StateActive, events.CategoryMU)))
	c := dial(t, h.ws+"/ws")
	var got []LegacyItem
	if err := json.Unmarshal(readMsg(t, c), &got); err != nil || len(got) != 1 || got[0].DNSName != `w"1` {
		t.Fatalf("legacy array %+v, %v", got, err)
	}
}
