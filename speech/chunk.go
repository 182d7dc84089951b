package speech

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultMinChunk is the length, in bytes, below which a Chunker does not cut
// a piece for Text-to-Speech. Every call costs a fixed ~150 ms, so one or two
// sentences a call is the balance between starting early and paying that
// cost too often; an answer shorter than this is spoken in one call.
const DefaultMinChunk = 160

// abbreviations end with a full stop that does not end a sentence. Checked
// lower case, without the final stop. Single letters (initials, "p.") are
// handled apart.
var abbreviations = map[string]bool{
	// English
	"mr": true, "mrs": true, "ms": true, "dr": true, "prof": true, "st": true, "sr": true, "jr": true,
	"vs": true, "e.g": true, "i.e": true, "approx": true, "no": true, "nr": true, "fig": true, "mt": true,
	"jan": true, "feb": true, "mar": true, "apr": true, "jun": true, "jul": true, "aug": true,
	"sep": true, "sept": true, "oct": true, "nov": true, "dec": true,
	// Spanish, Portuguese, Italian, French, German
	"sra": true, "srta": true, "dra": true, "ud": true, "uds": true, "av": true, "avda": true,
	"pág": true, "sig": true, "dott": true, "sig.ra": true, "mme": true, "mlle": true, "env": true,
	"bzw": true, "ca": true, "usw": true, "z.b": true, "d.h": true, "u.a": true, "str": true,
}

// closers may follow a sentence's final mark and still belong to it.
const closers = `"'”’»)]}」』）】`

// sentenceEnd returns where the sentence that contains text[i] ends, if the
// mark at text[i] ends one: the offset just past the mark and any closing
// quotes. It returns -1 when the mark does not end a sentence, and 0 when
// that depends on text not written yet (final is false and the text ends too
// soon to tell). This is the one place that decides where sentences end.
func sentenceEnd(text string, i int, final bool) int {
	r, size := utf8.DecodeRuneInString(text[i:])
	end := i + size
	switch r {
	case '\n':
		return end
	case '。', '！', '？', '；', '｡', '।', '॥':
		// CJK and Devanagari stops need no space after them, but a closing
		// quote may still come.
		end += closingLen(text[end:])
		if end == len(text) && !final {
			return 0
		}
		return end
	case '.', '!', '?', '…', ';', '؟', '۔':
	default:
		return -1
	}
	// Runs such as "?!" or "..." end at their last mark.
	for end < len(text) && strings.ContainsRune(".!?…", rune(text[end])) {
		end++
	}
	end += closingLen(text[end:])
	if end == len(text) {
		if final {
			return end
		}
		return 0
	}
	next, _ := utf8.DecodeRuneInString(text[end:])
	if !unicode.IsSpace(next) {
		return -1 // "3.5", "U.S.A", "example.com"
	}
	if r != '.' || end != i+1 {
		return end
	}
	if isAbbreviation(text, i) {
		return -1
	}
	// A sentence rarely starts with a small letter: "approx. five" goes on.
	rest := strings.TrimLeftFunc(text[end:], unicode.IsSpace)
	if rest == "" {
		if final {
			return end
		}
		return 0
	}
	if first, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(first) {
		return -1
	}
	return end
}

// closingLen is the length of the closing quotes and brackets at the start
// of s.
func closingLen(s string) int {
	n := 0
	for _, r := range s {
		if !strings.ContainsRune(closers, r) {
			break
		}
		n += utf8.RuneLen(r)
	}
	return n
}

// isAbbreviation reports whether the full stop at text[dot] ends a known
// abbreviation, an initial ("J. K."), or a number that starts a line, as in
// a numbered list ("1. Eggs").
func isAbbreviation(text string, dot int) bool {
	start := strings.LastIndexFunc(text[:dot], func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(`("'“‘¿¡`, r)
	})
	if start < 0 {
		start = 0
	} else {
		_, size := utf8.DecodeRuneInString(text[start:])
		start += size
	}
	word := text[start:dot]
	if word == "" {
		return false
	}
	if utf8.RuneCountInString(word) == 1 && unicode.IsUpper([]rune(word)[0]) {
		return true
	}
	if strings.Trim(word, "0123456789") == "" {
		before := strings.TrimRight(text[:start], " \t")
		return before == "" || strings.HasSuffix(before, "\n")
	}
	return abbreviations[strings.ToLower(word)]
}

// Chunker cuts an answer that is still being written into pieces for
// Text-to-Speech: at sentence ends, each piece at least a minimum length
// (so a short answer is one piece) and at most maxRequestBytes, under the
// API's 5000-byte limit. Give it the text as it comes with Add, then call
// Flush once it is complete. The pieces joined with spaces are the text.
// Pieces are cut from the raw answer and cleaned by Speakable one by one, so
// markup that spans sentences (a code block) is not understood whole; the
// system prompt asks for plain spoken sentences.
type Chunker struct {
	min     int
	pending string
}

// NewChunker returns a Chunker that cuts pieces of at least minBytes bytes
// where the text allows; DefaultMinChunk is a good value.
func NewChunker(minBytes int) *Chunker {
	return &Chunker{min: min(max(minBytes, 1), maxRequestBytes)}
}

// Add appends text and returns the pieces that are now complete.
func (c *Chunker) Add(text string) []string {
	c.pending += text
	return c.cut(false)
}

// Flush returns the rest of the text as the last pieces.
func (c *Chunker) Flush() []string {
	return c.cut(true)
}

func (c *Chunker) cut(final bool) []string {
	var out []string
	for {
		piece, rest, ok := c.next(final)
		if !ok {
			break
		}
		if piece = strings.TrimSpace(piece); piece != "" {
			out = append(out, piece)
		}
		c.pending = rest
	}
	if final {
		if rest := strings.TrimSpace(c.pending); rest != "" {
			out = append(out, rest)
		}
		c.pending = ""
	}
	return out
}

// next finds the first piece of pending that can be cut: the text up to the
// first sentence end at least c.min bytes in, or, failing that, a piece of
// maxRequestBytes cut at a space. At the end of the text (final) a short rest
// is left for cut to return whole.
func (c *Chunker) next(final bool) (piece, rest string, ok bool) {
	text := c.pending
	lead := len(text) - len(strings.TrimLeftFunc(text, unicode.IsSpace))
	for i := lead; i < len(text); {
		if i-lead > maxRequestBytes {
			break
		}
		end := sentenceEnd(text, i, final)
		if end == 0 {
			break // undecided until more text comes
		}
		if end > 0 && end-lead >= c.min && (end-lead <= maxRequestBytes) {
			return text[:end], text[end:], true
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		i += size
	}
	if len(text)-lead > maxRequestBytes {
		cut := lead + cutPoint(text[lead:], maxRequestBytes)
		return text[:cut], text[cut:], true
	}
	return "", text, false
}
