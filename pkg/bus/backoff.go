package bus

import "time"

// Delays between attempts.
const (
	reconnectBase = 100 * time.Millisecond
	reconnectMax  = 5 * time.Second
	retryBase     = 250 * time.Millisecond // consumer (re)creation after a failure
	retryMax      = 10 * time.Second
	nakMax        = 10 * time.Second // longest redelivery delay after a handler error
)

// backoff is the delay before attempt n (from 1): base, doubled per attempt,
// at most max.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// jittered spreads d over ±20 %, u being uniform in [0, 1), so that many
// clients losing the same server do not come back in step.
func jittered(d time.Duration, u float64) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*u))
}
