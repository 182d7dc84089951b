package whatsappnode

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goodEnv is a configuration that starts without reaching anything: every
// Google and Meta endpoint is a loopback address, and clients connect lazily.
func goodEnv(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"WHATSAPP_APP_SECRET":    "app-secret",
		"WHATSAPP_VERIFY_TOKEN":  "verify-token",
		"WHATSAPP_ACCESS_TOKEN":  "access-token",
		"GOOGLE_CLOUD_PROJECT":   "test-project",
		"GRAPH_API_BASE_URL":     "http://127.0.0.1:9",
		"GOOGLE_VERTEX_BASE_URL": "http://127.0.0.1:9",
		"SPEECH_ENDPOINT":        "127.0.0.1:9",
		"TTS_ENDPOINT":           "127.0.0.1:9",
		"MEDIA_DIR":              t.TempDir(),
	}
}

func handshake(token string) *http.Request {
	return httptest.NewRequest(http.MethodGet, "/webhook?hub.mode=subscribe&hub.verify_token="+token+"&hub.challenge=42", nil)
}

// TestSetupErrorIsNotKept: served without init's start (a bare Functions Framework
// harness), the function answers 500 while its secrets are missing, without
// naming the configuration, and serves once they are there: the failure was
// not cached for the instance's life.
func TestSetupErrorIsNotKept(t *testing.T) {
	// The service this test starts is the process's: forget it afterwards,
	// so that a repeat of the test (go test -count) starts from none again.
	t.Cleanup(func() { running.Store(nil) })
	env := goodEnv(t)
	for k := range env {
		t.Setenv(k, "")
	}
	for _, req := range []*http.Request{
		handshake(""),
		httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"object":"whatsapp_business_account"}`)),
	} {
		rec := httptest.NewRecorder()
		Webhook(rec, req)
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s / without secrets = %d, want 500", req.Method, rec.Code)
		}
		if strings.Contains(rec.Body.String(), "WHATSAPP") {
			t.Errorf("response names the configuration: %q", rec.Body.String())
		}
	}

	for k, v := range env {
		t.Setenv(k, v)
	}
	rec := httptest.NewRecorder()
	Webhook(rec, handshake(env["WHATSAPP_VERIFY_TOKEN"]))
	if rec.Code != http.StatusOK || rec.Body.String() != "42" {
		t.Errorf("handshake once the secrets are set = %d %q, want 200 \"42\"", rec.Code, rec.Body.String())
	}
}

// cloudRunTest marks the test binary started by TestCloudRun as the
// instance under test.
const cloudRunTest = "WHATSAPP_NODE_CLOUD_RUN_TEST"

// TestCloudRun starts this package's test binary as Cloud Run would start the
// function (K_SERVICE set), with each kind of bad setting: the process must
// exit 1 before serving, with one ERROR line naming every problem. With a good
// configuration it starts and serves.
func TestCloudRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change map[string]string // "" removes the variable
		want   []string          // in the error; nil means it starts
	}{
		{"good", nil, nil},
		{"secrets missing", map[string]string{"WHATSAPP_APP_SECRET": "", "WHATSAPP_VERIFY_TOKEN": " ", "WHATSAPP_ACCESS_TOKEN": ""},
			[]string{"WHATSAPP_APP_SECRET is required", "WHATSAPP_VERIFY_TOKEN is required", "WHATSAPP_ACCESS_TOKEN is required"}},
		{"typo in a choice", map[string]string{"REPLY_MODE": "voice"}, []string{`REPLY_MODE="voice": want one of audio, text, both, mirror`}},
		{"every problem at once", map[string]string{"REPLY_MODE": "voice", "STORE": "redis", "QUEUE_WORKERS": "many"},
			[]string{"REPLY_MODE", "STORE", "QUEUE_WORKERS"}},
		{"marker ttl under an hour", map[string]string{"MARKER_TTL": "10m"}, []string{"MARKER_TTL=10m0s: want at least 1h0m0s"}},
		{"graph api in clear", map[string]string{"GRAPH_API_BASE_URL": "http://graph.facebook.com"}, []string{"GRAPH_API_BASE_URL"}},
		{"absurd history", map[string]string{"HISTORY_TURNS": "5000"}, []string{"HISTORY_TURNS=5000: want at most 100"}},
		{"no project", map[string]string{"GOOGLE_CLOUD_PROJECT": ""}, []string{"GOOGLE_CLOUD_PROJECT"}},
		{"firestore without project", map[string]string{"GOOGLE_CLOUD_PROJECT": "", "STORE": "firestore"},
			[]string{"GOOGLE_CLOUD_PROJECT is required with STORE=firestore"}},
		{"pubsub without push identity", map[string]string{"QUEUE": "pubsub"}, []string{"PUBSUB_SERVICE_ACCOUNT is required"}},
		{"media folder that cannot be made", map[string]string{"MEDIA_DIR": "/dev/null/media"}, []string{"media: create directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := goodEnv(t)
			maps.Copy(env, tt.change)
			env["K_SERVICE"] = "whatsapp-node"
			env[cloudRunTest] = "1"
			out, err := runInstance(t, env)
			if tt.want == nil {
				if err != nil || !strings.Contains(out, "--- PASS: TestServesOnCloudRun") {
					t.Fatalf("instance with a good configuration: %v\n%s", err, out)
				}
				return
			}
			if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 1 {
				t.Fatalf("instance with %v = %v, want exit status 1\n%s", tt.change, err, out)
			}
			if strings.Contains(out, "TestServesOnCloudRun") {
				t.Errorf("instance with %v ran its tests, want it stopped in init", tt.change)
			}
			line := startError(t, out)
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("start error %q does not contain %q", line, w)
				}
			}
		})
	}
}

// runInstance runs the test binary with exactly env (plus what a process
// needs to run), so nothing of the outer environment leaks in.
func runInstance(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestServesOnCloudRun$", "-test.v")
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"),
		"GCE_METADATA_HOST=127.0.0.1:9"} // a stray credentials lookup fails fast on loopback
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startError returns the error of the one "cannot start" line in out, which
// must be a Cloud Logging JSON entry with severity ERROR.
func startError(t *testing.T, out string) string {
	t.Helper()
	var found []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var entry struct{ Severity, Message, Error string }
		if json.Unmarshal(bytes.TrimSpace(sc.Bytes()), &entry) == nil && entry.Message == "cannot start" {
			if entry.Severity != "ERROR" {
				t.Errorf("cannot start logged at %q, want ERROR", entry.Severity)
			}
			found = append(found, entry.Error)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one \"cannot start\" log line, got %d in:\n%s", len(found), out)
	}
	return found[0]
}

// TestServesOnCloudRun runs only inside the instance TestCloudRun starts:
// init has built the service, and the function serves it.
func TestServesOnCloudRun(t *testing.T) {
	if os.Getenv(cloudRunTest) == "" {
		t.Skip("runs inside TestCloudRun's instance")
	}
	if running.Load() == nil {
		t.Fatal("init did not start the service")
	}
	rec := httptest.NewRecorder()
	Webhook(rec, handshake(os.Getenv("WHATSAPP_VERIFY_TOKEN")))
	if rec.Code != http.StatusOK || rec.Body.String() != "42" {
		t.Errorf("handshake = %d %q, want 200 \"42\"", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	Webhook(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"object":"whatsapp_business_account"}`)))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("unsigned webhook = %d, want 401", rec.Code)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("MEDIA_DIR"))); err != nil {
		t.Errorf("media folder: %v", err)
	}
}
