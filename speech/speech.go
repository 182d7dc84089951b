// Package speech turns WhatsApp voice notes into text with Google
// Speech-to-Text v2 and turns replies into voice notes with Google
// Text-to-Speech, both over gRPC.
//
// Voice notes of up to a minute are sent inline to Recognize; longer ones are
// read by BatchRecognize from the Cloud Storage object they were staged in,
// because synchronous recognition takes at most one minute of audio.
//
// Replies are synthesized as OGG_OPUS, which WhatsApp plays as a voice note.
// Text-to-Speech takes at most 5000 bytes a request, so long text is split at
// sentences into several requests, and their Opus packets are joined into one
// Ogg stream (see ogg.go). A reply is also kept short enough to stay a voice
// note: the spoken text is capped at maxSpokenRunes characters, about four
// minutes of speech, and the audio at maxAudioBytes (512 KB), beyond which
// WhatsApp shows a file instead of a play button; sentences past either limit
// are not spoken.
//
// SpeakStream speaks an answer while the model is still writing it: a Chunker
// cuts the growing text at sentence ends, the pieces are synthesized
// concurrently, and their audio is joined in order into one voice note.
// Either way the voice speaks the answer's language (AnswerLanguage,
// DefaultVoices): Synthesize judges it on the whole text, SpeakStream on its
// first piece.
package speech

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	speechapi "cloud.google.com/go/speech/apiv2"
	"cloud.google.com/go/speech/apiv2/speechpb"
	texttospeech "cloud.google.com/go/texttospeech/apiv1"
	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults for the settings a Config leaves empty. chirp_3 is only served in
// regional locations, so the default location is "us" rather than "global";
// with chirp_3 the language "auto" detects the spoken language.
const (
	DefaultSTTModel    = "chirp_3"
	DefaultSTTLocation = "us"
	DefaultSTTLanguage = "auto"
	DefaultTTSVoice    = "en-US-Chirp3-HD-Achernar"
	DefaultTTSLanguage = "en-US"
)

// Limits of the Google APIs and of WhatsApp that shape requests and replies.
const (
	// maxSyncAudio is the longest voice note sent to Recognize. The API takes
	// one minute; the second of margin covers the API measuring the audio a
	// little differently from the Ogg granule positions.
	maxSyncAudio = 59 * time.Second
	// maxSyncBytes is Recognize's limit on inline audio.
	maxSyncBytes = 10 << 20
	// maxRequestBytes keeps each Text-to-Speech input well under the API's
	// hard limit of 5000 bytes.
	maxRequestBytes = 3000
	// maxSpokenRunes is about four minutes of speech at a typical 15
	// characters a second.
	maxSpokenRunes = 3600
	// maxAudioBytes is the largest voice note WhatsApp still shows with a
	// play button.
	maxAudioBytes = 512 << 10
	// pollInterval is the wait between checks of a batch recognition, which
	// takes seconds to a minute for a voice note.
	pollInterval = time.Second
)

// ErrNoSpeech is returned by Transcribe when the audio holds no words.
var ErrNoSpeech = errors.New("speech: no speech recognized")

// ErrNothingToSay is returned by Synthesize when nothing speakable is left
// of the text, for example when it was only emoji or a link.
var ErrNothingToSay = errors.New("speech: nothing to say")

// Config holds the settings of a Client. Empty fields take the Default
// values above; Project is required.
type Config struct {
	Project      string   // GOOGLE_CLOUD_PROJECT
	STTLocation  string   // STT_LOCATION, default "us"; also picks the regional endpoint
	STTModel     string   // STT_MODEL, default "chirp_3"
	STTLanguages []string // STT_LANGUAGES, default ["auto"] (language detection)

	// SpeechEndpoint overrides the Speech-to-Text endpoint ("host:port").
	SpeechEndpoint string

	TTSVoice    string // TTS_VOICE, default "en-US-Chirp3-HD-Achernar"
	TTSLanguage string // TTS_LANGUAGE, default "en-US"
	// TTSEndpoint overrides the Text-to-Speech endpoint ("host:port").
	TTSEndpoint string
	// TTSParallel is how many Text-to-Speech calls SpeakStream makes at
	// once for one reply; DefaultParallel when 0.
	TTSParallel int
	// TTSMinChunk is the length in bytes below which SpeakStream does not
	// cut a piece; DefaultMinChunk when 0.
	TTSMinChunk int

	// ClientOptions are appended to the options of both API clients, after
	// the endpoints above, so they win; tests point both clients at a fake.
	ClientOptions []option.ClientOption
}

