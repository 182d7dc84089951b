package service

import (
	"context"

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

// numbers builds the collaborators of each number that has settings of its
// own: a Gemini client with its system prompt, a speech client with its
// voice and language. Each is a client of its own, built once at start;
// a deployment serves a handful of numbers.
func (s *Service) numbers(ctx context.Context, cfg config.Config, base speech.Config) (map[string]reply.Number, error) {
	out := make(map[string]reply.Number, len(cfg.Numbers))
	for id, n := range cfg.Numbers {
		num := reply.Number{Mode: reply.Mode(n.ReplyMode)}
		if n.SystemPrompt != "" {
			gc := geminiConfig(cfg)
			gc.SystemPrompt = n.SystemPrompt
			llm, err := gemini.New(ctx, gc)
			if err != nil {
				return nil, err
			}
			num.Responder = llm
		}
		if n.Voice != "" || n.Language != "" {
			sp, err := speech.New(ctx, numberSpeech(base, n))
			if err != nil {
				return nil, err
			}
			s.closers = append(s.closers, func(context.Context) error { return sp.Close() })
			num.Transcriber, num.Synthesizer = sp, sp
		}
		out[id] = num
	}
	return out, nil
}

// numberSpeech is base with a number's language and voice. Recognition
// listens for the language. The voice is the number's, else the table's
// voice for its language; Text-to-Speech is sent the locale the voice's name
// begins with, since a voice speaks only its own.
func numberSpeech(base speech.Config, n config.Number) speech.Config {
	if n.Language != "" {
		base.STTLanguages = []string{n.Language}
	}
	voice := n.Voice
	if voice == "" {
		voice = speech.DefaultVoice(n.Language)
	}
	if voice != "" {
		base.TTSVoice, base.TTSLanguage = voice, speech.VoiceLocale(voice)
	}
	return base
}
