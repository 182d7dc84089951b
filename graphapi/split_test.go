package graphapi

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSplitTextShortIsUnchanged(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"hi", " padded \n", strings.Repeat("é", MaxTextLength)} {
		if got := splitText(s, MaxTextLength); len(got) != 1 || got[0] != s {
			t.Errorf("splitText(%.20q) = %d parts, want the text unchanged", s, len(got))
		}
	}
}

func TestSplitTextPrefersParagraphsThenSentences(t *testing.T) {
	t.Parallel()
	paragraph := strings.Repeat("Ceci est une phrase. ", 100) // 2100 characters
	text := strings.TrimSpace(strings.Repeat(paragraph+"\n\n", 3))
	got := splitText(text, MaxTextLength)
	if len(got) != 3 {
		t.Fatalf("splitText(3 paragraphs of 2100) = %d parts, want 3", len(got))
	}
	for i, part := range got {
		if part != strings.TrimSpace(paragraph) {
			t.Errorf("part %d = %.40q…, want one whole paragraph", i, part)
		}
	}

	// One paragraph longer than the limit is cut at a sentence end.
	long := strings.Repeat("Das ist ein Satz mit Umlauten äöü! ", 200)
	for i, part := range splitText(long, MaxTextLength) {
		if !strings.HasSuffix(strings.TrimSpace(part), "!") {
			t.Errorf("part %d ends %q, want a sentence end", i, part[len(part)-10:])
		}
	}
}

func TestSplitTextUnicode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		text  string
		limit int
	}{
		{"family emoji without spaces", strings.Repeat("👨‍👩‍👧‍👦", 1500), MaxTextLength},
		{"skin tones", strings.Repeat("👍🏽", 3000), MaxTextLength},
		{"flags", strings.Repeat("🇩🇪🇯🇵🇧🇷", 1000), MaxTextLength},
		{"tag flag", strings.Repeat("🏴󠁧󠁢󠁳󠁣󠁴󠁿", 500), MaxTextLength},
		{"combining accents", strings.Repeat("e\u0301", 5000), MaxTextLength},
		{"keycaps", strings.Repeat("1\ufe0f\u20e3", 3000), MaxTextLength},
		{"cjk", strings.Repeat("これは日本語の文です。", 1000), MaxTextLength},
		{"mixed with spaces", strings.Repeat("Olá 👋🏾 mundo 🇵🇹 ok… ", 700), MaxTextLength},
		{"odd limit", strings.Repeat("😀", 100), 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parts := splitText(tt.text, tt.limit)
			if len(parts) < 2 {
				t.Fatalf("splitText = %d parts, want several", len(parts))
			}
			for i, part := range parts {
				if n := utf16Len(part); n > tt.limit {
					t.Errorf("part %d is %d UTF-16 units, want at most %d", i, n, tt.limit)
				}
				if !utf8.ValidString(part) {
					t.Errorf("part %d is not valid UTF-8", i)
				}
				if i > 0 && !breaksBetweenCharacters(parts[i-1]+part, len(parts[i-1])) {
					r, _ := utf8.DecodeRuneInString(part)
					last, _ := utf8.DecodeLastRuneInString(parts[i-1])
					t.Errorf("cut between parts %d and %d splits a character (%U | %U)", i-1, i, last, r)
				}
			}
			if got, want := dropSpace(strings.Join(parts, "")), dropSpace(tt.text); got != want {
				t.Errorf("parts joined lose or change text: %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

func TestBreaksBetweenCharacters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		i    int
		want bool
	}{
		{"ab", 1, true},
		{"e\u0301", 1, false},               // before a combining accent
		{"👍🏽", 4, false},                    // before a skin tone
		{"👨\u200d👩", 4, false},              // before a zero-width joiner
		{"👨\u200d👩", 7, false},              // after a zero-width joiner
		{"🇩🇪🇯🇵", 4, false},                  // inside a flag
		{"🇩🇪🇯🇵", 8, true},                   // between two flags
		{"🇩🇪🇯🇵", 12, false},                 // inside the second flag
		{"\r\n", 1, false},                  // inside CRLF
		{"❤\ufe0f", 3, false},               // before a variation selector
		{"🏴\U000E0067\U000E0062", 4, false}, // before a tag
	}
	for _, tt := range tests {
		if got := breaksBetweenCharacters(tt.s, tt.i); got != tt.want {
			t.Errorf("breaksBetweenCharacters(%+q, %d) = %v, want %v", tt.s, tt.i, got, tt.want)
		}
	}
}

func dropSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}