func (c Config) withDefaults() Config {
	if c.STTLocation == "" {
		c.STTLocation = DefaultSTTLocation
	}
	if c.STTModel == "" {
		c.STTModel = DefaultSTTModel
	}
	if len(c.STTLanguages) == 0 {
		c.STTLanguages = []string{DefaultSTTLanguage}
	}
	if c.TTSVoice == "" {
		c.TTSVoice = DefaultTTSVoice
	}
	if c.TTSLanguage == "" {
		c.TTSLanguage = DefaultTTSLanguage
	}
	if c.TTSParallel <= 0 {
		c.TTSParallel = DefaultParallel
	}
	if c.TTSMinChunk <= 0 {
		c.TTSMinChunk = DefaultMinChunk
	}
	return c
}

// speechEndpoint is the Speech-to-Text endpoint for a location: recognizers
// live in one location, and a regional one is served only by its own host.
func speechEndpoint(location string) string {
	if location == "global" {
		return "speech.googleapis.com:443"
	}
	return location + "-speech.googleapis.com:443"
}

// Client transcribes and synthesizes speech. It is safe for concurrent use.
//
// The Google client libraries would retry Unavailable and DeadlineExceeded on
// their own; New switches that off for the calls the reply pipeline makes,
// because the pipeline retries them (package retry) and two layers would
// multiply the attempts. Callers bound each call with their context.
type Client struct {
	stt        *speechapi.Client
	tts        *texttospeech.Client
	recognizer string
	model      string
	languages  []string
	voice      string
	voiceLang  string // language code sent with voice
	parallel   int    // Text-to-Speech calls at once in SpeakStream
	minChunk   int    // smallest piece SpeakStream cuts, in bytes
}

