package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
)

// WamidAttribute is the Pub/Sub message attribute that carries the job's
// WhatsApp message id, so a message can be found in the console or the
// dead-letter topic without decoding its data.
const WamidAttribute = "wamid"

// PubSub is the production queue: it publishes each job to a Pub/Sub topic
// whose push subscription calls the service back at /process. Jobs survive
// restarts, and the reply runs in a request of its own, which matters because
// Cloud Run throttles the CPU once a response is sent.
type PubSub struct {
	publisher *pubsub.Publisher
}

// DefaultTopic is the topic NewPubSub publishes to when given none; deploy.sh
// creates it.
const DefaultTopic = "whatsapp-replies"

// NewPubSub publishes to topic (an id, or "projects/P/topics/T"; empty means
// DefaultTopic) through client, which the caller creates and closes. Each job's ordering key is its
// sender, so a subscription with message ordering enabled delivers one user's
// messages in the order they were queued.
func NewPubSub(client *pubsub.Client, topic string) *PubSub {
	if topic == "" {
		topic = DefaultTopic
	}
	p := client.Publisher(topic)
	p.EnableMessageOrdering = true
	return &PubSub{publisher: p}
}

// Enqueue publishes jobs and returns once the server has accepted every one
// of them, or with an error naming how many it did not accept. The publisher
// batches the messages, so a large notification costs a few round trips, not
// one per job. ctx bounds only the wait: a message still in flight when ctx
// ends may be published anyway, and the reply pipeline's claim makes that
// later duplicate harmless.
func (q *PubSub) Enqueue(ctx context.Context, jobs []Job) error {
	results := make([]*pubsub.PublishResult, len(jobs))
	for i, job := range jobs {
		data, err := json.Marshal(job)
		if err != nil {
			return fmt.Errorf("encode job %s: %w", job.Message.ID, err)
		}
		results[i] = q.publisher.Publish(ctx, &pubsub.Message{
			Data:        data,
			Attributes:  map[string]string{WamidAttribute: job.Message.ID},
			OrderingKey: job.Sender,
		})
	}

	var failed int
	var first error
	paused := make(map[string]bool)
	for i, r := range results {
		if _, err := r.Get(ctx); err != nil {
			failed++
			if first == nil {
				first = err
			}
			paused[jobs[i].Sender] = true
		}
	}
	// A failed publish pauses its ordering key so that nothing published
	// after it can overtake it. The webhook answers 503 and Meta redelivers
	// the whole notification, so the key must take messages again, or that
	// sender would stay unanswerable until the instance restarts.
	for key := range paused {
		q.publisher.ResumePublish(key)
	}
	if first != nil {
		return fmt.Errorf("publish %d of %d jobs: %w", failed, len(jobs), first)
	}
	return nil
}

// Close publishes what is still batched and stops the publisher, or gives up
// when ctx ends. It leaves the client open for its owner to close.
func (q *PubSub) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		q.publisher.Stop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close pubsub publisher: %w", ctx.Err())
	}
}
