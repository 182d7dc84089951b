package logging_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"testing"
	"testing/slogtest"
	"time"
	"unicode/utf8"

	"github.com/patternai/whatsapp-node/logging"
)

func TestCloudLoggingShape(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := logging.With(logging.New(&buf, slog.LevelDebug), "projects/p/traces/t1")
	log.Warn("careful", "n", 3)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON object: %q", buf.String())
	}
	for k, want := range map[string]any{"severity": "WARNING", "message": "careful", logging.TraceKey: "projects/p/traces/t1", "n": 3.0} {
		if line[k] != want {
			t.Errorf("%s = %v, want %v (line %s)", k, line[k], want, buf.String())
		}
	}
	for level, want := range map[slog.Level]string{slog.LevelDebug: "DEBUG", slog.LevelInfo: "INFO", slog.LevelError: "ERROR"} {
		buf.Reset()
		logging.New(&buf, slog.LevelDebug).Log(t.Context(), level, "x")
		if !bytes.Contains(buf.Bytes(), []byte(`"severity":"`+want+`"`)) {
			t.Errorf("level %v logged as %s, want %s", level, buf.String(), want)
		}
	}
}

func TestTrace(t *testing.T) {
	t.Parallel()
	tests := []struct{ project, header, want string }{
		{"p", "105445aa7843bc8bf206b12000100000/1;o=1", "projects/p/traces/105445aa7843bc8bf206b12000100000"},
		{"p", "105445aa7843bc8bf206b12000100000", "projects/p/traces/105445aa7843bc8bf206b12000100000"},
		{"", "105445aa7843bc8bf206b12000100000/1", ""},
		{"p", "", ""},
	}
	for _, tt := range tests {
		if got := logging.Trace(tt.project, tt.header); got != tt.want {
			t.Errorf("Trace(%q, %q) = %q, want %q", tt.project, tt.header, got, tt.want)
		}
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"16505551234": "…1234", "US.13491208655302741918": "…1918", "123": "***", "": ""} {
		if got := logging.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIDsOf: a message id's hash is the keyed HMAC the README describes (so
// every instance, and every version, agrees), the same from states reused
// across concurrent calls, and different for another secret.
func TestIDsOf(t *testing.T) {
	t.Parallel()
	derive := hmac.New(sha256.New, []byte("secret"))
	derive.Write([]byte("whatsapp-node log id v1"))
	key := derive.Sum(nil)
	want := func(id string) string {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		return hex.EncodeToString(mac.Sum(nil)[:6])
	}
	ids := logging.NewIDs("secret")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("wamid.%d.%d", g, i)
				if got := ids.Of(id); got != want(id) {
					t.Errorf("Of(%q) = %s, want %s", id, got, want(id))
					return
				}
			}
		})
	}
	wg.Wait()
	if ids.Of("wamid.1") == logging.NewIDs("other").Of("wamid.1") {
		t.Error("two secrets hash an id alike")
	}
	if a := ids.Attr("wamid.1"); a.Key != "msg_id" || a.Value.String() != want("wamid.1") {
		t.Errorf("Attr = %v", a)
	}
}

// TestHandlerConformance runs slog's own checks of a Handler: groups,
// inlined and empty groups, empty attributes, LogValuers and WithAttrs.
func TestHandlerConformance(t *testing.T) {
	var buf bytes.Buffer
	slogtest.Run(t, func(*testing.T) slog.Handler {
		buf.Reset()
		return logging.New(&buf, slog.LevelDebug).Handler()
	}, func(t *testing.T) map[string]any {
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("not one JSON object: %q", buf.String())
		}
		// slogtest looks for the built-in keys by slog's names.
		for ours, theirs := range map[string]string{"message": slog.MessageKey, "severity": slog.LevelKey} {
			line[theirs] = line[ours]
			delete(line, ours)
		}
		return line
	})
}

