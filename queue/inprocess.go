package queue

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/retry"
)

// Errors from InProcess.Enqueue. Both mean "try again later": the webhook
// answers 503 and Meta redelivers.
var (
	ErrFull   = errors.New("queue full")
	ErrClosed = errors.New("queue closed")
)

// InProcessOptions size the in-process queue.
type InProcessOptions struct {
	// Workers is the number of goroutines. Each owns the senders that hash to
	// it, so one sender's messages are handled one at a time, in order.
	Workers int
	// Capacity is how many jobs may wait per worker before Enqueue refuses.
	Capacity int
	// MaxAttempts bounds how often a failing job is tried; Backoff is the
	// wait before the second try, doubled after each further failure.
	MaxAttempts int
	Backoff     time.Duration
	Logger      *slog.Logger
	// IDs hashes message ids for logs above debug level.
	IDs logging.IDs
}

// InProcess is the embedded queue for local runs: a bounded pool of workers
// in this process. Jobs do not survive a restart, which is why production
// uses Pub/Sub.
type InProcess struct {
	handle Handler
	opts   InProcessOptions
	shards []chan Job
	wg     sync.WaitGroup

	mu     sync.RWMutex // guards closed against sends on closed channels
	closed bool
}

// NewInProcess starts the workers.
func NewInProcess(h Handler, opts InProcessOptions) *InProcess {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Capacity <= 0 {
		opts.Capacity = 1024
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	q := &InProcess{handle: h, opts: opts, shards: make([]chan Job, opts.Workers)}
	for i := range q.shards {
		q.shards[i] = make(chan Job, opts.Capacity)
		q.wg.Go(func() { q.work(q.shards[i]) })
	}
	return q
}

// Enqueue hands jobs to their senders' workers without waiting: a full
// worker is refused at once (ErrFull) so the webhook can answer 503 fast.
// Jobs before the refused one stay queued; the reply pipeline's claim makes
// their redelivery harmless.
func (q *InProcess) Enqueue(ctx context.Context, jobs []Job) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	for _, job := range jobs {
		select {
		case q.shards[q.shard(job.Sender)] <- job:
		default:
			return ErrFull
		}
	}
	return nil
}

func (q *InProcess) shard(sender string) int {
	h := fnv.New32a()
	h.Write([]byte(sender))
	return int(h.Sum32() % uint32(len(q.shards)))
}

func (q *InProcess) work(jobs <-chan Job) {
	for job := range jobs {
		q.run(job)
	}
}

// run tries one job up to MaxAttempts times, as Pub/Sub redelivers a job in
// production, waiting between tries in the worker itself so that the
// sender's later messages stay behind it.
func (q *InProcess) run(job Job) {
	// The job's logger is only built for a failure: most jobs log nothing
	// here, and its hash and attributes cost the intake's two cores.
	log := func() *slog.Logger {
		return logging.With(q.opts.Logger, job.Trace).With(q.opts.IDs.Attr(job.Message.ID))
	}
	_, err := retry.Do(context.Background(), retry.Policy{
		Attempts:  q.opts.MaxAttempts,
		Initial:   q.opts.Backoff,
		Max:       time.Minute,
		Elapsed:   time.Hour,
		Retryable: func(error) bool { return true },
		OnRetry: func(attempt int, err error, wait time.Duration) {
			log().Warn("job failed, will retry", "attempt", attempt, "error", err, "retry_in", wait.String())
		},
	}, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, q.handle(ctx, job)
	})
	if err != nil {
		log().Error("job dropped after its last attempt", "error", err)
	}
}

// Close stops taking jobs and waits until the queued ones are done or ctx
// ends, for a graceful drain on SIGTERM.
func (q *InProcess) Close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		for _, ch := range q.shards {
			close(ch)
		}
	}
	q.mu.Unlock()

	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
