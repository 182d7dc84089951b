// Package gemini answers a user's message with Gemini on Vertex AI through the
// Gen AI SDK (google.golang.org/genai). It turns the conversation history and
// the new message, with any images or documents, into one generateContent call
// and returns the answer text, which the reply pipeline then speaks.
// GenerateStream hands the answer over as it is written, so speech can start
// early, and AnswerAudio lets the model hear a voice note itself and return
// both what was said and the answer, as structured output.
package gemini

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"google.golang.org/genai"
)

// DefaultLocation is the Vertex AI location used when none is configured.
// Current Gemini models are served on Vertex's global endpoint, which Google
// recommends for higher availability and fewer 429 (resource exhausted)
// errors; several of them are not offered in single regions at all.
const DefaultLocation = "global"

// DefaultModel is the Gemini model used when none is configured: a current
// Flash model, fast enough for a conversational reply. The 2.x models are
// being retired, so this is a setting rather than a hard-coded choice.
const DefaultModel = "gemini-3.5-flash"

// DefaultSystemPrompt tells the model that its answer will be read aloud in a
// WhatsApp voice note, so it must sound natural when spoken.
const DefaultSystemPrompt = `You are a friendly assistant answering messages on WhatsApp. ` +
	`Your answer is turned into speech and sent back as a voice note, so write the way a person talks. ` +
	`Keep it short: usually two to four plain sentences. ` +
	`Never use markdown, headings, bullet points, numbered lists, tables, emoji, code, links or URLs, ` +
	`or symbols that cannot be read aloud; spell out what matters in words instead. ` +
	`Answer in the language the user speaks or writes in. ` +
	`If the user sends a picture or a document, answer about it directly. ` +
	`If you are not sure of something or do not know it, say so briefly instead of guessing.`

// ErrNoAnswer is returned (wrapped with the reason) when Gemini produced no
// answer text, for example because the prompt or the answer was blocked by a
// safety filter. Retrying the same prompt will usually give the same result,
// so callers should send a fallback message instead.
var ErrNoAnswer = errors.New("gemini: no answer")

// Config holds the settings of a Client.
type Config struct {
	// Project is the Google Cloud project that is billed for the calls.
	Project string
	// Location is the Vertex AI location; DefaultLocation when empty.
	Location string
	// Model is the Gemini model ID; DefaultModel when empty.
	Model string
	// SystemPrompt is the system instruction; DefaultSystemPrompt when empty.
	SystemPrompt string
	// HTTPClient, when set, sends the requests instead of one that carries
	// Application Default Credentials, so no credential lookup happens.
	HTTPClient *http.Client
	// BaseURL replaces the Vertex AI endpoint; tests point it at a local server.
	BaseURL string
}

// Client generates answers with one Gemini model.
type Client struct {
	genai        *genai.Client
	model        string
	systemPrompt string
}

// New creates a Client for the Vertex AI backend. Without cfg.HTTPClient it
// looks up Application Default Credentials.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Project == "" {
		return nil, errors.New("gemini: project is required")
	}
	// No HTTPOptions.RetryOptions: the SDK then makes a single attempt. The
	// reply pipeline retries transient failures itself (IsTransient), within
	// its attempt's budget, so retrying here as well would multiply the
	// attempts and could outlast the lease.
	gc, err := genai.NewClient(ctx, &genai.ClientConfig{
		Backend:     genai.BackendVertexAI,
		Project:     cfg.Project,
		Location:    cmp.Or(cfg.Location, DefaultLocation),
		HTTPClient:  cfg.HTTPClient,
		HTTPOptions: genai.HTTPOptions{BaseURL: cfg.BaseURL},
	})
	if err != nil {
		return nil, fmt.Errorf("create genai client: %w", err)
	}
	return &Client{
		genai:        gc,
		model:        cmp.Or(cfg.Model, DefaultModel),
		systemPrompt: cmp.Or(cfg.SystemPrompt, DefaultSystemPrompt),
	}, nil
}

// WithSystemPrompt returns a copy of c that answers with prompt as its
// system instruction (DefaultSystemPrompt when empty). The copy shares c's
// Gen AI client, so it costs no credential lookup and opens no connections
// of its own: a deployment makes one Client and a copy for each phone number
// with its own prompt.
func (c *Client) WithSystemPrompt(prompt string) *Client {
	cp := *c
	cp.systemPrompt = cmp.Or(prompt, DefaultSystemPrompt)
	return &cp
}

// Model returns the ID of the model that answers.
func (c *Client) Model() string { return c.model }

// Turn is one earlier message of the conversation.
type Turn struct {
	Role string // "user" or "model"
	Text string
}

