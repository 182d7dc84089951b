package reply

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/store"
)

// Guard holds the rules that keep a public number's bill and users safe.
// Zero numbers mean no limit; empty notices take the defaults below.
//
// Where each rule is checked, and why there:
//
//   - Who is served (the allow and block lists) is decided in the webhook
//     (package handlers): it needs no store, so a blocked sender costs not
//     even a marker or a queued job.
//   - Everything else runs here, after the claim and before any model,
//     recognition or synthesis call. It needs the store (a round trip the
//     webhook, which answers in about a millisecond, should not wait for),
//     and its notices must go out exactly once, which only a claimed
//     message's sendPart ensures.
//   - The size caps on media are checked as the media is downloaded (see
//     capped), before any recognition, whichever stage downloads it.
type Guard struct {
	Limits store.Limits
	// DailyMessages and DailyCostUSD are the ceiling of one number's day
	// (UTC). Past it the number answers with Notices.Ceiling, or, with
	// CeilingTextOnly, in text only (synthesis is most of a reply's cost).
	DailyMessages   int
	DailyCostUSD    float64
	CeilingTextOnly bool
	// MaxTextChars is the longest message text answered.
	MaxTextChars int
	// MaxVoice is the longest voice note recognized, and MaxMediaBytes the
	// largest media downloaded (at most WhatsApp's own 16 MB).
	MaxVoice      time.Duration
	MaxMediaBytes int64
	// StopWords, StartWords and ResetWords are matched against a whole text
	// message, ignoring case, surrounding spaces and punctuation.
	StopWords, StartWords, ResetWords []string
	Notices                           Notices
}

// Notices are the short texts the guard answers with instead of an answer.
type Notices struct {
	Minute, Day, Stop, Start, Reset, TextTooLong, VoiceTooLong, MediaTooLarge, Ceiling string
}

// The default notices.
const (
	DefaultNoticeMinute  = "You're sending messages faster than I can answer. Please wait a minute and try again."
	DefaultNoticeDay     = "You've reached today's limit of messages. I'll be able to answer again tomorrow."
	DefaultNoticeStop    = "You won't get any more replies from me. Send START if you change your mind."
	DefaultNoticeStart   = "Welcome back! I'll answer your messages again."
	DefaultNoticeReset   = "Done: I've forgotten our conversation. Let's start over."
	DefaultNoticeText    = "That message is too long for me. Please send a shorter one."
	DefaultNoticeVoice   = "That voice note is too long for me. Please send a shorter one."
	DefaultNoticeMedia   = "That file is too large for me. Please send a smaller one."
	DefaultNoticeCeiling = "I can't answer any more messages today. Please try again tomorrow."
)

// hasCeiling reports whether the number's day has a ceiling.
func (g Guard) hasCeiling() bool { return g.DailyMessages > 0 || g.DailyCostUSD > 0 }

func (g Guard) withDefaults() Guard {
	n := &g.Notices
	n.Minute = cmp.Or(n.Minute, DefaultNoticeMinute)
	n.Day = cmp.Or(n.Day, DefaultNoticeDay)
	n.Stop = cmp.Or(n.Stop, DefaultNoticeStop)
	n.Start = cmp.Or(n.Start, DefaultNoticeStart)
	n.Reset = cmp.Or(n.Reset, DefaultNoticeReset)
	n.TextTooLong = cmp.Or(n.TextTooLong, DefaultNoticeText)
	n.VoiceTooLong = cmp.Or(n.VoiceTooLong, DefaultNoticeVoice)
	n.MediaTooLarge = cmp.Or(n.MediaTooLarge, DefaultNoticeMedia)
	n.Ceiling = cmp.Or(n.Ceiling, DefaultNoticeCeiling)
	if g.MaxMediaBytes <= 0 || g.MaxMediaBytes > maxMediaBytes {
		g.MaxMediaBytes = maxMediaBytes
	}
	return g
}

// Number is what one WhatsApp number (phone_number_id) of the deployment
// answers with where it differs from the deployment's defaults; nil and
// empty fields keep them.
type Number struct {
	Mode        Mode
	Responder   Responder
	Transcriber Transcriber
	Synthesizer Synthesizer
}

// forJob returns the pipeline that answers job: its number's settings, its
// conversation kept apart from the same sender's with other numbers, and
// downloads held to the size caps. It is a copy of p of the job's own, so
// the guard may narrow it further (text only past the daily ceiling).
func (p *Pipeline) forJob(job queue.Job) *Pipeline {
	q := *p
	if n, ok := p.deps.Numbers[job.PhoneNumberID]; ok {
		q.opts.Mode = cmp.Or(n.Mode, q.opts.Mode)
		if n.Responder != nil {
			q.deps.Responder = n.Responder
		}
		if n.Transcriber != nil {
			q.deps.Transcriber = n.Transcriber
		}
		if n.Synthesizer != nil {
			q.deps.Synthesizer = n.Synthesizer
		}
	}
	q.deps.Store = conversations{Store: p.deps.Store, number: job.PhoneNumberID}
	q.deps.Messenger = capped{Messenger: p.deps.Messenger, guard: p.opts.Guard,
		voice: job.Message.Type == graphapi.TypeAudio}
	return &q
}

