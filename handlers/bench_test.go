package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

// textWebhook is a one-message webhook with a wamid unique to n.
func textWebhook(n int) []byte {
	return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.bench.%d","timestamp":"1764115200","type":"text","text":{"body":"What's the weather like in Lisbon tomorrow?"}}]}}]}]}`, n)
}

// BenchmarkWebhookPost measures the POST path: signature, parse, memory
// dedupe and enqueue, with a new wamid on every request and info-level JSON
// logs written (to io.Discard), as in production.
func BenchmarkWebhookPost(b *testing.B) {
	tags, err := store.NewTags(secret)
	if err != nil {
		b.Fatal(err)
	}
	q := queue.NewInProcess(func(context.Context, queue.Job) error { return nil },
		queue.InProcessOptions{Workers: 8, Capacity: 1 << 16})
	defer q.Close(context.Background())
	h := handlers.New(handlers.Deps{
		AppSecret: secret, VerifyToken: verifyToken, Project: "p",
		Store: store.NewMemory(store.Options{}), Queue: q,
		Logger: logging.New(discard{}, slog.LevelInfo), IDs: logging.NewIDs(secret), Tags: tags,
	})
	bodies := make([][]byte, b.N)
	sigs := make([]string, b.N)
	for i := range bodies {
		bodies[i] = textWebhook(i)
		sigs[i] = graphapi.ComputeSignature(bodies[i], secret)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(bodies[i]))
		req.Header.Set(graphapi.SignatureHeader, sigs[i])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("POST = %d", rec.Code)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
