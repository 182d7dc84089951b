package reply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/patternai/whatsapp-node/media"
	"github.com/patternai/whatsapp-node/speech"
)

// deliver sends the answer as the mode says, skipping parts an earlier
// attempt already sent. When the voice note cannot be made or sent, the
// answer goes out as text instead: the user still gets the real answer.
func (r *run) deliver(ctx context.Context, st *staged) error {
	wantAudio := r.p.opts.Mode == Audio || r.p.opts.Mode == Both || (r.p.opts.Mode == Mirror && st.Voice)
	wantText := r.p.opts.Mode == Text || r.p.opts.Mode == Both || (r.p.opts.Mode == Mirror && !st.Voice)

	var (
		wg      sync.WaitGroup
		textErr error
	)
	if wantText && !r.sent[partText] {
		// In both mode the text leaves as soon as the answer exists, while
		// the voice note is still being synthesized.
		wg.Go(func() { textErr = r.sendText(ctx, st.Answer) })
	}
	var audioErr error
	if wantAudio && !r.sent[partAudio] {
		audioErr = r.sendVoice(ctx, st)
	}
	wg.Wait()
	if textErr != nil {
		return textErr
	}
	if audioErr == nil {
		return nil
	}
	if r.sent[partText] {
		r.log.Error("voice note not sent; the text answer stands", "error", audioErr)
		return nil
	}
	r.log.Error("voice note not sent; answering with text", "error", audioErr)
	return r.sendText(ctx, st.Answer)
}

// sendText sends body as text and records it.
func (r *run) sendText(ctx context.Context, body string) error {
	_, err := timed(r, "send_text", func() ([]string, error) {
		return r.p.Messenger.SendText(ctx, r.job.PhoneNumberID, r.job.Sender, body)
	})
	if err != nil {
		return fmt.Errorf("send text: %w", err)
	}
	r.markSent(ctx, partText)
	return nil
}

// sendVoice synthesizes the answer (or reuses the audio an earlier attempt
// staged), uploads it and sends it as a voice note.
func (r *run) sendVoice(ctx context.Context, st *staged) error {
	audio, err := r.voiceNote(ctx, st)
	if err != nil {
		return err
	}
	id, err := timed(r, "upload", func() (string, error) {
		return r.p.Messenger.UploadMedia(ctx, r.job.PhoneNumberID, bytes.NewReader(audio), "audio/ogg", "reply.ogg")
	})
	if err != nil {
		return fmt.Errorf("upload voice note: %w", err)
	}
	if _, err := timed(r, "send_audio", func() (string, error) {
		return r.p.Messenger.SendAudio(ctx, r.job.PhoneNumberID, r.job.Sender, id, true)
	}); err != nil {
		return fmt.Errorf("send voice note: %w", err)
	}
	r.markSent(ctx, partAudio)
	return nil
}

// voiceNote returns the staged reply audio, or synthesizes and stages it.
func (r *run) voiceNote(ctx context.Context, st *staged) ([]byte, error) {
	if r.resuming {
		audio, err := r.p.Stager.Get(ctx, r.audioName())
		if err == nil {
			r.log.Info("reusing staged voice note")
			return audio, nil
		}
		if !errors.Is(err, media.ErrNotFound) {
			r.log.Warn("staged voice note unreadable; synthesizing again", "error", err)
		}
	}
	sp, err := timed(r, "tts", func() (speech.Speech, error) {
		return retry(ctx, r, "tts", speech.IsTransient, func(ctx context.Context) (speech.Speech, error) {
			return r.p.Synthesizer.Synthesize(ctx, st.Answer, st.Language)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("synthesize: %w", err)
	}
	r.mu.Lock()
	r.stages = append(r.stages, "audio_out_seconds", sp.Seconds, "audio_out_bytes", len(sp.Audio))
	r.mu.Unlock()
	r.staging.Go(func() {
		if err := r.p.Stager.Put(ctx, r.audioName(), sp.Audio, "audio/ogg"); err != nil {
			r.log.Warn("voice note not staged", "error", err)
		}
	})
	return sp.Audio, nil
}