// Attachment is a file sent inline with the prompt, such as an image or a PDF.
type Attachment struct {
	MIMEType string
	Data     []byte
}

// Prompt is the user's new message.
type Prompt struct {
	Text        string
	Attachments []Attachment
	// Language is the user's language if it is known, for example the BCP-47
	// code that speech recognition detected. It is passed on as a hint.
	Language string
}

// Generate asks the model to answer p after history (oldest turn first) and
// returns the answer text. An empty answer is an error wrapping ErrNoAnswer
// that names the reason.
func (c *Client) Generate(ctx context.Context, history []Turn, p Prompt) (string, error) {
	contents, err := buildContents(history, p)
	if err != nil {
		return "", fmt.Errorf("generate: %w", err)
	}
	resp, err := c.genai.Models.GenerateContent(ctx, c.model, contents, &genai.GenerateContentConfig{
		SystemInstruction: c.systemInstruction(p.Language),
	})
	if err != nil {
		return "", fmt.Errorf("generate: %w", err)
	}
	return answerText(resp)
}

// systemInstruction adds the language hint as a separate part, so the
// configured prompt stays exactly as written.
func (c *Client) systemInstruction(language string) *genai.Content {
	parts := []*genai.Part{genai.NewPartFromText(c.systemPrompt)}
	if language != "" {
		parts = append(parts, genai.NewPartFromText(fmt.Sprintf(
			"The user's language was detected as %q. Answer in that language.", language)))
	}
	return &genai.Content{Parts: parts}
}

// buildContents converts the history and the prompt into Gemini contents.
// Turns without text are skipped because Vertex rejects empty parts, and a
// lost empty turn changes nothing the model could use.
func buildContents(history []Turn, p Prompt) ([]*genai.Content, error) {
	contents := make([]*genai.Content, 0, len(history)+1)
	for i, t := range history {
		if t.Role != genai.RoleUser && t.Role != genai.RoleModel {
			return nil, fmt.Errorf("history turn %d has role %q, want %q or %q", i, t.Role, genai.RoleUser, genai.RoleModel)
		}
		if t.Text == "" {
			continue
		}
		contents = append(contents, genai.NewContentFromText(t.Text, genai.Role(t.Role)))
	}

	var parts []*genai.Part
	// Attachments come before the text: Google advises placing images and
	// documents ahead of the question about them.
	for _, a := range p.Attachments {
		parts = append(parts, genai.NewPartFromBytes(a.Data, a.MIMEType))
	}
	if p.Text != "" {
		parts = append(parts, genai.NewPartFromText(p.Text))
	}
	if len(parts) == 0 {
		return nil, errors.New("prompt has neither text nor attachments")
	}
	return append(contents, genai.NewContentFromParts(parts, genai.RoleUser)), nil
}

// answerText is the text of the first candidate, or ErrNoAnswer saying why
// there is none.
func answerText(resp *genai.GenerateContentResponse) (string, error) {
	if fb := resp.PromptFeedback; fb != nil && fb.BlockReason != "" {
		return "", noAnswer("prompt blocked: "+string(fb.BlockReason), fb.BlockReasonMessage)
	}
	if len(resp.Candidates) == 0 {
		return "", noAnswer("no candidates", "")
	}
	text := strings.TrimSpace(candidateText(resp))
	if text == "" {
		cand := resp.Candidates[0]
		return "", noAnswer("finish reason "+string(cand.FinishReason), cand.FinishMessage)
	}
	return text, nil
}

// candidateText joins the text parts of the first candidate, leaving out
// the model's thoughts: the whole answer of a call, or one piece of a stream.
// It is used instead of GenerateContentResponse.Text, which writes warnings
// to the standard logger.
func candidateText(resp *genai.GenerateContentResponse) string {
	if len(resp.Candidates) == 0 || resp.Candidates[0].Content == nil {
		return ""
	}
	var b strings.Builder
	for _, part := range resp.Candidates[0].Content.Parts {
		if !part.Thought {
			b.WriteString(part.Text)
		}
	}
	return b.String()
}

// noAnswer wraps ErrNoAnswer with the reason and Vertex's explanation, if any.
func noAnswer(reason, message string) error {
	if message != "" {
		reason += " (" + message + ")"
	}
	return fmt.Errorf("%w: %s", ErrNoAnswer, reason)
}

// IsTransient reports whether err is worth retrying later: rate limiting,
// server errors, timeouts and broken connections. Rejected requests (400,
// 403, 404), empty answers and a cancelled context are not.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr genai.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Code {
		case http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	// A *url.Error from the HTTP client is a net.Error, so this covers refused
	// and reset connections as well as timeouts. A response body cut off in
	// the middle surfaces as io.ErrUnexpectedEOF instead.
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &netErr)
}
