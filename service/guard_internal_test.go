package service

import (
	"slices"
	"testing"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/speech"
)

func TestNumberSpeech(t *testing.T) {
	t.Parallel()
	base := speech.Config{STTLanguages: []string{"auto"}, TTSVoice: "en-US-Chirp3-HD-Achernar", TTSLanguage: "en-US"}
	tests := []struct {
		n                   config.Number
		stt, voice, ttsLang string
	}{
		{config.Number{}, "auto", "en-US-Chirp3-HD-Achernar", "en-US"},
		{config.Number{Language: "es-MX"}, "es-MX", "es-ES-Chirp3-HD-Achernar", "es-ES"},
		{config.Number{Voice: "fr-FR-Chirp3-HD-Kore"}, "auto", "fr-FR-Chirp3-HD-Kore", "fr-FR"},
		{config.Number{Voice: "cmn-CN-Chirp3-HD-Kore", Language: "cmn-Hans-CN"}, "cmn-Hans-CN", "cmn-CN-Chirp3-HD-Kore", "cmn-CN"},
		{config.Number{Language: "no"}, "no", "nb-NO-Chirp3-HD-Achernar", "nb-NO"},       // the table's key for it is nb, as for replies
		{config.Number{Language: "xx-YY"}, "xx-YY", "en-US-Chirp3-HD-Achernar", "en-US"}, // no voice for it in the table
	}
	for _, tt := range tests {
		got := numberSpeech(base, tt.n)
		if !slices.Equal(got.STTLanguages, []string{tt.stt}) || got.TTSVoice != tt.voice || got.TTSLanguage != tt.ttsLang {
			t.Errorf("numberSpeech(%+v) = %v, %s, %s; want %s, %s, %s", tt.n, got.STTLanguages, got.TTSVoice, got.TTSLanguage,
				tt.stt, tt.voice, tt.ttsLang)
		}
	}
	if base.TTSVoice != "en-US-Chirp3-HD-Achernar" {
		t.Error("numberSpeech changed its base")
	}
}
