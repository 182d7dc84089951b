package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/queue"
)

func job(sender string, n int) queue.Job {
	return queue.Job{Sender: sender, Message: graphapi.Message{ID: fmt.Sprintf("wamid.%s.%d", sender, n)}}
}

func TestInProcessKeepsEachSendersOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string][]string{}
	q := queue.NewInProcess(func(_ context.Context, j queue.Job) error {
		mu.Lock()
		defer mu.Unlock()
		got[j.Sender] = append(got[j.Sender], j.Message.ID)
		return nil
	}, queue.InProcessOptions{Workers: 3})
	var jobs []queue.Job
	for n := range 50 {
		for _, s := range []string{"a", "b", "c", "d"} {
			jobs = append(jobs, job(s, n))
		}
	}
	if err := q.Enqueue(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c", "d"} {
		if len(got[s]) != 50 {
			t.Fatalf("sender %s: %d jobs handled, want 50", s, len(got[s]))
		}
		for n, id := range got[s] {
			if want := job(s, n).Message.ID; id != want {
				t.Fatalf("sender %s: job %d = %s, want %s", s, n, id, want)
			}
		}
	}
}

func TestInProcessIsBounded(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	q := queue.NewInProcess(func(context.Context, queue.Job) error { <-release; return nil },
		queue.InProcessOptions{Workers: 1, Capacity: 2})
	// One job is taken by the worker, two wait; the fourth has no room.
	err := q.Enqueue(context.Background(), []queue.Job{job("a", 0)})
	for i := 1; err == nil && i < 10; i++ {
		err = q.Enqueue(context.Background(), []queue.Job{job("a", i)})
	}
	if !errors.Is(err, queue.ErrFull) {
		t.Errorf("Enqueue beyond capacity = %v, want ErrFull", err)
	}
	close(release)
	q.Close(context.Background())
	if err := q.Enqueue(context.Background(), []queue.Job{job("a", 99)}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}
}

func TestInProcessRetriesThenGivesUpLoudly(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	attempts := map[string]int{}
	q := queue.NewInProcess(func(_ context.Context, j queue.Job) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[j.Message.ID]++
		if j.Sender == "flaky" && attempts[j.Message.ID] < 3 {
			return errors.New("transient")
		}
		if j.Sender == "broken" {
			return errors.New("always")
		}
		return nil
	}, queue.InProcessOptions{Workers: 2, MaxAttempts: 4, Backoff: time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	q.Enqueue(context.Background(), []queue.Job{job("flaky", 0), job("broken", 0)})
	q.Close(context.Background())
	if n := attempts[job("flaky", 0).Message.ID]; n != 3 {
		t.Errorf("flaky job tried %d times, want 3", n)
	}
	if n := attempts[job("broken", 0).Message.ID]; n != 4 {
		t.Errorf("broken job tried %d times, want 4 (MaxAttempts)", n)
	}
	if !bytes.Contains(logs.Bytes(), []byte("job dropped after its last attempt")) {
		t.Errorf("no error logged for the dropped job:\n%s", logs.String())
	}
}

func TestInProcessCloseWaitsForDrain(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	done := 0
	q := queue.NewInProcess(func(context.Context, queue.Job) error {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		done++
		mu.Unlock()
		return nil
	}, queue.InProcessOptions{Workers: 2})
	var jobs []queue.Job
	for n := range 20 {
		jobs = append(jobs, job(fmt.Sprint(n%5), n))
	}
	q.Enqueue(context.Background(), jobs)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if done != 20 {
		t.Errorf("Close returned with %d of 20 jobs done", done)
	}
}

func TestInProcessCloseHonoursDeadline(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	defer close(block)
	q := queue.NewInProcess(func(context.Context, queue.Job) error { <-block; return nil }, queue.InProcessOptions{Workers: 1})
	q.Enqueue(context.Background(), []queue.Job{job("a", 0)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a stuck job = %v, want DeadlineExceeded", err)
	}
}
