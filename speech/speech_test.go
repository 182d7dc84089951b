package speech_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/speech/apiv2/speechpb"
	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
)

const (
	recognizer = "projects/test-project/locations/us/recognizers/_"
	longURI    = "gs://media-bucket/voice/wamid.long.ogg"
)

// newClient starts a fake and a client of it with the default settings.
func newClient(t *testing.T) (*speech.Client, *speechtest.Server) {
	t.Helper()
	srv := speechtest.NewServer(t)
	c, err := speech.New(t.Context(), speech.Config{Project: "test-project", ClientOptions: srv.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func near(a, b, tolerance float64) bool { return math.Abs(a-b) <= tolerance }

func TestTranscribeShortNote(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	audio := readFile(t, "../testdata/voice_note.ogg")

	got, err := c.Transcribe(t.Context(), audio, "gs://media-bucket/voice/wamid.short.ogg")
	if err != nil {
		t.Fatal(err)
	}
	want := speech.Transcript{Text: speechtest.DefaultTranscript, Language: "en-US"}
	if got.Text != want.Text || got.Language != want.Language || !near(got.Seconds, 3.638, 0.001) {
		t.Errorf("Transcribe = %+v, want %+v and 3.638 s", got, want)
	}

	if n := len(srv.BatchRecognizeRequests()); n != 0 {
		t.Errorf("%d BatchRecognize calls for a 4 s note, want 0", n)
	}
	reqs := srv.RecognizeRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d Recognize calls, want 1", len(reqs))
	}
	req := reqs[0]
	if req.GetRecognizer() != recognizer {
		t.Errorf("recognizer = %q, want %q", req.GetRecognizer(), recognizer)
	}
	if !bytes.Equal(req.GetContent(), audio) {
		t.Errorf("Recognize content is %d bytes, want the %d-byte voice note", len(req.GetContent()), len(audio))
	}
	checkConfig(t, req.GetConfig())
}

// checkConfig checks the recognition settings every request carries.
func checkConfig(t *testing.T, cfg *speechpb.RecognitionConfig) {
	t.Helper()
	if cfg.GetAutoDecodingConfig() == nil {
		t.Error("config has no auto decoding config; OGG/Opus needs it")
	}
	if cfg.GetModel() != "chirp_3" {
		t.Errorf("model = %q, want chirp_3", cfg.GetModel())
	}
	if got := strings.Join(cfg.GetLanguageCodes(), ","); got != "auto" {
		t.Errorf("language codes = %q, want auto", got)
	}
}

func TestTranscribeLongNoteUsesBatch(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	srv.SetTranscript("Hola, llamo por la reserva de la cena.", "es-es")
	audio := readFile(t, "../testdata/voice_note_long.ogg")

	got, err := c.Transcribe(t.Context(), audio, longURI)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "Hola, llamo por la reserva de la cena." || got.Language != "es-ES" || !near(got.Seconds, 83.667, 0.001) {
		t.Errorf("Transcribe = %+v, want the Spanish text, es-ES and 83.667 s", got)
	}

	if n := len(srv.RecognizeRequests()); n != 0 {
		t.Errorf("%d Recognize calls for an 84 s note, want 0", n)
	}
	reqs := srv.BatchRecognizeRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d BatchRecognize calls, want 1", len(reqs))
	}
	req := reqs[0]
	if req.GetRecognizer() != recognizer {
		t.Errorf("recognizer = %q, want %q", req.GetRecognizer(), recognizer)
	}
	if len(req.GetFiles()) != 1 || req.GetFiles()[0].GetUri() != longURI {
		t.Errorf("files = %v, want one with uri %s", req.GetFiles(), longURI)
	}
	if req.GetRecognitionOutputConfig().GetInlineResponseConfig() == nil {
		t.Error("output config does not ask for an inline response")
	}
	checkConfig(t, req.GetConfig())
}

func TestTranscribeBatchPolls(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	srv.SetPendingPolls(1)

	got, err := c.Transcribe(t.Context(), readFile(t, "../testdata/voice_note_long.ogg"), longURI)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != speechtest.DefaultTranscript {
		t.Errorf("Transcribe text = %q, want %q", got.Text, speechtest.DefaultTranscript)
	}
}

func TestTranscribeLongNoteWithoutBucket(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)

	_, err := c.Transcribe(t.Context(), readFile(t, "../testdata/voice_note_long.ogg"), "")
	if err == nil || !strings.Contains(err.Error(), "MEDIA_BUCKET") {
		t.Errorf("Transcribe(84 s, no URI) error = %v, want one naming MEDIA_BUCKET", err)
	}
	if speech.IsTransient(err) {
		t.Error("IsTransient = true for a missing bucket, want false")
	}
	if n := len(srv.RecognizeRequests()) + len(srv.BatchRecognizeRequests()); n != 0 {
		t.Errorf("%d recognition calls, want 0", n)
	}
}

