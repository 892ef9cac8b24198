package proto

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket shared by every connection of a server. A caller takes the tokens it
// needs at once, possibly running the bucket into debt, and sleeps until the debt is repaid; so
// large and small takers are served in order at the configured rate.
type limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens (bytes) per second
	burst  float64
	tokens float64
	last   time.Time
}

// newLimiter returns a limiter of rate bytes per second, or nil (no limit) for rate <= 0.
func newLimiter(rate int64) *limiter {
	if rate <= 0 {
		return nil
	}
	burst := max(float64(rate)/10, maxDataFrame)
	return &limiter{rate: float64(rate), burst: burst, tokens: burst, last: time.Now()}
}

// wait takes n tokens and sleeps until the bucket is out of debt or ctx is done.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
