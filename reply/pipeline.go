// Package reply is the reply pipeline: it turns one queued user message into
// an answer from the language model, spoken as a WhatsApp voice note (or sent
// as text, as REPLY_MODE says), exactly once.
//
// Exactly once rests on the message's marker (see package store). The
// pipeline claims it for a short lease before any work and renews the lease
// while it works; every write about the claim is fenced by the claim's token,
// so an attempt that lost its claim can neither undo the next one's work nor
// send anything more. Each part of the reply is recorded as started before it
// is sent and as sent once Graph answers, and carries a tag that Meta echoes
// in its status webhooks. A send whose answer was lost is therefore not
// repeated at once: the part stays uncertain until a status confirms it, and
// is sent again only when none did within the confirmation window. The
// fallback is refused by the store once any part of the answer is sent or
// uncertain. A retry after a crash resumes after the parts already sent, and
// reuses the answer and the audio it staged instead of asking the model
// again.
//
// Before any of that costs money, the guard (guard.go) applies the opt-out,
// the per-sender limits, the reset word, the size caps and the number's
// daily ceiling; what it answers instead is a part like any other, sent
// exactly once. A retry of a message whose answer already went out in part
// is past the guard, and finishes the answer (see serve).
package reply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/retry"
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

// Engine says what hears a voice note (STT_ENGINE).
type Engine string

// The engines.
const (
	// SpeechToText transcribes the voice note; the model answers the text.
	SpeechToText Engine = "speech"
	// GeminiAudio sends the voice note to the model as audio: one call
	// returns what was said and the answer, saving a round trip.
	GeminiAudio Engine = "gemini"
)

// Defaults for Options.
const (
	DefaultFallback      = "Sorry, we couldn't process your request. Please try again later"
	DefaultUnsupported   = "I can answer text messages, voice notes, photos and PDF documents. Please send me one of those."
	DefaultLease         = 30 * time.Second
	DefaultConfirmWindow = time.Minute
	DefaultBudget        = 3 * time.Minute
	// maxMediaBytes is what the pipeline downloads at most: WhatsApp's
	// limit for audio, and enough for photos and PDFs Gemini reads inline.
	maxMediaBytes = 16 << 20
)

// Options tune the pipeline; zero values take the defaults.
type Options struct {
	Mode         Mode
	STTEngine    Engine
	Fallback     string
	Unsupported  string
	HistoryTurns int
	// Lease is how long a claim lasts without renewal (default 30 s). The
	// attempt renews it every third of a lease, so a worker that died
	// releases its message within one lease.
	Lease time.Duration
	// ConfirmWindow is how long a part whose send had an unknown outcome
	// waits for a status webhook to confirm it before it is sent again
	// (default 1 min).
	ConfirmWindow time.Duration
	// Budget bounds one attempt (default 3 min). The work stops a reserve
	// before it, so a needed fallback still goes out inside the claim. The
	// push request, and so the platform's request timeout, must allow it.
	Budget time.Duration
	// MaxAttempts bounds how often a message is tried before the fallback
	// is sent instead.
	MaxAttempts int
	// Retries and RetryBackoff bound the retries of a transient failure of
	// the model or speech within one attempt. (The Graph API client retries
	// sends by itself, and only those Meta certainly did not take.)
	Retries      int
	RetryBackoff time.Duration
	// Guard holds the limits, caps and notices that keep the bill and the
	// users safe (see Guard); its zero value limits nothing.
	Guard Guard
}

func (o Options) withDefaults() Options {
	o.Mode = cmp.Or(o.Mode, Audio)
	o.STTEngine = cmp.Or(o.STTEngine, SpeechToText)
	o.Fallback = cmp.Or(o.Fallback, DefaultFallback)
	o.Unsupported = cmp.Or(o.Unsupported, DefaultUnsupported)
	o.HistoryTurns = cmp.Or(o.HistoryTurns, 10)
	o.Lease = cmp.Or(o.Lease, DefaultLease)
	o.ConfirmWindow = cmp.Or(o.ConfirmWindow, DefaultConfirmWindow)
	o.Budget = cmp.Or(o.Budget, DefaultBudget)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, 5)
	o.Retries = cmp.Or(o.Retries, 3)
	o.RetryBackoff = cmp.Or(o.RetryBackoff, 500*time.Millisecond)
	o.Guard = o.Guard.withDefaults()
	return o
}

