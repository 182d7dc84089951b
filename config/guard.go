package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Guard holds what keeps a public number's bill and users safe: who is
// served, how much, and what each refusal says. A notice left empty takes
// the reply package's plain default.
type Guard struct {
	AllowSenders []string // ALLOW_SENDERS: when set, only these numbers or user ids are served
	BlockSenders []string // BLOCK_SENDERS: never served

	PerMinute int // SENDER_LIMIT_PER_MINUTE: messages answered per sender per minute; 0 means none
	PerDay    int // SENDER_LIMIT_PER_DAY: per sender per UTC day; 0 means none

	DailyMessages int     // NUMBER_DAILY_MESSAGES: answers per number per UTC day; 0 means none
	DailyCostUSD  float64 // NUMBER_DAILY_COST_USD: estimated spend per number per UTC day; 0 means none
	CeilingAction string  // CEILING_ACTION: notice (answer with NOTICE_CEILING) or text (answer without voice)

	MaxTextChars  int           // MAX_TEXT_CHARS: longest text answered
	MaxVoice      time.Duration // MAX_VOICE_LENGTH: longest voice note recognized
	MaxMediaBytes int64         // MAX_MEDIA_MB, in bytes: largest photo, PDF or voice note downloaded

	StopWords  []string // STOP_WORDS
	StartWords []string // START_WORDS
	ResetWords []string // RESET_WORDS

	// The notices, one per refusal.
	NoticeMinute  string // NOTICE_LIMIT_MINUTE
	NoticeDay     string // NOTICE_LIMIT_DAY
	NoticeStop    string // NOTICE_STOP
	NoticeStart   string // NOTICE_START
	NoticeReset   string // NOTICE_RESET
	NoticeText    string // NOTICE_TEXT_TOO_LONG
	NoticeVoice   string // NOTICE_VOICE_TOO_LONG
	NoticeMedia   string // NOTICE_MEDIA_TOO_LARGE
	NoticeCeiling string // NOTICE_CEILING
	// NoticeUnsupported answers a message type the assistant does not read
	// (a location, a contact, a video).
	NoticeUnsupported string // NOTICE_UNSUPPORTED
}

// maxMediaMB is WhatsApp's own limit for audio; the pipeline never
// downloads more.
const maxMediaMB = 16

func (r *reader) guard() Guard {
	g := Guard{
		AllowSenders: r.list("ALLOW_SENDERS", ""),
		BlockSenders: r.list("BLOCK_SENDERS", ""),

		PerMinute: r.count("SENDER_LIMIT_PER_MINUTE", 10, 1000),
		// The day's window remembers every message it admitted (see
		// store.MaxPerDay).
		PerDay: r.count("SENDER_LIMIT_PER_DAY", 100, 10000),

		DailyMessages: r.count("NUMBER_DAILY_MESSAGES", 2000, 0),
		DailyCostUSD:  r.dollars("NUMBER_DAILY_COST_USD", 20),
		CeilingAction: oneOf(r, "CEILING_ACTION", "notice", "notice", "text"),

		MaxTextChars:  r.positive("MAX_TEXT_CHARS", 2000, 0),
		MaxVoice:      r.duration("MAX_VOICE_LENGTH", 2*time.Minute),
		MaxMediaBytes: int64(r.positive("MAX_MEDIA_MB", 5, maxMediaMB)) << 20,

		StopWords:  r.list("STOP_WORDS", "stop,unsubscribe"),
		StartWords: r.list("START_WORDS", "start"),
		ResetWords: r.list("RESET_WORDS", "/reset,reset"),

		NoticeMinute:  r.str("NOTICE_LIMIT_MINUTE", ""),
		NoticeDay:     r.str("NOTICE_LIMIT_DAY", ""),
		NoticeStop:    r.str("NOTICE_STOP", ""),
		NoticeStart:   r.str("NOTICE_START", ""),
		NoticeReset:   r.str("NOTICE_RESET", ""),
		NoticeText:    r.str("NOTICE_TEXT_TOO_LONG", ""),
		NoticeVoice:   r.str("NOTICE_VOICE_TOO_LONG", ""),
		NoticeMedia:   r.str("NOTICE_MEDIA_TOO_LARGE", ""),
		NoticeCeiling: r.str("NOTICE_CEILING", ""),

		NoticeUnsupported: r.str("NOTICE_UNSUPPORTED", ""),
	}
	// A word in two lists would make one message mean two things.
	for _, w := range g.StopWords {
		if containsFold(g.StartWords, w) || containsFold(g.ResetWords, w) {
			r.fail("%q is in more than one of STOP_WORDS, START_WORDS and RESET_WORDS", w)
		}
	}
	for _, w := range g.StartWords {
		if containsFold(g.ResetWords, w) {
			r.fail("%q is in both START_WORDS and RESET_WORDS", w)
		}
	}
	return g
}

