package speech

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSpeakable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain", "Your table is booked.", "Your table is booked."},
		{"whitespace", "  Two   spaces\tand a tab.  ", "Two spaces and a tab."},
		{"bold and italic", "This is **very** important and *quite* _urgent_.", "This is very important and quite urgent."},
		{"snake case stays", "Set max_retry_count to three.", "Set max_retry_count to three."},
		{"multiplication stays", "It costs 2 * 3 euros.", "It costs 2 * 3 euros."},
		{"heading and list", "# Menu\n- Pasta\n- Pizza!\n1. Salad", "Menu. Pasta. Pizza! Salad."},
		{"list with colon", "Options:\n* Monday\n* Tuesday", "Options: Monday. Tuesday."},
		{"link keeps words", "See [our menu](https://example.com/menu) for details.", "See our menu for details."},
		{"image keeps alt", "![a map](https://example.com/map.png)", "a map."},
		{"bare URL", "Visit https://example.com/a?b=c, or www.example.org.", "Visit, or."},
		{"autolink", "Write to <mailto:x@example.com> today.", "Write to today."},
		{"inline code", "Run `make test` first.", "Run make test first."},
		{"code block dropped", "Try this:\n```go\nfmt.Println(1)\n```\nDone.", "Try this: Done."},
		{"emoji", "Great 😀👍🏽 see you 🇪🇸 soon ✨!", "Great see you soon!"},
		{"emoji sequence", "Family 👨‍👩‍👧 and 1️⃣ more ❤️.", "Family and 1 more."},
		{"symbols a voice can say", "It is 25°C and costs €30 © 2024.", "It is 25°C and costs €30 © 2024."},
		{"blockquote and rule", "> Quoted words\n\n---\nAfter.", "Quoted words. After."},
		{"table", "| Day | Time |\n|---|---|\n| Mon | 8 pm |", "Day Time. Mon 8 pm."},
		{"strike", "It was ~~cheap~~ fine.", "It was cheap fine."},
		{"only emoji", "👍", ""},
		{"multi-byte", "¿Dónde está la estación? 駅はどこですか。", "¿Dónde está la estación? 駅はどこですか。"},
	}
	for _, tt := range tests {
		if got := Speakable(tt.in); got != tt.want {
			t.Errorf("%s: Speakable(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestSentences(t *testing.T) {
	t.Parallel()
	got := sentences("Hello there. It is 3.5 km away! Right? 駅はどこですか。すぐです。 End")
	want := []string{"Hello there.", "It is 3.5 km away!", "Right?", "駅はどこですか。", "すぐです。", "End"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sentences = %q, want %q", got, want)
	}
}

func TestChunks(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("Привет, как дела у тебя сегодня? ", 200) // 2 bytes a letter
	noSpaces := strings.Repeat("東京駅", 2000)                          // 3 bytes a character, no sentence end
	oneWord := strings.Repeat("a", 7000)
	for _, text := range []string{long, noSpaces, oneWord, "Short.", strings.Repeat("Hi. ", 1500)} {
		got := chunks(text, maxRequestBytes)
		for i, c := range got {
			if len(c) > maxRequestBytes || len(c) == 0 {
				t.Errorf("chunk %d is %d bytes, want 1..%d", i, len(c), maxRequestBytes)
			}
			if !utf8.ValidString(c) {
				t.Errorf("chunk %d splits a character", i)
			}
		}
		if joined := strings.Join(got, ""); strings.ReplaceAll(joined, " ", "") != strings.ReplaceAll(text, " ", "") {
			t.Errorf("chunks of %.20q... lose or change text", text)
		}
	}
	// Sentences stay whole when they fit.
	for i, c := range chunks(long, maxRequestBytes) {
		if !strings.HasSuffix(c, "?") {
			t.Errorf("chunk %d ends %q, want the end of a sentence", i, c[len(c)-10:])
		}
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"One. Two. Three.", 100, "One. Two. Three."},
		{"One. Two. Three.", 10, "One. Two."},
		{"Ünïcödé wörds here. More.", 20, "Ünïcödé wörds here."},
		{"averyveryverylongword and more", 12, "averyveryver"},
		{"first sentence is long. Second.", 12, "first"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.max); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestCanonicalLanguage(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"en-us": "en-US", "EN_gb": "en-GB", "es": "es", "zh-hant-tw": "zh-Hant-TW", "es-419": "es-419", "": "",
	} {
		if got := canonicalLanguage(in); got != want {
			t.Errorf("canonicalLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSpeechEndpoint(t *testing.T) {
	t.Parallel()
	for loc, want := range map[string]string{
		"global": "speech.googleapis.com:443",
		"us":     "us-speech.googleapis.com:443",
		"eu":     "eu-speech.googleapis.com:443",
	} {
		if got := speechEndpoint(loc); got != want {
			t.Errorf("speechEndpoint(%q) = %q, want %q", loc, got, want)
		}
	}
}
