package gemini_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
)

// wireRequest is the generateContent body as Vertex receives it, with the
// JSON field names of the REST API.
type wireRequest struct {
	SystemInstruction struct {
		Parts []wirePart `json:"parts"`
	} `json:"systemInstruction"`
	Contents []struct {
		Role  string     `json:"role"`
		Parts []wirePart `json:"parts"`
	} `json:"contents"`
}

type wirePart struct {
	Text       string `json:"text"`
	InlineData *struct {
		MIMEType string `json:"mimeType"`
		Data     string `json:"data"`
	} `json:"inlineData"`
}

// vertex is a stand-in Vertex AI endpoint that records the requests and
// answers each with the same status and body.
type vertex struct {
	*httptest.Server
	status int
	body   []byte

	mu    sync.Mutex
	paths []string
	reqs  [][]byte
}

func newVertex(t *testing.T, status int, fixture string) *vertex {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	v := &vertex{status: status, body: body}
	v.Server = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.Close)
	return v
}

func (v *vertex) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	v.mu.Lock()
	v.paths = append(v.paths, r.Method+" "+r.URL.Path)
	v.reqs = append(v.reqs, b)
	v.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(v.status)
	w.Write(v.body)
}

func newClient(t *testing.T, url string, cfg gemini.Config) *gemini.Client {
	t.Helper()
	cfg.HTTPClient = http.DefaultClient
	cfg.BaseURL = url
	if cfg.Project == "" {
		cfg.Project = "proj-1"
	}
	c, err := gemini.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestGenerateRequest(t *testing.T) {
	t.Parallel()
	v := newVertex(t, http.StatusOK, "answer.json")
	c := newClient(t, v.URL, gemini.Config{
		Project:      "proj-1",
		Location:     "europe-west4",
		Model:        "gemini-3.5-flash-lite",
		SystemPrompt: "Be brief.",
	})
	photo := []byte("\x89PNG\r\n\x1a\n fake image")
	history := []gemini.Turn{
		{Role: "user", Text: "Hallo, wann öffnet das Museum?"},
		{Role: "model", Text: ""},
		{Role: "model", Text: "Um neun Uhr."},
		{Role: "user", Text: "Und wann schließt es?"},
	}
	prompt := gemini.Prompt{
		Text:        "Was steht auf diesem Schild?",
		Attachments: []gemini.Attachment{{MIMEType: "image/png", Data: photo}},
		Language:    "de-DE",
	}

	if _, err := c.Generate(t.Context(), history, prompt); err != nil {
		t.Fatalf("Generate: %v", err)
	}

	wantPath := "POST /v1beta1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-3.5-flash-lite:generateContent"
	if len(v.paths) != 1 || v.paths[0] != wantPath {
		t.Fatalf("requests = %q, want [%q]", v.paths, wantPath)
	}
	var got wireRequest
	if err := json.Unmarshal(v.reqs[0], &got); err != nil {
		t.Fatalf("request body: %v\n%s", err, v.reqs[0])
	}

	sys := got.SystemInstruction.Parts
	if len(sys) != 2 || sys[0].Text != "Be brief." || !strings.Contains(sys[1].Text, `"de-DE"`) {
		t.Errorf("systemInstruction parts = %+v, want the prompt and a de-DE language hint", sys)
	}

	var roles, texts []string
	for _, c := range got.Contents {
		roles = append(roles, c.Role)
		for _, p := range c.Parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
	}
	// The empty model turn is left out; the rest keep their order.
	wantRoles := []string{"user", "model", "user", "user"}
	wantTexts := []string{history[0].Text, history[2].Text, history[3].Text, prompt.Text}
	if !reflect.DeepEqual(roles, wantRoles) {
		t.Errorf("content roles = %q, want %q", roles, wantRoles)
	}
	if !reflect.DeepEqual(texts, wantTexts) {
		t.Errorf("content texts = %q, want %q", texts, wantTexts)
	}

	last := got.Contents[len(got.Contents)-1].Parts
	if len(last) != 2 || last[0].InlineData == nil {
		t.Fatalf("last content parts = %+v, want inlineData then text", last)
	}
	if last[0].InlineData.MIMEType != "image/png" {
		t.Errorf("inlineData.mimeType = %q, want image/png", last[0].InlineData.MIMEType)
	}
	if want := base64.StdEncoding.EncodeToString(photo); last[0].InlineData.Data != want {
		t.Errorf("inlineData.data = %q, want %q", last[0].InlineData.Data, want)
	}
}

func TestGenerateDefaults(t *testing.T) {
	t.Parallel()
	v := newVertex(t, http.StatusOK, "answer.json")
	c := newClient(t, v.URL, gemini.Config{Project: "proj-1"})

	if _, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "hi"}); err != nil {
		t.Fatalf("Generate: %v", err)
	}

	if c.Model() != gemini.DefaultModel {
		t.Errorf("Model() = %q, want %q", c.Model(), gemini.DefaultModel)
	}
	wantPath := "POST /v1beta1/projects/proj-1/locations/global/publishers/google/models/" + gemini.DefaultModel + ":generateContent"
	if v.paths[0] != wantPath {
		t.Errorf("request = %q, want %q", v.paths[0], wantPath)
	}
	var got wireRequest
	if err := json.Unmarshal(v.reqs[0], &got); err != nil {
		t.Fatal(err)
	}
	// Without a language there is no hint, only the default prompt.
	if sys := got.SystemInstruction.Parts; len(sys) != 1 || sys[0].Text != gemini.DefaultSystemPrompt {
		t.Errorf("systemInstruction parts = %+v, want only the default prompt", sys)
	}
}

