package reply

import (
	"context"
	"io"
	"iter"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/retry"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/store"
)

// Messenger is Meta's Graph API as the pipeline uses it.
type Messenger interface {
	SendText(ctx context.Context, phoneNumberID, to, body string, opts ...graphapi.SendOption) ([]string, error)
	SendAudio(ctx context.Context, phoneNumberID, to, mediaID string, voice bool, opts ...graphapi.SendOption) (string, error)
	MarkRead(ctx context.Context, phoneNumberID, wamid string, typing bool) error
	UploadMedia(ctx context.Context, phoneNumberID string, r io.Reader, mimeType, filename string) (string, error)
	DownloadMedia(ctx context.Context, mediaID string, maxBytes int64, wantSHA256 string) (*graphapi.Download, error)
}

// Transcriber turns a voice note into text.
type Transcriber interface {
	Transcribe(ctx context.Context, audio []byte, gcsURI string) (speech.Transcript, error)
}

// Synthesizer speaks an answer as one OGG/Opus voice note while the answer is
// still being written, retrying each of its calls with policy.
type Synthesizer interface {
	SpeakStream(ctx context.Context, text iter.Seq2[string, error], language string, policy retry.Policy) (speech.Speech, error)
}

// Responder is the language model: it writes an answer as a stream, or hears
// a voice note itself and answers it in one call (STT_ENGINE=gemini).
type Responder interface {
	GenerateStream(ctx context.Context, history []gemini.Turn, p gemini.Prompt) *gemini.Stream
	AnswerAudio(ctx context.Context, history []gemini.Turn, audio gemini.Attachment) (gemini.Heard, error)
	Model() string
}

// Stager keeps inbound voice notes and what a reply has produced so far, so
// that a retried reply reuses them.
type Stager interface {
	Put(ctx context.Context, name string, data []byte, contentType string) error
	Get(ctx context.Context, name string) ([]byte, error)
	URI(name string) string
}

// Store is the marker and conversation state the pipeline reads and writes.
type Store interface {
	Claim(ctx context.Context, id string, lease time.Duration) (store.Marker, error)
	Renew(ctx context.Context, id string, token int, lease time.Duration) (store.Marker, error)
	StartSend(ctx context.Context, id string, token int, part string) error
	AbortSend(ctx context.Context, id string, token int, part string) error
	MarkSent(ctx context.Context, id, part string) error
	Unclaim(ctx context.Context, id string, token int) error
	Complete(ctx context.Context, id string, token int) error
	History(ctx context.Context, user string, n int) ([]store.Turn, error)
	AppendTurns(ctx context.Context, user string, turns ...store.Turn) error
	ResetHistory(ctx context.Context, user string) error
	// The guard's state (see Guard).
	Gate(ctx context.Context, sender, id string, in store.Inbound) (store.Verdict, error)
	Spending(ctx context.Context, number string) (store.Spend, error)
	AddSpend(ctx context.Context, number, id string, sp store.Spend) error
	FirstOverCeiling(ctx context.Context, number string) (bool, error)
}
