// Package reply is the reply pipeline: it turns one queued user message into
// an answer from the language model, spoken as a WhatsApp voice note (or sent
// as text, as REPLY_MODE says), exactly once.
//
// Exactly once rests on the message's marker (see package store): the
// pipeline claims it before any work, records each part of the reply as it is
// delivered, and completes it only after the last part went out. A second
// delivery of the same job finds the marker replied and sends nothing; a
// retry after a crash resumes after the parts already sent, and reuses the
// answer and the audio it staged instead of asking the model again.
package reply

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/media"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/store"
)

// Mode says what form the answer takes (REPLY_MODE).
type Mode string

// The reply modes.
const (
	Audio  Mode = "audio"  // a voice note
	Text   Mode = "text"   // a text message
	Both   Mode = "both"   // the text at once, then the voice note
	Mirror Mode = "mirror" // a voice note for a voice note, text for text
)

// Parts of a reply, as recorded in the marker's Sent list.
const (
	partText     = "text"
	partAudio    = "audio"
	partFallback = "fallback"
)

// Defaults for Options.
const (
	DefaultFallback    = "Sorry, we couldn't process your request. Please try again later"
	DefaultUnsupported = "I can answer text messages, voice notes, photos and PDF documents. Please send me one of those."
	// maxMediaBytes is what the pipeline downloads at most: WhatsApp's
	// limit for audio, and enough for photos and PDFs Gemini reads inline.
	maxMediaBytes = 16 << 20
)

// Options tune the pipeline; zero values take the defaults.
type Options struct {
	Mode         Mode
	Fallback     string
	Unsupported  string
	HistoryTurns int
	// Lease is how long one attempt may hold a message, and so its budget:
	// every call of the attempt must finish within it.
	Lease time.Duration
	// MaxAttempts bounds how often a message is tried before the fallback
	// is sent instead.
	MaxAttempts int
	// Retries and RetryBackoff bound the retries of a transient failure of
	// the model, speech or staging within one attempt. (The Graph API client
	// retries by itself.)
	Retries      int
	RetryBackoff time.Duration
}

func (o Options) withDefaults() Options {
	o.Mode = cmp.Or(o.Mode, Audio)
	o.Fallback = cmp.Or(o.Fallback, DefaultFallback)
	o.Unsupported = cmp.Or(o.Unsupported, DefaultUnsupported)
	o.HistoryTurns = cmp.Or(o.HistoryTurns, 10)
	o.Lease = cmp.Or(o.Lease, 3*time.Minute)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, 5)
	o.Retries = cmp.Or(o.Retries, 3)
	o.RetryBackoff = cmp.Or(o.RetryBackoff, 500*time.Millisecond)
	return o
}

// Deps are the pipeline's collaborators; all are required.
type Deps struct {
	Messenger   Messenger
	Transcriber Transcriber
	Synthesizer Synthesizer
	Responder   Responder
	Stager      Stager
	Store       Store
	Logger      *slog.Logger
}

// Pipeline answers queued messages.
type Pipeline struct {
	Deps
	opts Options
}

// New returns a pipeline.
func New(d Deps, opts Options) *Pipeline {
	return &Pipeline{Deps: d, opts: opts.withDefaults()}
}

