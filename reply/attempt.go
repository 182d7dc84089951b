package reply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/retry"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/store"
)

// attempt is one try at one message, under one claim.
type attempt struct {
	p     *Pipeline
	job   queue.Job
	id    string // the message's wamid
	token int    // the claim's fencing token
	log   *slog.Logger

	// resuming is set on every attempt but the first: only then can an
	// earlier one have staged an answer or a voice note worth looking for.
	resuming bool
	// staging holds writes of staged results, which run beside the reply
	// rather than in front of it.
	staging sync.WaitGroup
	// answerStaged is closed once the answer is reused or its staging
	// write has ended, well or not; leading is set once a part of the
	// answer took the lead. See awaitStaged.
	answerStaged chan struct{}
	leading      atomic.Bool
	// exchange is the message and its answer once this attempt has them
	// (made or reused), for the record of an answer that went out only in
	// part (see recordStanding). Only the attempt's own goroutine sets it,
	// before anything is sent.
	exchange *staged

	mu     sync.Mutex
	marker store.Marker // as last read: at the claim, then at each renewal
	sent   map[string]bool
	stages []any // stage durations for the summary log line
	cost   cost  // what the reply used, for the summary log line
}

// cost is what a reply used, in the units its services bill.
type cost struct {
	gemini.Usage
	audioInSeconds float64 // recognized by Speech-to-Text
	ttsChars       int     // sent to Text-to-Speech
}

func newAttempt(p *Pipeline, job queue.Job, m store.Marker, log *slog.Logger) *attempt {
	a := &attempt{p: p, job: job, id: job.Message.ID, token: m.Attempts, marker: m,
		log: log.With("attempt", m.Attempts), resuming: m.Attempts > 1, sent: map[string]bool{},
		answerStaged: make(chan struct{})}
	for _, part := range m.Sent {
		a.sent[part] = true
	}
	return a
}

// errGaveUp ends a message that failed MaxAttempts times.
var errGaveUp = errors.New("gave up")

// run answers the message under the claim and settles the claim: completed
// when the user has an answer (or the fallback, or cannot be reached), handed
// back with an error when a later attempt may do better, left alone when the
// claim was lost.
func (a *attempt) run(ctx context.Context, k kind, userText string) error {
	o := a.p.opts
	work, stop := a.keepClaim(ctx, o.Budget-o.reserve())
	var err error
	switch {
	case a.isSent(store.FallbackPart):
		// Only the Complete of an earlier attempt is missing.
	case a.token > o.MaxAttempts && !a.uncertain():
		// A part still uncertain is settled by answering once more (its
		// send is repeated, or confirmed, as sendPart says) rather than by
		// giving up, which could leave a message whose send never reached
		// Meta without any reply.
		err = fmt.Errorf("%w after %d attempts", errGaveUp, o.MaxAttempts)
	default:
		err = a.serve(work, k, userText)
	}
	lost := stop()
	if lost != nil || claimGone(err) {
		// Another attempt holds the message now: it decides what the user
		// gets. Nothing more is written here.
		a.log.Warn("claim lost; stopping", "error", cmp.Or(lost, err))
		return nil
	}

	// The reserve: the fallback and the final writes get a budget of their
	// own, since the work's may be what ran out.
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.reserve())
	defer cancel()
	if err != nil {
		if ferr := a.fallback(final, err); ferr != nil {
			// Nothing settled reached the user, and a later try may do
			// better: hand the message back at once so that try need not
			// wait for the lease.
			if uerr := a.p.deps.Store.Unclaim(final, a.id, a.token); uerr != nil && !errors.Is(uerr, store.ErrLost) {
				ferr = errors.Join(ferr, uerr)
			}
			return ferr
		}
	}
	if err := a.p.deps.Store.Complete(final, a.id, a.token); err != nil && !errors.Is(err, store.ErrLost) {
		// The reply went out; a retry will find its parts recorded as sent.
		return fmt.Errorf("complete message: %w", err)
	}
	return nil
}

// claimGone reports whether err says the claim is no longer this attempt's:
// another attempt took the message, or it is answered.
func claimGone(err error) bool {
	return errors.Is(err, store.ErrLost) || errors.Is(err, store.ErrReplied)
}

