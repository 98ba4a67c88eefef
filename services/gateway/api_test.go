package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

const testToken = "s3cret-token"

// apiGateway is a gateway with a token, a CORS allowlist, a Redis store
// and the demo events of app shop (3 workers) loaded.
func apiGateway(t *testing.T, opts Options) (*harness, *store.Store) {
	t.Helper()
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	rs := redistest.Start(t)
	st, err := store.New(store.Options{URL: rs.URL()}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	demo := &Demo{App: "shop", Workers: []string{"shop-a", "shop-b", "shop-c", "shop-d"}, End: time.Now(), Points: 12, Step: time.Minute}
	demo.PublishHistory(t, b)
	demo.PublishQueue(t, b, demo.Workers[:3], false, time.Now())
	opts.App = "shop"
	opts.Config = &ConfigWriter{Store: st, Bus: b, Base: config.Default(), Source: "gateway/test"}
	h := startGatewayOn(t, b, opts)
	eventually(t, "the demo events in the view", func() bool {
		s, ok := h.svc.View().Summary("shop")
		return ok && s.Workers == 3 && s.ConfigVersion == 1 && s.Desired != nil && s.Proxies == 1
	})
	return h, st
}

type apiCase struct {
	name   string
	method string
	path   string
	hdr    map[string]string
	body   string
	code   int
	// want are substrings of the body; wantHdr are header values.
	want    []string
	notWant []string
	wantHdr map[string]string
}

func runCases(t *testing.T, base string, cases []apiCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			code, body, hdr := do(t, method, base+tc.path, tc.hdr, tc.body)
			if code != tc.code {
				t.Fatalf("%s %s = %d %s; want %d", method, tc.path, code, body, tc.code)
			}
			if code >= 400 {
				var e map[string]any
				if err := json.Unmarshal([]byte(body), &e); err != nil || e["error"] == nil {
					t.Fatalf("error answer is not JSON {\"error\": ...}: %s", body)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("body has %q:\n%s", w, body)
				}
			}
			for k, v := range tc.wantHdr {
				if got := hdr.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestAPIReads(t *testing.T) {
	h, _ := apiGateway(t, Options{Token: testToken, CORSOrigins: []string{"https://ops.example.com"}})
	recent := time.Now().Add(-90 * time.Second).UTC().Format(time.RFC3339)
	runCases(t, h.base, []apiCase{
		{name: "stats prototype format", path: "/stats", code: 200,
			want: []string{`"id":"000000000001"`, `"name":"shop-a"`, `"cpu_score":`, `"memory_score":`, `"network_score":`, `"availability_score":`, `"overall_score":`, `"utilization_category":`}},
		{name: "stats of another app is empty", path: "/stats?app=nope", code: 200, want: []string{"[]"}},
		{name: "apps", path: "/api/v1/apps", code: 200, want: []string{`"app":"shop"`, `"workers":3`, `"desired":4`, `"default_app":"shop"`}},
		{name: "app detail", path: "/api/v1/apps/shop", code: 200,
			want: []string{`"summary"`, `"workers":[{`, `"score_history":{"shop-a":[{`, `"capacity":[{`, `"proxy":[{`, `"timeline":[{`, `"requests_per_second"`}},
		{name: "app detail bad points", path: "/api/v1/apps/shop?points=many", code: 400, want: []string{"points"}},
		{name: "unknown app", path: "/api/v1/apps/nope", code: 404, want: []string{`app \"nope\"`}},
		{name: "queue", path: "/api/v1/apps/shop/queue", code: 200, want: []string{`"kind":"queue"`, `"generation":1`, `"shop-c"`}},
		{name: "queue unknown app", path: "/api/v1/apps/nope/queue", code: 404, want: []string{"no queue"}},
		{name: "scores with history", path: "/api/v1/apps/shop/scores", code: 200, want: []string{`"container":"shop-b"`, `"history":[{`, `"overall_score"`}},
		{name: "scores without history", path: "/api/v1/apps/shop/scores?history=false", code: 200, want: []string{`"container":"shop-b"`}, notWant: []string{`"history"`}},
		{name: "scores bad history", path: "/api/v1/apps/shop/scores?history=maybe", code: 400, want: []string{"history"}},
		{name: "scores unknown app", path: "/api/v1/apps/nope/scores", code: 404, want: []string{"nope"}},
		{name: "decisions", path: "/api/v1/apps/shop/decisions", code: 200, want: []string{`"from":1,"to":2`, `"action":"hold"`, `"from":3,"to":4`, "HIGH_LOAD_THRESHOLD"}, notWant: []string{`"kind":"lifecycle"`}},
		{name: "decisions since duration", path: "/api/v1/apps/shop/decisions?since=2m", code: 200, want: []string{`"from":3,"to":4`}, notWant: []string{`"from":1,"to":2`, `"action":"hold"`}},
		{name: "decisions since time", path: "/api/v1/apps/shop/decisions?since=" + recent, code: 200, want: []string{`"from":3,"to":4`}, notWant: []string{`"from":1,"to":2`, `"action":"hold"`}},
		{name: "decisions with lifecycle and config", path: "/api/v1/apps/shop/decisions?include=lifecycle,config", code: 200,
			want: []string{`"kind":"lifecycle"`, `"phase":"ready"`, `"kind":"config_changed"`, `"action":"scale_up"`}},
		{name: "decisions bad since", path: "/api/v1/apps/shop/decisions?since=yesterday", code: 400, want: []string{"since", "yesterday", "RFC 3339"}},
		{name: "decisions negative since", path: "/api/v1/apps/shop/decisions?since=-5m", code: 400, want: []string{"since"}},
		{name: "decisions bad include", path: "/api/v1/apps/shop/decisions?include=gossip", code: 400, want: []string{"include", "gossip"}},
		{name: "config never set", path: "/api/v1/apps/shop/config", code: 200, want: []string{`"version":0`, `"HIGH_LOAD_THRESHOLD":"55"`, `"overrides":{}`}},
		{name: "config bad app", path: "/api/v1/apps/two%20words/config", code: 400, want: []string{"app"}},
		{name: "healthz", path: "/healthz", code: 200, want: []string{`"status":"ok"`}},
		{name: "metrics", path: "/metrics", code: 200, want: []string{"rb_gateway_events_total", "rb_gateway_http_requests_total"}},
		{name: "dashboard", path: "/", code: 200, want: []string{"<!doctype html>", "dashboard.js"}, wantHdr: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "dashboard script", path: "/dashboard.js", code: 200, wantHdr: map[string]string{"Content-Type": "text/javascript; charset=utf-8"}},
		{name: "no such file", path: "/nope.txt", code: 404, want: []string{"/nope.txt"}},
		{name: "no such api route", path: "/api/v2/apps", code: 404, want: []string{"/api/v2/apps"}},
		{name: "wrong method", method: http.MethodPost, path: "/api/v1/apps", code: 405, want: []string{"POST", "GET"}},
		{name: "delete config not allowed", method: http.MethodDelete, path: "/api/v1/apps/shop/config", code: 405, want: []string{"DELETE", "PUT"}},
		// CORS: the allowlist, same origin, and preflights.
		{name: "cors allowed origin", path: "/api/v1/apps", hdr: map[string]string{"Origin": "https://ops.example.com"}, code: 200,
			wantHdr: map[string]string{"Access-Control-Allow-Origin": "https://ops.example.com", "Vary": "Origin"}},
		{name: "cors denied origin", path: "/api/v1/apps", hdr: map[string]string{"Origin": "https://evil.example"}, code: 403,
			want: []string{"https://evil.example", "RB_CORS_ORIGINS"}, wantHdr: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "same origin needs no allowlist", path: "/api/v1/apps", hdr: map[string]string{"Origin": h.base}, code: 200,
			wantHdr: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "preflight allowed", method: http.MethodOptions, path: "/api/v1/apps/shop/config",
			hdr:  map[string]string{"Origin": "https://ops.example.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization,content-type"},
			code: 204, wantHdr: map[string]string{"Access-Control-Allow-Origin": "https://ops.example.com", "Access-Control-Allow-Methods": "GET, PUT, OPTIONS", "Access-Control-Allow-Headers": "Authorization, Content-Type"}},
		{name: "preflight denied", method: http.MethodOptions, path: "/api/v1/apps/shop/config",
			hdr:  map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
			code: 403, want: []string{"RB_CORS_ORIGINS"}, wantHdr: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "websocket from a denied origin", path: "/ws", hdr: map[string]string{"Origin": "https://evil.example", "Connection": "Upgrade", "Upgrade": "websocket",
			"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, code: 403, want: []string{"RB_CORS_ORIGINS"}},
	})
}

func TestAPIConfigWrites(t *testing.T) {
	h, st := apiGateway(t, Options{Token: testToken})
	auth := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}
	// Follow rb.config.shop to see what services would receive.
	got := make(chan events.Event[events.ConfigChanged], 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Last per subject: however late the watch starts, it sees the last change.
		_ = h.bus.Watch(ctx, events.StreamDecisions, []string{"rb.config.shop"}, true, func(m bus.Msg) {
			if ev, err := events.Decode[events.ConfigChanged](m.Data); err == nil {
				got <- ev
			}
		})
	}()
	put := func(name, hdrAuth, body string, code int, want ...string) apiCase {
		hdr := map[string]string{"Content-Type": "application/json"}
		if hdrAuth != "" {
			hdr["Authorization"] = hdrAuth
		}
		return apiCase{name: name, method: http.MethodPut, path: "/api/v1/apps/shop/config", hdr: hdr, body: body, code: code, want: want}
	}
	bearer := "Bearer " + testToken
	runCases(t, h.base, []apiCase{
		put("no token", "", `{"values":{"HIGH_LOAD_THRESHOLD":"50"}}`, 401, "missing bearer token"),
		put("wrong token", "Bearer nope", `{"values":{"HIGH_LOAD_THRESHOLD":"50"}}`, 401, "wrong bearer token"),
		put("not a bearer", "Basic dXNlcjpwdw==", `{"values":{"HIGH_LOAD_THRESHOLD":"50"}}`, 401, "missing bearer token"),
		put("bad json", bearer, `{"values":`, 400, "request body"),
		put("unknown field", bearer, `{"valuez":{"HIGH_LOAD_THRESHOLD":"50"}}`, 400, "request body", "valuez"),
		put("trailing data", bearer, `{"values":{"HIGH_LOAD_THRESHOLD":"50"}} {}`, 400, "after the JSON object"),
		put("empty", bearer, `{"values":{}}`, 400, "nothing to change"),
		put("object value", bearer, `{"values":{"HIGH_LOAD_THRESHOLD":{"v":1}}}`, 400, "values.HIGH_LOAD_THRESHOLD"),
		put("bad value named", bearer, `{"values":{"HIGH_LOAD_THRESHOLD":"abc"}}`, 400, "HIGH_LOAD_THRESHOLD", `"problems":[{"variable":"HIGH_LOAD_THRESHOLD"`),
		put("relation named", bearer, `{"values":{"HIGH_LOAD_THRESHOLD":90}}`, 400, "LOW_LOAD_THRESHOLD"),
		put("unknown variable named", bearer, `{"values":{"HIGH_LOAD":"50"}}`, 400, "HIGH_LOAD", "unknown variable"),
		put("not runtime named", bearer, `{"values":{"REDIS_HOST":"elsewhere"}}`, 400, "REDIS_HOST", "restart"),
		put("set", bearer, `{"values":{"HIGH_LOAD_THRESHOLD":50,"SCALE_STEP":"2"}}`, 200,
			`"version":1`, `"changed":["HIGH_LOAD_THRESHOLD","SCALE_STEP"]`, `"HIGH_LOAD_THRESHOLD":"50"`),
		put("same again is a no-op", bearer, `{"values":{"HIGH_LOAD_THRESHOLD":"50"}}`, 200, `"version":1`),
		put("stale version conflicts", bearer, `{"values":{"SCALE_STEP":"3"},"version":0}`, 409, "conflict", "stored version is 1"),
		put("matching version", bearer, `{"values":{"SCALE_STEP":"3"},"version":1}`, 200, `"version":2`, `"changed":["SCALE_STEP"]`),
		put("null unsets", bearer, `{"values":{"SCALE_STEP":null}}`, 200, `"version":3`, `"changed":["SCALE_STEP"]`, `"SCALE_STEP":"1"`),
		{name: "read back", path: "/api/v1/apps/shop/config", hdr: auth, code: 200, want: []string{`"version":3`, `"overrides":{"HIGH_LOAD_THRESHOLD":"50"}`, `"HIGH_LOAD_THRESHOLD":"50"`}},
	})
	stored, err := st.GetConfig(context.Background(), "shop")
	if err != nil || stored.Version != 3 || stored.Values["HIGH_LOAD_THRESHOLD"] != "50" || len(stored.Values) != 1 {
		t.Fatalf("stored config %+v, %v", stored, err)
	}
	// The last write was published, as services see it, and the gateway's
	// own view follows.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-got:
			if ev.Data.Version != 3 {
				continue
			}
			if ev.Data.App != "shop" || ev.Data.Values["HIGH_LOAD_THRESHOLD"] != "50" || len(ev.Data.Changed) != 1 || ev.Data.Changed[0] != "SCALE_STEP" ||
				!strings.HasPrefix(ev.Data.By, "gateway PUT from ") || ev.ID != "config-shop-3" {
				t.Fatalf("published %+v", ev)
			}
			eventually(t, "the gateway's view of config version 3", func() bool {
				s, _ := h.svc.View().Summary("shop")
				return s.ConfigVersion == 3
			})
			return
		case <-deadline:
			t.Fatal("config version 3 was not published on rb.config.shop")
		}
	}
}

func TestAPIWritesNeedAConfiguredToken(t *testing.T) {
	h, _ := apiGateway(t, Options{})
	runCases(t, h.base, []apiCase{
		{name: "write refused", method: http.MethodPut, path: "/api/v1/apps/shop/config", hdr: map[string]string{"Authorization": "Bearer anything"},
			body: `{"values":{"HIGH_LOAD_THRESHOLD":"50"}}`, code: 403, want: []string{"RB_GATEWAY_TOKEN"}},
		{name: "reads open", path: "/api/v1/apps/shop/config", code: 200},
	})
}

func TestAPIProtectedReads(t *testing.T) {
	h, _ := apiGateway(t, Options{Token: testToken, ProtectReads: true})
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	runCases(t, h.base, []apiCase{
		{name: "read without token", path: "/api/v1/apps", code: 401, want: []string{"missing bearer token"}, wantHdr: map[string]string{"WWW-Authenticate": `Bearer realm="rb-gateway"`}},
		{name: "read with wrong token", path: "/api/v1/apps", hdr: map[string]string{"Authorization": "Bearer wrong"}, code: 401, want: []string{"wrong bearer token"}},
		{name: "read with token", path: "/api/v1/apps", hdr: bearer, code: 200, want: []string{`"app":"shop"`}},
		{name: "stats without token", path: "/stats", code: 401},
		{name: "metrics without token", path: "/metrics", code: 401},
		{name: "websocket without token", path: "/ws/v1", code: 401},
		{name: "token in the query for websockets", path: "/api/v1/apps?access_token=" + testToken, code: 200},
		{name: "wrong token in the query", path: "/api/v1/apps?access_token=nope", code: 401},
		{name: "health stays open", path: "/healthz", code: 200},
		{name: "dashboard page stays open", path: "/", code: 200},
	})
	c := dial(t, h.ws+"/ws/v1?app=shop&events=queue&access_token="+testToken)
	if ev, err := events.Decode[events.QueueSnapshot](readMsg(t, c)); err != nil || ev.Data.App != "shop" {
		t.Fatalf("websocket with ?access_token: %+v, %v", ev, err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	url, _ := natstest.Start(t)
	b := natstest.Connect(t, url)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "no address", opts: Options{}, want: "listen address"},
		{name: "protect reads without token", opts: Options{HTTPAddr: "127.0.0.1:0", ProtectReads: true}, want: "RB_GATEWAY_TOKEN"},
		{name: "wildcard origin", opts: Options{HTTPAddr: "127.0.0.1:0", CORSOrigins: []string{"*"}}, want: "RB_CORS_ORIGINS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts, b, natstest.Logger(t)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := New(Options{HTTPAddr: "127.0.0.1:0"}, nil, natstest.Logger(t)); err == nil {
		t.Fatal("New without a bus succeeded")
	}
}
