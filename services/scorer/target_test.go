package scorer_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
	"github.com/rustybalancer/rb/pkg/score"
	"github.com/rustybalancer/rb/pkg/testutil/natstest"
	"github.com/rustybalancer/rb/pkg/testutil/redistest"
	rb "github.com/rustybalancer/rb/services/app"
)

// lockedBuffer collects the process's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestTargetNATSAndScorer runs `rb -target=nats,scorer` in process: a Sample
// published into its embedded NATS server comes back as a Score.
func TestTargetNATSAndScorer(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	natsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	env := map[string]string{
		"APP_IDENTIFIER":    app,
		"RB_NATS_LISTEN":    natsAddr,
		"RB_NATS_STORE_DIR": t.TempDir(),
		"RB_ADMIN_ADDR":     "127.0.0.1:0",
		"RB_REDIS_URL":      rs.URL(),
	}
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- rb.Main(ctx, []string{"-target=nats,scorer"}, rb.IO{
			Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			Stdout: &stdout, Stderr: &stderr,
		}, "v-test")
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rb log:\n%s", stderr.String())
		}
		cancel()
		select {
		case c := <-code:
			if c != rb.ExitOK {
				t.Errorf("rb exited %d; log:\n%s", c, stderr.String())
			}
		case <-time.After(waitLong):
			t.Errorf("rb did not stop; log:\n%s", stderr.String())
		}
	})

	var b *bus.Bus
	waitFor(t, "rb's NATS server", func() bool {
		var err error
		b, err = bus.Connect(context.Background(), bus.Options{URL: "nats://" + natsAddr}, natstest.Logger(t))
		return err == nil
	})
	t.Cleanup(func() { _ = b.Close() })
	// The streams exist once the nats target has started; the reader needs RB_SCORES.
	waitFor(t, "streams", func() bool {
		_, err := b.JetStream().Stream(context.Background(), events.StreamScores)
		return err == nil
	})
	// Samples stored before the scorer's first start are history: they are
	// read into the state, not scored. Wait for its consumer.
	waitFor(t, "the scorer's consumer", func() bool {
		_, err := b.JetStream().Consumer(context.Background(), events.StreamStats, "scorer_"+app)
		return err == nil
	})
	r := readScores(t, b)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	r.source = "scorer/" + host
	evs := []events.Event[events.Sample]{sample("web-1", 0), sample("web-1", 1)}
	publish(t, b, evs...)
	checkScores(t, r, evs, expect(score.DefaultParams(), evs))
}