// keepClaim returns the context the attempt works in, bounded by budget, and
// renews the claim every third of a lease until stop is called. When the
// claim is lost the context is cancelled, so the work stops before sending
// anything more (StartSend would refuse anyway). stop returns the error that
// lost it, if any.
func (a *attempt) keepClaim(ctx context.Context, budget time.Duration) (context.Context, func() error) {
	work, cancelBudget := context.WithTimeout(ctx, budget)
	work, cancel := context.WithCancelCause(work)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(a.p.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, err := a.renew(work)
				if claimGone(err) {
					cancel(err)
					return
				}
				if err != nil {
					// The next tick tries again; a lease that lapses in the
					// meantime is only lost if someone else claims it.
					a.log.Warn("lease not renewed", "error", err)
				}
			}
		}
	})
	return work, func() error {
		close(done)
		wg.Wait()
		lost := context.Cause(work)
		if !claimGone(lost) {
			lost = nil
		}
		cancel(nil)
		cancelBudget()
		return lost
	}
}

// renew extends the lease and keeps the marker it returns, which shows the
// parts that status webhooks confirmed since.
func (a *attempt) renew(ctx context.Context) (store.Marker, error) {
	m, err := a.p.deps.Store.Renew(ctx, a.id, a.token, a.p.opts.Lease)
	if err != nil {
		return m, err
	}
	a.mu.Lock()
	a.marker = m
	for _, part := range m.Sent {
		a.sent[part] = true
	}
	a.mu.Unlock()
	return m, nil
}

// answer produces the answer (or finds the one staged by an earlier attempt)
// and delivers it in the configured mode. A fresh answer is spoken while the
// model writes it; the text goes out as soon as the answer is complete.
func (a *attempt) answer(ctx context.Context, k kind, userText string) error {
	start := time.Now()
	// The read receipt and typing indicator go out beside the real work; a
	// failure there is not worth failing the reply for.
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.p.deps.Messenger.MarkRead(ctx, a.job.PhoneNumberID, a.id, true); err != nil {
			a.log.Warn("mark read failed", "error", err)
		}
	})
	defer wg.Wait()
	defer a.staging.Wait()

	mode := a.p.opts.Mode
	wantText := mode == Text || mode == Both || mode == Mirror && k != voice
	speak := (mode == Audio || mode == Both || mode == Mirror && k == voice) && !a.isSent(partAudio)

	st, err := a.stagedAnswer(ctx)
	if err != nil {
		return err
	}
	var note *voiceNote
	switch {
	case st == nil:
		if err := a.unknownAnswerOut(ctx); err != nil {
			return err
		}
		if st, note, err = a.think(ctx, k, userText, speak); err != nil {
			return err
		}
	default:
		a.log.Info("reusing staged answer")
		close(a.answerStaged)
		if speak {
			note = a.voiceOf(ctx, st)
		}
	}
	a.exchange = st
	if err := a.deliver(ctx, st, note, wantText); err != nil {
		return err
	}
	a.recordExchange(ctx, st)
	a.mu.Lock()
	fields := append(a.stages, "total_ms", ms(time.Since(start)), "model", a.p.deps.Responder.Model(),
		"mode", string(mode), "reply_chars", len([]rune(st.Answer)), "language", st.Language)
	// What the reply used, under the names README's cost command sums: on
	// every line, zeros included.
	fields = append(fields, "prompt_tokens", a.cost.PromptTokens, "answer_tokens", a.cost.AnswerTokens,
		"audio_in_seconds", a.cost.audioInSeconds, "tts_chars", a.cost.ttsChars)
	a.mu.Unlock()
	a.log.Info("replied", fields...)
	return nil
}

// unknownAnswerOut returns errNotStaged when a part of an answer went out
// and nothing was staged: the earlier attempt that sent it died before its
// staging write landed, which only the first part to leave can outrun (see
// awaitStaged), or after the write failed. That answer is unknown now, and a
// new one must not follow it: its further parts, or the voice note beside
// its text, would be another answer's, and the conversation would record
// words the user never read.
// The part that went out stands alone, as a part does when its attempt gives
// up (the fallback refuses to follow it), and nothing is recorded of the
// exchange (recordStanding logs that): for an answer of one part, which is
// the common case, the user has it whole all the same. A part whose send was
// uncertain is settled first, as before a fallback, since only a part that
// went out forbids a new answer.
func (a *attempt) unknownAnswerOut(ctx context.Context) error {
	if a.uncertain() {
		if err := a.settleUncertain(ctx); err != nil {
			return err
		}
	}
	if a.answered() {
		return fmt.Errorf("part of an answer went out: %w", errNotStaged)
	}
	return nil
}

