package speech

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"unicode/utf8"

	"github.com/patternai/whatsapp-node/retry"
)

// DefaultParallel is how many Text-to-Speech calls one reply makes at once
// in SpeakStream. At the pace of a model (a sentence every ~200 ms) and of
// Text-to-Speech (~150 ms + 2 ms a character), two or three pieces are in
// flight; four leaves room without letting one reply hog the quota.
const DefaultParallel = 4

// Whole is a text that is already complete, in the form SpeakStream takes:
// an answer from a unary call still gains from synthesizing its pieces
// concurrently.
func Whole(text string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) { yield(text, nil) }
}

// piece is the outcome of one Text-to-Speech call of SpeakStream.
type piece struct {
	audio []byte
	err   error
}

// SpeakStream speaks an answer while it is still being written, as one
// OGG/Opus voice note. text yields the answer in pieces of any size (such as
// gemini.Stream.Text); SpeakStream cuts it at sentence ends (see Chunker),
// synthesizes up to Config.TTSParallel pieces at once as they come, retries a
// piece that fails with policy (its Retryable defaults to IsTransient), and
// joins the audio in order. The client library's own retries are off (see
// New), so policy is the one retry layer of these calls: the caller must not
// retry SpeakStream as a whole. The language is
// chosen from the first piece (see AnswerLanguage, with language as the hint)
// and kept for the whole note: a caller that judged the whole answer can only
// pass its judgement as the hint. The limits of Synthesize apply: speech past
// maxSpokenRunes characters or maxAudioBytes of audio is left out.
//
// SpeakStream reads text to its end even when synthesis fails, so that the
// caller holds the whole answer for a text fallback. An error yielded by text
// is returned as is (wrapped); ErrNothingToSay when no piece had anything to
// say.
func (c *Client) SpeakStream(ctx context.Context, text iter.Seq2[string, error], language string, policy retry.Policy) (Speech, error) {
	if policy.Retryable == nil {
		policy.Retryable = IsTransient
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		chunker = NewChunker(c.minChunk)
		sem     = make(chan struct{}, c.parallel)
		wg      sync.WaitGroup
		pieces  []*piece
		v       *voice
		chars   int
		full    bool // a piece did not fit in maxSpokenRunes: the rest is left unsaid
	)
	// start synthesizes a piece in the background, unless a piece failed
	// already or the voice note is full.
	start := func(p string) {
		p = Speakable(p)
		n := utf8.RuneCountInString(p)
		full = full || chars+n > maxSpokenRunes
		if p == "" || full || ctx.Err() != nil {
			return
		}
		if v == nil {
			language = AnswerLanguage(p, language)
			v = c.voiceFor(language)
		}
		chars += n
		pc := &piece{}
		pieces = append(pieces, pc)
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				pc.err = context.Cause(ctx)
				return
			}
			pc.audio, pc.err = retry.Do(ctx, policy, func(ctx context.Context) ([]byte, error) {
				return c.synthesize(ctx, p, v)
			})
			if pc.err != nil {
				cancel(pc.err)
			}
		})
	}

	var textErr error
	for delta, err := range text {
		if err != nil {
			textErr = err
			break
		}
		for _, p := range chunker.Add(delta) {
			start(p)
		}
	}
	if textErr == nil {
		for _, p := range chunker.Flush() {
			start(p)
		}
	} else {
		cancel(textErr)
	}
	wg.Wait()

	if textErr != nil {
		return Speech{}, fmt.Errorf("speak stream: answer: %w", textErr)
	}
	if len(pieces) == 0 {
		return Speech{}, ErrNothingToSay
	}
	files := make([][]byte, len(pieces))
	for i, pc := range pieces {
		if pc.err != nil {
			return Speech{}, fmt.Errorf("speak stream (piece %d of %d): %w", i+1, len(pieces), pc.err)
		}
		files[i] = pc.audio
	}
	if err := context.Cause(ctx); err != nil {
		return Speech{}, fmt.Errorf("speak stream: %w", err)
	}
	sp, err := voiceNote(files, language, chars)
	if err != nil {
		return Speech{}, fmt.Errorf("speak stream: %w", err)
	}
	return sp, nil
}

// voiceNote joins the spoken files into one voice note (see joinCapped) and
// measures it.
func voiceNote(files [][]byte, language string, chars int) (Speech, error) {
	audio, err := joinCapped(files)
	if err != nil {
		return Speech{}, err
	}
	length, err := OggDuration(audio)
	if err != nil {
		return Speech{}, err
	}
	return Speech{Audio: audio, Seconds: length.Seconds(), Language: language, Chars: chars}, nil
}

// joinCapped joins OGG/Opus files in order into one voice note, leaving out
// the files at the end that would take it past maxAudioBytes, beyond which
// WhatsApp shows a file instead of a play button; the first file is always
// kept, so there is something to send.
func joinCapped(files [][]byte) ([]byte, error) {
	audio, err := joinOpus(files)
	if err != nil || len(audio) <= maxAudioBytes || len(files) == 1 {
		return audio, err
	}
	for n := len(files) - 1; ; n-- {
		if audio, err = joinOpus(files[:n]); err != nil || len(audio) <= maxAudioBytes || n == 1 {
			return audio, err
		}
	}
}