// Handle answers one message. It returns an error only when the message
// should be tried again later: it is being answered elsewhere, the store is
// unavailable, or even the fallback could not be sent for now.
func (p *Pipeline) Handle(ctx context.Context, job queue.Job) error {
	m := job.Message
	log := logging.With(p.Logger, job.Trace).With("wamid", m.ID, "type", m.Type)
	k, userText := classify(m)
	if k == ignore {
		log.Info("no reply for this message type")
		return nil
	}

	marker, err := p.Store.Claim(ctx, m.ID, p.opts.Lease)
	switch {
	case errors.Is(err, store.ErrReplied):
		log.Info("already replied")
		return nil
	case err != nil:
		return fmt.Errorf("claim message: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Lease)
	defer cancel()

	r := &run{p: p, job: job, log: log.With("attempt", marker.Attempts), sent: map[string]bool{},
		resuming: marker.Attempts > 1}
	for _, part := range marker.Sent {
		r.sent[part] = true
	}
	switch {
	case r.sent[partFallback]:
		// Only the Complete of an earlier attempt is missing.
	case marker.Attempts > p.opts.MaxAttempts:
		err = fmt.Errorf("gave up after %d attempts", p.opts.MaxAttempts)
	case k == unsupported:
		err = r.sendText(ctx, p.opts.Unsupported)
	default:
		err = r.answer(ctx, k, userText)
	}
	if err != nil {
		if ferr := r.fallback(ctx, err); ferr != nil {
			// Nothing reached the user and a later try may: hand the
			// message back at once so that try need not wait for the lease.
			if uerr := p.Store.Unclaim(context.WithoutCancel(ctx), m.ID); uerr != nil {
				ferr = errors.Join(ferr, uerr)
			}
			return ferr
		}
	}
	if err := p.Store.Complete(context.WithoutCancel(ctx), m.ID); err != nil {
		// The reply went out; a retry will find its parts recorded as sent.
		return fmt.Errorf("complete message: %w", err)
	}
	return nil
}

// run is one attempt at one message.
type run struct {
	p   *Pipeline
	job queue.Job
	log *slog.Logger

	// resuming is set on every attempt but the first: only then can an
	// earlier one have staged an answer or a voice note worth looking for.
	resuming bool
	// staging holds writes of staged results, which run beside the reply
	// rather than in front of it.
	staging sync.WaitGroup

	mu     sync.Mutex
	sent   map[string]bool // parts delivered, this attempt or before
	stages []any           // stage durations for the summary log line
}

// staged is what an attempt keeps of its answer, so a retry speaks the same
// words in the same language without asking the model again.
type staged struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
	Language string `json:"language,omitempty"`
	Voice    bool   `json:"voice,omitempty"`
}

func (r *run) answerName() string { return "replies/" + objectName(r.job.Message.ID) + ".json" }
func (r *run) audioName() string  { return "replies/" + objectName(r.job.Message.ID) + ".ogg" }

// objectName turns a wamid (base64 after "wamid.") into the URL-safe base64
// alphabet, so staged objects carry no characters that need escaping in a
// gs:// URI. Dropping the padding keeps names distinct: it follows from the
// length.
var objectName = strings.NewReplacer("+", "-", "/", "_", "=", "").Replace

// answer produces the answer (or finds the one staged by an earlier attempt)
// and delivers it in the configured mode.
func (r *run) answer(ctx context.Context, k kind, userText string) error {
	start := time.Now()
	// The read receipt and typing indicator go out beside the real work; a
	// failure there is not worth failing the reply for.
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.p.Messenger.MarkRead(ctx, r.job.PhoneNumberID, r.job.Message.ID, true); err != nil {
			r.log.Warn("mark read failed", "error", err)
		}
	})
	defer wg.Wait()
	defer r.staging.Wait()

	st, err := r.stagedAnswer(ctx)
	if err != nil {
		return err
	}
	if st == nil {
		if st, err = r.think(ctx, k, userText); err != nil {
			return err
		}
	}
	if err := r.deliver(ctx, st); err != nil {
		return err
	}
	turns := []store.Turn{
		{ID: r.job.Message.ID + "-user", Role: "user", Text: st.Question, At: r.job.ReceivedAt},
		{ID: r.job.Message.ID + "-model", Role: "model", Text: st.Answer, At: time.Now()},
	}
	if err := r.p.Store.AppendTurns(ctx, r.job.Sender, turns...); err != nil {
		// The user has the answer; losing it from the history is the lesser harm.
		r.log.Error("conversation not recorded", "error", err)
	}
	r.log.Info("replied", append(r.stages, "total_ms", ms(time.Since(start)), "model", r.p.Responder.Model(),
		"mode", string(r.p.opts.Mode), "reply_chars", len([]rune(st.Answer)), "language", st.Language)...)
	return nil
}

// stagedAnswer returns the answer an earlier attempt staged, or nil.
func (r *run) stagedAnswer(ctx context.Context) (*staged, error) {
	if !r.resuming {
		return nil, nil
	}
	b, err := retry(ctx, r, "stage", isTransientStaging, func(ctx context.Context) ([]byte, error) {
		return r.p.Stager.Get(ctx, r.answerName())
	})
	if errors.Is(err, media.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read staged answer: %w", err)
	}
	var st staged
	if err := json.Unmarshal(b, &st); err != nil || st.Answer == "" {
		r.log.Warn("staged answer unreadable; answering again", "error", err)
		return nil, nil
	}
	r.log.Info("reusing staged answer")
	return &st, nil
}