// recordExchange adds the message and its answer to the sender's
// conversation, for the model to read when it answers the next message. The
// turns' IDs are the message's, so recording the exchange again (a retry's,
// after a crash or a lost Complete) replaces it rather than adding it twice.
//
// The exchange is dated now, when it is recorded, the message just before
// its answer: a sender's messages are answered one at a time, in order, so
// the conversation reads back in exchanges, in that order. Dating the
// message by its arrival would put every message that came while an earlier
// one was being answered before that earlier answer.
func (a *attempt) recordExchange(ctx context.Context, st *staged) {
	turns := []store.Turn{
		{ID: a.id + "-user", Role: "user", Text: st.Question},
		{ID: a.id + "-model", Role: "model", Text: st.Answer},
	}
	if err := a.p.deps.Store.AppendTurns(ctx, a.job.Sender, turns...); err != nil {
		// The user has the answer; losing it from the history is the lesser harm.
		a.log.Error("conversation not recorded", "error", err)
	}
}

// recordStanding records the exchange of an answer that went out in part
// and stands: the user saw it, so the model answering their next message
// must know it. The answer is the one this attempt delivered, or else the
// one the earlier attempt that sent it staged (this attempt gave up, or
// failed, before reading it).
func (a *attempt) recordStanding(ctx context.Context) {
	st := a.exchange
	if st == nil {
		var err error
		if st, err = a.stagedAnswer(ctx); st == nil {
			a.log.Error("conversation not recorded", "error", cmp.Or(err, errNotStaged))
			return
		}
	}
	a.recordExchange(ctx, st)
}

// errNotStaged is an answer that went out but that no attempt staged (its
// write failed, or the process died before it was made).
var errNotStaged = errors.New("answer not staged")

// think builds the prompt (hearing or downloading what it needs, beside
// reading the history), asks the model and stages its answer. It returns
// once the answer is complete. With speak, the voice note is spoken while the
// model writes, and may still be being finished when think returns.
func (a *attempt) think(ctx context.Context, k kind, userText string, speak bool) (*staged, *voiceNote, error) {
	var (
		history []store.Turn
		herr    error
		wg      sync.WaitGroup
	)
	wg.Go(func() { history, herr = a.p.deps.Store.History(ctx, a.job.Sender, a.p.opts.HistoryTurns) })

	// st.Language is the user's language until the answer is written: the
	// hint for the answer's, when the answer's own text does not tell.
	st := &staged{Question: userText, Language: speech.DetectLanguage(userText)}
	prompt := gemini.Prompt{Text: userText}
	hear := k == voice && a.p.opts.STTEngine == GeminiAudio
	var (
		att gemini.Attachment
		err error
	)
	switch {
	case hear:
		// The model hears the voice note itself: no transcript to wait for.
		att, err = a.attachment(ctx)
	case k == voice:
		var tr speech.Transcript
		if tr, err = a.transcribe(ctx); err == nil {
			st.Question, st.Language = tr.Text, tr.Language
			prompt.Text, prompt.Language = tr.Text, tr.Language
		}
	case k == attachment:
		if att, err = a.attachment(ctx); err == nil {
			prompt.Attachments = []gemini.Attachment{att}
			st.Question = "[" + a.job.Message.Type + "] " + userText
		}
	}
	wg.Wait()
	if err != nil {
		return nil, nil, err
	}
	if herr != nil {
		a.log.Warn("history unavailable; answering without it", "error", herr)
	}

	turns := make([]gemini.Turn, len(history))
	for i, t := range history {
		turns[i] = gemini.Turn{Role: t.Role, Text: t.Text}
	}
	if hear {
		return a.hear(ctx, turns, att, speak)
	}
	return a.generate(ctx, turns, prompt, st, speak)
}