// TestWithSystemPrompt checks that a copy answers with its own prompt and
// leaves the client it was made from as it was.
func TestWithSystemPrompt(t *testing.T) {
	t.Parallel()
	v := newVertex(t, http.StatusOK, "answer.json")
	c := newClient(t, v.URL, gemini.Config{Model: "gemini-3.5-flash-lite", SystemPrompt: "Be brief."})
	clients := []*gemini.Client{c.WithSystemPrompt("Talk like a pirate."), c, c.WithSystemPrompt("")}
	want := []string{"Talk like a pirate.", "Be brief.", gemini.DefaultSystemPrompt}

	for i, cc := range clients {
		if _, err := cc.Generate(t.Context(), nil, gemini.Prompt{Text: "hi"}); err != nil {
			t.Fatalf("Generate: %v", err)
		}
		var got wireRequest
		if err := json.Unmarshal(v.reqs[i], &got); err != nil {
			t.Fatal(err)
		}
		if sys := got.SystemInstruction.Parts; len(sys) != 1 || sys[0].Text != want[i] {
			t.Errorf("client %d: systemInstruction parts = %+v, want only %q", i, sys, want[i])
		}
		if cc.Model() != "gemini-3.5-flash-lite" {
			t.Errorf("client %d: Model() = %q, want the original's", i, cc.Model())
		}
	}
}

func TestGenerateResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture   string
		status    int
		want      string
		wantErr   string // substring of the error; "" means success
		noAnswer  bool
		transient bool
	}{
		{fixture: "answer.json", status: 200, want: "The museum opens at nine and closes at five."},
		{fixture: "safety.json", status: 200, wantErr: "finish reason SAFETY", noAnswer: true},
		{fixture: "prompt_blocked.json", status: 200, wantErr: "prompt blocked: PROHIBITED_CONTENT", noAnswer: true},
		{fixture: "no_candidates.json", status: 200, wantErr: "no candidates", noAnswer: true},
		{fixture: "max_tokens_empty.json", status: 200, wantErr: "finish reason MAX_TOKENS", noAnswer: true},
		{fixture: "error_500.json", status: 500, wantErr: "Internal error encountered", transient: true},
		{fixture: "error_503.json", status: 503, wantErr: "overloaded", transient: true},
		{fixture: "error_429.json", status: 429, wantErr: "RESOURCE_EXHAUSTED", transient: true},
		{fixture: "error_400.json", status: 400, wantErr: "INVALID_ARGUMENT"},
		{fixture: "error_403.json", status: 403, wantErr: "PERMISSION_DENIED"},
		{fixture: "error_404.json", status: 404, wantErr: "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			v := newVertex(t, tt.status, tt.fixture)
			c := newClient(t, v.URL, gemini.Config{})

			got, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "When does the museum open?"})

			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Generate = %q, %v; want %q, nil", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Generate = %q, %v; want an error containing %q", got, err, tt.wantErr)
			}
			if got := errors.Is(err, gemini.ErrNoAnswer); got != tt.noAnswer {
				t.Errorf("errors.Is(%v, ErrNoAnswer) = %v, want %v", err, got, tt.noAnswer)
			}
			if got := gemini.IsTransient(err); got != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, tt.transient)
			}
			if len(v.paths) != 1 {
				t.Errorf("sent %d requests, want 1 (no retries inside the client)", len(v.paths))
			}
		})
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	t.Parallel()
	v := newVertex(t, http.StatusOK, "answer.json")
	c := newClient(t, v.URL, gemini.Config{})
	tests := []struct {
		name    string
		history []gemini.Turn
		prompt  gemini.Prompt
	}{
		{"empty prompt", nil, gemini.Prompt{Language: "en"}},
		{"unknown role", []gemini.Turn{{Role: "assistant", Text: "hi"}}, gemini.Prompt{Text: "hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Generate(t.Context(), tt.history, tt.prompt)
			if err == nil || gemini.IsTransient(err) {
				t.Errorf("Generate = %v, want a permanent error", err)
			}
		})
	}
	if len(v.paths) != 0 {
		t.Errorf("sent %d requests for invalid input, want 0", len(v.paths))
	}
}

func TestGenerateConnectionErrors(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	// The slow server reads the body first: only then does net/http watch the
	// connection and cancel the request's context when the client gives up.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, closed.URL, gemini.Config{})
		_, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "hi"})
		if !gemini.IsTransient(err) {
			t.Errorf("IsTransient(%v) = false, want true", err)
		}
	})
	t.Run("deadline exceeded", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, slow.URL, gemini.Config{})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Generate(ctx, nil, gemini.Prompt{Text: "hi"})
		if !gemini.IsTransient(err) {
			t.Errorf("IsTransient(%v) = false, want true", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, slow.URL, gemini.Config{})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := c.Generate(ctx, nil, gemini.Prompt{Text: "hi"})
		if err == nil || gemini.IsTransient(err) {
			t.Errorf("IsTransient(%v) = true, want a non-transient error", err)
		}
	})
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{io.ErrUnexpectedEOF, true},
		{gemini.ErrNoAnswer, false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := gemini.IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestNewSkipsCredentials makes any Application Default Credentials lookup
// fail, so New succeeds only if an injected HTTP client avoids the lookup.
func TestNewSkipsCredentials(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	if _, err := gemini.New(t.Context(), gemini.Config{Project: "p", HTTPClient: http.DefaultClient, BaseURL: "http://127.0.0.1:9"}); err != nil {
		t.Fatalf("New with an HTTP client = %v, want no credential lookup", err)
	}
	if _, err := gemini.New(t.Context(), gemini.Config{HTTPClient: http.DefaultClient}); err == nil {
		t.Error("New without a project = nil error, want one")
	}
}