// think builds the prompt (transcribing or downloading what it needs, beside
// reading the history), asks the model and stages its answer.
func (r *run) think(ctx context.Context, k kind, userText string) (*staged, error) {
	var (
		history []store.Turn
		herr    error
		wg      sync.WaitGroup
	)
	wg.Go(func() { history, herr = r.p.Store.History(ctx, r.job.Sender, r.p.opts.HistoryTurns) })

	st := &staged{Question: userText, Voice: k == voice}
	prompt := gemini.Prompt{Text: userText}
	var err error
	switch k {
	case voice:
		var tr speech.Transcript
		if tr, err = r.transcribe(ctx); err == nil {
			st.Question, st.Language = tr.Text, tr.Language
			prompt.Text, prompt.Language = tr.Text, tr.Language
		}
	case attachment:
		var a gemini.Attachment
		if a, err = r.attachment(ctx); err == nil {
			prompt.Attachments = []gemini.Attachment{a}
			st.Question = "[" + r.job.Message.Type + "] " + userText
		}
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if herr != nil {
		r.log.Warn("history unavailable; answering without it", "error", herr)
	}

	turns := make([]gemini.Turn, len(history))
	for i, t := range history {
		turns[i] = gemini.Turn{Role: t.Role, Text: t.Text}
	}
	st.Answer, err = timed(r, "llm", func() (string, error) {
		return retry(ctx, r, "llm", gemini.IsTransient, func(ctx context.Context) (string, error) {
			return r.p.Responder.Generate(ctx, turns, prompt)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("generate answer: %w", err)
	}
	b, _ := json.Marshal(st)
	r.staging.Go(func() {
		if _, err := retry(ctx, r, "stage", isTransientStaging, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, r.p.Stager.Put(ctx, r.answerName(), b, "application/json")
		}); err != nil {
			// Without it a retry would ask the model again: slower, not wrong.
			r.log.Warn("answer not staged", "error", err)
		}
	})
	return st, nil
}

// transcribe downloads the voice note, stages it (a note over a minute is
// recognized from the staged copy) and transcribes it.
func (r *run) transcribe(ctx context.Context) (speech.Transcript, error) {
	audio := r.job.Message.Audio
	dl, err := timed(r, "download", func() (*graphapi.Download, error) {
		return r.p.Messenger.DownloadMedia(ctx, audio.ID, maxMediaBytes, audio.SHA256)
	})
	if err != nil {
		return speech.Transcript{}, fmt.Errorf("download voice note: %w", err)
	}
	name := "inbound/" + objectName(r.job.Message.ID) + ".ogg"
	if _, err := timed(r, "stage", func() (struct{}, error) {
		return retry(ctx, r, "stage", isTransientStaging, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, r.p.Stager.Put(ctx, name, dl.Data, "audio/ogg")
		})
	}); err != nil {
		return speech.Transcript{}, fmt.Errorf("stage voice note: %w", err)
	}
	tr, err := timed(r, "stt", func() (speech.Transcript, error) {
		return retry(ctx, r, "stt", speech.IsTransient, func(ctx context.Context) (speech.Transcript, error) {
			return r.p.Transcriber.Transcribe(ctx, dl.Data, r.p.Stager.URI(name))
		})
	})
	if err != nil {
		return speech.Transcript{}, fmt.Errorf("transcribe voice note: %w", err)
	}
	r.mu.Lock()
	r.stages = append(r.stages, "audio_in_seconds", tr.Seconds)
	r.mu.Unlock()
	return tr, nil
}

// attachment downloads an image or PDF for the model to read.
func (r *run) attachment(ctx context.Context) (gemini.Attachment, error) {
	md := mediaOf(r.job.Message)
	dl, err := timed(r, "download", func() (*graphapi.Download, error) {
		return r.p.Messenger.DownloadMedia(ctx, md.ID, maxMediaBytes, md.SHA256)
	})
	if err != nil {
		return gemini.Attachment{}, fmt.Errorf("download %s: %w", r.job.Message.Type, err)
	}
	return gemini.Attachment{MIMEType: mimeBase(cmp.Or(dl.MIMEType, md.MIMEType)), Data: dl.Data}, nil
}

// fallback tells the user their message could not be answered, once. It
// returns an error only when that message could not be sent for now.
func (r *run) fallback(ctx context.Context, cause error) error {
	r.log.Error("reply failed", "error", cause)
	if r.sent[partText] || r.sent[partAudio] {
		return nil // the user has an answer already
	}
	// The attempt's own deadline may be what failed: give the fallback a
	// budget of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := r.p.Messenger.SendText(ctx, r.job.PhoneNumberID, r.job.Sender, r.p.opts.Fallback)
	switch {
	case err == nil:
		r.markSent(ctx, partFallback)
		return nil
	case graphapi.IsTransient(err):
		return fmt.Errorf("send fallback: %w", err)
	default:
		// Meta refuses for good (outside the 24-hour window, undeliverable,
		// bad token): no later try can reach the user either.
		r.log.Error("user unreachable; giving up", "error", err)
		return nil
	}
}

// markSent records a delivered part. A failure to record is logged, not
// returned: the part did go out, and returning would resend it.
func (r *run) markSent(ctx context.Context, part string) {
	r.mu.Lock()
	r.sent[part] = true
	r.mu.Unlock()
	if err := r.p.Store.MarkSent(context.WithoutCancel(ctx), r.job.Message.ID, part); err != nil {
		r.log.Error("sent part not recorded", "part", part, "error", err)
	}
}

// timed runs f and records its duration under stage.
func timed[T any](r *run, stage string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	r.mu.Lock()
	r.stages = append(r.stages, stage+"_ms", ms(time.Since(start)))
	r.mu.Unlock()
	return v, err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
