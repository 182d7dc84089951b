package speech

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/patternai/whatsapp-node/retry"
	"github.com/patternai/whatsapp-node/speech/speechtest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// quick is the retry policy of the tests: three calls, short waits.
var quick = retry.Policy{Attempts: 3, Initial: 10 * time.Millisecond}

func streamClient(t *testing.T, cfg Config) (*Client, *speechtest.Server) {
	t.Helper()
	srv := speechtest.NewServer(t)
	cfg.Project = "test-project"
	cfg.ClientOptions = srv.ClientOptions()
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv
}

// deltas yields text n characters at a time, counting what was read.
func deltas(text string, n int, read *int) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		runes := []rune(text)
		for i := 0; i < len(runes); i += n {
			d := string(runes[i:min(i+n, len(runes))])
			*read += len(d)
			if !yield(d, nil) {
				return
			}
		}
	}
}

// numbered is an answer of n sentences, the first ones longest, so that at
// a per-character pace the later pieces are synthesized first.
func numbered(n int) (string, []string) {
	var sentences []string
	for i := range n {
		sentences = append(sentences, fmt.Sprintf("Sentence %d says%s something.", i, strings.Repeat(" very", 2*(n-i))))
	}
	return strings.Join(sentences, " "), sentences
}

// TestSpeakStreamOrder synthesizes pieces that finish in reverse order and
// checks that the voice note still has them in the answer's order, as one
// valid stream.
func TestSpeakStreamOrder(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{TTSMinChunk: 1, TTSParallel: 12})
	text, sentences := numbered(12)
	files := speechtest.TTSAudio()
	audioOf := map[string][]byte{}
	for i, s := range sentences {
		audioOf[s] = files[i%len(files)]
	}
	srv.SetVoice(func(_ context.Context, text, _ string) ([]byte, error) { return audioOf[text], nil })
	srv.SetPace(speechtest.Pace{PerChar: time.Millisecond})

	read := 0
	got, err := c.SpeakStream(t.Context(), deltas(text, 9, &read), "", quick)
	if err != nil {
		t.Fatal(err)
	}

	var inOrder [][]byte
	for _, s := range sentences {
		inOrder = append(inOrder, audioOf[s])
	}
	want, err := joinOpus(inOrder)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Audio, want) {
		t.Errorf("voice note (%d bytes) is not the pieces joined in the answer's order (%d bytes)", len(got.Audio), len(want))
	}
	if n := len(srv.SynthesizeRequests()); n != len(sentences) {
		t.Errorf("%d SynthesizeSpeech calls, want one per sentence: %d", n, len(sentences))
	}
	if got.Chars != utf8.RuneCountInString(text)-len(sentences)+1 {
		t.Errorf("Chars = %d, want the %d characters of the sentences", got.Chars, utf8.RuneCountInString(text)-len(sentences)+1)
	}
	d, err := OggDuration(got.Audio)
	if err != nil || got.Seconds != d.Seconds() {
		t.Errorf("Seconds = %v, OggDuration = %v, %v", got.Seconds, d, err)
	}
	checkWithOpusTools(t, got.Audio, d)
}

// TestSpeakStreamManyPieces joins forty pieces and has opus-tools play the
// result.
func TestSpeakStreamManyPieces(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{TTSMinChunk: 1})
	text := strings.Repeat("Short one. And another! ", 20)

	read := 0
	got, err := c.SpeakStream(t.Context(), deltas(text, 4, &read), "en-US", quick)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.SynthesizeRequests()); n != 40 {
		t.Fatalf("%d SynthesizeSpeech calls, want 40", n)
	}
	if n := srv.MaxConcurrentSynthesis(); n > DefaultParallel {
		t.Errorf("%d SynthesizeSpeech calls at once, want at most %d", n, DefaultParallel)
	}
	d, err := OggDuration(got.Audio)
	if err != nil {
		t.Fatal(err)
	}
	if want := 20 * (4378 + 2850) * time.Millisecond; d < want || d > want+40*30*time.Millisecond {
		t.Errorf("voice note lasts %v, want about %v", d, want)
	}
	checkWithOpusTools(t, got.Audio, d)
}

// TestSpeakStreamParallelism checks that pieces are synthesized at once, and
// never more than TTSParallel of them.
func TestSpeakStreamParallelism(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{TTSMinChunk: 1, TTSParallel: 3})
	srv.SetPace(speechtest.Pace{Base: 50 * time.Millisecond})
	text, _ := numbered(8)

	read := 0
	if _, err := c.SpeakStream(t.Context(), deltas(text, 1000, &read), "", quick); err != nil {
		t.Fatal(err)
	}
	if n := srv.MaxConcurrentSynthesis(); n != 3 {
		t.Errorf("%d SynthesizeSpeech calls at once, want 3 (TTSParallel)", n)
	}
}

// TestSpeakStreamShortAnswer checks that a short answer is one call.
func TestSpeakStreamShortAnswer(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{})
	read := 0
	if _, err := c.SpeakStream(t.Context(), deltas("Sure, see you at nine. Bye!", 3, &read), "", quick); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.SynthesizeRequests(); len(reqs) != 1 || reqs[0].GetInput().GetText() != "Sure, see you at nine. Bye!" {
		t.Errorf("requests = %v, want the answer in one call", reqs)
	}
}

