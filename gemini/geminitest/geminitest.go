// Package geminitest is a fake Vertex AI Gemini endpoint for tests and for the
// local sandbox. It speaks the generateContent and streamGenerateContent
// (server-sent events) wire formats on 127.0.0.1, so the real gemini.Client
// (and the Gen AI SDK under it) talks to it unchanged and no Google account is
// needed. It records every request, answers with scripted answers or, when
// none is queued, with "You said: <last user text>", can fail the next
// requests with a chosen HTTP status, and can write at a set pace (SetPace).
//
// A request with audio that asks for JSON (gemini.Client.AnswerAudio) is
// answered with what the fake "heard" (SetHeard) and the answer to it.
// The local sandbox replaces the echo with StandIn, which says that it is a
// stand-in.
package geminitest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/retry"
	"google.golang.org/genai"
)

// The project and location that Config uses. The fake accepts any others too.
const (
	Project  = "test-project"
	Location = "global"
)

// Request is one generateContent or streamGenerateContent call the fake
// received.
type Request struct {
	Project, Location, Model string
	// Stream is true for streamGenerateContent.
	Stream            bool
	SystemInstruction *genai.Content
	Contents          []*genai.Content
	GenerationConfig  *genai.GenerationConfig
}

// UserText returns the text of the last user content, the message being
// answered.
func (r Request) UserText() string {
	if c := r.lastUser(); c != nil {
		return contentText(c)
	}
	return ""
}

// Attachments returns the files (images, documents) of the last user
// content.
func (r Request) Attachments() []*genai.Blob {
	c := r.lastUser()
	if c == nil {
		return nil
	}
	var out []*genai.Blob
	for _, p := range c.Parts {
		if p != nil && p.InlineData != nil {
			out = append(out, p.InlineData)
		}
	}
	return out
}

// lastUser returns the last user content, the message being answered, or
// nil when there is none.
func (r Request) lastUser() *genai.Content {
	for i := len(r.Contents) - 1; i >= 0; i-- {
		if c := r.Contents[i]; c != nil && c.Role == genai.RoleUser {
			return c
		}
	}
	return nil
}

// Answer is a scripted response.
type Answer struct {
	// Text is the answer; empty means no content, as when a filter blocks it.
	Text string
	// FinishReason defaults to STOP.
	FinishReason genai.FinishReason
	// BlockReason, when set, answers with prompt feedback and no candidates,
	// the way Vertex reports a blocked prompt.
	BlockReason genai.BlockedReason
	// Chunks, when set, are the pieces a stream writes (they must join to
	// Text); otherwise Text is streamed a sentence at a time.
	Chunks []string
	// CutAfter, when set, breaks a stream's connection after that many
	// pieces, as a network failure mid-answer does.
	CutAfter int
}

// Pace is how fast the fake writes: the first piece of an answer after
// FirstChunk, each further one PerChunk later. A unary call answers when the
// stream of the same answer would have ended.
type Pace struct {
	FirstChunk, PerChunk time.Duration
}

// DefaultHeard and DefaultHeardLanguage are what the fake hears in any audio
// until SetHeard says otherwise; they match testdata/voice_note.ogg.
const (
	DefaultHeard         = "Hello, can you book a table for two tomorrow evening?"
	DefaultHeardLanguage = "en-US"
)

// Server is the fake endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give gemini.Config.BaseURL.
	URL string
	srv *httptest.Server

	mu            sync.Mutex
	requests      []Request
	answers       []Answer
	failures      int
	failStatus    int
	failIf        func() bool
	failIfStatus  int
	echo          func(Request) string
	pace          Pace
	heard         string
	heardLanguage string
	conns         int
}

// NewServer starts a fake that is closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake outside of a test, for example in the local sandbox.
// The caller must Close it.
func Start() *Server {
	s := &Server{echo: echo, heard: DefaultHeard, heardLanguage: DefaultHeardLanguage}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}", s.serveModel)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("geminitest: %s %s is not implemented", r.Method, r.URL.Path))
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.conns++
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// Close shuts the fake down.
func (s *Server) Close() { s.srv.Close() }

// Config returns a gemini.Config that points at the fake and needs no
// credentials.
func (s *Server) Config() gemini.Config {
	return gemini.Config{
		Project:    Project,
		Location:   Location,
		Model:      gemini.DefaultModel,
		HTTPClient: s.srv.Client(),
		BaseURL:    s.URL,
	}
}

// Enqueue adds answers to give, in order, before falling back to the echo.
func (s *Server) Enqueue(answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers = append(s.answers, answers...)
}

