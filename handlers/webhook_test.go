package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/internal/logtest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

const (
	secret      = "test-app-secret"
	verifyToken = "test-verify-token"
)

// harness is the webhook wired to a real in-process queue whose handler
// records the jobs it is given.
type harness struct {
	handler http.Handler
	queue   *queue.InProcess
	logs    *logtest.Buffer

	mu   sync.Mutex
	jobs []queue.Job
}

func newHarness(t *testing.T, st handlers.Deduper) *harness {
	return newHarnessAt(t, st, slog.LevelDebug)
}

// newHarnessAt logs at level. Its queue's handler claims each job, as the
// reply pipeline would, when st is a whole store.
func newHarnessAt(t *testing.T, st handlers.Deduper, level slog.Level) *harness {
	t.Helper()
	h := &harness{logs: &logtest.Buffer{}}
	h.queue = queue.NewInProcess(func(ctx context.Context, job queue.Job) error {
		if s, ok := st.(store.Store); ok {
			s.Claim(ctx, job.Message.ID, time.Minute)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.jobs = append(h.jobs, job)
		return nil
	}, queue.InProcessOptions{Workers: 4})
	t.Cleanup(func() { h.queue.Close(context.Background()) })
	tags, err := store.NewTags(secret)
	if err != nil {
		t.Fatal(err)
	}
	h.handler = handlers.New(handlers.Deps{
		AppSecret:   secret,
		VerifyToken: verifyToken,
		Project:     "test-project",
		Store:       st,
		Queue:       h.queue,
		Logger:      logging.New(h.logs, level),
		IDs:         logging.NewIDs(secret),
		Tags:        tags,
	})
	return h
}

// handled waits until n jobs were handled (and so claimed) and returns them.
func (h *harness) handled(t *testing.T, n int) []queue.Job {
	t.Helper()
	for range 500 {
		h.mu.Lock()
		jobs := slices.Clone(h.jobs)
		h.mu.Unlock()
		if len(jobs) >= n {
			return jobs
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d jobs handled, want %d", len(h.jobs), n)
	return nil
}

// drained waits for every queued job to be handled and returns them.
func (h *harness) drained(t *testing.T) []queue.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.queue.Close(ctx); err != nil {
		t.Fatalf("drain queue: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.jobs
}

func (h *harness) post(t *testing.T, path string, body []byte, signature string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Cloud-Trace-Context", "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1")
	if signature != "" {
		req.Header.Set(graphapi.SignatureHeader, signature)
	}
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	return rec
}

func (h *harness) postSigned(t *testing.T, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	return h.post(t, "/", body, graphapi.ComputeSignature(body, secret))
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(store.Options{}))
	tests := []struct {
		name, query string
		want        int
		body        string
	}{
		{"good", "hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1158201444", 200, "1158201444"},
		{"bad token", "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444", 403, ""},
		{"token prefix", "hub.mode=subscribe&hub.verify_token=" + verifyToken[:5] + "&hub.challenge=1", 403, ""},
		{"no token", "hub.mode=subscribe&hub.challenge=1158201444", 403, ""},
		{"wrong mode", "hub.mode=unsubscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1", 403, ""},
	}
	for _, path := range []string{"/", "/webhook"} {
		for _, tt := range tests {
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path+"?"+tt.query, nil))
			if rec.Code != tt.want {
				t.Errorf("GET %s (%s) = %d, want %d", path, tt.name, rec.Code, tt.want)
			}
			if tt.want == 200 && rec.Body.String() != tt.body {
				t.Errorf("GET %s (%s) body = %q, want %q", path, tt.name, rec.Body.String(), tt.body)
			}
		}
	}
}

func TestHandshakeWithoutConfiguredToken(t *testing.T) {
	t.Parallel()
	handler := handlers.New(handlers.Deps{Store: store.NewMemory(store.Options{}), Logger: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?hub.mode=subscribe&hub.verify_token=&hub.challenge=1", nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("handshake with no configured token = %d, want 403", rec.Code)
	}
}

func TestSignatureChecked(t *testing.T) {
	t.Parallel()
	body := fixture(t, "text_unicode_escapes.json")
	tests := []struct {
		name, signature string
		want            int
	}{
		{"good", graphapi.ComputeSignature(body, secret), 200},
		{"missing", "", 401},
		{"wrong secret", graphapi.ComputeSignature(body, "not-the-secret"), 401},
		{"garbage", "sha256=deadbeef", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, store.NewMemory(store.Options{}))
			if rec := h.post(t, "/webhook", body, tt.signature); rec.Code != tt.want {
				t.Errorf("POST = %d, want %d", rec.Code, tt.want)
			}
			wantJobs := 0
			if tt.want == 200 {
				wantJobs = 1
			}
			if jobs := h.drained(t); len(jobs) != wantJobs {
				t.Errorf("queued %d jobs, want %d", len(jobs), wantJobs)
			}
		})
	}
}

