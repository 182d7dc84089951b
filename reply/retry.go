package reply

import (
	"context"
	"errors"
	"math/rand/v2"

	"github.com/patternai/whatsapp-node/media"
	"time"
)

// retry runs op until it succeeds, fails for good (transient says no), the
// retries run out, or ctx ends. Waits grow exponentially with jitter.
func retry[T any](ctx context.Context, r *run, what string, transient func(error) bool, op func(context.Context) (T, error)) (T, error) {
	wait := r.p.opts.RetryBackoff
	for attempt := 0; ; attempt++ {
		v, err := op(ctx)
		if err == nil || attempt >= r.p.opts.Retries || !transient(err) {
			return v, err
		}
		d := wait/2 + rand.N(wait)
		r.log.Warn("transient failure, retrying", "stage", what, "error", err, "retry_in_ms", d.Milliseconds())
		select {
		case <-ctx.Done():
			return v, errors.Join(err, ctx.Err())
		case <-time.After(d):
		}
		wait *= 2
	}
}

// isTransientStaging treats every staging failure but a missing object as
// worth another try: Cloud Storage's client already retries what it knows is
// safe, and a local folder rarely fails twice.
func isTransientStaging(err error) bool {
	return !errors.Is(err, media.ErrNotFound) && !errors.Is(err, context.Canceled)
}
