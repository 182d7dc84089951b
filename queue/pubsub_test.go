package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/queue/queuetest"
)

const testProject = "whatsapp-node-test"

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// uniqueName makes a topic or subscription id no other test or run uses,
// since the emulator outlives the tests.
func uniqueName(t *testing.T, kind string) string {
	t.Helper()
	return fmt.Sprintf("%s-%s-%d", kind, unsafeName.ReplaceAllString(t.Name(), "-"), time.Now().UnixNano())
}

func createTopic(t *testing.T, client *pubsub.Client) string {
	t.Helper()
	name := "projects/" + testProject + "/topics/" + uniqueName(t, "topic")
	if _, err := client.TopicAdminClient.CreateTopic(context.Background(), &pubsubpb.Topic{Name: name}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	return name
}

// createOrderedSubscription is a pull subscription with message ordering, as
// production's push subscription has.
func createOrderedSubscription(t *testing.T, client *pubsub.Client, topic string) string {
	t.Helper()
	name := "projects/" + testProject + "/subscriptions/" + uniqueName(t, "sub")
	_, err := client.SubscriptionAdminClient.CreateSubscription(context.Background(), &pubsubpb.Subscription{
		Name: name, Topic: topic, EnableMessageOrdering: true, AckDeadlineSeconds: 10,
	})
	if err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return name
}

func jobs(senders []string, perSender int) []queue.Job {
	var js []queue.Job
	for n := range perSender {
		for _, s := range senders {
			js = append(js, queue.Job{
				Message:       graphapi.Message{ID: fmt.Sprintf("wamid.%s.%d", s, n), Type: "text"},
				PhoneNumberID: "106540352242922",
				Sender:        s,
				Trace:         "projects/p/traces/t" + s,
			})
		}
	}
	return js
}

// receive pulls until want messages have arrived, acking each.
func receive(t *testing.T, client *pubsub.Client, sub string, want int) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []*pubsub.Message
	err := client.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == want {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != want {
		t.Fatalf("received %d messages in 30s, want %d", len(got), want)
	}
	return got
}

func TestPubSubPublishesJobsWithOrderingKeysAndAttributes(t *testing.T) {
	t.Parallel()
	client := queuetest.PubSub(t, testProject)
	topic := createTopic(t, client)
	sub := createOrderedSubscription(t, client, topic)
	q := queue.NewPubSub(client, topic)
	t.Cleanup(func() { q.Close(context.Background()) })

	senders := []string{"16505551234", "447700900123", "bsuid.ABC"}
	sent := jobs(senders, 20)
	if err := q.Enqueue(context.Background(), sent); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}

	want := make(map[string]queue.Job, len(sent))
	for _, j := range sent {
		want[j.Message.ID] = j
	}
	order := map[string][]string{}
	for _, m := range receive(t, client, sub, len(sent)) {
		var j queue.Job
		if err := json.Unmarshal(m.Data, &j); err != nil {
			t.Fatalf("message %s data: %v", m.ID, err)
		}
		w, ok := want[j.Message.ID]
		if !ok {
			t.Fatalf("received unknown or repeated job %s", j.Message.ID)
		}
		delete(want, j.Message.ID)
		if j.Sender != w.Sender || j.Trace != w.Trace || j.PhoneNumberID != w.PhoneNumberID {
			t.Errorf("job %s = %+v, want %+v", j.Message.ID, j, w)
		}
		if m.OrderingKey != j.Sender {
			t.Errorf("job %s ordering key = %q, want the sender %q", j.Message.ID, m.OrderingKey, j.Sender)
		}
		if got := m.Attributes[queue.WamidAttribute]; got != j.Message.ID {
			t.Errorf("job %s attribute %s = %q, want the wamid", j.Message.ID, queue.WamidAttribute, got)
		}
		order[j.Sender] = append(order[j.Sender], j.Message.ID)
	}
	for _, s := range senders {
		for n, id := range order[s] {
			if w := fmt.Sprintf("wamid.%s.%d", s, n); id != w {
				t.Fatalf("sender %s: message %d = %s, want %s (order %v)", s, n, id, w, order[s])
			}
		}
	}
}

// TestPubSubBatchesALargeNotification checks that 1000 jobs are sent in
// batches, not one Publish call each.
func TestPubSubBatchesALargeNotification(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/Publish") {
			calls.Add(1)
		}
		return invoke(ctx, method, req, reply, cc, opts...)
	}
	client := queuetest.PubSub(t, testProject, option.WithGRPCDialOption(grpc.WithUnaryInterceptor(count)))
	topic := createTopic(t, client)
	q := queue.NewPubSub(client, topic)
	t.Cleanup(func() { q.Close(context.Background()) })

	senders := make([]string, 10)
	for i := range senders {
		senders[i] = fmt.Sprintf("1650555%04d", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, jobs(senders, 100)); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	// Each ordering key is its own batch stream of at most 100 messages, so
	// 10 senders need at least 10 calls; one call per job would be 1000.
	if n := calls.Load(); n < 10 || n > 100 {
		t.Errorf("1000 jobs from 10 senders took %d Publish calls, want 10..100", n)
	}
}

// TestPubSubResumesASendersKeyAfterAFailure publishes to a topic that does
// not exist yet, which pauses the sender's ordering key, then to the created
// topic: the sender's next notification must go through.
func TestPubSubResumesASendersKeyAfterAFailure(t *testing.T) {
	t.Parallel()
	client := queuetest.PubSub(t, testProject)
	topic := "projects/" + testProject + "/topics/" + uniqueName(t, "topic")
	q := queue.NewPubSub(client, topic)
	t.Cleanup(func() { q.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := q.Enqueue(ctx, jobs([]string{"16505551234"}, 3)); err == nil {
		t.Fatal("Enqueue to a missing topic succeeded, want an error")
	} else if !strings.Contains(err.Error(), "publish 3 of 3 jobs") {
		t.Errorf("Enqueue to a missing topic = %v, want it to count 3 failed jobs", err)
	}

	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	sub := createOrderedSubscription(t, client, topic)
	if err := q.Enqueue(ctx, jobs([]string{"16505551234"}, 2)); err != nil {
		t.Fatalf("Enqueue after the topic exists: %v", err)
	}
	receive(t, client, sub, 2)
}

func TestPubSubRefusesAfterClose(t *testing.T) {
	t.Parallel()
	client := queuetest.PubSub(t, testProject)
	q := queue.NewPubSub(client, createTopic(t, client))
	if err := q.Enqueue(context.Background(), jobs([]string{"a-sender"}, 1)); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Enqueue(context.Background(), jobs([]string{"a-sender"}, 1)); err == nil {
		t.Error("Enqueue after Close succeeded, want an error")
	}
}

func TestPubSubEnqueueNothing(t *testing.T) {
	t.Parallel()
	client := queuetest.PubSub(t, testProject)
	q := queue.NewPubSub(client, createTopic(t, client))
	t.Cleanup(func() { q.Close(context.Background()) })
	if err := q.Enqueue(context.Background(), nil); err != nil {
		t.Errorf("Enqueue(nil) = %v, want nil", err)
	}
}
