package queuebuilder

import (
	"log/slog"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rustybalancer/rb/pkg/store"
)

func TestMain(m *testing.M) {
	// Keep the driver's per-dial lines out of the test output, as main does.
	redis.SetLogger(store.DriverLogger{Logger: slog.New(slog.DiscardHandler)})
	os.Exit(m.Run())
}
