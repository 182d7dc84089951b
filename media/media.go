// Package media stages audio on its way through the service: inbound voice
// notes, so that long ones can be transcribed in a batch from a gs:// URI, and
// the synthesized replies, so that a retried reply sends the same audio.
//
// Bucket keeps the files in Cloud Storage; Dir keeps them in a local folder for
// development. Both have the same methods and the same semantics: Put creates
// an object only if it is absent (a retry that puts the same name again
// succeeds and leaves the first bytes), and Get reports ErrNotFound for a name
// that was never put.
//
// Callers choose the names, such as "inbound/<wamid>.ogg". A wamid may contain
// '/', '+' and '=', so every name is escaped into a key that is safe both as a
// Cloud Storage object name and as a path below the Dir (see objectKey).
package media

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned by Get when no object has the name.
var ErrNotFound = errors.New("media: object not found")

// maxKeyLen is the longest object name Cloud Storage accepts, in bytes.
const maxKeyLen = 1024

// objectKey escapes name into the key under which the object is stored.
//
// Bytes other than ASCII letters, digits, '.', '_', '-' and '/' become %XX,
// as in URL percent-encoding. A '/' stays a folder separator only between two
// non-empty segments; a leading, trailing or doubled slash is escaped, and so
// are the dots of a "." or ".." segment. The key therefore never climbs out of
// a directory, never names a directory itself, and, because every kept
// character stands for itself and everything else is escaped, two different
// names never share a key.
func objectKey(name string) (string, error) {
	if name == "" {
		return "", errors.New("media: empty object name")
	}
	segments := strings.Split(name, "/")
	var b strings.Builder
	for i, seg := range segments {
		if i > 0 {
			if segments[i-1] != "" && seg != "" {
				b.WriteByte('/')
			} else {
				b.WriteString("%2F")
			}
		}
		if seg == "." || seg == ".." {
			b.WriteString(strings.Repeat("%2E", len(seg)))
			continue
		}
		for j := 0; j < len(seg); j++ {
			if c := seg[j]; isSafe(c) {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
	}
	if b.Len() > maxKeyLen {
		return "", fmt.Errorf("media: escaped object name is %d bytes, more than %d", b.Len(), maxKeyLen)
	}
	return b.String(), nil
}

func isSafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}