// conversations keys each conversation by number and sender, so that one
// person talking to two numbers of the deployment has two conversations.
// The pipeline's other calls pass through.
type conversations struct {
	Store
	number string
}

// ConversationKey is the key under which the store keeps the conversation
// between a number of the deployment and a user.
func ConversationKey(number, user string) string { return number + "/" + user }

func (c conversations) key(user string) string { return ConversationKey(c.number, user) }

func (c conversations) History(ctx context.Context, user string, n int) ([]store.Turn, error) {
	return c.Store.History(ctx, c.key(user), n)
}

func (c conversations) AppendTurns(ctx context.Context, user string, turns ...store.Turn) error {
	return c.Store.AppendTurns(ctx, c.key(user), turns...)
}

func (c conversations) ResetHistory(ctx context.Context, user string) error {
	return c.Store.ResetHistory(ctx, c.key(user))
}

// serve answers the message, or sends the notice a rule calls for instead,
// or nothing at all.
//
// An answer an earlier attempt began to deliver (a part of it is sent or
// uncertain) is past the guard: that attempt's guard admitted the message,
// and judging it again could find a sender limit tripped or the ceiling
// reached since, and send a notice beside the answer, or nothing more of
// it. The answer is finished instead, in the form it began: one that began
// as text in a mode that speaks (past the ceiling with CeilingTextOnly, or
// after its voice note failed) goes on as text, with no voice note beside.
func (a *attempt) serve(ctx context.Context, k kind, userText string) error {
	text, audio := a.begun()
	if text && a.p.opts.Mode != Both {
		a.p.opts.Mode = Text // a.p is this job's own (see forJob)
	}
	if !text && !audio {
		notice, quiet, err := a.screen(ctx, k, userText)
		switch {
		case err != nil:
			return err
		case quiet:
			return nil
		case notice != "":
			return a.sendMessage(ctx, partNotice, notice)
		}
	}
	err := a.answer(ctx, k, userText)
	if over, ok := errors.AsType[*overCap](err); ok {
		a.log.Info("not answered: over a size cap", "cap", over.cap)
		return a.sendMessage(ctx, partNotice, over.notice)
	}
	if err == nil {
		a.spend(ctx)
	}
	return err
}

// screen applies the rules that need no media, in order: opt-out and the
// sender's limits (one read and one conditional write in the store), what
// the assistant does not read, the reset word, the text's length, and the
// number's daily ceiling. STOP comes first so that it works whatever else
// applies. It returns the notice to send instead of an answer, or quiet when
// nothing is to be sent.
func (a *attempt) screen(ctx context.Context, k kind, userText string) (notice string, quiet bool, _ error) {
	g := a.p.opts.Guard
	word := ""
	if k == text {
		word = normalize(userText)
	}
	in := store.Inbound{Stop: isWord(g.StopWords, word), Start: isWord(g.StartWords, word), Limits: g.Limits}
	v, err := a.p.deps.Store.Gate(ctx, a.job.Sender, a.id, in)
	if err != nil {
		return "", false, err
	}
	switch v {
	case store.Quiet:
		a.log.Info("not answered: opted out, or over a limit already noticed")
		return "", true, nil
	case store.Stopped:
		a.log.Info("sender opted out")
		return g.Notices.Stop, false, nil
	case store.Started:
		a.log.Info("sender opted in")
		return g.Notices.Start, false, nil
	case store.OverMinute:
		a.log.Info("not answered: sender over the limit per minute")
		return g.Notices.Minute, false, nil
	case store.OverDay:
		a.log.Info("not answered: sender over the limit per day")
		return g.Notices.Day, false, nil
	}
	switch {
	case k == unsupported:
		return a.p.opts.Unsupported, false, nil
	case isWord(g.ResetWords, word):
		if err := a.p.deps.Store.ResetHistory(ctx, a.job.Sender); err != nil {
			return "", false, err
		}
		a.log.Info("conversation reset")
		return g.Notices.Reset, false, nil
	case g.MaxTextChars > 0 && utf8.RuneCountInString(userText) > g.MaxTextChars:
		a.log.Info("not answered: over a size cap", "cap", "text", "chars", utf8.RuneCountInString(userText))
		return g.Notices.TextTooLong, false, nil
	}
	notice, err = a.ceiling(ctx)
	return notice, false, err
}

