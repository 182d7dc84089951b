package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errTransient = errors.New("transient")

func TestDo(t *testing.T) {
	t.Parallel()
	transient := func(err error) bool { return errors.Is(err, errTransient) }
	permanent := errors.New("permanent")
	tests := []struct {
		name      string
		failures  []error // returned by the first calls, then success
		policy    Policy
		wantCalls int
		wantErr   error
	}{
		{"success at once", nil, Policy{}, 1, nil},
		{"transient then success", []error{errTransient, errTransient}, Policy{}, 3, nil},
		{"permanent is not retried", []error{permanent}, Policy{}, 1, permanent},
		{"no Retryable means no retry", []error{errTransient}, Policy{Retryable: func(error) bool { return false }}, 1, errTransient},
		{"attempts are bounded", []error{errTransient, errTransient, errTransient}, Policy{Attempts: 2}, 2, errTransient},
		{"elapsed time is bounded", []error{errTransient, errTransient}, Policy{Elapsed: time.Nanosecond}, 1, errTransient},
		{"a wait is at least MinWait", []error{errTransient}, Policy{MinWait: func(error) time.Duration { return 5 * time.Millisecond }}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.policy
			p.Initial = time.Microsecond
			if p.Retryable == nil {
				p.Retryable = transient
			}
			var waits []time.Duration
			p.OnRetry = func(_ int, _ error, wait time.Duration) { waits = append(waits, wait) }
			calls := 0
			_, err := Do(context.Background(), p, func(context.Context) (int, error) {
				calls++
				if calls <= len(tt.failures) {
					return 0, tt.failures[calls-1]
				}
				return calls, nil
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Do = %d calls, %v; want %d calls, %v", calls, err, tt.wantCalls, tt.wantErr)
			}
			if tt.policy.MinWait != nil && (len(waits) != 1 || waits[0] < 5*time.Millisecond) {
				t.Errorf("waits = %v, want one of at least 5ms", waits)
			}
		})
	}
}

// TestDoHonoursTheContext checks that no wait outlasts the context: one that
// would end after the deadline is not started, and a cancel ends a wait.
func TestDoHonoursTheContext(t *testing.T) {
	t.Parallel()
	p := Policy{Initial: time.Hour, Max: time.Hour, Elapsed: 24 * time.Hour,
		Retryable: func(error) bool { return true }}
	op := func(context.Context) (int, error) { return 0, errTransient }

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := Do(ctx, p, op); !errors.Is(err, errTransient) || time.Since(start) > time.Second {
		t.Errorf("Do with a deadline shorter than the wait = %v after %v; want the error at once", err, time.Since(start))
	}

	ctx, cancel = context.WithCancel(context.Background())
	p.OnRetry = func(int, error, time.Duration) { cancel() }
	if _, err := Do(ctx, p, op); !errors.Is(err, errTransient) || !errors.Is(err, context.Canceled) {
		t.Errorf("Do cancelled during its wait = %v, want the error and context.Canceled", err)
	}
}