func containsFold(list []string, w string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, w) })
}

// count reads a whole number from 0 (none) to limit (no limit when 0).
func (r *reader) count(name string, def, limit int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 0:
		r.fail("%s=%q: want a whole number, 0 for none", name, v)
	case limit > 0 && n > limit:
		r.fail("%s=%d: want at most %d", name, n, limit)
	default:
		return n
	}
	return def
}

// dollars reads an amount in US dollars, 0 meaning none.
func (r *reader) dollars(name string, def float64) float64 {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e6 {
		r.fail("%s=%q: want an amount in US dollars such as 20 or 7.50, 0 for none", name, v)
		return def
	}
	return f
}

// Number is what one WhatsApp number of the deployment (one
// phone_number_id) does differently from the defaults. Empty fields keep
// the deployment's settings.
type Number struct {
	SystemPrompt string `json:"system_prompt"`
	// Voice is a Text-to-Speech voice name, such as es-ES-Chirp3-HD-Kore.
	Voice string `json:"voice"`
	// Language is BCP-47, such as es-ES: what speech recognition listens
	// for and the voice speaks when the answer's language is unclear.
	Language  string    `json:"language"`
	ReplyMode ReplyMode `json:"reply_mode"`
}

var (
	phoneNumberID = regexp.MustCompile(`^[0-9]{5,20}$`)
	languageTag   = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	voiceName     = regexp.MustCompile(`^[a-z]{2,3}-[A-Za-z0-9]{2,4}-[A-Za-z0-9-]+$`)
)

// numbers reads the per-number settings from NUMBERS (JSON) or NUMBERS_FILE
// (the path of a JSON file): an object keyed by phone_number_id. Unknown
// fields are refused, so a misspelt setting stops the start instead of
// being ignored.
func (r *reader) numbers() map[string]Number {
	raw, file := r.str("NUMBERS", ""), r.str("NUMBERS_FILE", "")
	name := "NUMBERS"
	switch {
	case raw != "" && file != "":
		r.fail("NUMBERS and NUMBERS_FILE are both set: use one")
		return nil
	case file != "":
		name = "NUMBERS_FILE " + file
		b, err := os.ReadFile(file)
		if err != nil {
			r.fail("NUMBERS_FILE: %v", err)
			return nil
		}
		raw = string(b)
	case raw == "":
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var numbers map[string]Number
	if err := dec.Decode(&numbers); err != nil {
		r.fail("%s: want a JSON object of phone_number_id to {system_prompt, voice, language, reply_mode}: %v", name, err)
		return nil
	}
	for id, n := range numbers {
		at := fmt.Sprintf("%s: number %q", name, id)
		if !phoneNumberID.MatchString(id) {
			r.fail("%s: want a phone_number_id (digits)", at)
		}
		if n.Voice != "" && !voiceName.MatchString(n.Voice) {
			r.fail("%s: voice %q: want a Text-to-Speech voice name such as es-ES-Chirp3-HD-Kore", at, n.Voice)
		}
		if n.Language != "" && !languageTag.MatchString(n.Language) {
			r.fail("%s: language %q: want a BCP-47 code such as es-ES", at, n.Language)
		}
		if n.ReplyMode != "" && !slices.Contains(replyModes, n.ReplyMode) {
			r.fail("%s: reply_mode %q: want one of %s", at, n.ReplyMode, joinNames(replyModes))
		}
	}
	return numbers
}
