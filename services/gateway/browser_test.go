package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	"github.com/rustybalancer/rb/services/app"
	"github.com/rustybalancer/rb/services/gateway"
)

var screenshot = flag.String("screenshot", "", "file the browser test writes the dashboard screenshot (PNG) to; default: in the test's temporary directory")

// chromium returns the browser binary, or "" when none is installed.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/lib/chromium/chromium"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// syncBuffer collects rb's log output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runGateway runs `rb -target=gateway` in-process (app.Main) against natsURL
// and redisURL on free loopback ports and returns the dashboard's base URL.
// A port taken between choosing and binding makes rb exit: then it tries again.
func runGateway(t *testing.T, natsURL, redisURL, defaultApp string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		base, logs, err := startGateway(t, natsURL, redisURL, defaultApp)
		if err == nil {
			return base
		}
		if attempt < 3 && strings.Contains(logs, "address already in use") {
			t.Logf("port taken, trying again: %v", err)
			continue
		}
		t.Fatalf("%v:\n%s", err, logs)
	}
}

func startGateway(t *testing.T, natsURL, redisURL, defaultApp string) (base, logs string, err error) {
	t.Helper()
	httpPort, wsPort := freePort(t), freePort(t)
	env := map[string]string{
		"RB_NATS_URL": natsURL, "RB_REDIS_URL": redisURL, "RB_ADMIN_ADDR": "127.0.0.1:0",
		"RB_GATEWAY_HOST": "127.0.0.1", "HOST_PORT_HTTP_DEPLOYMENT_AGENT": strconv.Itoa(httpPort),
		"HOST_PORT_WS_DEPLOYMENT_AGENT": strconv.Itoa(wsPort), "APP_IDENTIFIER": defaultApp, "RB_LOG_LEVEL": "warn",
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- app.Main(ctx, []string{"-target=gateway"}, app.IO{
			Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			Stdout: out, Stderr: out,
		}, "test")
	}()
	base = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case code := <-done:
			cancel()
			return "", out.String(), fmt.Errorf("rb -target=gateway exited with %d before it was healthy", code)
		default:
		}
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			return "", out.String(), errors.New("rb -target=gateway not healthy within 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != app.ExitOK {
				t.Errorf("rb -target=gateway exited with %d:\n%s", code, out.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("rb -target=gateway did not stop within 10 s")
		}
	})
	return base, out.String(), nil
}

// The dashboard, in a real browser, against rb's gateway target fed with
// demo workers: one row per worker, a new row when a worker joins the
// queue, no script error, and a screenshot for people to look at.
func TestDashboardInBrowser(t *testing.T) {
	chrome := chromium()
	if chrome == "" {
		t.Skip("no chromium binary found (apt-get install -y chromium): the dashboard browser test needs one")
	}
	natsURL, _ := natstest.Start(t)
	b := natstest.Connect(t, natsURL)
	rs := redistest.Start(t)

	workers := []string{"demo-3f9a1c2e", "demo-8b7d4e10", "demo-c41f0a97", "demo-51e2b8d3"}
	demo := &gateway.Demo{App: "demo", Workers: workers, End: time.Now(), Points: 150, Step: 4 * time.Second}
	demo.PublishHistory(t, b)
	demo.PublishQueue(t, b, workers[:3], false, time.Now())
	base := runGateway(t, natsURL, rs.URL(), "demo")

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
			chromedp.WindowSize(1440, 900), chromedp.UserDataDir(t.TempDir()))...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chrome, err)
	}

	var errMu sync.Mutex
	var jsErrors []string
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	consoles := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			errMu.Lock()
			jsErrors = append(jsErrors, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			errMu.Unlock()
		}
	}()
	go func() {
		for ev, err := range consoles {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				errMu.Lock()
				jsErrors = append(jsErrors, "console.error: "+strings.Join(parts, " "))
				errMu.Unlock()
			}
		}
	}()

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	rows := func(n int) {
		t.Helper()
		js := fmt.Sprintf(`document.querySelectorAll("#queue tbody tr[data-worker]").length === %d && document.querySelector("#conn").classList.contains("live")`, n)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#queue").innerText + "\n" + document.querySelector("#notice").innerText`))
			t.Fatalf("waiting for %d worker rows: %v; the page shows:\n%s", n, err, got)
		}
	}
	rows(3)
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#queue tbody tr[data-worker]")).map(r => r.dataset.worker).sort()`))
	if err != nil || strings.Join(names, ",") != strings.Join(workers[:3], ",") {
		t.Fatalf("worker rows %v, %v; want %v", names, err, workers[:3])
	}

	// A worker joins (INIT): its row appears, live, and its first score.
	demo.PublishQueue(t, b, workers, true, time.Now())
	rows(4)
	demo.PublishScore(t, b, 3, time.Now())
	// (Read in one evaluation: rows are redrawn as events arrive.)
	newRow, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#queue tbody tr[data-worker="`+workers[3]+`"]').innerText`))
	if err != nil || !strings.Contains(newRow, "INIT") {
		t.Fatalf("the new worker's row reads %q, %v; want it marked INIT", newRow, err)
	}

	// The other panels have their data: a chart per worker, the decision
	// with its reason, the summary cards.
	checks := []struct {
		name string
		js   string
	}{
		{name: "a score chart per worker", js: `document.querySelectorAll("#sparks .spark canvas").length === 4`},
		{name: "the scale-up decision with its reason", js: `document.querySelector("#timeline").innerText.includes("HIGH_LOAD_THRESHOLD")`},
		{name: "the lifecycle of the new worker", js: `document.querySelectorAll('#timeline li[data-kind="lifecycle"]').length >= 5 && document.querySelector("#timeline").innerText.includes("` + workers[3] + `")`},
		{name: "the desired count", js: `document.querySelector("#c-desired").innerText.trim() === "4"`},
		{name: "proxy traffic", js: `document.querySelector("#c-rps").innerText.trim() !== "—"`},
	}
	for _, c := range checks {
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](c.js, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Errorf("dashboard lacks %s: %v", c.name, err)
		}
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := *screenshot
	if path == "" {
		path = filepath.Join(t.TempDir(), "dashboard.png")
	} else if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s (%d KiB)", path, len(png)>>10)

	errMu.Lock()
	defer errMu.Unlock()
	if len(jsErrors) > 0 {
		t.Fatalf("the page reported script errors:\n%s", strings.Join(jsErrors, "\n"))
	}
}