// New connects to Speech-to-Text and Text-to-Speech.
func New(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.Project == "" {
		return nil, errors.New("speech: a project is required (GOOGLE_CLOUD_PROJECT)")
	}

	sttEndpoint := cmp.Or(cfg.SpeechEndpoint, speechEndpoint(cfg.STTLocation))
	stt, err := speechapi.NewClient(ctx, append([]option.ClientOption{option.WithEndpoint(sttEndpoint)}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("speech-to-text client: %w", err)
	}
	var ttsOpts []option.ClientOption
	if cfg.TTSEndpoint != "" {
		ttsOpts = append(ttsOpts, option.WithEndpoint(cfg.TTSEndpoint))
	}
	tts, err := texttospeech.NewClient(ctx, append(ttsOpts, cfg.ClientOptions...)...)
	if err != nil {
		stt.Close()
		return nil, fmt.Errorf("text-to-speech client: %w", err)
	}

	// One layer retries: the pipeline's (see Client).
	stt.CallOptions.Recognize = nil
	stt.CallOptions.BatchRecognize = nil
	tts.CallOptions.SynthesizeSpeech = nil

	return &Client{
		stt:        stt,
		tts:        tts,
		recognizer: fmt.Sprintf("projects/%s/locations/%s/recognizers/_", cfg.Project, cfg.STTLocation),
		model:      cfg.STTModel,
		languages:  trimmed(cfg.STTLanguages),
		voice:      cfg.TTSVoice,
		voiceLang:  cfg.TTSLanguage,
		parallel:   cfg.TTSParallel,
		minChunk:   cfg.TTSMinChunk,
	}, nil
}

// Close closes the connections of both clients. Copies made by
// WithLanguages and WithVoice share those connections: close only the
// Client that New returned, once, after the copies are done with.
func (c *Client) Close() error {
	return errors.Join(c.stt.Close(), c.tts.Close())
}

// WithLanguages returns a copy of c whose recognition listens for languages
// (as Config.STTLanguages); with none it keeps c's. The copy shares c's
// connections, so a deployment dials once and gives each phone number with
// a language of its own a copy.
func (c *Client) WithLanguages(languages []string) *Client {
	cp := *c
	if len(languages) > 0 {
		cp.languages = trimmed(languages)
	}
	return &cp
}

// WithVoice returns a copy of c that speaks with voice, sending language
// with it (as Config.TTSVoice and TTSLanguage); an empty argument keeps c's
// setting. Like WithLanguages, the copy shares c's connections.
func (c *Client) WithVoice(voice, language string) *Client {
	cp := *c
	cp.voice = cmp.Or(voice, c.voice)
	cp.voiceLang = cmp.Or(language, c.voiceLang)
	return &cp
}

// trimmed is languages without the spaces around each, as a list read from
// the environment may have them.
func trimmed(languages []string) []string {
	out := make([]string, len(languages))
	for i, l := range languages {
		out[i] = strings.TrimSpace(l)
	}
	return out
}

// Transcript is what was said in a voice note.
type Transcript struct {
	Text     string
	Language string  // BCP-47 code the recognizer detected or was given, such as "es-ES"; may be ""
	Seconds  float64 // length of the voice note
}

// Transcribe turns a voice note (OGG/Opus) into text. A note longer than
// about a minute, or one whose length cannot be read from its Ogg pages, is
// recognized from gcsURI ("gs://bucket/object", where it was staged) with
// BatchRecognize; with no gcsURI such a note is an error. A note without words
// returns ErrNoSpeech.
func (c *Client) Transcribe(ctx context.Context, audio []byte, gcsURI string) (Transcript, error) {
	if len(audio) == 0 {
		return Transcript{}, errors.New("transcribe: empty audio")
	}
	length, lengthErr := OggDuration(audio)
	sync := lengthErr == nil && length <= maxSyncAudio && len(audio) <= maxSyncBytes

	var (
		results []*speechpb.SpeechRecognitionResult
		err     error
	)
	switch {
	case sync:
		results, err = c.recognize(ctx, audio)
	case gcsURI == "":
		if lengthErr != nil {
			return Transcript{}, fmt.Errorf("transcribe: audio length unknown (%w) and no staged copy: set MEDIA_BUCKET so it can be recognized in batch", lengthErr)
		}
		return Transcript{}, fmt.Errorf("transcribe: a %.0f s voice note needs batch recognition from Cloud Storage: set MEDIA_BUCKET", length.Seconds())
	case !strings.HasPrefix(gcsURI, "gs://"):
		return Transcript{}, fmt.Errorf("transcribe: staged audio %q is not a gs:// URI", gcsURI)
	default:
		results, err = c.batchRecognize(ctx, gcsURI)
	}
	if err != nil {
		return Transcript{}, err
	}

	t := Transcript{Seconds: length.Seconds()}
	var words []string
	for _, r := range results {
		if len(r.GetAlternatives()) == 0 {
			continue
		}
		if s := strings.TrimSpace(r.GetAlternatives()[0].GetTranscript()); s != "" {
			words = append(words, s)
			if t.Language == "" {
				t.Language = canonicalLanguage(r.GetLanguageCode())
			}
		}
		if lengthErr != nil {
			t.Seconds = max(t.Seconds, r.GetResultEndOffset().AsDuration().Seconds())
		}
	}
	if len(words) == 0 {
		return t, ErrNoSpeech
	}
	t.Text = strings.Join(words, " ")
	if t.Language == "" && len(c.languages) == 1 && c.languages[0] != "auto" {
		t.Language = canonicalLanguage(c.languages[0])
	}
	return t, nil
}

func (c *Client) config() *speechpb.RecognitionConfig {
	return &speechpb.RecognitionConfig{
		DecodingConfig: &speechpb.RecognitionConfig_AutoDecodingConfig{
			AutoDecodingConfig: &speechpb.AutoDetectDecodingConfig{},
		},
		Model:         c.model,
		LanguageCodes: c.languages,
		Features:      &speechpb.RecognitionFeatures{EnableAutomaticPunctuation: true},
	}
}

func (c *Client) recognize(ctx context.Context, audio []byte) ([]*speechpb.SpeechRecognitionResult, error) {
	resp, err := c.stt.Recognize(ctx, &speechpb.RecognizeRequest{
		Recognizer:  c.recognizer,
		Config:      c.config(),
		AudioSource: &speechpb.RecognizeRequest_Content{Content: audio},
	})
	if err != nil {
		return nil, fmt.Errorf("recognize speech: %w", err)
	}
	return resp.GetResults(), nil
}

func (c *Client) batchRecognize(ctx context.Context, uri string) ([]*speechpb.SpeechRecognitionResult, error) {
	op, err := c.stt.BatchRecognize(ctx, &speechpb.BatchRecognizeRequest{
		Recognizer: c.recognizer,
		Config:     c.config(),
		Files: []*speechpb.BatchRecognizeFileMetadata{
			{AudioSource: &speechpb.BatchRecognizeFileMetadata_Uri{Uri: uri}},
		},
		RecognitionOutputConfig: &speechpb.RecognitionOutputConfig{
			Output: &speechpb.RecognitionOutputConfig_InlineResponseConfig{
				InlineResponseConfig: &speechpb.InlineOutputConfig{},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("batch recognize speech: %w", err)
	}
	// The operation's own Wait backs off up to a minute between polls, too
	// slow for someone waiting on a reply, so poll at a steady pace instead.
	var resp *speechpb.BatchRecognizeResponse
	for {
		resp, err = op.Poll(ctx)
		if err != nil {
			return nil, fmt.Errorf("batch recognize speech: %w", err)
		}
		if op.Done() {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("batch recognize speech: %w", ctx.Err())
		case <-time.After(pollInterval):
		}
	}

	file, ok := resp.GetResults()[uri]
	if !ok {
		return nil, fmt.Errorf("batch recognize speech: no result for %s", uri)
	}
	if file.GetError() != nil && file.GetError().GetCode() != int32(codes.OK) {
		return nil, fmt.Errorf("batch recognize speech: %w", status.ErrorProto(file.GetError()))
	}
	if inline := file.GetInlineResult(); inline != nil {
		return inline.GetTranscript().GetResults(), nil
	}
	// Older responses carry the transcript in a field now deprecated.
	return file.GetTranscript().GetResults(), nil
}

// Speech is a synthesized voice note.
type Speech struct {
	Audio    []byte // one OGG/Opus file
	Seconds  float64
	Language string // the language it was spoken in (see AnswerLanguage); "" for TTS_LANGUAGE
	Chars    int    // characters sent to Text-to-Speech, which bills by the character
}

// Synthesize speaks text as one OGG/Opus voice note. It first reduces the
// text to what a voice should read (see Speakable) and caps its length (see
// the package comment). It speaks the language of the text, with language
// (the user's language when known, BCP-47 such as "es-ES" or "es") as the
// hint when the text does not tell (see AnswerLanguage), and "" meaning
// TTS_LANGUAGE. The configured voice is used when it speaks that language;
// otherwise the voice of DefaultVoices.
func (c *Client) Synthesize(ctx context.Context, text, language string) (Speech, error) {
	text = truncate(Speakable(text), maxSpokenRunes)
	if text == "" {
		return Speech{}, ErrNothingToSay
	}
	language = AnswerLanguage(text, language)
	voice := c.voiceFor(language)
	parts := chunks(text, maxRequestBytes)

	files := make([][]byte, len(parts))
	chars := 0
	for i, part := range parts {
		b, err := c.synthesize(ctx, part, voice)
		if err != nil {
			return Speech{}, fmt.Errorf("synthesize speech (part %d of %d): %w", i+1, len(parts), err)
		}
		files[i] = b
		chars += utf8.RuneCountInString(part)
	}
	sp, err := voiceNote(files, language, chars)
	if err != nil {
		return Speech{}, fmt.Errorf("synthesize speech: %w", err)
	}
	return sp, nil
}

// synthesize speaks one request's text as an OGG/Opus file.
func (c *Client) synthesize(ctx context.Context, text string, v *voice) ([]byte, error) {
	resp, err := c.tts.SynthesizeSpeech(ctx, &texttospeechpb.SynthesizeSpeechRequest{
		Input:       &texttospeechpb.SynthesisInput{InputSource: &texttospeechpb.SynthesisInput_Text{Text: text}},
		Voice:       &texttospeechpb.VoiceSelectionParams{LanguageCode: v.Language, Name: v.Name},
		AudioConfig: &texttospeechpb.AudioConfig{AudioEncoding: texttospeechpb.AudioEncoding_OGG_OPUS},
	})
	if err != nil {
		return nil, err
	}
	return resp.GetAudioContent(), nil
}

// voiceLanguage is the language a voice speaks, read from its name
// ("en-US-Chirp3-HD-Achernar" speaks "en-US"), or fallback for other names.
func voiceLanguage(voice, fallback string) string {
	if parts := strings.SplitN(voice, "-", 3); len(parts) == 3 {
		return parts[0] + "-" + parts[1]
	}
	return fallback
}

func primaryLanguage(code string) string {
	primary, _, _ := strings.Cut(code, "-")
	return primary
}

// canonicalLanguage writes a language tag with the usual case: "en-us" and
// "en_US" become "en-US", "zh-hant-tw" becomes "zh-Hant-TW". Recognizers
// return tags in either case; voices are named with the usual one.
func canonicalLanguage(code string) string {
	parts := strings.FieldsFunc(strings.TrimSpace(code), func(r rune) bool { return r == '-' || r == '_' })
	for i, p := range parts {
		switch {
		case i == 0:
			parts[i] = strings.ToLower(p)
		case len(p) == 2 || len(p) == 3 && p[0] >= '0' && p[0] <= '9':
			parts[i] = strings.ToUpper(p)
		case len(p) == 4:
			parts[i] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:])
		default:
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-")
}

// IsTransient reports whether err is worth retrying later: the service was
// unavailable, overloaded, out of time, or failed internally.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Aborted:
		return true
	}
	return false
}
