// Package config reads the service's settings from the environment, in one
// place, and reports every missing or invalid one at once.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patternai/whatsapp-node/internal/localnet"
)

// Limits that keep the guarantees in the README true.
const (
	// MetaRetryWindow is how long Meta redelivers a webhook that was not
	// acknowledged. A message id forgotten sooner can be answered twice.
	MetaRetryWindow = 7 * 24 * time.Hour
	// minMarkerTTL is the shortest MARKER_TTL accepted: below it even a
	// redelivery within the hour, Meta's usual case, is answered again.
	minMarkerTTL = time.Hour
	// maxHistoryTurns bounds the turns sent to the model with every
	// message; more only costs tokens and time.
	maxHistoryTurns = 100
)

// Store names where markers and conversation turns are kept.
type Store string

// The stores.
const (
	Memory    Store = "memory"
	Firestore Store = "firestore"
)

// Queue names how accepted messages reach the reply pipeline.
type Queue string

// The queues.
const (
	InProcess Queue = "inprocess"
	PubSub    Queue = "pubsub"
)

// ReplyMode is what form an answer takes.
type ReplyMode string

// The reply modes: a voice note, a text, the text then the voice note, or a
// voice note for a voice note and text for text.
const (
	Audio  ReplyMode = "audio"
	Text   ReplyMode = "text"
	Both   ReplyMode = "both"
	Mirror ReplyMode = "mirror"
)

// replyModes are the modes REPLY_MODE and a number's reply_mode accept.
var replyModes = []ReplyMode{Audio, Text, Both, Mirror}

// STTEngine names what hears voice notes.
type STTEngine string

// The engines: Speech-to-Text, then the model answers the text; or the model
// hears the audio and answers in one call.
const (
	SpeechEngine STTEngine = "speech"
	GeminiEngine STTEngine = "gemini"
)

// Config is every setting the service reads.
type Config struct {
	// Meta.
	AppSecret    string // WHATSAPP_APP_SECRET: verifies webhook signatures
	VerifyToken  string // WHATSAPP_VERIFY_TOKEN: answers the subscription handshake
	AccessToken  string // WHATSAPP_ACCESS_TOKEN: Graph API bearer token
	GraphBaseURL string // GRAPH_API_BASE_URL; empty means the graphapi package's default
	GraphVersion string // GRAPH_API_VERSION; empty means the graphapi package's default

	// Google Cloud.
	Project  string // GOOGLE_CLOUD_PROJECT
	Location string // GOOGLE_CLOUD_LOCATION, for Gemini; empty means the gemini package's default

	// Backends.
	Store       Store         // STORE: memory or firestore
	Queue       Queue         // QUEUE: inprocess or pubsub
	MediaBucket string        // MEDIA_BUCKET: Cloud Storage bucket; empty means MediaDir
	MediaDir    string        // MEDIA_DIR: local folder for staged audio
	MarkerTTL   time.Duration // MARKER_TTL: how long a message id is remembered; zero means the store package's default
	Workers     int           // QUEUE_WORKERS: in-process reply workers; zero means the queue package's default

	// Pub/Sub (QUEUE=pubsub): the webhook publishes to PubSubTopic and a
	// push subscription calls POST /process.
	PubSubTopic          string // PUBSUB_TOPIC; empty means the queue package's default
	PubSubServiceAccount string // PUBSUB_SERVICE_ACCOUNT: the push subscription's identity
	PubSubAudience       string // PUBSUB_AUDIENCE: the push token's audience; empty means the request URL
	PubSubVerify         bool   // PUBSUB_VERIFY: false only for the emulator, which sends no token

	// Reply pipeline.
	GeminiModel  string        // GEMINI_MODEL; empty means the gemini package's default
	GeminiURL    string        // GOOGLE_VERTEX_BASE_URL: Vertex AI endpoint override
	SystemPrompt string        // SYSTEM_PROMPT; empty means the gemini package's default
	HistoryTurns int           // HISTORY_TURNS; zero means the reply package's default
	HistoryTTL   time.Duration // HISTORY_TTL; zero means the store package's default
	ReplyMode    ReplyMode     // REPLY_MODE
	Fallback     string        // FALLBACK_MESSAGE; empty means the reply package's default
	// STTEngine hears voice notes: speech (Speech-to-Text, then the model
	// answers the text) or gemini (the model hears the audio and answers in
	// one call).
	STTEngine STTEngine // STT_ENGINE
	// Speech settings; empty means the speech package's defaults.
	STTModel     string   // STT_MODEL
	STTLocation  string   // STT_LOCATION
	STTLanguages []string // STT_LANGUAGES, comma separated
	SpeechURL    string   // SPEECH_ENDPOINT: host:port override
	TTSVoice     string   // TTS_VOICE
	TTSLanguage  string   // TTS_LANGUAGE
	TTSURL       string   // TTS_ENDPOINT: host:port override

	// Exactly once: how long a reply attempt holds a message without
	// renewing its claim, and how long a send of unknown outcome waits for a
	// status webhook to confirm it before it is sent again. Zero means the
	// reply package's defaults.
	ClaimLease    time.Duration // CLAIM_LEASE
	ConfirmWindow time.Duration // SEND_CONFIRM_WINDOW

	LogLevel slog.Level // LOG_LEVEL: debug, info, warn or error

	// Guard is who is served and how much (see guard.go).
	Guard Guard
	// Numbers holds the settings of each phone_number_id that has its own
	// (NUMBERS or NUMBERS_FILE).
	Numbers map[string]Number

	// Warnings are settings that work but weaken a guarantee; the service
	// logs them when it starts.
	Warnings []string
}