// generate has the model write the answer to prompt as a stream. With speak,
// the stream feeds Text-to-Speech as it comes, so that most of the voice note
// is spoken by the time the answer is complete; generate returns then, and
// the voice note follows. A failure of the model is retried (a fresh stream,
// spoken afresh) with the pipeline's policy; a failure of speech is the voice
// note's, left for deliver, and never retried here: SpeakStream retries each
// of its calls itself.
func (a *attempt) generate(ctx context.Context, turns []gemini.Turn, prompt gemini.Prompt, st *staged, speak bool) (*staged, *voiceNote, error) {
	start := time.Now()
	// consume takes each try's text as the model writes it. Without speak it
	// is only read to its end; with speak it feeds Text-to-Speech, and the
	// last try's speech is the voice note's.
	consume := func(_ context.Context, text iter.Seq2[string, error]) {
		for range text {
		}
	}
	var (
		note *voiceNote
		sp   speech.Speech
		serr error
	)
	if speak {
		note = newVoiceNote()
		consume = func(ctx context.Context, text iter.Seq2[string, error]) {
			sp, serr = a.p.deps.Synthesizer.SpeakStream(ctx, text, st.Language, a.ttsPolicy())
		}
	}
	// complete gets the stream whose answer is whole: at most one, since a
	// stream that ends well ends the retries. The tries run beside generate,
	// which returns on complete while the voice note may still be spoken.
	complete := make(chan *gemini.Stream, 1)
	failed := make(chan error, 1)
	go func() {
		_, err := retry.Do(ctx, a.p.opts.policy(a.log, "llm", gemini.IsTransient), func(ctx context.Context) (struct{}, error) {
			s := a.p.deps.Responder.GenerateStream(ctx, turns, prompt)
			consume(ctx, func(yield func(string, error) bool) {
				for delta, err := range s.Text() {
					if !yield(delta, err) {
						return
					}
				}
				if s.Err() == nil {
					complete <- s
				}
			})
			return struct{}{}, s.Err()
		})
		switch {
		case err != nil:
			failed <- err
		case speak:
			a.spoken(ctx, note, sp, serr, start)
		}
	}()

	select {
	case err := <-failed:
		return nil, nil, fmt.Errorf("generate answer: %w", err)
	case s := <-complete:
		a.record("llm_ms", ms(time.Since(start)))
		a.used(s.Usage())
		st.Answer = s.Answer()
		// The whole answer's language, for the log and the stage. It does
		// not choose this voice note's voice: SpeakStream chose that from
		// the first piece, with the user's language as the hint. A retry
		// that speaks the staged answer gives it as the hint instead.
		st.Language = speech.AnswerLanguage(st.Answer, st.Language)
		a.stageAnswer(ctx, st)
		return st, note, nil
	}
}

