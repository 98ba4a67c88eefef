package proxy_test

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	"github.com/rustybalancer/rb/services/app"
)

// readmeQueue is the queue event of README.md's "Proxy" section, with the
// workers' addresses as placeholders.
const readmeQueue = `{"schema":1,"kind":"queue","id":"shop-1","time":"2026-01-01T00:00:00Z","source":"manual",` +
	`"data":{"app":"shop","generation":1,"items":[` +
	`{"container":"w1","address":"127.0.0.1:8081","score":80,"weight":80,"category":"LU","state":"ACTIVE"},` +
	`{"container":"w2","address":"127.0.0.1:8082","score":80,"weight":80,"category":"LU","state":"ACTIVE"}]}}`

// TestReadmeFlow is README.md's "Proxy" section: `rb -target=proxy` (with
// its own embedded NATS), two workers, a queue event published by hand with
// a plain NATS publish (as `nats pub` does), and curl through the proxy.
func TestReadmeFlow(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	w1, w2 := worker(t, "w1"), worker(t, "w2")
	natsAddr, adminAddr, proxyAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	_, proxyPort, _ := net.SplitHostPort(proxyAddr)
	env := map[string]string{
		"APP_IDENTIFIER":          "shop",
		"HOST_PORT_HTTP_BALANCER": proxyPort,
		"RB_ADMIN_ADDR":           adminAddr,
		"RB_NATS_LISTEN":          natsAddr,
		"RB_NATS_STORE_DIR":       t.TempDir(),
		"RB_REDIS_URL":            rs.URL(),
		"RB_LOG_LEVEL":            "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- app.Main(ctx, []string{"-target=proxy"}, app.IO{
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
	c := &http.Client{Timeout: 5 * time.Second}
	status := func(url string) int {
		resp, err := c.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, 20*time.Second, "rb healthy", func() bool { return status("http://"+adminAddr+"/healthz") == 200 })
	if code := status("http://127.0.0.1:" + proxyPort + "/"); code != http.StatusServiceUnavailable {
		t.Fatalf("before any queue the proxy answered %d, want 503", code)
	}

	// go run github.com/nats-io/natscli/nats@v0.5.0 pub rb.queue.shop '<envelope json>'
	// The proxy starts its embedded NATS in the background.
	var nc *nats.Conn
	waitFor(t, 20*time.Second, "NATS up", func() bool {
		var err error
		nc, err = nats.Connect("nats://" + natsAddr)
		return err == nil
	})
	defer nc.Close()
	// ... and ensures the streams right after; a plain publish before that
	// would go to no stream.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "stream RB_QUEUE", func() bool {
		_, err := js.Stream(context.Background(), "RB_QUEUE")
		return err == nil
	})
	msg := strings.NewReplacer("127.0.0.1:8081", w1, "127.0.0.1:8082", w2).Replace(readmeQueue)
	if err := nc.Publish("rb.queue.shop", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "rb ready", func() bool { return status("http://"+adminAddr+"/readyz") == 200 })

	// curl http://127.0.0.1:2548/ a few times: p2c sends each request to
	// the cheaper of two workers, and a worker's first answer makes it known.
	seen := map[string]int{}
	n := 0
	for deadline := time.Now().Add(10 * time.Second); seen["w1"] == 0 || seen["w2"] == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d requests, answers by worker: %v, want both", n, seen)
		}
		time.Sleep(20 * time.Millisecond)
		resp, err := c.Get("http://127.0.0.1:" + proxyPort + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("through the proxy: %d %s", resp.StatusCode, body)
		}
		seen[strings.Fields(string(body))[0]]++
	}
	t.Logf("%d requests until both workers answered: %v", n, seen)
	resp, err := c.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`rb_proxy_requests_total{app="shop",code="2xx"} %d`, n); !bytes.Contains(metrics, []byte(want)) {
		t.Fatalf("/metrics lacks the %d answered requests:\n%s", n, grep(metrics, "rb_proxy_requests_total"))
	}
}

// worker serves "<name> <method> <path>" like the demo worker.
func worker(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s\n", name, r.Method, r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func grep(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