func TestFixturesAccepted(t *testing.T) {
	t.Parallel()
	tests := map[string]int{ // fixture: messages queued
		"text.json": 1, "audio_voice.json": 1, "image.json": 1, "document.json": 1, "sticker.json": 1,
		"location.json": 1, "contacts.json": 1, "interactive_button_reply.json": 1,
		"interactive_list_reply.json": 1, "button.json": 1, "reaction.json": 1, "reaction_removed.json": 1,
		"unsupported.json": 1, "status_sent.json": 0, "status_delivered.json": 0, "status_read.json": 0,
		"status_failed.json": 0, "errors_only.json": 0, "batch.json": 5, "username_user.json": 1,
		"text_unicode_escapes.json": 1,
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "webhooks", "*.json"))
	if len(files) != len(tests) {
		t.Errorf("%d fixtures on disk, %d in the table: keep them in step", len(files), len(tests))
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, store.NewMemory(store.Options{}))
			if rec := h.postSigned(t, fixture(t, name)); rec.Code != http.StatusOK {
				t.Fatalf("POST %s = %d, want 200", name, rec.Code)
			}
			if jobs := h.drained(t); len(jobs) != want {
				t.Errorf("POST %s queued %d jobs, want %d", name, len(jobs), want)
			}
		})
	}
}

func TestBatchFanOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(store.Options{}))
	if rec := h.postSigned(t, fixture(t, "batch.json")); rec.Code != http.StatusOK {
		t.Fatalf("POST = %d, want 200", rec.Code)
	}
	type key struct{ phone, sender, typ, trace string }
	count := map[key]int{}
	var order []string // bodies of one sender on one number, in handling order
	for _, j := range h.drained(t) {
		count[key{j.PhoneNumberID, j.Sender, j.Message.Type, j.Trace}]++
		if j.Sender == "16505551234" && j.PhoneNumberID == "106540352242922" {
			order = append(order, j.Message.Text.Body)
		}
	}
	const trace = "projects/test-project/traces/4bf92f3577b34da6a3ce929d0e0e4736"
	want := map[key]int{
		{"106540352242922", "16505551234", "text", trace}:  2,
		{"106540352242922", "447700900123", "text", trace}: 1,
		{"106540352242923", "16505551234", "audio", trace}: 1,
		{"106540352242923", "16505551234", "text", trace}:  1,
	}
	if len(count) != len(want) {
		t.Errorf("jobs = %v, want %v", count, want)
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("jobs %+v = %d, want %d", k, count[k], n)
		}
	}
	if strings.Join(order, ",") != "first,second" {
		t.Errorf("one sender's messages handled in order %v, want [first second]", order)
	}
}

func TestPeerFixturesAccepted(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "peer", "pywa", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no peer fixtures (%v)", err)
	}
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cases map[string]json.RawMessage
		if err := json.Unmarshal(raw, &cases); err != nil {
			t.Fatal(err)
		}
		for name, body := range cases {
			n++
			// Message ids repeat across cases, so each gets a fresh store.
			h := newHarness(t, store.NewMemory(store.Options{}))
			if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
				t.Errorf("%s/%s: POST = %d, want 200", filepath.Base(f), name, rec.Code)
			}
		}
	}
	if n != 74 {
		t.Errorf("posted %d peer fixtures, want 74", n)
	}
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(store.Options{}))
	big := bytes.Repeat([]byte(" "), handlers.MaxBodyBytes+1)
	if rec := h.postSigned(t, big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of %d bytes = %d, want 413", len(big), rec.Code)
	}
	for _, body := range []string{`{"object":`, `[1,2]`, `{"entry":{}}`, "\x00"} {
		if rec := h.postSigned(t, []byte(body)); rec.Code != http.StatusBadRequest {
			t.Errorf("POST %q = %d, want 400", body, rec.Code)
		}
	}
	if jobs := h.drained(t); len(jobs) != 0 {
		t.Errorf("queued %d jobs from bad bodies", len(jobs))
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(store.Options{}))
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT / = %d, want 405", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/elsewhere", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /elsewhere = %d, want 404", rec.Code)
	}
}

