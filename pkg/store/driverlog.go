package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// DriverLogger adapts a slog.Logger to go-redis's process-wide logger, which
// otherwise writes every failed dial to stderr: one line per operation while
// Redis is down. The Store reports outages itself (Run, Health, errors), so
// failed dials go to Debug and anything else the driver says to Warn.
//
// go-redis keeps its logger in a global; only main should install it, once:
//
//	redis.SetLogger(store.DriverLogger{Logger: logger})
type DriverLogger struct {
	Logger *slog.Logger
}

// Printf implements go-redis's logging interface.
func (d DriverLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	level := slog.LevelWarn
	if strings.Contains(msg, "failed to dial") {
		level = slog.LevelDebug
	}
	d.Logger.Log(ctx, level, "redis driver", "detail", msg)
}