// hear has the model listen to the voice note and answer it in one call
// (STT_ENGINE=gemini). The transcript it returns is kept for the history.
// The answer comes whole (structured output), and with speak is spoken in
// concurrent pieces.
func (a *attempt) hear(ctx context.Context, turns []gemini.Turn, audio gemini.Attachment, speak bool) (*staged, *voiceNote, error) {
	h, err := timed(a, "llm", func() (gemini.Heard, error) {
		return retry.Do(ctx, a.p.opts.policy(a.log, "llm", gemini.IsTransient), func(ctx context.Context) (gemini.Heard, error) {
			return a.p.deps.Responder.AnswerAudio(ctx, turns, audio)
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("answer voice note: %w", err)
	}
	a.used(h.Usage)
	// The whole answer's language is staged and is the hint SpeakStream
	// chooses the voice with; the voice follows the first piece it speaks.
	st := &staged{Question: h.Transcript, Answer: h.Answer, Language: speech.AnswerLanguage(h.Answer, h.Language)}
	a.stageAnswer(ctx, st)
	var note *voiceNote
	if speak {
		note = a.speak(ctx, st)
	}
	return st, note, nil
}

// transcribe downloads the voice note, stages it (a note over a minute is
// recognized from the staged copy) and transcribes it.
func (a *attempt) transcribe(ctx context.Context) (speech.Transcript, error) {
	audio := a.job.Message.Audio
	dl, err := timed(a, "download", func() (*graphapi.Download, error) {
		return a.p.deps.Messenger.DownloadMedia(ctx, audio.ID, maxMediaBytes, audio.SHA256)
	})
	if err != nil {
		return speech.Transcript{}, fmt.Errorf("download voice note: %w", err)
	}
	name := inboundName(a.id)
	if _, err := timed(a, "stage", func() (struct{}, error) {
		return struct{}{}, a.p.deps.Stager.Put(ctx, name, dl.Data, "audio/ogg")
	}); err != nil {
		return speech.Transcript{}, fmt.Errorf("stage voice note: %w", err)
	}
	tr, err := timed(a, "stt", func() (speech.Transcript, error) {
		return retry.Do(ctx, a.p.opts.policy(a.log, "stt", speech.IsTransient), func(ctx context.Context) (speech.Transcript, error) {
			return a.p.deps.Transcriber.Transcribe(ctx, dl.Data, a.p.deps.Stager.URI(name))
		})
	})
	if err != nil {
		return speech.Transcript{}, fmt.Errorf("transcribe voice note: %w", err)
	}
	a.mu.Lock()
	a.cost.audioInSeconds += tr.Seconds
	a.mu.Unlock()
	return tr, nil
}

// attachment downloads an image, a PDF or a voice note for the model to
// read or hear.
func (a *attempt) attachment(ctx context.Context) (gemini.Attachment, error) {
	md := mediaOf(a.job.Message)
	dl, err := timed(a, "download", func() (*graphapi.Download, error) {
		return a.p.deps.Messenger.DownloadMedia(ctx, md.ID, maxMediaBytes, md.SHA256)
	})
	if err != nil {
		return gemini.Attachment{}, fmt.Errorf("download %s: %w", a.job.Message.Type, err)
	}
	return gemini.Attachment{MIMEType: mimeBase(cmp.Or(dl.MIMEType, md.MIMEType)), Data: dl.Data}, nil
}

// fallback tells the user their message could not be answered, once. It
// returns nil when the fallback went out, or when Meta refuses to reach the
// user for good; an error when a later attempt should try again. The store
// refuses the fallback (store.ErrAnswered) once a part of the answer was
// sent or may have been: then the answer stands (and its exchange is
// recorded, as a whole answer's is), or a later attempt settles its
// uncertain part, unless this was the last attempt.
func (a *attempt) fallback(ctx context.Context, cause error) error {
	a.log.Error("reply failed", "error", cause)
	if err := a.settleUncertain(ctx); err != nil {
		return fmt.Errorf("%w (no fallback yet: %w)", cause, err)
	}
	err := a.sendMessage(ctx, store.FallbackPart, a.p.opts.Fallback)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrAnswered) && a.answered():
		a.log.Error("part of the answer went out; it stands")
		a.recordStanding(ctx)
		return nil
	case errors.Is(err, store.ErrAnswered), errors.Is(err, errUnsettled):
		return fmt.Errorf("%w (no fallback: part of the answer went out or may have)", cause)
	case graphapi.Unsent(err) && !graphapi.IsTransient(err):
		// Meta refuses for good (outside the 24-hour window, undeliverable,
		// bad token): no later try can reach the user either.
		a.log.Error("user unreachable; giving up", "error", err)
		return nil
	default:
		return err
	}
}

// settleUncertain decides the parts of the answer whose send had an unknown
// outcome, before a fallback: each waits for its status up to the
// confirmation window, as sendPart's do, and one that no status confirmed is
// taken as not sent (AbortSend), which lets the fallback go in its place.
// Only an answer that reached Meta with its status lost for the whole window
// then stands beside the fallback: the risk README states.
func (a *attempt) settleUncertain(ctx context.Context) error {
	m, err := a.renew(ctx)
	if err != nil {
		return err
	}
	for part, since := range m.Sending {
		if part == store.FallbackPart || a.isSent(part) {
			continue
		}
		if err := a.awaitConfirmation(ctx, part, since); err != nil {
			return err
		}
		if a.isSent(part) {
			continue
		}
		a.log.Warn("no status confirmed an uncertain send; taking it as not sent", "part", part)
		if err := a.p.deps.Store.AbortSend(ctx, a.id, a.token, part); err != nil {
			return err
		}
	}
	return nil
}

// uncertain reports whether the marker, as last read, has a part whose send
// had an unknown outcome.
func (a *attempt) uncertain() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for part := range a.marker.Sending {
		if !a.sent[part] {
			return true
		}
	}
	return false
}

// answered reports whether a part of the answer (not the fallback) is known
// delivered.
func (a *attempt) answered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for part := range a.sent {
		if part != store.FallbackPart {
			return true
		}
	}
	return false
}

// begun reports whether a text part and whether the voice note of the
// answer are sent or uncertain, as far as the marker last read shows.
func (a *attempt) begun() (text, audio bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	see := func(part string) {
		text = text || isTextPart(part)
		audio = audio || part == partAudio
	}
	for part := range a.sent {
		see(part)
	}
	for part := range a.marker.Sending {
		see(part)
	}
	return text, audio
}

// isSent reports whether part is known delivered.
func (a *attempt) isSent(part string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent[part]
}

// record adds fields to the summary log line.
func (a *attempt) record(fields ...any) {
	a.mu.Lock()
	a.stages = append(a.stages, fields...)
	a.mu.Unlock()
}

// timed runs f and records its duration under stage.
func timed[T any](a *attempt, stage string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	a.record(stage+"_ms", ms(time.Since(start)))
	return v, err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
