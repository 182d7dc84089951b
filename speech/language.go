package speech

import (
	"strings"

	"github.com/abadojack/whatlanggo"
)

// DefaultVoices is the voice that speaks each language, by its primary
// language subtag, when the configured TTS_VOICE speaks another: the Chirp 3
// HD voice of the language's main locale (the locales Google lists for
// Chirp 3 HD, 2026-11). The persona (Achernar) is replaced by the configured
// voice's, so a reply sounds like the same speaker in every language.
var DefaultVoices = map[string]string{
	"ar": "ar-XA-Chirp3-HD-Achernar",
	"bn": "bn-IN-Chirp3-HD-Achernar",
	"da": "da-DK-Chirp3-HD-Achernar",
	"de": "de-DE-Chirp3-HD-Achernar",
	"en": "en-US-Chirp3-HD-Achernar",
	"es": "es-ES-Chirp3-HD-Achernar",
	"fi": "fi-FI-Chirp3-HD-Achernar",
	"fr": "fr-FR-Chirp3-HD-Achernar",
	"gu": "gu-IN-Chirp3-HD-Achernar",
	"hi": "hi-IN-Chirp3-HD-Achernar",
	"id": "id-ID-Chirp3-HD-Achernar",
	"it": "it-IT-Chirp3-HD-Achernar",
	"ja": "ja-JP-Chirp3-HD-Achernar",
	"kn": "kn-IN-Chirp3-HD-Achernar",
	"ko": "ko-KR-Chirp3-HD-Achernar",
	"ml": "ml-IN-Chirp3-HD-Achernar",
	"mr": "mr-IN-Chirp3-HD-Achernar",
	"nb": "nb-NO-Chirp3-HD-Achernar",
	"nl": "nl-NL-Chirp3-HD-Achernar",
	"pl": "pl-PL-Chirp3-HD-Achernar",
	"pt": "pt-BR-Chirp3-HD-Achernar",
	"ru": "ru-RU-Chirp3-HD-Achernar",
	"sv": "sv-SE-Chirp3-HD-Achernar",
	"sw": "sw-KE-Chirp3-HD-Achernar",
	"ta": "ta-IN-Chirp3-HD-Achernar",
	"te": "te-IN-Chirp3-HD-Achernar",
	"th": "th-TH-Chirp3-HD-Achernar",
	"tr": "tr-TR-Chirp3-HD-Achernar",
	"uk": "uk-UA-Chirp3-HD-Achernar",
	"ur": "ur-IN-Chirp3-HD-Achernar",
	"vi": "vi-VN-Chirp3-HD-Achernar",
	"zh": "cmn-CN-Chirp3-HD-Achernar",
}

// regionalVoices are the other locales with Chirp 3 HD voices: a language
// tag naming one of them is spoken in it rather than in the main locale.
var regionalVoices = map[string]bool{
	"en-AU": true, "en-GB": true, "en-IN": true, "es-US": true, "fr-CA": true, "nl-BE": true,
}

// primaryAliases are primary subtags that name a language of the table
// under another code.
var primaryAliases = map[string]string{"cmn": "zh", "no": "nb", "nn": "nb"}

// languageKey is the key of DefaultVoices for a language tag.
func languageKey(tag string) string {
	primary := primaryLanguage(canonicalLanguage(tag))
	if alias, ok := primaryAliases[primary]; ok {
		return alias
	}
	return primary
}

// chirpInfix separates a Chirp 3 HD voice's locale from its persona.
const chirpInfix = "-Chirp3-HD-"

// detectable are the languages DetectLanguage may answer: those with a
// voice. Restricting the detector to them also makes it surer.
var detectable = func() map[whatlanggo.Lang]bool {
	m := map[whatlanggo.Lang]bool{}
	for l := whatlanggo.Afr; l <= whatlanggo.Zul; l++ {
		if _, ok := DefaultVoices[l.Iso6391()]; ok {
			m[l] = true
		}
	}
	return m
}()

// DetectLanguage returns the ISO 639-1 code of the language text is written
// in, among those of DefaultVoices, or "" when the detector is not sure. It
// uses whatlanggo (trigram profiles, about 0.5 MB of binary, well under a
// millisecond for a paragraph); short texts in close languages (Italian and
// Spanish, say) often come back unsure, which is why callers keep a hint.
func DetectLanguage(text string) string {
	info := whatlanggo.DetectWithOptions(text, whatlanggo.Options{Whitelist: detectable})
	if !info.IsReliable() {
		return ""
	}
	return info.Lang.Iso6391()
}

// AnswerLanguage is the language to speak an answer in: the one its text is
// written in when that is clear, else hint (the user's language, from speech
// recognition or the model), else "" for TTS_LANGUAGE. It is the one rule
// for a reply's language: SpeakStream applies it to the answer's first piece
// to choose the voice, and the pipeline to the whole answer for what it logs
// and stages.
func AnswerLanguage(answer, hint string) string {
	detected := DetectLanguage(answer)
	if detected == "" || languageKey(hint) == detected {
		return canonicalLanguage(hint) // keeps the region a hint has, such as es-US
	}
	return detected
}

// voiceFor picks the voice for a language: the configured one when it speaks
// the language; else the table's voice for it, in the configured voice's
// persona; else whatever voice the API has for the language code.
func (c *Client) voiceFor(language string) *voice {
	language = canonicalLanguage(language)
	own := &voice{Name: c.voice, Language: c.voiceLang}
	primary := languageKey(language)
	if language == "" || primary == languageKey(voiceLanguage(c.voice, c.voiceLang)) {
		return own
	}
	locale, _, ok := strings.Cut(DefaultVoices[primary], chirpInfix)
	if regionalVoices[language] {
		locale, ok = language, true
	}
	if !ok {
		return &voice{Language: language}
	}
	persona := "Achernar"
	if _, p, found := strings.Cut(c.voice, chirpInfix); found {
		persona = p
	}
	return &voice{Name: locale + chirpInfix + persona, Language: locale}
}

// voice is a Text-to-Speech voice: a name, or "" to let the API choose one
// for the language.
type voice struct {
	Name, Language string
}

// DefaultVoice is the voice of DefaultVoices for a language tag, found as
// Synthesize finds it (so cmn-CN and no are spoken too), or "" when the
// table has none.
func DefaultVoice(language string) string {
	return DefaultVoices[languageKey(language)]
}

// VoiceLocale is the locale a voice's name begins with ("es-ES" for
// es-ES-Chirp3-HD-Kore), the only one the voice speaks, or "" when the name
// does not begin with one.
func VoiceLocale(voice string) string {
	return voiceLanguage(voice, "")
}