// testConcurrentDuplicates posts one message ten times at once and expects
// exactly one job: the store's create-if-absent decides. The others are
// duplicates (200) once the job is claimed, and before that "accepted moments
// ago" (503, so Meta delivers them again and none can be lost).
func testConcurrentDuplicates(t *testing.T, st handlers.Deduper, body []byte) {
	t.Helper()
	h := newHarness(t, st)
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Go(func() { codes[i] = h.postSigned(t, body).Code })
	}
	wg.Wait()
	ok := 0
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("POST %d = %d, want 200 or 503", i, c)
		}
	}
	if ok == 0 {
		t.Errorf("no POST got 200: %v", codes)
	}
	if jobs := h.drained(t); len(jobs) != 1 {
		t.Errorf("ten identical POSTs queued %d jobs, want 1", len(jobs))
	}
}

func TestConcurrentDuplicatesMemory(t *testing.T) {
	t.Parallel()
	testConcurrentDuplicates(t, store.NewMemory(store.Options{}), fixture(t, "text.json"))
}

func TestRedeliveryAfterSuccessIsDuplicate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(store.Options{}))
	body := fixture(t, "audio_voice.json")
	for i := range 3 {
		if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
			t.Fatalf("delivery %d = %d, want 200", i, rec.Code)
		}
		h.handled(t, 1)
	}
	if jobs := h.drained(t); len(jobs) != 1 {
		t.Errorf("three deliveries queued %d jobs, want 1", len(jobs))
	}
	if !strings.Contains(h.logs.String(), `"duplicates":1`) {
		t.Errorf("webhook log does not count the duplicate:\n%s", h.logs.String())
	}
}

// failingStore is a store whose backend is down.
type failingStore struct{}

func (failingStore) Accept(context.Context, []string) ([]store.Admission, error) {
	return nil, errors.New("firestore: unavailable")
}
func (failingStore) Confirm(context.Context, string, string) error {
	return errors.New("firestore: unavailable")
}
func (failingStore) Release(context.Context, []string) error {
	return errors.New("firestore: unavailable")
}

func TestStoreFailureAsksForRetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, failingStore{})
	rec := h.postSigned(t, fixture(t, "text.json"))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("POST with the store down = %d, want 503", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "firestore") {
		t.Errorf("response leaks internal error text: %q", rec.Body.String())
	}
	if jobs := h.drained(t); len(jobs) != 0 {
		t.Errorf("queued %d jobs with the store down", len(jobs))
	}
	// Statuses never touch the store, so they are still acknowledged.
	h2 := newHarness(t, failingStore{})
	if rec := h2.postSigned(t, fixture(t, "status_failed.json")); rec.Code != http.StatusOK {
		t.Errorf("POST of a status with the store down = %d, want 200", rec.Code)
	}
}

func TestQueueFailureReleasesMarkers(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(store.Options{})
	h := newHarness(t, st)
	body := fixture(t, "text.json")
	h.queue.Close(context.Background()) // a closed queue refuses every job
	if rec := h.postSigned(t, body); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("POST with the queue closed = %d, want 503", rec.Code)
	}
	// Meta's redelivery must be taken as new, not dropped as a duplicate.
	h2 := newHarness(t, st)
	if rec := h2.postSigned(t, body); rec.Code != http.StatusOK {
		t.Fatalf("redelivery = %d, want 200", rec.Code)
	}
	if jobs := h2.drained(t); len(jobs) != 1 {
		t.Errorf("redelivery queued %d jobs, want 1", len(jobs))
	}
}

