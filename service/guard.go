package service

import (
	"cmp"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/store"
)

// guard turns the guard's settings into the pipeline's rules.
func guard(g config.Guard) reply.Guard {
	return reply.Guard{
		Limits:          store.Limits{PerMinute: g.PerMinute, PerDay: g.PerDay},
		DailyMessages:   g.DailyMessages,
		DailyCostUSD:    g.DailyCostUSD,
		CeilingTextOnly: g.CeilingAction == "text",
		MaxTextChars:    g.MaxTextChars,
		MaxVoice:        g.MaxVoice,
		MaxMediaBytes:   g.MaxMediaBytes,
		StopWords:       g.StopWords,
		StartWords:      g.StartWords,
		ResetWords:      g.ResetWords,
		Notices: reply.Notices{
			Minute:        g.NoticeMinute,
			Day:           g.NoticeDay,
			Stop:          g.NoticeStop,
			Start:         g.NoticeStart,
			Reset:         g.NoticeReset,
			TextTooLong:   g.NoticeText,
			VoiceTooLong:  g.NoticeVoice,
			MediaTooLarge: g.NoticeMedia,
			Ceiling:       g.NoticeCeiling,
		},
	}
}

// audience is whom the webhook lets through.
func audience(g config.Guard) handlers.Audience {
	return handlers.NewAudience(g.AllowSenders, g.BlockSenders)
}

// numbers gives each number that has settings of its own its
// collaborators: a copy of the deployment's Gemini client with its system
// prompt, and of its speech client with its language and voice. The copies
// share the clients' connections, so the service dials each outside service
// once and closes it once, however many numbers it serves.
func numbers(cfg config.Config, llm *gemini.Client, sp *speech.Client) map[string]reply.Number {
	out := make(map[string]reply.Number, len(cfg.Numbers))
	for id, n := range cfg.Numbers {
		num := reply.Number{Mode: reply.Mode(n.ReplyMode)}
		if n.SystemPrompt != "" {
			num.Responder = llm.WithSystemPrompt(n.SystemPrompt)
		}
		if n.Voice != "" || n.Language != "" {
			languages, voice, locale := numberSpeech(n)
			own := sp.WithLanguages(languages).WithVoice(voice, locale)
			num.Transcriber, num.Synthesizer = own, own
		}
		out[id] = num
	}
	return out
}

// numberSpeech is what a number changes in speech; what it leaves empty
// stays the deployment's. Recognition listens for the number's language.
// The voice is the number's, else the table's voice for its language; its
// locale is the one the voice's name begins with, since a voice speaks only
// its own.
func numberSpeech(n config.Number) (languages []string, voice, locale string) {
	if n.Language != "" {
		languages = []string{n.Language}
	}
	voice = cmp.Or(n.Voice, speech.DefaultVoice(n.Language))
	return languages, voice, speech.VoiceLocale(voice)
}
