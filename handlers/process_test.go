package handlers_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/internal/logtest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

// recorder is a queue.Handler that records the jobs it is given and fails
// the ones named in fail, once each.
type recorder struct {
	mu    sync.Mutex
	jobs  []queue.Job
	fail  map[string]bool
	calls chan queue.Job
}

func newRecorder(fail ...string) *recorder {
	r := &recorder{fail: map[string]bool{}, calls: make(chan queue.Job, 1000)}
	for _, id := range fail {
		r.fail[id] = true
	}
	return r
}

func (r *recorder) handle(_ context.Context, job queue.Job) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, job)
	r.calls <- job
	if r.fail[job.Message.ID] {
		delete(r.fail, job.Message.ID)
		return errors.New("pipeline unavailable")
	}
	return nil
}

func (r *recorder) handled() []queue.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]queue.Job(nil), r.jobs...)
}

// pushBody is the envelope Pub/Sub POSTs for a message whose data is data.
func pushBody(t *testing.T, data string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        data,
			"attributes":  map[string]string{queue.WamidAttribute: "wamid.A"},
			"messageId":   "17000000001",
			"publishTime": "2026-05-01T12:00:00.000Z",
			"orderingKey": "16505551234",
		},
		"subscription":    "projects/p/subscriptions/replies-push",
		"deliveryAttempt": 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodedJob(t *testing.T, job queue.Job) string {
	t.Helper()
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

var testJob = queue.Job{
	Message:       graphapi.Message{ID: "wamid.A", Type: "text", From: "16505551234"},
	PhoneNumberID: "106540352242922",
	Sender:        "16505551234",
	Trace:         "projects/test-project/traces/4bf92f3577b34da6a3ce929d0e0e4736",
}

// acceptAll is a PushVerifier that lets every request through.
type acceptAll struct{}

func (acceptAll) Verify(*http.Request) error { return nil }

func TestProcessDecodesPushes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       []byte
		wantStatus int
		wantJob    bool
		wantLog    string // a fragment of an ERROR line, when the message is dropped
	}{
		{"job", pushBody(t, encodedJob(t, testJob)), http.StatusNoContent, true, ""},
		{"bad base64", pushBody(t, "not base64!"), http.StatusNoContent, false, `"message_id":"17000000001"`},
		{"data not a job", pushBody(t, base64.StdEncoding.EncodeToString([]byte("[1,2"))), http.StatusNoContent, false, `decode job`},
		{"job without id", pushBody(t, base64.StdEncoding.EncodeToString([]byte(`{"sender":"x"}`))), http.StatusNoContent, false, `no message id`},
		{"envelope not JSON", []byte(`{"message":`), http.StatusNoContent, false, `decode push envelope`},
		{"oversize", append(pushBody(t, encodedJob(t, testJob)), bytes.Repeat([]byte(" "), handlers.MaxPushBytes)...), http.StatusRequestEntityTooLarge, false, `push body too large`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &logtest.Buffer{}
			rec := newRecorder()
			h := handlers.Process(handlers.ProcessDeps{
				Handle: rec.handle, Verifier: acceptAll{}, Logger: logging.New(logs, slog.LevelDebug),
			})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/process", bytes.NewReader(tt.body)))

			if w.Code != tt.wantStatus {
				t.Errorf("POST /process = %d, want %d", w.Code, tt.wantStatus)
			}
			jobs := rec.handled()
			if !tt.wantJob {
				if len(jobs) != 0 {
					t.Errorf("handler ran with %+v, want no call", jobs)
				}
				if line := logLine(logs.String(), tt.wantLog); !strings.Contains(line, `"severity":"ERROR"`) {
					t.Errorf("log line with %s = %q, want it at ERROR\nlogs:\n%s", tt.wantLog, line, logs)
				}
				return
			}
			if len(jobs) != 1 || jobs[0].Message.ID != testJob.Message.ID || jobs[0].Sender != testJob.Sender ||
				jobs[0].Trace != testJob.Trace {
				t.Fatalf("handler got %+v, want [%+v]", jobs, testJob)
			}
		})
	}
}

// logLine returns the first log line containing fragment, or "".
func logLine(logs, fragment string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, fragment) {
			return line
		}
	}
	return ""
}

