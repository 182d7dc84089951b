// Package retry is the service's one retry policy. Every call that is retried
// is retried here, by exactly one layer: the Graph API client for sends Meta
// certainly did not take, the reply pipeline for the model and speech, and
// the in-process queue for whole jobs (as Pub/Sub redelivers them in
// production). The Google clients' own retries are switched off where the
// pipeline retries (speech), and left on where nothing above them retries
// (Cloud Storage, Firestore).
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy bounds the tries of one call. The zero value takes the defaults.
type Policy struct {
	// Attempts is how many tries at most, the first included (default 4).
	Attempts int
	// Initial is the first wait (default 500 ms); each later one doubles, up
	// to Max (default 30 s). The upper half of each wait is drawn at random,
	// so that callers hit by the same outage do not come back in step, while
	// the lower half keeps a wait long enough to matter.
	Initial, Max time.Duration
	// Elapsed is the time after which no new try starts (default 1 min).
	Elapsed time.Duration
	// Retryable says whether err is worth another try; nil means never.
	Retryable func(error) bool
	// MinWait, when set, gives the least wait err calls for (a rate limit
	// that names its own pace).
	MinWait func(error) time.Duration
	// OnRetry, when set, is told of each retry before its wait.
	OnRetry func(attempt int, err error, wait time.Duration)
}

func (p Policy) withDefaults() Policy {
	if p.Attempts <= 0 {
		p.Attempts = 4
	}
	if p.Initial <= 0 {
		p.Initial = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Second
	}
	if p.Elapsed <= 0 {
		p.Elapsed = time.Minute
	}
	return p
}

// Do calls op until it succeeds, fails for good, or the attempts, the elapsed
// time or ctx run out, and returns op's last result. A wait that would end
// after ctx's deadline is not started: it could only end in failure.
func Do[T any](ctx context.Context, p Policy, op func(context.Context) (T, error)) (T, error) {
	p = p.withDefaults()
	ceiling := p.Initial
	start := time.Now()
	for attempt := 1; ; attempt++ {
		v, err := op(ctx)
		if err == nil || attempt >= p.Attempts || p.Retryable == nil || !p.Retryable(err) || ctx.Err() != nil {
			return v, err
		}
		wait := ceiling/2 + rand.N(ceiling/2+1)
		ceiling = min(2*ceiling, p.Max)
		if p.MinWait != nil {
			wait = max(wait, p.MinWait(err))
		}
		if time.Since(start)+wait > p.Elapsed {
			return v, err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return v, err
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, err, wait)
		}
		if Sleep(ctx, wait) != nil {
			return v, errors.Join(err, ctx.Err())
		}
	}
}

// Sleep waits for d or until ctx ends, whichever is first, and returns ctx's
// error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