// SetEcho sets what the fake answers when no answer is queued, in place of
// "You said: <last user text>".
func (s *Server) SetEcho(echo func(Request) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.echo = echo
}

// FailNext makes the next n requests fail with the HTTP status and a
// Google-shaped error body. Failed requests are recorded too.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures, s.failStatus = n, status
}

// SetFailures makes each later request ask fail whether to fail with the
// HTTP status, so a fault test can fail requests at random. nil stops.
func (s *Server) SetFailures(fail func() bool, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failIf, s.failIfStatus = fail, status
}

// SetPace makes later answers arrive at pace p; the zero Pace, the
// default, answers at once.
func (s *Server) SetPace(p Pace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pace = p
}

// SetHeard sets what the fake hears in audio from now on and the language
// it reports; an empty transcript means the audio held no speech.
func (s *Server) SetHeard(transcript, language string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heard, s.heardLanguage = transcript, language
}

// Connections returns how many connections clients have opened to the fake
// so far. An HTTP client keeps a connection for its next requests, so
// clients that share one make one connection for requests one after another.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) serveModel(w http.ResponseWriter, r *http.Request) {
	model, method, _ := strings.Cut(r.PathValue("model"), ":")
	stream := method == "streamGenerateContent"
	switch {
	case method != "generateContent" && !stream:
		writeError(w, http.StatusNotFound, fmt.Sprintf("geminitest: method %q is not implemented", method))
		return
	case stream && r.URL.Query().Get("alt") != "sse":
		writeError(w, http.StatusBadRequest, "geminitest: streams are served as server-sent events only (alt=sse)")
		return
	}
	var body struct {
		Contents          []*genai.Content        `json:"contents"`
		SystemInstruction *genai.Content          `json:"systemInstruction"`
		GenerationConfig  *genai.GenerationConfig `json:"generationConfig"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON payload received. "+err.Error())
		return
	}
	req := Request{
		Project:           r.PathValue("project"),
		Location:          r.PathValue("location"),
		Model:             model,
		Stream:            stream,
		SystemInstruction: body.SystemInstruction,
		Contents:          body.Contents,
		GenerationConfig:  body.GenerationConfig,
	}

	answer, status, pace := s.next(req)
	if status != 0 {
		writeError(w, status, "geminitest: scripted failure")
		return
	}
	chunks := answer.Chunks
	if len(chunks) == 0 {
		chunks = sentencePieces(answer.Text)
	}
	if !stream {
		// A unary call answers when the whole answer would have been written.
		if retry.Sleep(r.Context(), pace.FirstChunk+time.Duration(max(len(chunks)-1, 0))*pace.PerChunk) != nil {
			return // the client went away
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		json.NewEncoder(w).Encode(response(req, answer, answer.Text, true))
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	if len(chunks) == 0 {
		chunks = []string{""} // one event that says why there is no answer
	}
	for i, chunk := range chunks {
		wait := pace.PerChunk
		if i == 0 {
			wait = pace.FirstChunk
		}
		if retry.Sleep(r.Context(), wait) != nil {
			return // the client went away
		}
		if answer.CutAfter > 0 && i == answer.CutAfter {
			panic(http.ErrAbortHandler) // the server drops the connection mid-response
		}
		b, _ := json.Marshal(response(req, answer, chunk, i == len(chunks)-1))
		fmt.Fprintf(w, "data: %s\r\n\r\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// sentencePieces cuts text after each sentence end, leaving the space that
// follows it at the start of the next piece, as a model's tokens do.
func sentencePieces(text string) []string {
	var out []string
	start := 0
	for i, r := range text {
		if i > start && (r == ' ' || r == '\n') && strings.ContainsAny(text[i-1:i], ".!?") {
			out = append(out, text[start:i])
			start = i
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

// next records req and decides its outcome: a status to fail with, or the
// answer to give and the pace to give it at.
func (s *Server) next(req Request) (Answer, int, Pace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	if s.failures > 0 {
		s.failures--
		return Answer{}, s.failStatus, s.pace
	}
	if s.failIf != nil && s.failIf() {
		return Answer{}, s.failIfStatus, s.pace
	}
	audio := req.hasAudio()
	var a Answer
	switch {
	case len(s.answers) > 0:
		a = s.answers[0]
		s.answers = s.answers[1:]
	case audio:
		a = Answer{Text: "You said: " + s.heard}
	default:
		a = Answer{Text: s.echo(req)}
	}
	if audio && req.GenerationConfig != nil && req.GenerationConfig.ResponseMIMEType == "application/json" {
		a = s.heardAnswer(a)
	}
	return a, 0, s.pace
}

func echo(req Request) string { return "You said: " + req.UserText() }

// StandIn is the answer of a model that is not there: it says so, repeats
// the message, names its attachments and counts the earlier turns it was
// sent, so that a person trying the sandbox sees what would reach Gemini and
// that the conversation is remembered.
func StandIn(req Request) string {
	var b strings.Builder
	b.WriteString("This is the sandbox's stand-in model, not Gemini.")
	if text := req.UserText(); text != "" {
		fmt.Fprintf(&b, " You said: %s.", strings.TrimRight(text, ".!?"))
	}
	for _, a := range req.Attachments() {
		fmt.Fprintf(&b, " You sent a file (%s, %d bytes).", a.MIMEType, len(a.Data))
	}
	switch n := len(req.Contents) - 1; n {
	case 0:
		b.WriteString(" This is the start of our conversation.")
	case 1:
		b.WriteString(" I was sent 1 earlier message of our conversation.")
	default:
		fmt.Fprintf(&b, " I was sent %d earlier messages of our conversation.", n)
	}
	return b.String()
}

// heardAnswer wraps an answer to audio in the JSON that gemini.AnswerAudio
// asks for. With nothing heard there is nothing to answer either. The caller
// holds s.mu.
func (s *Server) heardAnswer(a Answer) Answer {
	if a.BlockReason != "" {
		return a
	}
	heard := map[string]string{"transcript": s.heard, "language": s.heardLanguage, "answer": a.Text}
	if s.heard == "" {
		heard = map[string]string{"transcript": "", "language": "", "answer": ""}
	}
	b, _ := json.Marshal(heard)
	return Answer{Text: string(b), FinishReason: a.FinishReason}
}

// hasAudio reports whether the message being answered carries audio.
func (r Request) hasAudio() bool {
	for _, b := range r.Attachments() {
		if strings.HasPrefix(b.MIMEType, "audio/") {
			return true
		}
	}
	return false
}

// response builds a generateContent response, or one event of a stream, in
// the shape Vertex returns: text is the whole answer or this event's piece of
// it, and only the last event has the finish reason. Token counts are word
// counts, which keeps them deterministic.
func response(req Request, a Answer, text string, last bool) map[string]any {
	promptTokens := 0
	for _, c := range req.Contents {
		promptTokens += len(strings.Fields(contentText(c)))
	}
	answerTokens := len(strings.Fields(a.Text))
	resp := map[string]any{
		"modelVersion": req.Model,
		"responseId":   fmt.Sprintf("geminitest-%d", len(req.Contents)),
	}
	if last {
		resp["usageMetadata"] = map[string]any{
			"promptTokenCount":     promptTokens,
			"candidatesTokenCount": answerTokens,
			"totalTokenCount":      promptTokens + answerTokens,
			"trafficType":          "ON_DEMAND",
		}
	}
	if a.BlockReason != "" {
		resp["promptFeedback"] = map[string]any{
			"blockReason":        a.BlockReason,
			"blockReasonMessage": "The prompt was blocked (geminitest).",
		}
		return resp
	}
	candidate := map[string]any{}
	if last {
		candidate["finishReason"] = cmp.Or(a.FinishReason, genai.FinishReasonStop)
	}
	if text != "" {
		candidate["content"] = map[string]any{
			"role":  genai.RoleModel,
			"parts": []map[string]any{{"text": text}},
		}
	}
	resp["candidates"] = []any{candidate}
	return resp
}

// statusNames are the google.rpc.Code names Vertex puts beside HTTP statuses.
var statusNames = map[int]string{
	http.StatusBadRequest:          "INVALID_ARGUMENT",
	http.StatusUnauthorized:        "UNAUTHENTICATED",
	http.StatusForbidden:           "PERMISSION_DENIED",
	http.StatusNotFound:            "NOT_FOUND",
	http.StatusTooManyRequests:     "RESOURCE_EXHAUSTED",
	http.StatusInternalServerError: "INTERNAL",
	http.StatusServiceUnavailable:  "UNAVAILABLE",
	http.StatusGatewayTimeout:      "DEADLINE_EXCEEDED",
}

func writeError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code":    status,
		"message": message,
		"status":  cmp.Or(statusNames[status], "UNKNOWN"),
	}})
}

func contentText(c *genai.Content) string {
	var texts []string
	for _, p := range c.Parts {
		if p != nil && p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, " ")
}