// reserve is the part of the budget kept for the fallback and the final
// store writes: a send and two transactions, with room for a slow one.
func (o Options) reserve() time.Duration { return min(20*time.Second, o.Budget/4) }

// policy is the pipeline's retry policy for the model and speech.
func (o Options) policy(log *slog.Logger, stage string, transient func(error) bool) retry.Policy {
	return retry.Policy{
		Attempts:  o.Retries + 1,
		Initial:   o.RetryBackoff,
		Elapsed:   o.Budget,
		Retryable: transient,
		OnRetry: func(_ int, err error, wait time.Duration) {
			log.Warn("transient failure, retrying", "stage", stage, "error", err, "retry_in_ms", wait.Milliseconds())
		},
	}
}

// Deps are the pipeline's collaborators; all are required but Numbers.
type Deps struct {
	Messenger   Messenger
	Transcriber Transcriber
	Synthesizer Synthesizer
	Responder   Responder
	Stager      Stager
	Store       Store
	Logger      *slog.Logger
	// IDs hashes message ids for logs above debug level.
	IDs logging.IDs
	// Tags seals each sent part's identity into the message, for the status
	// webhooks that confirm it.
	Tags *store.Tags
	// Numbers holds the numbers (by phone_number_id) that answer with
	// collaborators or a mode of their own; optional.
	Numbers map[string]Number
}

// Pipeline answers queued messages.
type Pipeline struct {
	deps Deps
	opts Options
}

// New returns a pipeline.
func New(d Deps, opts Options) *Pipeline {
	return &Pipeline{deps: d, opts: opts.withDefaults()}
}

// Handle answers one message. It returns an error only when the message
// should be tried again later: it is being answered elsewhere, the store is
// unavailable, a part's outcome is not settled yet, or even the fallback
// could not be sent for now.
func (p *Pipeline) Handle(ctx context.Context, job queue.Job) error {
	m := job.Message
	log := logging.With(p.deps.Logger, job.Trace).With(p.deps.IDs.Attr(m.ID), "type", m.Type)
	log.Debug("reply", "wamid", m.ID)
	k, userText := classify(m)
	if k == ignore {
		log.Info("no reply for this message type")
		return nil
	}

	// From here on the job has its number's settings, its own
	// conversation and the size caps (see forJob).
	p = p.forJob(job)
	marker, err := p.claim(ctx, m.ID)
	switch {
	case errors.Is(err, store.ErrReplied):
		log.Info("already replied")
		return nil
	case err != nil:
		return fmt.Errorf("claim message: %w", err)
	}
	a := newAttempt(p, job, marker, log)
	return a.run(ctx, k, userText)
}

// claim takes the message. When another claim holds it and its lease ends
// within one lease (its worker most likely died, or is finishing), it keeps
// trying until the lease lapses, rather than leave the message to the
// queue's next redelivery, which may be minutes away; it stops early once
// the message is replied.
func (p *Pipeline) claim(ctx context.Context, id string) (store.Marker, error) {
	m, err := p.deps.Store.Claim(ctx, id, p.opts.Lease)
	if !errors.Is(err, store.ErrClaimed) {
		return m, err
	}
	until := m.LeaseUntil.Add(50 * time.Millisecond)
	if time.Until(until) > p.opts.Lease {
		return m, err
	}
	for errors.Is(err, store.ErrClaimed) && time.Now().Before(until) {
		if retry.Sleep(ctx, min(p.opts.Lease/6, time.Until(until))) != nil {
			return m, err
		}
		m, err = p.deps.Store.Claim(ctx, id, p.opts.Lease)
	}
	return m, err
}
