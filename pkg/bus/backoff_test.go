package bus

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		want time.Duration
	}{
		{name: "first attempt", n: 1, want: 100 * time.Millisecond},
		{name: "zero attempt counts as first", n: 0, want: 100 * time.Millisecond},
		{name: "doubles", n: 3, want: 400 * time.Millisecond},
		{name: "capped", n: 7, want: time.Second},
		{name: "huge attempt stays capped", n: 1 << 30, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff(100*time.Millisecond, time.Second, tt.n); got != tt.want {
				t.Errorf("backoff(n=%d) = %s, want %s", tt.n, got, tt.want)
			}
		})
	}
}

func TestJittered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		u    float64
		want time.Duration
	}{
		{name: "low end", u: 0, want: 800 * time.Millisecond},
		{name: "middle", u: 0.5, want: time.Second},
		{name: "high end", u: 0.999, want: 1199600 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jittered(time.Second, tt.u); got != tt.want {
				t.Errorf("jittered(1s, %v) = %s, want %s", tt.u, got, tt.want)
			}
		})
	}
}
