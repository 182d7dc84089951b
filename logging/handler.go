package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// handler writes each record as one JSON object in Cloud Logging's shape.
// It takes the place of slog.JSONHandler with a ReplaceAttr that renamed
// the built-in keys: that pair cost the webhook intake more than a microsecond
// a line (a callback per attribute, the level boxed into an any), and the
// webhook logs a line for every notification. The output is the same JSON,
// checked against encoding/json and testing/slogtest.
type handler struct {
	out   *output
	level slog.Level
	// goas are what WithGroup and WithAttrs added, in order. They are
	// written at each Handle; the service adds only a trace this way.
	goas []groupOrAttrs
}

// output is the writer that every handler derived from one New shares, with
// the lock that keeps their lines whole.
type output struct {
	mu sync.Mutex
	w  io.Writer
}

// groupOrAttrs is a group opened by WithGroup (group set) or the attributes
// of one WithAttrs.
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

// buffers hold lines being written, reused across records.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(groupOrAttrs{group: name})
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(groupOrAttrs{attrs: attrs})
}

func (h *handler) with(g groupOrAttrs) *handler {
	h2 := *h
	h2.goas = append(h.goas[:len(h.goas):len(h.goas)], g)
	return &h2
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	bp := buffers.Get().(*[]byte)
	buf := append((*bp)[:0], '{')
	if !r.Time.IsZero() {
		buf = append(buf, `"time":"`...)
		buf = r.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `",`...)
	}
	buf = append(buf, `"severity":"`...)
	buf = append(buf, severity(r.Level)...)
	buf = append(buf, `","message":`...)
	buf = appendString(buf, r.Message)

	// Groups opened after the last attributes are left out when the record
	// has none of its own, as slog requires of a handler.
	goas := h.goas
	if r.NumAttrs() == 0 {
		for len(goas) > 0 && goas[len(goas)-1].group != "" {
			goas = goas[:len(goas)-1]
		}
	}
	open := 0
	for _, g := range goas {
		if g.group != "" {
			buf = appendKey(buf, g.group)
			buf = append(buf, '{')
			open++
			continue
		}
		for _, a := range g.attrs {
			buf = appendAttr(buf, a)
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		buf = appendAttr(buf, a)
		return true
	})
	for range open {
		buf = append(buf, '}')
	}
	buf = append(buf, "}\n"...)

	h.out.mu.Lock()
	_, err := h.out.w.Write(buf)
	h.out.mu.Unlock()
	if cap(buf) <= maxPooledLine {
		*bp = buf
		buffers.Put(bp)
	}
	return err
}

// maxPooledLine bounds the buffers kept for reuse, so that one huge line
// does not pin its memory for the life of the process.
const maxPooledLine = 16 << 10

// appendKey writes the separator a member needs (none right after an
// object opens) and the member's key.
func appendKey(buf []byte, key string) []byte {
	if buf[len(buf)-1] != '{' {
		buf = append(buf, ',')
	}
	buf = appendString(buf, key)
	return append(buf, ':')
}

// appendAttr writes a as a member of the object being written; an empty
// attribute, or an empty group, writes nothing, and a group without a key
// writes its members in place.
func appendAttr(buf []byte, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() != slog.KindGroup {
		buf = appendKey(buf, a.Key)
		return appendValue(buf, a.Value)
	}
	members := a.Value.Group()
	if len(members) == 0 {
		return buf
	}
	if a.Key != "" {
		buf = appendKey(buf, a.Key)
		buf = append(buf, '{')
	}
	for _, m := range members {
		buf = appendAttr(buf, m)
	}
	if a.Key != "" {
		buf = append(buf, '}')
	}
	return buf
}

// appendValue writes v as slog.JSONHandler does: durations as nanoseconds,
// errors as their text, other values as encoding/json marshals them.
func appendValue(buf []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(buf, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			// JSON has no such numbers.
			return appendString(buf, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(buf, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(buf, int64(v.Duration()), 10)
	case slog.KindTime:
		buf = append(buf, '"')
		buf = v.Time().AppendFormat(buf, time.RFC3339Nano)
		return append(buf, '"')
	}
	a := v.Any()
	if err, ok := a.(error); ok {
		if _, marshals := a.(json.Marshaler); !marshals {
			return appendString(buf, err.Error())
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		return appendString(buf, fmt.Sprintf("!ERROR: %v", err))
	}
	return append(buf, b...)
}

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json writes it.
func appendString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, `\n`...)
			case '\r':
				buf = append(buf, `\r`...)
			case '\t':
				buf = append(buf, `\t`...)
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