// TestSpeakStreamRetriesAPiece fails a piece twice: it is retried by
// SpeakStream's policy alone, so exactly three calls are made for it, and a
// third failure is the end of it (the client library's retries, which would
// keep going, are off).
func TestSpeakStreamRetriesAPiece(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{})
	srv.FailNext(speechtest.SynthesizeSpeech, 2, codes.Unavailable)
	read := 0
	got, err := c.SpeakStream(t.Context(), deltas("Hello there.", 100, &read), "", quick)
	if err != nil || len(got.Audio) == 0 {
		t.Fatalf("SpeakStream = %d bytes, %v; want the audio after two retries", len(got.Audio), err)
	}
	if n := len(srv.SynthesizeRequests()); n != 3 {
		t.Errorf("%d SynthesizeSpeech calls, want 3", n)
	}

	c, srv = streamClient(t, Config{})
	srv.FailNext(speechtest.SynthesizeSpeech, 3, codes.Unavailable)
	_, err = c.SpeakStream(t.Context(), deltas("Hello there.", 100, &read), "", quick)
	if status.Code(err) != codes.Unavailable || !IsTransient(err) {
		t.Errorf("SpeakStream error = %v, want Unavailable after three calls", err)
	}
	if n := len(srv.SynthesizeRequests()); n != 3 {
		t.Errorf("%d SynthesizeSpeech calls, want 3: one policy, not stacked with the client's", n)
	}
}

// TestSpeakStreamFailingPiece fails one piece for good: SpeakStream stops
// synthesizing, still reads the whole answer (for the text fallback) and
// says which piece failed.
func TestSpeakStreamFailingPiece(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{TTSMinChunk: 1, TTSParallel: 1})
	srv.SetPace(speechtest.Pace{Base: 20 * time.Millisecond})
	srv.FailNext(speechtest.SynthesizeSpeech, 1, codes.InvalidArgument)
	text, sentences := numbered(10)

	read := 0
	_, err := c.SpeakStream(t.Context(), deltas(text, 5, &read), "", quick)

	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "piece 1 of") {
		t.Errorf("SpeakStream error = %v, want piece 1's InvalidArgument", err)
	}
	if read != len(text) {
		t.Errorf("read %d of %d bytes of the answer, want all of it", read, len(text))
	}
	if n := len(srv.SynthesizeRequests()); n >= len(sentences) {
		t.Errorf("%d SynthesizeSpeech calls, want synthesis to stop after the failure", n)
	}
}

func TestSpeakStreamTextError(t *testing.T) {
	t.Parallel()
	c, _ := streamClient(t, Config{TTSMinChunk: 1})
	broken := errors.New("stream broke")
	text := func(yield func(string, error) bool) {
		if yield("A first sentence. And a second", nil) {
			yield("", broken)
		}
	}
	_, err := c.SpeakStream(t.Context(), text, "", quick)
	if !errors.Is(err, broken) {
		t.Errorf("SpeakStream error = %v, want the answer's error", err)
	}
}

func TestSpeakStreamLanguage(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{})
	spanish := "Claro, he reservado una mesa para dos mañana a las nueve de la noche. El restaurante está cerca de la estación. " +
		"Guardarán la mesa durante quince minutos. ¡Que lo disfrutes!"
	read := 0
	got, err := c.SpeakStream(t.Context(), deltas(spanish, 6, &read), "", quick)
	if err != nil {
		t.Fatal(err)
	}
	if got.Language != "es" {
		t.Errorf("Language = %q, want es", got.Language)
	}
	for i, r := range srv.SynthesizeRequests() {
		if v := r.GetVoice(); v.GetName() != "es-ES-Chirp3-HD-Achernar" {
			t.Errorf("request %d voice = %q, want es-ES-Chirp3-HD-Achernar", i, v.GetName())
		}
	}
}

func TestSpeakStreamNothingToSay(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{})
	read := 0
	_, err := c.SpeakStream(t.Context(), deltas("🎉 👍 https://example.com", 3, &read), "", quick)
	if !errors.Is(err, ErrNothingToSay) || len(srv.SynthesizeRequests()) != 0 {
		t.Errorf("SpeakStream error = %v after %d calls, want ErrNothingToSay and none", err, len(srv.SynthesizeRequests()))
	}
}

func TestSpeakStreamWhole(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{TTSMinChunk: 1})
	if _, err := c.SpeakStream(t.Context(), Whole("One. Two. Three."), "", quick); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.SynthesizeRequests()); n != 3 {
		t.Errorf("%d SynthesizeSpeech calls, want 3", n)
	}
}

// TestSpeakStreamCapsSpokenText checks that a long answer is spoken up to
// maxSpokenRunes characters, as its beginning, without gaps.
func TestSpeakStreamCapsSpokenText(t *testing.T) {
	t.Parallel()
	c, srv := streamClient(t, Config{})
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "Sentence number %03d has exactly fifty characters. ", i)
	}
	b.WriteString("Bye.") // would still fit, but comes after what did not
	read := 0
	got, err := c.SpeakStream(t.Context(), deltas(b.String(), 40, &read), "", quick)
	if err != nil {
		t.Fatal(err)
	}
	var spoken []string
	for _, r := range srv.SynthesizeRequests() {
		spoken = append(spoken, r.GetInput().GetText())
	}
	// The calls arrive in any order; put them in the answer's.
	answer := b.String()
	slices.SortFunc(spoken, func(x, y string) int { return strings.Index(answer, x) - strings.Index(answer, y) })
	said := strings.Join(spoken, " ")
	if n := utf8.RuneCountInString(said); n > maxSpokenRunes || n < maxSpokenRunes-DefaultMinChunk-60 || got.Chars != n-len(spoken)+1 {
		t.Errorf("spoke %d characters (Chars %d), want the text cut a piece short of %d", n, got.Chars, maxSpokenRunes)
	}
	if !strings.HasPrefix(b.String(), said) {
		t.Errorf("the spoken text is not the answer's beginning: %.300q...", said)
	}
	if read != b.Len() {
		t.Errorf("read %d of %d bytes of the answer, want all of it", read, b.Len())
	}
}
