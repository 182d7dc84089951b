package service

import (
	"slices"
	"testing"

	"github.com/patternai/whatsapp-node/config"
)

func TestNumberSpeech(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n                  config.Number
		languages          []string
		voice, voiceLocale string
	}{
		{config.Number{}, nil, "", ""}, // the deployment's languages and voice
		{config.Number{Language: "es-MX"}, []string{"es-MX"}, "es-ES-Chirp3-HD-Achernar", "es-ES"},
		{config.Number{Voice: "fr-FR-Chirp3-HD-Kore"}, nil, "fr-FR-Chirp3-HD-Kore", "fr-FR"},
		{config.Number{Voice: "cmn-CN-Chirp3-HD-Kore", Language: "cmn-Hans-CN"}, []string{"cmn-Hans-CN"}, "cmn-CN-Chirp3-HD-Kore", "cmn-CN"},
		{config.Number{Language: "no"}, []string{"no"}, "nb-NO-Chirp3-HD-Achernar", "nb-NO"}, // the table's key for it is nb, as for replies
		{config.Number{Language: "xx-YY"}, []string{"xx-YY"}, "", ""},                        // no voice for it in the table: the deployment's
	}
	for _, tt := range tests {
		languages, voice, locale := numberSpeech(tt.n)
		if !slices.Equal(languages, tt.languages) || voice != tt.voice || locale != tt.voiceLocale {
			t.Errorf("numberSpeech(%+v) = %v, %q, %q; want %v, %q, %q", tt.n, languages, voice, locale,
				tt.languages, tt.voice, tt.voiceLocale)
		}
	}
}

// TestGeminiConfigLocal checks which Gemini endpoints get a transport without
// credentials: those on this machine, with a port or without.
func TestGeminiConfigLocal(t *testing.T) {
	t.Parallel()
	for raw, local := range map[string]bool{
		"":                          false, // Vertex AI itself
		"https://example.com/":      false,
		"http://10.0.0.1:8080/":     false,
		"http://127.0.0.1:8080/":    true,
		"http://127.0.0.1/":         true,
		"http://localhost/v1":       true,
		"http://[::1]:9/":           true,
		"http://localhost.example/": false,
	} {
		if got := geminiConfig(config.Config{GeminiURL: raw}).HTTPClient != nil; got != local {
			t.Errorf("geminiConfig(GeminiURL %q): own transport without credentials %v, want %v", raw, got, local)
		}
	}
}
