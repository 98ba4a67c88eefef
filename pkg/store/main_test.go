package store

import (
	"log/slog"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	// Keep the driver's per-dial lines out of the test output, as main does.
	redis.SetLogger(DriverLogger{Logger: slog.New(slog.DiscardHandler)})
	os.Exit(m.Run())
}