func TestProcessAsksForRedeliveryWhenTheHandlerFails(t *testing.T) {
	t.Parallel()
	logs := &logtest.Buffer{}
	rec := newRecorder(testJob.Message.ID)
	h := handlers.Process(handlers.ProcessDeps{
		Handle: rec.handle, Verifier: acceptAll{}, Logger: logging.New(logs, slog.LevelDebug),
	})
	body := pushBody(t, encodedJob(t, testJob))
	for _, want := range []int{http.StatusInternalServerError, http.StatusNoContent} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/process", bytes.NewReader(body)))
		if w.Code != want {
			t.Errorf("POST /process = %d, want %d", w.Code, want)
		}
		if strings.Contains(w.Body.String(), "pipeline unavailable") {
			t.Errorf("response %q reveals the internal error", w.Body)
		}
	}
	if !strings.Contains(logLine(logs.String(), "redeliver"), "pipeline unavailable") {
		t.Errorf("logs = %s, want the handler's error logged", logs)
	}
}

func TestProcessWithoutVerifierRejects(t *testing.T) {
	t.Parallel()
	logs := &logtest.Buffer{}
	rec := newRecorder()
	h := handlers.Process(handlers.ProcessDeps{Handle: rec.handle, Logger: logging.New(logs, slog.LevelDebug)})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/process", bytes.NewReader(pushBody(t, encodedJob(t, testJob)))))
	if w.Code != http.StatusUnauthorized || len(rec.handled()) != 0 {
		t.Errorf("POST /process without a verifier = %d with %d jobs run, want 401 and none", w.Code, len(rec.handled()))
	}
	if !strings.Contains(logLine(logs.String(), "rejected"), `"severity":"ERROR"`) {
		t.Errorf("logs = %s, want the missing verifier logged as an error", logs)
	}
}

func TestProcessSkippingVerificationWarns(t *testing.T) {
	t.Parallel()
	logs := &logtest.Buffer{}
	rec := newRecorder()
	h := handlers.Process(handlers.ProcessDeps{
		Handle: rec.handle, InsecureSkipVerify: true, Logger: logging.New(logs, slog.LevelDebug),
	})
	if !strings.Contains(logLine(logs.String(), "unauthenticated"), `"severity":"WARNING"`) {
		t.Errorf("logs = %s, want a warning that pushes are not authenticated", logs)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/process", bytes.NewReader(pushBody(t, encodedJob(t, testJob)))))
	if w.Code != http.StatusNoContent || len(rec.handled()) != 1 {
		t.Errorf("POST /process without a token = %d with %d jobs run, want 204 and 1", w.Code, len(rec.handled()))
	}
}

func TestProcessRoute(t *testing.T) {
	t.Parallel()
	deps := handlers.Deps{
		AppSecret: secret, VerifyToken: verifyToken, Project: "test-project",
		Store: store.NewMemory(store.Options{}), Queue: nopQueue{}, Logger: logging.New(&logtest.Buffer{}, slog.LevelDebug),
	}
	body := pushBody(t, encodedJob(t, testJob))
	serve := func(h http.Handler, method string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/process", bytes.NewReader(body)))
		return w.Code
	}
	if got := serve(handlers.New(deps), http.MethodPost); got != http.StatusNotFound {
		t.Errorf("POST /process without a process handler = %d, want 404", got)
	}
	rec := newRecorder()
	deps.Process = handlers.Process(handlers.ProcessDeps{Handle: rec.handle, Verifier: acceptAll{}, Logger: deps.Logger})
	h := handlers.New(deps)
	if got := serve(h, http.MethodPost); got != http.StatusNoContent {
		t.Errorf("POST /process = %d, want 204", got)
	}
	if got := serve(h, http.MethodGet); got != http.StatusMethodNotAllowed {
		t.Errorf("GET /process = %d, want 405", got)
	}
	if len(rec.handled()) != 1 {
		t.Errorf("handler ran %d times, want 1", len(rec.handled()))
	}
}

type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, []queue.Job) error { return nil }

// googleCerts stands in for Google's certificate endpoint: it serves the
// public half of a local RSA key as a JWKS, and signs tokens with it.
type googleCerts struct {
	key    *rsa.PrivateKey
	client *http.Client
}

const certsKeyID = "test-key-1"

func newGoogleCerts(t *testing.T) *googleCerts {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kid": certsKeyID, "kty": "RSA", "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	// IAP's ES256 keys are served too, so that a test can show an ES256
	// token is refused before the validator reaches for them.
	iapJWKS := []byte(`{"keys":[{"kid":"iap-key","kty":"EC","alg":"ES256","crv":"P-256","use":"sig",` +
		`"x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/oauth2/v3/certs":
			w.Write(jwks)
		case "/iap/verify/public_key-jwk":
			w.Write(iapJWKS)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &googleCerts{key: key, client: &http.Client{Transport: redirectTo{target}}}
}

// redirectTo sends every request to the local server instead of the host it
// names, so the validator's fetch of www.googleapis.com stays on this machine.
type redirectTo struct{ target *url.URL }

func (rt redirectTo) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = rt.target.Scheme, rt.target.Host, ""
	return http.DefaultTransport.RoundTrip(r)
}

// sign returns an RS256 token with claims, signed by key under kid.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// es256Token is an unsigned ES256 token naming IAP's key, with a one-byte
// signature.
func es256Token(t *testing.T, claims map[string]any) string {
	t.Helper()
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT","kid":"iap-key"}`))
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return header + "." + base64.RawURLEncoding.EncodeToString(payload) + ".AA"
}