// ceiling checks the number's spending today against the daily ceiling,
// and returns the notice to send instead of an answer, if any. The spending
// is read before the reply and added after it, so replies in flight when it
// is reached can pass it: by at most as many as are answered at once
// (CONCURRENCY times MAX_INSTANCES).
func (a *attempt) ceiling(ctx context.Context) (notice string, _ error) {
	g := a.p.opts.Guard
	if !g.hasCeiling() {
		return "", nil
	}
	number := a.job.PhoneNumberID
	sp, err := a.p.deps.Store.Spending(ctx, number)
	if err != nil {
		return "", err
	}
	usd := float64(sp.Micros) / 1e6
	if !(g.DailyMessages > 0 && sp.Messages >= g.DailyMessages) && !(g.DailyCostUSD > 0 && usd >= g.DailyCostUSD) {
		return "", nil
	}
	switch first, err := a.p.deps.Store.FirstOverCeiling(ctx, number); {
	case err != nil:
		a.log.Warn("daily ceiling reached; not recorded", "error", err)
	case first:
		a.log.Warn("daily ceiling reached", "phone_number_id", number, "messages", sp.Messages, "cost_usd", usd,
			"text_only", g.CeilingTextOnly)
	}
	if g.CeilingTextOnly {
		a.p.opts.Mode = Text // a.p is this job's own (see forJob)
		return "", nil
	}
	return g.Notices.Ceiling, nil
}

// List prices (USD) the daily ceiling estimates a reply's cost with: Gemini
// 3.5 Flash, Speech-to-Text chirp_3 and Chirp 3 HD voices, as in the
// README's "What a reply costs".
const (
	usdPerPromptToken = 1.50 / 1e6
	usdPerAnswerToken = 9.00 / 1e6
	usdPerAudioSecond = 0.016 / 60
	usdPerTTSChar     = 30.0 / 1e6
)

// spend adds the reply and its estimated cost, from what the attempt used
// (the figures of its summary line), to the number's day. The store counts
// each message once, so a retry that finishes or completes an answer an
// earlier attempt counted adds nothing. A failure is logged, not returned:
// the user has the answer.
func (a *attempt) spend(ctx context.Context) {
	if !a.p.opts.Guard.hasCeiling() {
		return
	}
	a.mu.Lock()
	usd := a.cost.usd()
	a.mu.Unlock()
	sp := store.Spend{Messages: 1, Micros: int64(usd * 1e6)}
	if err := a.p.deps.Store.AddSpend(ctx, a.job.PhoneNumberID, a.id, sp); err != nil {
		a.log.Warn("reply not counted toward the daily ceiling", "error", err)
	}
}

// usd prices what a reply used at the list prices above.
func (c cost) usd() float64 {
	return float64(c.PromptTokens)*usdPerPromptToken + float64(c.AnswerTokens)*usdPerAnswerToken +
		c.audioInSeconds*usdPerAudioSecond + float64(c.ttsChars)*usdPerTTSChar
}

// normalize reduces a text message to the form the stop, start and reset
// words are matched in.
func normalize(s string) string {
	return strings.ToLower(strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsPunct(r) && r != '/'
	}))
}

func isWord(words []string, word string) bool {
	return word != "" && slices.ContainsFunc(words, func(w string) bool { return normalize(w) == word })
}

// capped is the Messenger of one job: every download is held to the size
// caps, so that nothing over them reaches recognition or the model, whichever
// stage asks for the media.
type capped struct {
	Messenger
	guard Guard
	voice bool // the job's media is a voice note
}

// voiceBytesPerSecond bounds a voice note's size by its length: WhatsApp
// records voice notes as Opus at about 16 to 32 kbit/s, so a note larger
// than MaxVoice at 64 kbit/s is surely longer, and is refused from the size
// Meta announces, before it is downloaded.
const voiceBytesPerSecond = 64000 / 8

// overCap is a message refused for its size; it is answered with notice.
type overCap struct {
	cap    string // text, voice or media
	notice string
}

func (e *overCap) Error() string { return e.cap + " over its size cap" }

func (c capped) DownloadMedia(ctx context.Context, mediaID string, maxBytes int64, wantSHA256 string) (*graphapi.Download, error) {
	g := c.guard
	limit := min(maxBytes, g.MaxMediaBytes)
	tooBig := &overCap{cap: "media", notice: g.Notices.MediaTooLarge}
	if c.voice {
		tooBig = &overCap{cap: "voice", notice: g.Notices.VoiceTooLong}
		if g.MaxVoice > 0 {
			limit = min(limit, int64(g.MaxVoice.Seconds()*voiceBytesPerSecond))
		}
	}
	dl, err := c.Messenger.DownloadMedia(ctx, mediaID, limit, wantSHA256)
	if errors.Is(err, graphapi.ErrMediaTooLarge) {
		return nil, tooBig
	}
	if err != nil || !c.voice || g.MaxVoice <= 0 {
		return dl, err
	}
	// The Ogg stream's own length; one that cannot be read is left to
	// recognition, which reads it the same way.
	if length, err := speech.OggDuration(dl.Data); err == nil && length > g.MaxVoice {
		return nil, tooBig
	}
	return dl, nil
}
