package store

import (
	"context"
	"log/slog"
	"testing"
)

func TestDriverLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		format     string
		args       []any
		wantLevel  string
		wantDetail string
	}{
		{name: "failed dial is debug", format: "redis: connection pool: failed to dial after %d attempts: %v", args: []any{1, "refused"},
			wantLevel: "DEBUG", wantDetail: "connection pool: failed to dial after 1 attempts: refused"},
		{name: "anything else is a warning", format: "redis: re-authentication failed: %v", args: []any{"denied"},
			wantLevel: "WARN", wantDetail: "re-authentication failed: denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &logBuffer{}
			d := DriverLogger{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			d.Printf(context.Background(), tt.format, tt.args...)
			recs := logs.records(t)
			if len(recs) != 1 || recs[0]["level"] != tt.wantLevel || recs[0]["detail"] != tt.wantDetail || recs[0]["msg"] != "redis driver" {
				t.Fatalf("logged %v, want one %s line with detail %q", recs, tt.wantLevel, tt.wantDetail)
			}
		})
	}
}
