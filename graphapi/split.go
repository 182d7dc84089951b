package graphapi

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxTextLength is the longest text body WhatsApp accepts, in characters.
// SendText counts UTF-16 code units, which are never fewer than characters
// however Meta counts them (an emoji outside the BMP counts twice), so a part
// within this length is accepted either way.
const MaxTextLength = 4096

const zeroWidthJoiner = '\u200d'

// SplitText cuts a text into the messages SendText sends for it, each at most
// MaxTextLength long, so a caller can send (and account for) them one by one.
func SplitText(s string) []string { return splitText(s, MaxTextLength) }

// splitText cuts s into parts of at most limit UTF-16 code units. It cuts at
// the last paragraph break, else line break, else sentence end, else space
// in the second half of what fits, so that no part is a stub; a text with
// none of those (a long URL, a run of emoji) is cut at the last point between
// two user-visible characters. Whitespace at a cut is dropped.
func splitText(s string, limit int) []string {
	var parts []string
	for utf16Len(s) > limit {
		end := fitting(s, limit)
		cut := bestCut(s[:end])
		if part := strings.TrimRightFunc(s[:cut], unicode.IsSpace); part != "" {
			parts = append(parts, part)
		}
		s = strings.TrimLeftFunc(s[cut:], unicode.IsSpace)
	}
	if s != "" {
		parts = append(parts, s)
	}
	return parts
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// fitting returns the length in bytes of the longest prefix of s that is at
// most limit code units and ends between two user-visible characters. Only
// when a single character is longer than limit (a letter under thousands of
// combining marks) does it split the character, and even then between runes.
func fitting(s string, limit int) int {
	end, units := 0, 0
	for i, r := range s {
		units += utf16.RuneLen(r)
		if units > limit {
			break
		}
		end = i + utf8.RuneLen(r)
	}
	for cut := end; cut > 0; {
		if breaksBetweenCharacters(s, cut) {
			return cut
		}
		_, size := utf8.DecodeLastRuneInString(s[:cut])
		cut -= size
	}
	if end == 0 {
		// Not even one rune fits: take one anyway, so that the text shrinks.
		_, size := utf8.DecodeRuneInString(s)
		return size
	}
	return end
}

// breaksBetweenCharacters reports whether cutting s at byte i keeps every
// user-visible character whole: it does not separate a combining mark,
// variation selector, skin tone or tag from its base, the halves of a flag,
// the emoji joined by a zero-width joiner, or CR from LF. This is the part of
// Unicode's grapheme rules (UAX #29) that chat text runs into.
func breaksBetweenCharacters(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	prev, _ := utf8.DecodeLastRuneInString(s[:i])
	next, _ := utf8.DecodeRuneInString(s[i:])
	switch {
	case prev == zeroWidthJoiner, prev == '\r' && next == '\n':
		return false
	case next == zeroWidthJoiner, unicode.Is(unicode.M, next), isEmojiModifier(next), isTag(next):
		return false
	case isRegionalIndicator(next):
		// Flags are pairs of regional indicators: cut only after an even run.
		run := 0
		for j := i; j > 0; {
			r, size := utf8.DecodeLastRuneInString(s[:j])
			if !isRegionalIndicator(r) {
				break
			}
			run++
			j -= size
		}
		return run%2 == 0
	}
	return true
}

func isEmojiModifier(r rune) bool     { return 0x1F3FB <= r && r <= 0x1F3FF }
func isTag(r rune) bool               { return 0xE0020 <= r && r <= 0xE007F }
func isRegionalIndicator(r rune) bool { return 0x1F1E6 <= r && r <= 0x1F1FF }

// bestCut returns where to end the part that prefix holds: after the last
// paragraph break, line break, sentence end or space found in its second
// half, else at its end.
func bestCut(prefix string) int {
	half := len(prefix) / 2
	if i := strings.LastIndex(prefix, "\n\n"); i >= half {
		return i + 2
	}
	if i := strings.LastIndexByte(prefix, '\n'); i >= half {
		return i + 1
	}
	if i := lastSentenceEnd(prefix); i >= half {
		return i
	}
	if i := strings.LastIndexFunc(prefix, unicode.IsSpace); i >= half {
		return i
	}
	return len(prefix)
}

// lastSentenceEnd returns the byte offset just after the last sentence end in
// s: ".", "!", "?" or "…" followed by a space, or a CJK full stop, which
// needs none. It returns -1 when there is none.
func lastSentenceEnd(s string) int {
	for i := len(s); i > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
		switch r {
		case '。', '！', '？':
			return i + size
		case '.', '!', '?', '…':
			if next, _ := utf8.DecodeRuneInString(s[i+size:]); unicode.IsSpace(next) {
				return i + size
			}
		}
	}
	return -1
}