// Load reads the configuration through getenv (os.Getenv in production, a map
// in tests). It returns every problem it found, joined, rather than the first.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		AppSecret:    r.required("WHATSAPP_APP_SECRET"),
		VerifyToken:  r.required("WHATSAPP_VERIFY_TOKEN"),
		AccessToken:  r.required("WHATSAPP_ACCESS_TOKEN"),
		GraphBaseURL: r.baseURL("GRAPH_API_BASE_URL"),
		GraphVersion: r.str("GRAPH_API_VERSION", ""),

		Project:  r.str("GOOGLE_CLOUD_PROJECT", ""),
		Location: r.str("GOOGLE_CLOUD_LOCATION", ""),

		Store:       oneOf(&r, "STORE", Memory, Memory, Firestore),
		Queue:       oneOf(&r, "QUEUE", InProcess, InProcess, PubSub),
		MediaBucket: r.str("MEDIA_BUCKET", ""),
		MediaDir:    r.str("MEDIA_DIR", ".media"),
		MarkerTTL:   r.duration("MARKER_TTL", 0),
		Workers:     r.positive("QUEUE_WORKERS", 0, 0),

		PubSubTopic:          r.str("PUBSUB_TOPIC", ""),
		PubSubServiceAccount: r.str("PUBSUB_SERVICE_ACCOUNT", ""),
		PubSubAudience:       r.str("PUBSUB_AUDIENCE", ""),
		PubSubVerify:         r.boolean("PUBSUB_VERIFY", true),

		GeminiModel:  r.str("GEMINI_MODEL", ""),
		GeminiURL:    r.str("GOOGLE_VERTEX_BASE_URL", ""),
		SystemPrompt: r.str("SYSTEM_PROMPT", ""),
		HistoryTurns: r.positive("HISTORY_TURNS", 0, maxHistoryTurns),
		HistoryTTL:   r.duration("HISTORY_TTL", 0),
		ReplyMode:    oneOf(&r, "REPLY_MODE", Audio, replyModes...),
		Fallback:     r.str("FALLBACK_MESSAGE", ""),
		STTEngine:    oneOf(&r, "STT_ENGINE", SpeechEngine, SpeechEngine, GeminiEngine),
		STTModel:     r.str("STT_MODEL", ""),
		STTLocation:  r.str("STT_LOCATION", ""),
		STTLanguages: r.list("STT_LANGUAGES", ""),
		SpeechURL:    r.str("SPEECH_ENDPOINT", ""),
		TTSVoice:     r.str("TTS_VOICE", ""),
		TTSLanguage:  r.str("TTS_LANGUAGE", ""),
		TTSURL:       r.str("TTS_ENDPOINT", ""),

		ClaimLease:    r.duration("CLAIM_LEASE", 0),
		ConfirmWindow: r.duration("SEND_CONFIRM_WINDOW", 0),

		LogLevel: r.level("LOG_LEVEL"),

		Guard:   r.guard(),
		Numbers: r.numbers(),
	}
	switch {
	case c.MarkerTTL == 0:
		// The store's default: Meta's whole retry window.
	case c.MarkerTTL < minMarkerTTL:
		r.fail("MARKER_TTL=%s: want at least %s (Meta redelivers for %s; 168h remembers every redelivery)",
			c.MarkerTTL, minMarkerTTL, MetaRetryWindow)
	case c.MarkerTTL < MetaRetryWindow:
		c.Warnings = append(c.Warnings, fmt.Sprintf(
			"MARKER_TTL=%s is shorter than Meta's %s retry window: a late redelivery may be answered twice", c.MarkerTTL, MetaRetryWindow))
	}
	if c.Store == Firestore && c.Project == "" {
		r.fail("GOOGLE_CLOUD_PROJECT is required with STORE=firestore")
	}
	if c.Queue == PubSub {
		if c.Project == "" {
			r.fail("GOOGLE_CLOUD_PROJECT is required with QUEUE=pubsub")
		}
		// Verification rejects by default: without it anyone could make the
		// service send messages through /process.
		if c.PubSubVerify && c.PubSubServiceAccount == "" {
			r.fail("PUBSUB_SERVICE_ACCOUNT is required with QUEUE=pubsub (the push subscription's service account)")
		}
		if !c.PubSubVerify && getenv("PUBSUB_EMULATOR_HOST") == "" {
			r.fail("PUBSUB_VERIFY=false is only allowed with PUBSUB_EMULATOR_HOST")
		}
	}
	return c, errors.Join(r.errs...)
}

