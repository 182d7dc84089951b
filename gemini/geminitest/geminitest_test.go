package geminitest_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"google.golang.org/genai"
)

func newClient(t *testing.T, s *geminitest.Server) *gemini.Client {
	t.Helper()
	c, err := gemini.New(t.Context(), s.Config())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestEcho(t *testing.T) {
	t.Parallel()
	s := geminitest.NewServer(t)
	c := newClient(t, s)
	history := []gemini.Turn{{Role: "user", Text: "Hi"}, {Role: "model", Text: "You said: Hi"}}

	got, err := c.Generate(t.Context(), history, gemini.Prompt{
		Text:        "What is in this picture?",
		Attachments: []gemini.Attachment{{MIMEType: "image/jpeg", Data: []byte{0xff, 0xd8, 0xff}}},
		Language:    "en-GB",
	})

	if want := "You said: What is in this picture?"; err != nil || got != want {
		t.Fatalf("Generate = %q, %v; want %q, nil", got, err, want)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Requests() has %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Project != geminitest.Project || r.Location != geminitest.Location || r.Model != gemini.DefaultModel {
		t.Errorf("request went to %s/%s/%s, want %s/%s/%s", r.Project, r.Location, r.Model,
			geminitest.Project, geminitest.Location, gemini.DefaultModel)
	}
	if len(r.Contents) != 3 || r.Contents[1].Role != genai.RoleModel {
		t.Fatalf("Contents = %+v, want user, model, user", r.Contents)
	}
	blob := r.Contents[2].Parts[0].InlineData
	if blob == nil || blob.MIMEType != "image/jpeg" || string(blob.Data) != "\xff\xd8\xff" {
		t.Errorf("attachment = %+v, want the JPEG bytes", blob)
	}
	if r.SystemInstruction == nil || len(r.SystemInstruction.Parts) != 2 {
		t.Errorf("SystemInstruction = %+v, want the prompt and the language hint", r.SystemInstruction)
	}
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	s := geminitest.NewServer(t)
	c := newClient(t, s)
	s.Enqueue(
		geminitest.Answer{Text: "First."},
		geminitest.Answer{FinishReason: genai.FinishReasonSafety},
		geminitest.Answer{BlockReason: genai.BlockedReasonProhibitedContent},
	)

	tests := []struct {
		want     string
		noAnswer bool
	}{
		{want: "First."},
		{noAnswer: true},
		{noAnswer: true},
		{want: "You said: again"},
	}
	for i, tt := range tests {
		got, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "again"})
		if got != tt.want || errors.Is(err, gemini.ErrNoAnswer) != tt.noAnswer {
			t.Errorf("call %d: Generate = %q, %v; want %q, no answer: %v", i, got, err, tt.want, tt.noAnswer)
		}
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	s := geminitest.NewServer(t)
	c := newClient(t, s)
	s.FailNext(2, http.StatusTooManyRequests)

	for i := range 2 {
		_, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "hi"})
		var apiErr genai.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != http.StatusTooManyRequests || apiErr.Status != "RESOURCE_EXHAUSTED" {
			t.Fatalf("call %d: Generate error = %v, want a 429 RESOURCE_EXHAUSTED APIError", i, err)
		}
		if !gemini.IsTransient(err) {
			t.Errorf("call %d: IsTransient(%v) = false, want true", i, err)
		}
	}
	if got, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "hi"}); err != nil || got != "You said: hi" {
		t.Errorf("after the failures: Generate = %q, %v; want the echo", got, err)
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("Requests() has %d requests, want 3", n)
	}
}

// TestStart checks the fake works outside a test, as the local sandbox uses it.
func TestStart(t *testing.T) {
	s := geminitest.Start()
	defer s.Close()
	c := newClient(t, s)
	if got, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "hello"}); err != nil || got != "You said: hello" {
		t.Errorf("Generate = %q, %v; want the echo", got, err)
	}
}

func TestStandIn(t *testing.T) {
	t.Parallel()
	s := geminitest.NewServer(t)
	s.SetEcho(geminitest.StandIn)
	c := newClient(t, s)
	jpeg := []byte{0xff, 0xd8, 0xff, 0xe0}
	tests := []struct {
		name    string
		history []gemini.Turn
		prompt  gemini.Prompt
		want    string
	}{
		{"first message", nil, gemini.Prompt{Text: "Hello there!"},
			"This is the sandbox's stand-in model, not Gemini. You said: Hello there. This is the start of our conversation."},
		{"with history and a photo",
			[]gemini.Turn{{Role: "user", Text: "Hi"}, {Role: "model", Text: "Hello"}},
			gemini.Prompt{Text: "Is this plant healthy?", Attachments: []gemini.Attachment{{MIMEType: "image/jpeg", Data: jpeg}}},
			"This is the sandbox's stand-in model, not Gemini. You said: Is this plant healthy. You sent a file (image/jpeg, 4 bytes). I was sent 2 earlier messages of our conversation."},
		{"a document alone", []gemini.Turn{{Role: "user", Text: "Hi"}},
			gemini.Prompt{Attachments: []gemini.Attachment{{MIMEType: "application/pdf", Data: []byte("%PDF-1.4")}}},
			"This is the sandbox's stand-in model, not Gemini. You sent a file (application/pdf, 8 bytes). I was sent 1 earlier message of our conversation."},
	}
	for _, tt := range tests {
		got, err := c.Generate(t.Context(), tt.history, tt.prompt)
		if err != nil || got != tt.want {
			t.Errorf("%s: Generate = %q, %v; want %q, nil", tt.name, got, err, tt.want)
		}
	}
}

// TestCutAfter: a stream cut after two pieces hands over those two, then an
// error the pipeline retries.
func TestCutAfter(t *testing.T) {
	t.Parallel()
	s := geminitest.NewServer(t)
	c := newClient(t, s)
	s.Enqueue(geminitest.Answer{Text: "One. Two. Three. Four.", CutAfter: 2})
	st := c.GenerateStream(t.Context(), nil, gemini.Prompt{Text: "count"})
	var got string
	for delta, err := range st.Text() {
		got += delta
		if err != nil && !gemini.IsTransient(err) {
			t.Errorf("stream ended with %v, want a transient error", err)
		}
	}
	if got != "One. Two." || st.Err() == nil {
		t.Errorf("stream gave %q, then %v; want the first two pieces, then an error", got, st.Err())
	}
}

// TestConnections checks that the fake counts the connections clients
// open: one for the calls of clients that share an HTTP client, and one
// more for a client with a transport of its own.
func TestConnections(t *testing.T) {
	t.Parallel()
	s := geminitest.NewServer(t)
	shared := s.Config()
	own := s.Config()
	own.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	want := []int{1, 1, 2, 2}
	for i, cfg := range []gemini.Config{shared, shared, own, own} {
		c, err := gemini.New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Generate(t.Context(), nil, gemini.Prompt{Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		if n := s.Connections(); n != want[i] {
			t.Errorf("after call %d: Connections() = %d, want %d", i, n, want[i])
		}
	}
}
