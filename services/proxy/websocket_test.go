package proxy

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rustybalancer/rb/events"
)

// echoWS echoes every WebSocket message; /refuse answers 403 instead.
func echoWS(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/refuse" {
		http.Error(w, "no", http.StatusForbidden)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(8 << 20)
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}

func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "ws", echoWS)
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	wsURL := "ws" + strings.TrimPrefix(p.url, "http") + "/chat?room=1"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(8 << 20)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Backend") != "ws" {
		t.Fatalf("handshake %d %v", resp.StatusCode, resp.Header)
	}
	tests := []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
	}{
		{name: "text", typ: websocket.MessageText, msg: []byte("hello")},
		{name: "empty", typ: websocket.MessageText, msg: []byte{}},
		{name: "binary 1 MiB", typ: websocket.MessageBinary, msg: bytes.Repeat([]byte{0, 1, 2, 250}, 256<<10)},
	}
	for _, tc := range tests {
		if err := c.Write(ctx, tc.typ, tc.msg); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil || typ != tc.typ || !bytes.Equal(got, tc.msg) {
			t.Fatalf("%s: echo %v %d bytes, err %v", tc.name, typ, len(got), err)
		}
	}
	a := p.apps[testApp]
	if n := a.inFlight(); n != 1 {
		t.Fatalf("in flight with an open tunnel: %d, want 1", n)
	}
	if p.metric(t, "rb_proxy_websockets") != 1 {
		t.Fatal("rb_proxy_websockets is not 1")
	}
	c.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, 5*time.Second, "the tunnel accounted as done", func() bool { return a.inFlight() == 0 })

	// A refused upgrade is an ordinary answer.
	_, resp, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.url, "http")+"/refuse", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused upgrade: %v %v", resp, err)
	}
}

// TestWebSocketCutAtShutdown: open tunnels do not hold the proxy's stop.
func TestWebSocketCutAtShutdown(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "ws", echoWS)
	p := startProxy(t, Options{})
	p.applyQueue(t, queueOf(1, b.item(events.StateActive)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.url, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	start := time.Now()
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatal(err)
		}
		p.done <- nil
	case <-time.After(8 * time.Second):
		t.Fatal("Run did not return with a tunnel open")
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("the tunnel still works after the proxy stopped")
	}
	t.Logf("stopped in %v with a tunnel open", time.Since(start))
}