// TestHandlerValues: every kind of value decodes to what slog.JSONHandler
// writes for it, which is what the logs looked like before this handler.
func TestHandlerValues(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 8, 30, 0, 123456789, time.UTC)
	attrs := []slog.Attr{
		slog.String("s", "plain"), slog.String("esc", "q\" b\\ \n\r\t \x01 \x7f é 日本 🎉 \u2028"),
		slog.String("bad utf8", "a\xffb\xc3"), slog.String("", "empty key"),
		slog.Int("i", -42), slog.Uint64("u", math.MaxUint64), slog.Float64("f", 0.1), slog.Float64("big", 1e300),
		slog.Bool("b", true), slog.Duration("d", 1500*time.Millisecond), slog.Time("t", at),
		slog.Any("err", errors.New("boom")), slog.Any("list", []int{1, 2}), slog.Any("map", map[string]string{"k": "v"}),
		slog.Any("nil", nil), slog.Any("bytes", []byte("hi")),
		slog.Group("g", slog.Int("n", 1), slog.Group("h", slog.String("x", "y"))),
		slog.Any("resolves empty", emptyGroup{}),
	}
	var ours, std bytes.Buffer
	logging.New(&ours, slog.LevelInfo).LogAttrs(t.Context(), slog.LevelInfo, "m\"sg", attrs...)
	slog.New(slog.NewJSONHandler(&std, nil)).LogAttrs(t.Context(), slog.LevelInfo, "m\"sg", attrs...)
	var got, want map[string]any
	if err := json.Unmarshal(ours.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, ours.String())
	}
	if err := json.Unmarshal(std.Bytes(), &want); err != nil {
		t.Fatal(err)
	}
	want["message"], want["severity"] = want[slog.MessageKey], "INFO"
	delete(want, slog.MessageKey)
	delete(want, slog.LevelKey)
	if got["time"] == nil {
		t.Error("no time")
	}
	delete(got, "time")
	delete(want, slog.TimeKey)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("line\n%s\ndecodes unlike slog's\n%s", ours.String(), std.String())
	}
	if ours.Bytes()[ours.Len()-1] != '\n' || bytes.Count(ours.Bytes(), []byte("\n")) != 1 {
		t.Errorf("not one line: %q", ours.String())
	}
}

// emptyGroup resolves to a group without members, which slog leaves out.
type emptyGroup struct{}

func (emptyGroup) LogValue() slog.Value { return slog.GroupValue() }

// FuzzHandlerString: any key and message text make one valid JSON line that
// decodes to the text, invalid UTF-8 replaced as encoding/json does.
func FuzzHandlerString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"\\\n\x00\x1f", "a\xffb", "日本\u2028🎉", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		logging.New(&buf, slog.LevelInfo).Info(s, "k"+s, s)
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("not JSON: %v: %q", err, buf.String())
		}
		// Each invalid byte becomes one U+FFFD.
		var b []byte
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			b = utf8.AppendRune(b, r)
			i += n
		}
		want := string(b)
		if line["message"] != want || line["k"+want] != want {
			t.Fatalf("%q logged as %q", s, buf.String())
		}
	})
}

// TestInfo: Info writes what LogAttrs at info level would, and nothing when
// the logger's level is above info.
func TestInfo(t *testing.T) {
	t.Parallel()
	var ours, theirs bytes.Buffer
	logging.Info(t.Context(), logging.With(logging.New(&ours, slog.LevelInfo), "projects/p/traces/t"), "webhook", slog.Int("messages", 1))
	logging.With(logging.New(&theirs, slog.LevelInfo), "projects/p/traces/t").LogAttrs(t.Context(), slog.LevelInfo, "webhook", slog.Int("messages", 1))
	strip := func(b []byte) string { // the times differ
		var line map[string]any
		if err := json.Unmarshal(b, &line); err != nil {
			t.Fatalf("not JSON: %q", b)
		}
		delete(line, "time")
		return fmt.Sprint(line)
	}
	if strip(ours.Bytes()) != strip(theirs.Bytes()) {
		t.Errorf("Info wrote %s, LogAttrs %s", ours.String(), theirs.String())
	}
	var quiet bytes.Buffer
	logging.Info(t.Context(), logging.New(&quiet, slog.LevelWarn), "webhook")
	if quiet.Len() > 0 {
		t.Errorf("logged at info with the level at warn: %s", quiet.String())
	}
}