// reader collects problems while reading variables.
type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// required reads a secret. Surrounding whitespace is dropped: a newline left
// by "echo secret | gcloud secrets versions add" would otherwise make every
// signature check fail.
func (r *reader) required(name string) string {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		r.fail("%s is required", name)
	}
	return v
}

// baseURL reads the URL of a service that is sent a bearer token: https, or
// plain http only on this machine (the fakes and the sandbox).
func (r *reader) baseURL(name string) string {
	v := r.str(name, "")
	if v == "" {
		return ""
	}
	if !localnet.PrivateURL(v) {
		r.fail("%s=%q: want an https URL (plain http only on a loopback address)", name, v)
		return ""
	}
	return v
}

// oneOf reads one of the allowed values, in any case.
func oneOf[T ~string](r *reader, name string, def T, allowed ...T) T {
	v := T(strings.ToLower(r.str(name, string(def))))
	if slices.Contains(allowed, v) {
		return v
	}
	r.fail("%s=%q: want one of %s", name, v, joinNames(allowed))
	return def
}

// joinNames lists values for an error message: "audio, text, both".
func joinNames[T ~string](values []T) string {
	names := make([]string, len(values))
	for i, v := range values {
		names[i] = string(v)
	}
	return strings.Join(names, ", ")
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail("%s=%q: want a positive duration such as 24h", name, v)
		return def
	}
	return d
}

// positive reads a whole number from 1 to limit (no limit when limit is 0).
func (r *reader) positive(name string, def, limit int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n <= 0:
		r.fail("%s=%q: want a positive whole number", name, v)
	case limit > 0 && n > limit:
		r.fail("%s=%d: want at most %d", name, n, limit)
	default:
		return n
	}
	return def
}

func (r *reader) boolean(name string, def bool) bool {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail("%s=%q: want true or false", name, v)
		return def
	}
	return b
}

func (r *reader) list(name, def string) []string {
	var out []string
	for _, s := range strings.Split(r.str(name, def), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r *reader) level(name string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(r.str(name, "info"))); err != nil {
		r.fail("%s=%q: want debug, info, warn or error", name, r.getenv(name))
	}
	return l
}