func TestProcessVerifiesPushTokens(t *testing.T) {
	t.Parallel()
	const (
		account  = "pubsub-push@test-project.iam.gserviceaccount.com"
		audience = "https://whatsapp-node.example.test/process"
	)
	certs := newGoogleCerts(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890",
			"email": account, "email_verified": true, "sub": "1234567890",
			"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		}
		if change != nil {
			change(c)
		}
		return c
	}
	valid := "Bearer " + sign(t, certs.key, certsKeyID, claims(nil))
	tests := []struct {
		name          string
		audience      string // configured; empty means the request's own URL
		url           string
		authorization string
		want          int
	}{
		{"valid", audience, "/process", valid, http.StatusNoContent},
		{"valid for the request's own URL", "", audience, valid, http.StatusNoContent},
		{"lower-case scheme", audience, "/process", "bearer " + strings.TrimPrefix(valid, "Bearer "), http.StatusNoContent},
		{"missing", audience, "/process", "", http.StatusUnauthorized},
		{"not a bearer token", audience, "/process", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"not a JWT", audience, "/process", "Bearer abc.def", http.StatusUnauthorized},
		{"wrong audience", "https://other.example.test/process", "/process", valid, http.StatusUnauthorized},
		{"another host's URL", "", "https://other.example.test/process", valid, http.StatusUnauthorized},
		{"wrong email", audience, "/process", "Bearer " + sign(t, certs.key, certsKeyID, claims(func(c map[string]any) {
			c["email"] = "someone@example.com"
		})), http.StatusUnauthorized},
		{"unverified email", audience, "/process", "Bearer " + sign(t, certs.key, certsKeyID, claims(func(c map[string]any) {
			c["email_verified"] = false
		})), http.StatusUnauthorized},
		{"not issued by Google", audience, "/process", "Bearer " + sign(t, certs.key, certsKeyID, claims(func(c map[string]any) {
			c["iss"] = "https://issuer.example.test"
		})), http.StatusUnauthorized},
		{"expired", audience, "/process", "Bearer " + sign(t, certs.key, certsKeyID, claims(func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		})), http.StatusUnauthorized},
		{"signed by another key", audience, "/process", "Bearer " + sign(t, otherKey, certsKeyID, claims(nil)), http.StatusUnauthorized},
		{"unknown key id", audience, "/process", "Bearer " + sign(t, certs.key, "other-key", claims(nil)), http.StatusUnauthorized},
		{"ES256 with a short signature", audience, "/process", "Bearer " + es256Token(t, claims(nil)), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			auth, err := queue.NewPushAuth(context.Background(), queue.PushAuthConfig{
				ServiceAccount: account,
				Audience:       tt.audience,
				Options:        []option.ClientOption{option.WithHTTPClient(certs.client)},
			})
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			h := handlers.Process(handlers.ProcessDeps{
				Handle: rec.handle, Verifier: auth, Logger: logging.New(&logtest.Buffer{}, slog.LevelDebug),
			})
			req := httptest.NewRequest(http.MethodPost, tt.url, bytes.NewReader(pushBody(t, encodedJob(t, testJob))))
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Errorf("POST /process = %d, want %d", w.Code, tt.want)
			}
			if ran := len(rec.handled()) > 0; ran != (tt.want == http.StatusNoContent) {
				t.Errorf("handler ran = %v, want %v", ran, !ran)
			}
		})
	}
}

func TestPushAuthNeedsTheServiceAccount(t *testing.T) {
	t.Parallel()
	_, err := queue.NewPushAuth(context.Background(), queue.PushAuthConfig{
		Audience: "https://whatsapp-node.example.test/process",
		Options:  []option.ClientOption{option.WithHTTPClient(&http.Client{Transport: redirectTo{&url.URL{Scheme: "http", Host: "127.0.0.1:9"}}})},
	})
	if err == nil {
		t.Error("NewPushAuth without a service account succeeded, want an error")
	}
}
