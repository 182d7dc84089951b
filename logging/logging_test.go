package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
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
