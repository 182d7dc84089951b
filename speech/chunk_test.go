package speech

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// feed gives text to a Chunker in pieces of n characters, as a model's
// stream would, and returns every piece it cut.
func feed(c *Chunker, text string, n int) []string {
	var out []string
	runes := []rune(text)
	for i := 0; i < len(runes); i += n {
		out = append(out, c.Add(string(runes[i:min(i+n, len(runes))]))...)
	}
	return append(out, c.Flush()...)
}

func TestChunkerSentenceEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"english abbreviations and numbers",
			"Dr. Smith arrives at 3.30 p.m. on Monday. It costs $4.50, i.e. cheap! Is that OK? Yes.",
			[]string{"Dr. Smith arrives at 3.30 p.m. on Monday.", "It costs $4.50, i.e. cheap!", "Is that OK?", "Yes."}},
		{"initials and the year", "J. K. Rowling wrote it in 1997. It sold well.",
			[]string{"J. K. Rowling wrote it in 1997.", "It sold well."}},
		{"spanish", "¿Quieres reservar? ¡Claro! La Sra. García llega a las 9.",
			[]string{"¿Quieres reservar?", "¡Claro!", "La Sra. García llega a las 9."}},
		{"german", "Das kostet z.B. 5 Euro. Danke!", []string{"Das kostet z.B. 5 Euro.", "Danke!"}},
		{"japanese", "明日は晴れです。傘はいりません！では。", []string{"明日は晴れです。", "傘はいりません！", "では。"}},
		{"chinese with quotes", "他说：“好的。”我们走吧？", []string{"他说：“好的。”", "我们走吧？"}},
		{"hindi", "नमस्ते। आप कैसे हैं?", []string{"नमस्ते।", "आप कैसे हैं?"}},
		{"arabic", "مرحبا؟ كيف حالك.", []string{"مرحبا؟", "كيف حالك."}},
		{"quotes and brackets", `He said "Go." Then he left (quickly.) Bye.`,
			[]string{`He said "Go."`, "Then he left (quickly.)", "Bye."}},
		{"emoji", "Great news! 🎉 See you soon 😊.", []string{"Great news!", "🎉 See you soon 😊."}},
		{"lines and lists", "Buy:\n1. Eggs\n2. Milk", []string{"Buy:", "1. Eggs", "2. Milk"}},
		{"ellipsis and runs", "Well... Really?! Yes.", []string{"Well...", "Really?!", "Yes."}},
		{"a small letter goes on", "It is approx. five km away.", []string{"It is approx. five km away."}},
		{"web addresses", "Go to example.com today. Thanks.", []string{"Go to example.com today.", "Thanks."}},
	}
	for _, tt := range tests {
		for _, n := range []int{1, 3, 1000} {
			got := feed(NewChunker(1), tt.text, n)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("%s, fed %d characters at a time: pieces = %q, want %q", tt.name, n, got, tt.want)
			}
		}
	}
}

// TestChunkerWaitsForUndecidedEnds checks that a stop at the end of the text
// so far is not taken for a sentence end until what follows shows it is one.
func TestChunkerWaitsForUndecidedEnds(t *testing.T) {
	t.Parallel()
	c := NewChunker(1)
	for _, delta := range []string{"It is 3.", "5 km. ", "The Dr. ", "is in"} {
		if got := c.Add(delta); len(got) > 0 && delta != "The Dr. " {
			t.Fatalf("Add(%q) = %q, want nothing yet", delta, got)
		} else if delta == "The Dr. " && strings.Join(got, "|") != "It is 3.5 km." {
			t.Fatalf("Add(%q) = %q, want [\"It is 3.5 km.\"]", delta, got)
		}
	}
	if got := c.Flush(); len(got) != 1 || got[0] != "The Dr. is in" {
		t.Errorf("Flush() = %q, want [\"The Dr. is in\"]", got)
	}
}

func TestChunkerMinimumLength(t *testing.T) {
	t.Parallel()
	short := "Sure, I booked a table for two at nine tomorrow. See you there!"
	if got := feed(NewChunker(DefaultMinChunk), short, 2); len(got) != 1 || got[0] != short {
		t.Errorf("a short answer: pieces = %q, want it whole in one piece", got)
	}

	long := strings.Repeat("This sentence is about a hundred bytes long, which is what a spoken sentence often is. ", 9)
	got := feed(NewChunker(DefaultMinChunk), long, 5)
	if len(got) < 3 {
		t.Fatalf("a long answer: %d pieces, want several", len(got))
	}
	for i, p := range got {
		if i < len(got)-1 && len(p) < DefaultMinChunk {
			t.Errorf("piece %d is %d bytes, want at least %d", i, len(p), DefaultMinChunk)
		}
		if !strings.HasSuffix(p, ".") {
			t.Errorf("piece %d ends %q, want a sentence end", i, p[len(p)-5:])
		}
	}
	if strings.Join(got, " ") != strings.TrimSpace(long) {
		t.Errorf("the pieces joined differ from the text")
	}
}

// TestChunkerLongSentences feeds sentences longer than Text-to-Speech's
// 5000-byte limit: every piece stays under it, whole characters, no text lost.
func TestChunkerLongSentences(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		strings.Repeat("word ", 2000) + "end.",                  // one 10 kB sentence
		strings.Repeat("東京駅", 2000),                             // no spaces, no stops
		strings.Repeat("Привет, как дела у тебя сегодня ", 300), // 2 bytes a letter
		strings.Repeat("😊", 3000),                               // 4 bytes each
	} {
		got := feed(NewChunker(DefaultMinChunk), text, 7)
		for i, p := range got {
			if len(p) > maxRequestBytes || len(p) > 5000 || p == "" || !utf8.ValidString(p) {
				t.Errorf("%.12q...: piece %d is %d bytes (valid UTF-8: %v), want 1..%d", text, i, len(p), utf8.ValidString(p), maxRequestBytes)
			}
		}
		if strings.ReplaceAll(strings.Join(got, ""), " ", "") != strings.ReplaceAll(text, " ", "") {
			t.Errorf("%.12q...: the pieces lose or change text", text)
		}
	}
}

func FuzzChunker(f *testing.F) {
	f.Add("Dr. Smith is here. 3.5 km! 駅です。Bye", 3)
	f.Fuzz(func(t *testing.T, text string, n int) {
		if !utf8.ValidString(text) || n < 1 || n > 50 {
			return
		}
		got := feed(NewChunker(20), text, n)
		for _, p := range got {
			if len(p) > maxRequestBytes || p == "" {
				t.Fatalf("piece of %d bytes", len(p))
			}
		}
		if strings.Join(strings.Fields(strings.Join(got, " ")), "") != strings.Join(strings.Fields(text), "") {
			t.Fatalf("pieces %q lose or change %q", got, text)
		}
	})
}
