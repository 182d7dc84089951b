package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/internal/logtest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/queue/queuetest"
	"github.com/patternai/whatsapp-node/store"
)

const emulatorProject = "whatsapp-node-test"

// notification is a signed-webhook body with perSender text messages from
// each sender, interleaved, in one change, as Meta batches them.
func notification(t *testing.T, senders []string, perSender int) []byte {
	t.Helper()
	var contacts []map[string]any
	for _, s := range senders {
		contacts = append(contacts, map[string]any{"wa_id": s, "profile": map[string]string{"name": "User " + s}})
	}
	var messages []graphapi.Message
	for n := range perSender {
		for _, s := range senders {
			m := graphapi.Message{From: s, ID: wamid(s, n), Timestamp: "1764115200", Type: "text"}
			m.Text = &graphapi.Text{Body: fmt.Sprintf("message %d", n)}
			messages = append(messages, m)
		}
	}
	body, err := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": "102290129340398", "changes": []any{map[string]any{
			"field": "messages",
			"value": map[string]any{
				"messaging_product": "whatsapp",
				"metadata":          map[string]string{"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
				"contacts":          contacts,
				"messages":          messages,
			},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func wamid(sender string, n int) string { return fmt.Sprintf("wamid.e2e.%s.%d", sender, n) }

// TestPubSubEndToEnd runs production's path on this machine: a signed webhook
// is deduped and published to the emulator, whose ordered push subscription
// calls /process on the same server, which runs the handler. One job fails
// once, and must come back before its sender's later jobs.
func TestPubSubEndToEnd(t *testing.T) {
	t.Parallel()
	client := queuetest.PubSub(t, emulatorProject)
	ctx := context.Background()
	suffix := time.Now().UnixNano()
	topic := fmt.Sprintf("projects/%s/topics/replies-%d", emulatorProject, suffix)
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	senders := []string{"16505551234", "447700900123", "5511987654321"}
	const perSender = 5
	failing := wamid(senders[0], 1)
	rec := newRecorder(failing)
	logger := logging.New(&logtest.Buffer{}, slog.LevelDebug)
	q := queue.NewPubSub(client, topic)
	t.Cleanup(func() { q.Close(context.Background()) })
	srv := httptest.NewServer(handlers.New(handlers.Deps{
		AppSecret: secret, VerifyToken: verifyToken, Project: "test-project",
		Store: store.NewMemory(store.Options{}), Queue: q, Logger: logger,
		// The emulator sends no OIDC token.
		Process: handlers.Process(handlers.ProcessDeps{Handle: rec.handle, InsecureSkipVerify: true, Logger: logger}),
	}))
	t.Cleanup(srv.Close)

	sub := fmt.Sprintf("projects/%s/subscriptions/replies-push-%d", emulatorProject, suffix)
	_, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  sub,
		Topic:                 topic,
		PushConfig:            &pubsubpb.PushConfig{PushEndpoint: srv.URL + "/process"},
		EnableMessageOrdering: true,
		AckDeadlineSeconds:    10,
		RetryPolicy: &pubsubpb.RetryPolicy{
			MinimumBackoff: durationpb.New(time.Second),
			MaximumBackoff: durationpb.New(2 * time.Second),
		},
	})
	if err != nil {
		t.Fatalf("create push subscription: %v", err)
	}
	t.Cleanup(func() {
		client.SubscriptionAdminClient.DeleteSubscription(context.Background(), &pubsubpb.DeleteSubscriptionRequest{Subscription: sub})
	})

	body := notification(t, senders, perSender)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(body, secret))
	req.Header.Set("X-Cloud-Trace-Context", "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /webhook = %d, want 200", resp.StatusCode)
	}

	// Every job once, plus the failed one again.
	want := len(senders)*perSender + 1
	deadline := time.After(60 * time.Second)
	for range want {
		select {
		case <-rec.calls:
		case <-deadline:
			t.Fatalf("%d handler calls in 60s, want %d: %v", len(rec.handled()), want, ids(rec.handled()))
		}
	}

	attempts := map[string]int{}
	succeeded := map[string][]string{} // per sender, in handling order
	for _, j := range rec.handled() {
		attempts[j.Message.ID]++
		if j.Trace != "projects/test-project/traces/4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("job %s trace = %q, want the webhook's", j.Message.ID, j.Trace)
		}
		if attempts[j.Message.ID] == 1 && j.Message.ID == failing {
			continue
		}
		if !slices.Contains(succeeded[j.Sender], j.Message.ID) {
			succeeded[j.Sender] = append(succeeded[j.Sender], j.Message.ID)
		}
	}
	if attempts[failing] < 2 {
		t.Errorf("failed job %s handled %d times, want it redelivered", failing, attempts[failing])
	}
	for _, s := range senders {
		var inOrder []string
		for n := range perSender {
			inOrder = append(inOrder, wamid(s, n))
		}
		if !slices.Equal(succeeded[s], inOrder) {
			t.Errorf("sender %s's jobs done in order %v, want %v", s, succeeded[s], inOrder)
		}
	}
}

func ids(jobs []queue.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Message.ID
	}
	return out
}
