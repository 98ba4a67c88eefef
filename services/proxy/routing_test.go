package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/balance"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/store"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
)

func TestHostRouting(t *testing.T) {
	t.Parallel()
	shop, api, admin := startBackend(t, "shop-w", nil), startBackend(t, "api-w", nil), startBackend(t, "admin-w", nil)
	cfg := testConfig()
	cfg.Proxy.Hosts = map[string]string{"api.example": "api", "admin.example:8443": "admin"}
	p := startProxy(t, Options{Config: cfg})
	p.applyQueue(t, queueOf(1, shop.item(events.StateActive)))
	for _, app := range []struct {
		name string
		b    *backend
	}{{"api", api}, {"admin", admin}} {
		q := queueOf(1, app.b.item(events.StateActive))
		q.App = app.name
		p.applyQueue(t, q)
	}
	addr := strings.TrimPrefix(p.url, "http://")
	tests := []struct {
		name, host, want string
	}{
		{name: "mapped host", host: "api.example", want: "api-w"},
		{name: "mapped host, any port", host: "api.example:9999", want: "api-w"},
		{name: "mapped host, upper case", host: "API.Example", want: "api-w"},
		{name: "host:port mapping needs that port", host: "admin.example:8443", want: "admin-w"},
		{name: "host:port mapping, other port: default app", host: "admin.example", want: "shop-w"},
		{name: "unmapped host: default app", host: "www.example", want: "shop-w"},
		{name: "IPv6 literal: default app", host: "[::1]:80", want: "shop-w"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := rawExchange(addr, "GET / HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || body != tc.want {
				t.Fatalf("got %d %q, want %q", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestPolicyIsRuntimeTunable: RB_BALANCE_POLICY comes from the app's runtime
// config in Redis at start, and changes live with rb.config.<app>; an
// invalid change is refused.
func TestPolicyIsRuntimeTunable(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	st, err := store.New(store.Options{URL: rs.URL()}, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.SetConfig(ctx, testApp, map[string]string{"RB_BALANCE_POLICY": "least-conn"}, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	url, _, b := natsBus(t)
	backs := []*backend{startBackend(t, "r1", nil), startBackend(t, "r2", nil), startBackend(t, "r3", nil)}
	p := startProxy(t, Options{Store: st, Connect: connectTo(t, url)})
	var items []events.QueueItem
	for _, bk := range backs {
		items = append(items, bk.item(events.StateActive))
	}
	p.applyQueue(t, queueOf(1, items...))
	a := p.apps[testApp]
	policy := func() balance.Policy { return balance.Policy(a.policy.Load()) }
	waitFor(t, 10*time.Second, "least-conn from Redis", func() bool { return policy() == balance.PolicyLeastConn })

	publishConfig := func(version int64, values map[string]string) {
		subj, _ := events.ConfigSubject(testApp)
		ev := events.New("cfg-"+string(rune('0'+version)), time.Now(), "test/gateway",
			events.ConfigChanged{App: testApp, Version: version, Values: values, Changed: []string{"RB_BALANCE_POLICY"}})
		if err := bus.PublishEvent(ctx, b, subj, ev); err != nil {
			t.Fatal(err)
		}
	}
	publishConfig(2, map[string]string{"RB_BALANCE_POLICY": "round-robin"})
	waitFor(t, 10*time.Second, "round-robin from rb.config", func() bool { return policy() == balance.PolicyRoundRobin })
	c := client()
	for _, bk := range backs {
		bk.hits.Store(0)
	}
	for range 30 {
		get(t, c, p.url+"/")
	}
	for _, bk := range backs {
		if n := bk.hits.Load(); n != 10 {
			t.Fatalf("round-robin sent %d of 30 requests to %s", n, bk.name)
		}
	}
	publishConfig(3, map[string]string{"RB_BALANCE_POLICY": "bogus"})
	waitFor(t, 10*time.Second, "the invalid change refused", func() bool { return p.metric(t, "rb_proxy_config_refused_total") == 1 })
	if policy() != balance.PolicyRoundRobin {
		t.Fatalf("policy %v after an invalid change", policy())
	}
}

// TestReportCounts: reports carry the requests and errors of their
// interval, and the proxy's identity.
func TestReportCounts(t *testing.T) {
	t.Parallel()
	url, _, b := natsBus(t)
	ok := startBackend(t, "ok", nil)
	rep := watchReports(t, b, "px-count")
	p := startProxy(t, Options{Connect: connectTo(t, url), ID: "px-count", ReportInterval: 50 * time.Millisecond})
	p.applyQueue(t, queueOf(9, ok.item(events.StateActive)))
	c := client()
	for range 25 {
		get(t, c, p.url+"/")
	}
	waitFor(t, 5*time.Second, "25 requests reported", func() bool {
		rep.mu.Lock()
		defer rep.mu.Unlock()
		var n uint64
		for _, r := range rep.all {
			if r.App != testApp || r.ProxyID != "px-count" || r.QueueGeneration != 9 || r.IntervalSeconds <= 0 {
				t.Errorf("bad report %+v", r)
			}
			for _, br := range r.Backends {
				n += br.Requests
			}
		}
		return n == 25
	})
	br, listed := rep.last("ok")
	if !listed || br.Address != ok.addr || br.State != events.StateActive || br.LatencySeconds <= 0 {
		t.Fatalf("last report of ok: %+v", br)
	}
}
