// Package logging writes log/slog records as the one-JSON-object-per-line
// shape Cloud Logging reads from stdout: "severity", "message" and the
// request's trace, so every line of one webhook or reply groups together.
package logging

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// TraceKey is the field Cloud Logging uses to group lines by trace.
const TraceKey = "logging.googleapis.com/trace"

// New returns a JSON logger in Cloud Logging's shape at the given level:
// "time", "severity" and "message", then the attributes.
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(&handler{out: &output{w: w}, level: level})
}

// Info logs msg with attrs at info level as log.LogAttrs does, but without
// the caller's program counter, which slog finds by walking the stack for
// every record and which no handler here reports. It is for the lines
// written on every request.
func Info(ctx context.Context, log *slog.Logger, msg string, attrs ...slog.Attr) {
	h := log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r) // as slog.Logger does: a line that cannot be written is lost
}

// severity maps slog levels onto Cloud Logging's severities.
func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// Trace turns an X-Cloud-Trace-Context header ("TRACE_ID/SPAN_ID;o=1") into
// the "projects/P/traces/TRACE_ID" value Cloud Logging expects, or "" when
// either part is missing.
func Trace(project, header string) string {
	id, _, _ := strings.Cut(header, "/")
	if project == "" || id == "" {
		return ""
	}
	return "projects/" + project + "/traces/" + id
}

// With returns logger with the trace attached, when there is one.
func With(logger *slog.Logger, trace string) *slog.Logger {
	if trace == "" {
		return logger
	}
	return logger.With(TraceKey, trace)
}

// Mask hides all but the last four characters of a phone number or user id,
// enough to tell users apart in logs without recording who they are.
func Mask(id string) string {
	const keep = 4
	if len(id) <= keep {
		return strings.Repeat("*", len(id))
	}
	return "…" + id[len(id)-keep:]
}

// IDs turns message ids into short keyed hashes for logs. A wamid is base64
// around the sender's phone number, so it is logged only at debug level; at
// info level every line of one message carries the same hash instead, which
// joins the webhook's lines to the reply's without naming anyone. The key
// comes from a secret every instance shares, so the hash is the same on all.
type IDs struct {
	// hashers hold HMAC-SHA256 states keyed for these ids, reused across
	// calls: the intake hashes every message it takes, and a fresh HMAC (two
	// digests and the key's pads) costs more than the hash itself.
	hashers *sync.Pool
}

// hasher is an HMAC state with the buffer its input and output pass
// through, which a string or an array would escape to the heap from.
type hasher struct {
	mac hash.Hash
	buf []byte
}

// NewIDs derives the hashing key from secret (the app secret).
func NewIDs(secret string) IDs {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("whatsapp-node log id v1"))
	key := mac.Sum(nil)
	return IDs{hashers: &sync.Pool{New: func() any { return &hasher{mac: hmac.New(sha256.New, key)} }}}
}

// Of returns the hash of id: 12 hex digits, enough to tell a day's messages
// apart. The zero IDs hashes with an empty key.
func (h IDs) Of(id string) string {
	var b [2 * hashBytes]byte
	return string(h.Append(b[:0], id))
}

// hashBytes is how much of the HMAC a hash keeps.
const hashBytes = 6

// Append appends id's hash to b, for a caller that joins several.
func (h IDs) Append(b []byte, id string) []byte {
	var s *hasher
	if h.hashers == nil {
		s = &hasher{mac: hmac.New(sha256.New, nil)}
	} else {
		s = h.hashers.Get().(*hasher)
		defer h.hashers.Put(s)
		s.mac.Reset()
	}
	s.buf = append(s.buf[:0], id...)
	s.mac.Write(s.buf)
	s.buf = s.mac.Sum(s.buf[:0])
	return hex.AppendEncode(b, s.buf[:hashBytes])
}

// Attr is id's hash as the "msg_id" attribute every line about one message
// has. ("msg" would be taken for slog's message key.)
func (h IDs) Attr(id string) slog.Attr { return slog.String("msg_id", h.Of(id)) }