func TestTranscribeUnreadableLengthUsesBatch(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)

	// Audio whose length the Ogg pages do not tell could be over a minute.
	if _, err := c.Transcribe(t.Context(), []byte("ID3 an mp3, perhaps"), longURI); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.BatchRecognizeRequests()); n != 1 {
		t.Errorf("%d BatchRecognize calls, want 1", n)
	}
}

func TestTranscribeNoSpeech(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	srv.SetTranscript("", "")

	_, err := c.Transcribe(t.Context(), readFile(t, "../testdata/voice_note.ogg"), "")
	if !errors.Is(err, speech.ErrNoSpeech) {
		t.Errorf("Transcribe error = %v, want ErrNoSpeech", err)
	}
}

func TestTranscribeFailures(t *testing.T) {
	t.Parallel()
	audio := readFile(t, "../testdata/voice_note.ogg")
	// Unavailable and DeadlineExceeded are missing here because the client
	// library retries them itself (see TestTranscribeRetries).
	tests := []struct {
		code      codes.Code
		transient bool
	}{
		{codes.ResourceExhausted, true},
		{codes.Internal, true},
		{codes.Aborted, true},
		{codes.InvalidArgument, false},
		{codes.PermissionDenied, false},
		{codes.NotFound, false},
	}
	c, srv := newClient(t)
	for _, tt := range tests {
		srv.FailNext(speechtest.Recognize, 1, tt.code)
		_, err := c.Transcribe(t.Context(), audio, "")
		if status.Code(err) != tt.code {
			t.Errorf("Transcribe error = %v, want code %v", err, tt.code)
		}
		if got := speech.IsTransient(err); got != tt.transient {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.code, got, tt.transient)
		}
		// The failure was for one call only.
		if _, err := c.Transcribe(t.Context(), audio, ""); err != nil {
			t.Errorf("Transcribe after one %v = %v, want success", tt.code, err)
		}
	}

	srv.FailNext(speechtest.BatchRecognize, 1, codes.ResourceExhausted)
	_, err := c.Transcribe(t.Context(), readFile(t, "../testdata/voice_note_long.ogg"), longURI)
	if !speech.IsTransient(err) {
		t.Errorf("Transcribe (batch, ResourceExhausted) error = %v, want a transient one", err)
	}
}

