package speech

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Patterns for the markdown a chat model writes. They run in the order of
// Speakable, so that, for example, a link loses its URL before bare URLs go.
var (
	codeFence  = regexp.MustCompile("(?s)```.*?(```|$)")
	image      = regexp.MustCompile(`!\[([^\]]*)\]\([^)]*\)`)
	link       = regexp.MustCompile(`\[([^\]]+)\]\([^)]*\)`)
	autolink   = regexp.MustCompile(`<(https?://|mailto:)[^>\s]*>`)
	bareURL    = regexp.MustCompile(`(?i)\b(https?://|www\.)[^\s<>()]*[^\s<>().,;:!?'"]`)
	strongStar = regexp.MustCompile(`\*\*(.+?)\*\*`)
	strongLine = regexp.MustCompile(`__(.+?)__`)
	emStar     = regexp.MustCompile(`\*([^*\s](?:[^*]*[^*\s])?)\*`)
	emLine     = regexp.MustCompile(`(^|[^\pL\pN_])_([^_\s](?:[^_]*[^_\s])?)_($|[^\pL\pN_])`)
	strike     = regexp.MustCompile(`~~(.+?)~~`)
	inlineCode = regexp.MustCompile("`+([^`]*)`+")
	lineMarker = regexp.MustCompile(`^\s*(#{1,6}\s+|>+\s*|[-*+•]\s+|\d{1,3}[.)]\s+)`)
	ruleLine   = regexp.MustCompile(`^\s*([-*_=]\s*){3,}$`)
	spacePunct = regexp.MustCompile(`\s+([,.;:!?])`)
)

// Speakable returns text as a voice should read it: without markdown markup
// (code blocks are dropped whole, links keep their words), URLs or emoji, and
// with whitespace collapsed. Lines that end without punctuation, such as
// headings and list items, get a full stop so the voice pauses between them.
func Speakable(text string) string {
	text = codeFence.ReplaceAllString(text, "\n")
	text = image.ReplaceAllString(text, "$1")
	text = link.ReplaceAllString(text, "$1")
	text = autolink.ReplaceAllString(text, "")
	text = bareURL.ReplaceAllString(text, "")
	text = strings.Map(dropEmoji, text)

	var out []string
	for line := range strings.Lines(text) {
		if ruleLine.MatchString(line) {
			continue
		}
		line = lineMarker.ReplaceAllString(line, "")
		line = strings.ReplaceAll(line, "|", " ")
		line = strongStar.ReplaceAllString(line, "$1")
		line = strongLine.ReplaceAllString(line, "$1")
		line = emStar.ReplaceAllString(line, "$1")
		line = emLine.ReplaceAllString(line, "$1$2$3")
		line = strike.ReplaceAllString(line, "$1")
		line = inlineCode.ReplaceAllString(line, "$1")
		line = strings.Join(strings.Fields(line), " ")
		// Removed words can leave a space before punctuation ("see , or").
		line = spacePunct.ReplaceAllString(line, "$1")
		if line == "" || !hasLetterOrDigit(line) {
			continue
		}
		if last, _ := utf8.DecodeLastRuneInString(line); !unicode.IsPunct(last) {
			line += "."
		}
		out = append(out, line)
	}
	return strings.Join(out, " ")
}

// dropEmoji removes emoji and the invisible characters that build emoji
// sequences. It works by code point range rather than by the Unicode symbol
// category, which would also remove °, © and currency signs a voice can say.
func dropEmoji(r rune) rune {
	switch {
	case r >= 0x1F000 && r <= 0x1FAFF, // emoji, flags, pictographs
		r >= 0x2600 && r <= 0x27BF,   // miscellaneous symbols, dingbats
		r >= 0x2B00 && r <= 0x2BFF,   // arrows and stars such as ⭐
		r >= 0x2300 && r <= 0x23FF,   // ⌚ ⏰ and friends
		r >= 0xE0020 && r <= 0xE007F, // tag sequences of subdivision flags
		r == 0xFE0E, r == 0xFE0F,     // variation selectors
		r == 0x200D, r == 0x20E3, // zero width joiner, keycap
		r == 0x3030, r == 0x303D, r == 0x3297, r == 0x3299:
		return -1
	}
	return r
}

func hasLetterOrDigit(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) >= 0
}

// sentences splits text after each sentence end (see sentenceEnd).
func sentences(text string) []string {
	var out []string
	start := 0
	for i := 0; i < len(text); {
		_, size := utf8.DecodeRuneInString(text[i:])
		if end := sentenceEnd(text, i, true); end > 0 {
			if s := strings.TrimSpace(text[start:end]); s != "" {
				out = append(out, s)
			}
			start = end
			i = end
			continue
		}
		i += size
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// chunks packs the sentences of text into pieces of at most maxBytes bytes,
// each ending at a sentence boundary where one is near enough. A sentence that
// is longer than maxBytes is cut at a space, or, in text without spaces, at a
// character boundary, so no input can make a piece too long.
func chunks(text string, maxBytes int) []string {
	var (
		out []string
		cur strings.Builder
	)
	add := func(s string) {
		if cur.Len() > 0 && cur.Len()+1+len(s) > maxBytes {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(s)
	}
	for _, s := range sentences(text) {
		for len(s) > maxBytes {
			cut := cutPoint(s, maxBytes)
			add(strings.TrimSpace(s[:cut]))
			s = strings.TrimSpace(s[cut:])
		}
		if s != "" {
			add(s)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// cutPoint is where to cut s so the first part is at most maxBytes long: the
// last space in range, or else the last character boundary.
func cutPoint(s string, maxBytes int) int {
	if i := strings.LastIndexByte(s[:maxBytes+1], ' '); i > 0 {
		return i
	}
	i := maxBytes
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	if i == 0 { // maxBytes is shorter than the first character
		_, i = utf8.DecodeRuneInString(s)
	}
	return i
}

// truncate shortens text to at most maxRunes characters, ending at the last
// sentence that fits, or at a space when the first sentence alone is too long.
func truncate(text string, maxRunes int) string {
	if utf8.RuneCountInString(text) <= maxRunes {
		return text
	}
	var b strings.Builder
	n := 0
	for _, s := range sentences(text) {
		sn := utf8.RuneCountInString(s) + 1
		if n+sn > maxRunes {
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
		n += sn
	}
	if b.Len() > 0 {
		return b.String()
	}
	runes := []rune(text)[:maxRunes]
	cut := string(runes)
	if i := strings.LastIndexByte(cut, ' '); i > 0 {
		cut = cut[:i]
	}
	return cut
}
