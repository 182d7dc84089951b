package gemini

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"google.golang.org/genai"
)

// Usage is what a call cost in tokens, from the response's usage metadata.
type Usage struct {
	// PromptTokens counts the history, the system instruction and the new
	// message, audio included.
	PromptTokens int
	// AnswerTokens counts the answer and the model's thoughts, which Vertex
	// bills at the same output price.
	AnswerTokens int
}

func usageOf(m *genai.GenerateContentResponseUsageMetadata) Usage {
	if m == nil {
		return Usage{}
	}
	return Usage{
		PromptTokens: int(m.PromptTokenCount),
		AnswerTokens: int(m.CandidatesTokenCount + m.ThoughtsTokenCount),
	}
}

// Stream is an answer that the model is still writing. Range over Text once;
// Answer and Usage are complete when that loop has ended.
type Stream struct {
	text   iter.Seq2[string, error]
	answer strings.Builder
	usage  Usage
	err    error
}

// GenerateStream asks the model to answer p after history, like Generate,
// but hands the answer over as it is written (streamGenerateContent), so
// that speech can start before the model has finished. No request is sent
// until Text is ranged over.
func (c *Client) GenerateStream(ctx context.Context, history []Turn, p Prompt) *Stream {
	s := &Stream{}
	s.text = func(yield func(string, error) bool) {
		fail := func(err error) {
			s.err = fmt.Errorf("generate: %w", err)
			yield("", s.err)
		}
		contents, err := buildContents(history, p)
		if err != nil {
			fail(err)
			return
		}
		var last *genai.GenerateContentResponse
		for resp, err := range c.genai.Models.GenerateContentStream(ctx, c.model, contents, &genai.GenerateContentConfig{
			SystemInstruction: c.systemInstruction(p.Language),
		}) {
			if err != nil {
				fail(err)
				return
			}
			last = resp
			if resp.UsageMetadata != nil {
				s.usage = usageOf(resp.UsageMetadata)
			}
			if resp.PromptFeedback != nil && resp.PromptFeedback.BlockReason != "" {
				break // answerText reports it below
			}
			delta := candidateText(resp)
			if delta == "" {
				continue
			}
			s.answer.WriteString(delta)
			if !yield(delta, nil) {
				return
			}
		}
		if strings.TrimSpace(s.answer.String()) != "" {
			return
		}
		// Nothing was written: say why, the way Generate does.
		if last == nil {
			last = &genai.GenerateContentResponse{}
		}
		if _, err := answerText(last); err != nil {
			fail(err)
		}
	}
	return s
}

// Text yields the answer in pieces as the model writes them (the pieces are
// not aligned with words or sentences), then, if the call failed or no answer
// came, one error, wrapping ErrNoAnswer in the second case.
func (s *Stream) Text() iter.Seq2[string, error] { return s.text }

// Answer is the whole answer received so far, trimmed as Generate trims it.
func (s *Stream) Answer() string { return strings.TrimSpace(s.answer.String()) }

// Err is the error Text ended with, if any: it tells a failed answer apart
// from a failure of whatever consumed the text.
func (s *Stream) Err() error { return s.err }

// Usage is the token count of the call, known once Text has ended.
func (s *Stream) Usage() Usage { return s.usage }