// TestTranscribeDoesNotRetry checks that the client library's own retries
// are off: one Unavailable is one failed call, reported as transient, and the
// pipeline's retry policy is the only layer that tries again.
func TestTranscribeDoesNotRetry(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	audio := readFile(t, "../testdata/voice_note.ogg")

	srv.FailNext(speechtest.Recognize, 1, codes.Unavailable)
	if _, err := c.Transcribe(t.Context(), audio, ""); !speech.IsTransient(err) {
		t.Errorf("Transcribe after Unavailable = %v, want a transient error", err)
	}
	if n := len(srv.RecognizeRequests()); n != 1 {
		t.Errorf("%d Recognize calls, want 1: the library must not retry", n)
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	deadline, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-deadline.Done()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{status.Error(codes.Unavailable, "down"), true},
		{fmt.Errorf("recognize speech: %w", status.Error(codes.ResourceExhausted, "quota")), true},
		{fmt.Errorf("recognize speech: %w", status.Error(codes.InvalidArgument, "bad")), false},
		{fmt.Errorf("batch recognize speech: %w", deadline.Err()), true},
		{context.Canceled, false},
	}
	for _, tt := range tests {
		if got := speech.IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestSynthesize(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)

	got, err := c.Synthesize(t.Context(), "**Booked!** See https://example.com 🎉", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := speechtest.TTSAudio()[0]; !bytes.Equal(got.Audio, want) {
		t.Errorf("Synthesize audio is %d bytes, want the fake's %d-byte file unchanged", len(got.Audio), len(want))
	}
	if !near(got.Seconds, 4.378, 0.001) {
		t.Errorf("Synthesize seconds = %v, want 4.378", got.Seconds)
	}

	reqs := srv.SynthesizeRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d SynthesizeSpeech calls, want 1", len(reqs))
	}
	req := reqs[0]
	if got, want := req.GetInput().GetText(), "Booked! See."; got != want {
		t.Errorf("input text = %q, want %q", got, want)
	}
	if v := req.GetVoice(); v.GetName() != speech.DefaultTTSVoice || v.GetLanguageCode() != "en-US" {
		t.Errorf("voice = %v, want %s in en-US", v, speech.DefaultTTSVoice)
	}
	if e := req.GetAudioConfig().GetAudioEncoding(); e != texttospeechpb.AudioEncoding_OGG_OPUS {
		t.Errorf("encoding = %v, want OGG_OPUS", e)
	}
}

func TestSynthesizeVoiceFollowsLanguage(t *testing.T) {
	t.Parallel()
	spanish := "Claro, he reservado una mesa para dos mañana a las nueve de la noche. El restaurante está cerca de la estación."
	japanese := "承知しました。明日の夜九時に二名様でテーブルを予約しました。レストランは駅の近くにあります。"
	tests := []struct {
		text, language, wantName, wantCode string
	}{
		{"Hello.", "", speech.DefaultTTSVoice, "en-US"},
		{"Hello.", "en-GB", speech.DefaultTTSVoice, "en-US"}, // the configured voice speaks English
		{"Hello.", "en", speech.DefaultTTSVoice, "en-US"},
		{"Hola.", "es-es", "es-ES-Chirp3-HD-Achernar", "es-ES"},
		{"Hallo.", "de", "de-DE-Chirp3-HD-Achernar", "de-DE"},
		{"Hola.", "es-US", "es-US-Chirp3-HD-Achernar", "es-US"}, // a regional Chirp 3 HD locale
		{"Salut.", "xx-YY", "", "xx-YY"},                        // no voice known: the API picks one
		{spanish, "", "es-ES-Chirp3-HD-Achernar", "es-ES"},      // a text message: the answer tells
		{spanish, "en-US", "es-ES-Chirp3-HD-Achernar", "es-ES"}, // the answer's language wins
		{japanese, "", "ja-JP-Chirp3-HD-Achernar", "ja-JP"},
	}
	c, srv := newClient(t)
	for i, tt := range tests {
		sp, err := c.Synthesize(t.Context(), tt.text, tt.language)
		if err != nil {
			t.Fatal(err)
		}
		v := srv.SynthesizeRequests()[i].GetVoice()
		if v.GetName() != tt.wantName || v.GetLanguageCode() != tt.wantCode {
			t.Errorf("Synthesize(%.12q, language %q) voice = %q in %q, want %q in %q",
				tt.text, tt.language, v.GetName(), v.GetLanguageCode(), tt.wantName, tt.wantCode)
		}
		if want := utf8.RuneCountInString(srv.SynthesizeRequests()[i].GetInput().GetText()); sp.Chars != want {
			t.Errorf("Synthesize(%.12q) Chars = %d, want the %d characters sent", tt.text, sp.Chars, want)
		}
	}
}

// TestCopies checks that copies made by WithLanguages and WithVoice listen
// and speak as told, keep what they are not told, leave the original as it
// was, and dial nothing: the fake sees only the original's two connections.
func TestCopies(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewServer(t)
	c, err := speech.New(t.Context(), speech.Config{Project: "test-project", STTLanguages: []string{"en-US"},
		TTSVoice: "en-GB-Chirp3-HD-Kore", TTSLanguage: "en-GB", ClientOptions: srv.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		c             *speech.Client
		languages     string
		voice, locale string
	}{
		{c.WithLanguages([]string{" es-ES ", "ca-ES"}).WithVoice("es-ES-Chirp3-HD-Puck", "es-ES"), "es-ES,ca-ES", "es-ES-Chirp3-HD-Puck", "es-ES"},
		{c, "en-US", "en-GB-Chirp3-HD-Kore", "en-GB"},
		{c.WithLanguages(nil).WithVoice("", ""), "en-US", "en-GB-Chirp3-HD-Kore", "en-GB"},
		{c.WithVoice("en-AU-Chirp3-HD-Puck", "en-AU"), "en-US", "en-AU-Chirp3-HD-Puck", "en-AU"},
	}
	audio := readFile(t, "../testdata/voice_note.ogg")
	for i, tt := range tests {
		if _, err := tt.c.Transcribe(t.Context(), audio, ""); err != nil {
			t.Fatal(err)
		}
		// A text in the voice's language, so the voice is the copy's own.
		text := map[string]string{"es-ES": "Hola, ¿cómo estás hoy?"}[tt.locale]
		if _, err := tt.c.Synthesize(t.Context(), cmp.Or(text, "Hello, how are you today?"), ""); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(srv.RecognizeRequests()[i].GetConfig().GetLanguageCodes(), ","); got != tt.languages {
			t.Errorf("client %d listens for %s, want %s", i, got, tt.languages)
		}
		if v := srv.SynthesizeRequests()[i].GetVoice(); v.GetName() != tt.voice || v.GetLanguageCode() != tt.locale {
			t.Errorf("client %d speaks with %q in %q, want %q in %q", i, v.GetName(), v.GetLanguageCode(), tt.voice, tt.locale)
		}
	}
	if n := srv.Connections(); n != 2 {
		t.Errorf("the fake saw %d connections, want the original's 2", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSynthesizeKeepsPersona checks that other languages are spoken by the
// configured voice's persona.
func TestSynthesizeKeepsPersona(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewServer(t)
	c, err := speech.New(t.Context(), speech.Config{Project: "p", TTSVoice: "en-GB-Chirp3-HD-Kore", TTSLanguage: "en-GB",
		ClientOptions: srv.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Synthesize(t.Context(), "Bonjour.", "fr"); err != nil {
		t.Fatal(err)
	}
	if v := srv.SynthesizeRequests()[0].GetVoice(); v.GetName() != "fr-FR-Chirp3-HD-Kore" || v.GetLanguageCode() != "fr-FR" {
		t.Errorf("voice = %q in %q, want fr-FR-Chirp3-HD-Kore in fr-FR", v.GetName(), v.GetLanguageCode())
	}
}

func TestSynthesizeLongText(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	// About 6600 bytes of two-byte letters: over one request's 5000.
	text := strings.Repeat("Это длинный ответ на ваш вопрос о бронировании. ", 75)

	got, err := c.Synthesize(t.Context(), text, "ru-RU")
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.SynthesizeRequests()
	if len(reqs) < 2 {
		t.Fatalf("%d SynthesizeSpeech calls for %d bytes, want several", len(reqs), len(text))
	}
	var sent int
	for i, r := range reqs {
		n := len(r.GetInput().GetText())
		sent += n
		if n >= 5000 {
			t.Errorf("request %d has %d bytes, want under 5000", i, n)
		}
		if !strings.HasSuffix(r.GetInput().GetText(), ".") {
			t.Errorf("request %d does not end at a sentence", i)
		}
	}
	if sent < len(text)-len(reqs)-1 {
		t.Errorf("requests hold %d bytes of %d", sent, len(text))
	}

	// The fake answers the requests with its files in turn; the reply is one
	// stream as long as all of them (plus a few ms at each joint).
	var sum float64
	files := speechtest.TTSAudio()
	for i := range reqs {
		d, err := speech.OggDuration(files[i%len(files)])
		if err != nil {
			t.Fatal(err)
		}
		sum += d.Seconds()
	}
	length, err := speech.OggDuration(got.Audio)
	if err != nil {
		t.Fatalf("reply is not one valid Ogg Opus stream: %v", err)
	}
	if !near(length.Seconds(), got.Seconds, 1e-9) || got.Seconds < sum || got.Seconds > sum+0.03*float64(len(reqs)) {
		t.Errorf("reply lasts %v s (%v), want about %v s", got.Seconds, length, sum)
	}
	if n := bytes.Count(got.Audio, []byte("OpusHead")); n != 1 {
		t.Errorf("reply has %d OpusHead headers, want 1", n)
	}
}

func TestSynthesizeKeepsVoiceNotesSmall(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	// Each part comes back as 166 KB of audio, so only three fit in 512 KB.
	srv.SetAudio(readFile(t, "../testdata/voice_note_long.ogg"))
	text := strings.Repeat("駅はどこですか。", 450) // 3600 characters, 10800 bytes

	got, err := c.Synthesize(t.Context(), text, "ja-JP")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.SynthesizeRequests()); n != 4 {
		t.Errorf("%d SynthesizeSpeech calls, want 4", n)
	}
	if len(got.Audio) > 512<<10 {
		t.Errorf("reply is %d bytes, want at most 512 KB", len(got.Audio))
	}
	if got.Seconds < 3*83.6 || got.Seconds > 3*83.7 {
		t.Errorf("reply lasts %v s, want three parts of 83.667 s", got.Seconds)
	}
}

func TestSynthesizeCapsSpokenText(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	text := strings.Repeat("This sentence has exactly fifty characters in it. ", 200) // 10000

	if _, err := c.Synthesize(t.Context(), text, ""); err != nil {
		t.Fatal(err)
	}
	var sent int
	for _, r := range srv.SynthesizeRequests() {
		sent += len(r.GetInput().GetText())
	}
	if sent > 3600 || sent < 3500 {
		t.Errorf("spoke %d characters, want the text cut near 3600", sent)
	}
}

func TestSynthesizeNothingToSay(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	_, err := c.Synthesize(t.Context(), "👍 https://example.com", "")
	if !errors.Is(err, speech.ErrNothingToSay) {
		t.Errorf("Synthesize error = %v, want ErrNothingToSay", err)
	}
	if n := len(srv.SynthesizeRequests()); n != 0 {
		t.Errorf("%d SynthesizeSpeech calls, want 0", n)
	}
}

func TestSynthesizeFailure(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	srv.FailNext(speechtest.SynthesizeSpeech, 1, codes.ResourceExhausted)
	_, err := c.Synthesize(t.Context(), "Hello.", "")
	if status.Code(err) != codes.ResourceExhausted || !speech.IsTransient(err) {
		t.Errorf("Synthesize error = %v, want a transient ResourceExhausted", err)
	}
	srv.FailNext(speechtest.SynthesizeSpeech, 1, codes.InvalidArgument)
	_, err = c.Synthesize(t.Context(), "Hello.", "")
	if status.Code(err) != codes.InvalidArgument || speech.IsTransient(err) {
		t.Errorf("Synthesize error = %v, want a permanent InvalidArgument", err)
	}
}

func TestEndpointSettings(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewServer(t)
	// No WithEndpoint here: the endpoints come from the two settings.
	c, err := speech.New(t.Context(), speech.Config{
		Project:        "p",
		STTLocation:    "eu",
		STTModel:       "latest_long",
		STTLanguages:   []string{"es-ES", "en-US"},
		SpeechEndpoint: srv.Addr,
		TTSEndpoint:    srv.Addr,
		TTSVoice:       "es-ES-Standard-A",
		TTSLanguage:    "es-ES",
		ClientOptions: []option.ClientOption{
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.SetTranscript("Hola.", "")

	got, err := c.Transcribe(t.Context(), readFile(t, "../testdata/voice_note.ogg"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Language != "" {
		t.Errorf("language = %q with two configured and none detected, want empty", got.Language)
	}
	cfg := srv.RecognizeRequests()[0]
	if cfg.GetRecognizer() != "projects/p/locations/eu/recognizers/_" || cfg.GetConfig().GetModel() != "latest_long" ||
		strings.Join(cfg.GetConfig().GetLanguageCodes(), ",") != "es-ES,en-US" {
		t.Errorf("request = %v, want the eu recognizer, latest_long and es-ES,en-US", cfg)
	}
	if _, err := c.Synthesize(t.Context(), "Hola.", "es-MX"); err != nil {
		t.Fatal(err)
	}
	if v := srv.SynthesizeRequests()[0].GetVoice(); v.GetName() != "es-ES-Standard-A" || v.GetLanguageCode() != "es-ES" {
		t.Errorf("voice = %v, want es-ES-Standard-A", v)
	}
}

func TestNewNeedsProject(t *testing.T) {
	t.Parallel()
	if _, err := speech.New(t.Context(), speech.Config{}); err == nil {
		t.Error("New without a project succeeded, want an error")
	}
}

func TestTranscribeHonoursContext(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	srv.SetPendingPolls(1000)
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	_, err := c.Transcribe(ctx, readFile(t, "../testdata/voice_note_long.ogg"), longURI)
	if !speech.IsTransient(err) {
		t.Errorf("Transcribe past its deadline = %v, want a transient error", err)
	}
}
