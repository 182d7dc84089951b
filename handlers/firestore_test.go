package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
	"github.com/patternai/whatsapp-node/store/storetest"
)

// withFreshIDs rewrites the wamids of a body so that runs against a shared
// emulator never see each other's markers.
func withFreshIDs(body []byte) []byte {
	return bytes.ReplaceAll(body, []byte(`"id": "wamid.`), fmt.Appendf(nil, `"id": "wamid.%d.`, time.Now().UnixNano()))
}

func TestConcurrentDuplicatesFirestore(t *testing.T) {
	t.Parallel()
	testConcurrentDuplicates(t, storetest.Firestore(t, store.Options{}), withFreshIDs(fixture(t, "text.json")))
}

// batchWebhook is one webhook of n text messages from 50 senders, about 3 KB
// each, like the largest batches Meta sends.
func batchWebhook(n int, tag string) []byte {
	var b strings.Builder
	b.WriteString(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"messages":[`)
	text := strings.Repeat("Could you tell me more about the opening hours? ", 60)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"from":"16505550%03d","id":"wamid.batch.%s.%d","timestamp":"1764115200","type":"text","text":{"body":%q}}`, i%50, tag, i, text)
	}
	b.WriteString(`]}}]}]}`)
	return []byte(b.String())
}

func TestBatchOfThousandFirestore(t *testing.T) {
	t.Parallel()
	st := storetest.Firestore(t, store.Options{})
	h := newHarness(t, st)
	body := batchWebhook(1000, fmt.Sprint(time.Now().UnixNano()))
	if len(body) < 2<<20 {
		t.Fatalf("batch is %d bytes, want about 3 MB", len(body))
	}
	if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
		t.Fatalf("POST of 1000 messages = %d, want 200", rec.Code)
	}
	h.handled(t, 1000) // and so claimed, as the pipeline would
	if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
		t.Fatalf("redelivery of 1000 messages = %d, want 200", rec.Code)
	}
	if jobs := h.drained(t); len(jobs) != 1000 {
		t.Errorf("two deliveries of 1000 messages queued %d jobs, want 1000", len(jobs))
	}
}

// BenchmarkBatchOfThousand measures the acknowledgement of one webhook of
// 1000 messages (about 3 MB): signature, parse, dedupe and enqueue, with the
// memory store and with the Firestore emulator.
func BenchmarkBatchOfThousand(b *testing.B) {
	for _, backend := range []string{"memory", "firestore"} {
		b.Run(backend, func(b *testing.B) {
			var st handlers.Deduper = store.NewMemory(store.Options{})
			if backend == "firestore" {
				st = storetest.Firestore(b, store.Options{})
			}
			q := queue.NewInProcess(func(context.Context, queue.Job) error { return nil },
				queue.InProcessOptions{Workers: 8, Capacity: 1 << 12})
			defer q.Close(context.Background())
			h := handlers.New(handlers.Deps{AppSecret: secret, VerifyToken: verifyToken, Project: "p",
				Store: st, Queue: q, Logger: logging.New(discard{}, slog.LevelInfo)})
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = batchWebhook(1000, fmt.Sprint(time.Now().UnixNano(), "-", i))
			}
			b.SetBytes(int64(len(bodies[0])))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(bodies[i]))
				req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(bodies[i], secret))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("POST = %d", rec.Code)
				}
			}
		})
	}
}

// hangUpQueue fails every Enqueue the way a request that ended fails it:
// Meta hung up, or the publish ran past the deadline.
type hangUpQueue struct{ cancel context.CancelFunc }

func (q hangUpQueue) Enqueue(ctx context.Context, _ []queue.Job) error {
	q.cancel()
	return ctx.Err()
}

// TestReleaseOutlivesTheRequest: when queueing fails because the request
// itself ended, the markers are still released (with a context of their
// own), so Meta's redelivery is queued rather than dropped as a duplicate.
func TestReleaseOutlivesTheRequest(t *testing.T) {
	t.Parallel()
	st := storetest.Firestore(t, store.Options{})
	body := withFreshIDs(fixture(t, "text.json"))
	ctx, cancel := context.WithCancel(context.Background())
	tags, _ := store.NewTags(secret)
	hung := handlers.New(handlers.Deps{AppSecret: secret, VerifyToken: verifyToken, Store: st,
		Queue: hangUpQueue{cancel}, Logger: slog.New(slog.DiscardHandler), Tags: tags})
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(body, secret))
	rec := httptest.NewRecorder()
	hung.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("POST whose request ended while queueing = %d, want 503", rec.Code)
	}
	h := newHarness(t, st)
	if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
		t.Fatalf("redelivery = %d, want 200", rec.Code)
	}
	if jobs := h.drained(t); len(jobs) != 1 {
		t.Errorf("redelivery queued %d jobs, want 1", len(jobs))
	}
}
