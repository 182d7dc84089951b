package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genai"
)

// ErrNoSpeech is returned by AnswerAudio when the model heard no words in the
// voice note.
var ErrNoSpeech = errors.New("gemini: no speech in the audio")

// heardInstruction asks for the transcript beside the answer. It is a
// separate system part so the configured prompt stays as written.
const heardInstruction = `The user's message is a voice note. ` +
	`Fill "transcript" with exactly what the user said, in the language they spoke, ` +
	`"language" with the BCP-47 code of that language (for example "es-ES"), ` +
	`and "answer" with your spoken answer to it. ` +
	`If the voice note holds no speech, leave all three empty.`

// heardSchema is the structured output of AnswerAudio. The property ordering
// puts the transcript first, as the model hears before it answers.
var heardSchema = &genai.Schema{
	Type: genai.TypeObject,
	Properties: map[string]*genai.Schema{
		"transcript": {Type: genai.TypeString, Description: "What the user said, word for word."},
		"language":   {Type: genai.TypeString, Description: "BCP-47 code of the language the user spoke."},
		"answer":     {Type: genai.TypeString, Description: "The answer to speak back."},
	},
	Required:         []string{"transcript", "language", "answer"},
	PropertyOrdering: []string{"transcript", "language", "answer"},
}

// Heard is the model's answer to a voice note it listened to itself.
type Heard struct {
	Transcript string // what the user said, to keep in the history
	Language   string // BCP-47 code of what the user said, as the model named it
	Answer     string
	Usage      Usage
}

// AnswerAudio sends a voice note (audio.MIMEType such as "audio/ogg") to the
// model as audio and returns, from one call, what was said and the answer to
// it, as structured JSON output. It saves the Speech-to-Text round trip. A
// voice note without words returns ErrNoSpeech; an empty answer wraps
// ErrNoAnswer.
func (c *Client) AnswerAudio(ctx context.Context, history []Turn, audio Attachment) (Heard, error) {
	if !strings.HasPrefix(audio.MIMEType, "audio/") || len(audio.Data) == 0 {
		return Heard{}, fmt.Errorf("answer audio: want audio, got %d bytes of %q", len(audio.Data), audio.MIMEType)
	}
	contents, err := buildContents(history, Prompt{Attachments: []Attachment{audio}})
	if err != nil {
		return Heard{}, fmt.Errorf("answer audio: %w", err)
	}
	system := c.systemInstruction("")
	system.Parts = append(system.Parts, genai.NewPartFromText(heardInstruction))
	resp, err := c.genai.Models.GenerateContent(ctx, c.model, contents, &genai.GenerateContentConfig{
		SystemInstruction: system,
		ResponseMIMEType:  "application/json",
		ResponseSchema:    heardSchema,
	})
	if err != nil {
		return Heard{}, fmt.Errorf("answer audio: %w", err)
	}
	text, err := answerText(resp)
	if err != nil {
		return Heard{}, fmt.Errorf("answer audio: %w", err)
	}
	var out struct {
		Transcript, Language, Answer string
	}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return Heard{}, fmt.Errorf("answer audio: %w: the answer is not the JSON asked for: %v", ErrNoAnswer, err)
	}
	h := Heard{
		Transcript: strings.TrimSpace(out.Transcript),
		Language:   strings.TrimSpace(out.Language),
		Answer:     strings.TrimSpace(out.Answer),
		Usage:      usageOf(resp.UsageMetadata),
	}
	switch {
	case h.Transcript == "":
		return h, ErrNoSpeech
	case h.Answer == "":
		return h, fmt.Errorf("answer audio: %w: empty answer field", ErrNoAnswer)
	}
	return h, nil
}