func TestLogsHideContentAndNumbers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory(store.Options{}))
	h.postSigned(t, fixture(t, "text.json"))
	h.postSigned(t, fixture(t, "status_failed.json"))
	h.drained(t)
	logs := h.logs.String()
	for _, secret := range []string{"Lisbon", "16505551234", "Ana Souza"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"severity":"INFO"`, `"message":"webhook"`, `"from":"…1234"`,
		`"logging.googleapis.com/trace":"projects/test-project/traces/4bf92f3577b34da6a3ce929d0e0e4736"`,
		`"codes":[131047]`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// TestStrandedMessageIsQueuedAgain: a message accepted but never queued
// (the process died between the two) is queued again by Meta's redelivery
// once the accept grace has passed, and answered 503 before, never taken for
// a duplicate.
func TestStrandedMessageIsQueuedAgain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st := store.NewMemory(store.Options{Now: clock})
	body := fixture(t, "text.json")
	p, _ := graphapi.ParsePayload(body)
	id := p.Entry[0].Changes[0].Value.Messages[0].ID
	if _, err := st.Accept(context.Background(), []string{id}); err != nil { // then the crash
		t.Fatal(err)
	}
	h := newHarness(t, st)
	if rec := h.postSigned(t, body); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("redelivery within the grace = %d, want 503", rec.Code)
	}
	mu.Lock()
	now = now.Add(store.DefaultAcceptGrace)
	mu.Unlock()
	if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
		t.Errorf("redelivery after the grace = %d, want 200", rec.Code)
	}
	if jobs := h.drained(t); len(jobs) != 1 {
		t.Errorf("queued %d jobs, want the stranded message once", len(jobs))
	}
}

// TestStatusWithOurTagConfirmsThePart: a status webhook echoing the tag of a
// reply part settles that part as sent, so a send whose answer was lost is
// not repeated.
func TestStatusWithOurTagConfirmsThePart(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(store.Options{})
	h := newHarness(t, st)
	const inbound = "wamid.inbound.1"
	m, err := st.Claim(context.Background(), inbound, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	st.StartSend(context.Background(), inbound, m.Attempts, "audio")
	tags, _ := store.NewTags(secret)
	status := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
		"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"2"},
		"statuses":[{"id":"wamid.out.1","status":"sent","timestamp":"1","recipient_id":"16505551234",
		"biz_opaque_callback_data":%q}]}}]}]}`, tags.Seal(inbound, "audio"))
	if rec := h.postSigned(t, []byte(status)); rec.Code != http.StatusOK {
		t.Fatalf("POST of the status = %d, want 200", rec.Code)
	}
	m, _ = st.Renew(context.Background(), inbound, m.Attempts, time.Minute)
	if _, uncertain := m.Uncertain("audio"); uncertain || !slices.Contains(m.Sent, "audio") {
		t.Errorf("after the status: sent %q, uncertain %v; want audio sent", m.Sent, uncertain)
	}
	if !strings.Contains(h.logs.String(), `"confirmed":1`) {
		t.Errorf("webhook log does not count the confirmation:\n%s", h.logs)
	}
}

// TestInfoLogsHashTheWamid: a wamid holds the sender's number, so above
// debug level only its keyed hash is logged.
func TestInfoLogsHashTheWamid(t *testing.T) {
	t.Parallel()
	h := newHarnessAt(t, store.NewMemory(store.Options{}), slog.LevelInfo)
	body := fixture(t, "text.json")
	h.postSigned(t, body)
	h.postSigned(t, fixture(t, "status_failed.json"))
	h.drained(t)
	p, _ := graphapi.ParsePayload(body)
	id := p.Entry[0].Changes[0].Value.Messages[0].ID
	logs := h.logs.String()
	if strings.Contains(logs, id) || strings.Contains(logs, "wamid.") {
		t.Errorf("info logs contain a raw wamid:\n%s", logs)
	}
	if hash := logging.NewIDs(secret).Of(id); !strings.Contains(logs, hash) {
		t.Errorf("info logs lack the message's hash %s:\n%s", hash, logs)
	}
}

// TestWebhookLine: each webhook logs one info line with what it carried, the
// counts that are not zero, and the hashes of the messages it queued.
func TestWebhookLine(t *testing.T) {
	t.Parallel()
	h := newHarnessAt(t, store.NewMemory(store.Options{}), slog.LevelInfo)
	msg := func(id string) string {
		return `{"from":"16505551234","id":"` + id + `","timestamp":"1764115200","type":"text","text":{"body":"hi"}}`
	}
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
		"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
		"messages":[` + msg("wamid.line.1") + `,` + msg("wamid.line.2") + `,` + msg("wamid.line.1") + `],
		"statuses":[{"id":"wamid.out.1","status":"read","timestamp":"1","recipient_id":"16505551234"}]}}]}]}`)
	if rec := h.postSigned(t, body); rec.Code != http.StatusOK {
		t.Fatalf("POST = %d", rec.Code)
	}
	h.postSigned(t, fixture(t, "status_failed.json"))
	h.drained(t)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if line["message"] == "webhook" {
			delete(line, "time")
			delete(line, logging.TraceKey)
			lines = append(lines, line)
		}
	}
	ids := logging.NewIDs(secret)
	want := []map[string]any{
		{"severity": "INFO", "message": "webhook", "messages": 3.0, "queued": 2.0, "duplicates": 1.0, "statuses": 1.0,
			"msgs": ids.Of("wamid.line.1") + " " + ids.Of("wamid.line.2")},
		{"severity": "INFO", "message": "webhook", "messages": 0.0, "queued": 0.0, "statuses": 1.0},
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("webhook lines\n%v\nwant\n%v", lines, want)
	}
}
