package reply

import (
	"context"
	"fmt"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/retry"
	"github.com/patternai/whatsapp-node/speech"
)

// voiceNote is the reply's audio, which may still be being spoken: its
// audio and err are set before done is closed.
type voiceNote struct {
	done  chan struct{}
	audio []byte
	err   error
}

func newVoiceNote() *voiceNote { return &voiceNote{done: make(chan struct{})} }

// wait returns the audio once it is spoken.
func (v *voiceNote) wait() ([]byte, error) {
	<-v.done
	return v.audio, v.err
}

// voiceOf is the voice note of an answer an earlier attempt staged: the
// audio it staged too, or else the answer spoken afresh in the language it
// staged.
func (a *attempt) voiceOf(ctx context.Context, st *staged) *voiceNote {
	if audio := a.stagedAudio(ctx); audio != nil {
		note := newVoiceNote()
		note.audio = audio
		close(note.done)
		return note
	}
	return a.speak(ctx, st)
}

// speak speaks a complete answer in the background. Its pieces are still
// spoken concurrently (see speech.SpeakStream).
func (a *attempt) speak(ctx context.Context, st *staged) *voiceNote {
	note := newVoiceNote()
	go func() {
		start := time.Now()
		sp, err := a.p.deps.Synthesizer.SpeakStream(ctx, speech.Whole(st.Answer), st.Language, a.ttsPolicy())
		a.spoken(ctx, note, sp, err, start)
	}()
	return note
}

// spoken settles note with what speech made of the answer since start,
// records what it cost and stages the audio for a retry.
func (a *attempt) spoken(ctx context.Context, note *voiceNote, sp speech.Speech, err error, start time.Time) {
	defer close(note.done)
	a.record("tts_ms", ms(time.Since(start)))
	if err != nil {
		note.err = fmt.Errorf("synthesize: %w", err)
		return
	}
	a.mu.Lock()
	a.cost.ttsChars += sp.Chars
	a.mu.Unlock()
	a.record("audio_out_seconds", sp.Seconds, "audio_out_bytes", len(sp.Audio))
	a.stageAudio(ctx, sp.Audio)
	note.audio = sp.Audio
}

// ttsPolicy is the retry policy of each Text-to-Speech call, which
// SpeakStream applies itself: nothing above it retries speech.
func (a *attempt) ttsPolicy() retry.Policy {
	return a.p.opts.policy(a.log, "tts", speech.IsTransient)
}

// used adds a model call's tokens to the reply's cost.
func (a *attempt) used(u gemini.Usage) {
	a.mu.Lock()
	a.cost.PromptTokens += u.PromptTokens
	a.cost.AnswerTokens += u.AnswerTokens
	a.mu.Unlock()
}
