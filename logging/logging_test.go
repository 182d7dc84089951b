package logging_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"

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
