package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var minimal = map[string]string{
	"WHATSAPP_APP_SECRET":   "s",
	"WHATSAPP_VERIFY_TOKEN": "v",
	"WHATSAPP_ACCESS_TOKEN": "a",
}

func with(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range minimal {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(minimal))
	if err != nil {
		t.Fatal(err)
	}
	// Zero values leave the defaults to the packages that own them.
	if c.Store != "memory" || c.Queue != "inprocess" || c.MarkerTTL != 0 ||
		c.HistoryTurns != 0 || c.HistoryTTL != 0 || c.ReplyMode != "audio" ||
		c.GraphVersion != "" || c.GraphBaseURL != "" ||
		c.MediaBucket != "" || c.MediaDir == "" || len(c.Warnings) != 0 {
		t.Errorf("defaults = %+v", c)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", map[string]string{}, []string{"WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_ACCESS_TOKEN"}},
		{"blank secret", with(map[string]string{"WHATSAPP_APP_SECRET": "  "}), []string{"WHATSAPP_APP_SECRET"}},
		{"bad values", with(map[string]string{"STORE": "redis", "MARKER_TTL": "soon", "HISTORY_TURNS": "-1", "REPLY_MODE": "video", "LOG_LEVEL": "loud", "STT_ENGINE": "whisper"}),
			[]string{"STORE", "MARKER_TTL", "HISTORY_TURNS", "REPLY_MODE", "LOG_LEVEL", "STT_ENGINE"}},
		{"firestore without project", with(map[string]string{"STORE": "firestore"}), []string{"GOOGLE_CLOUD_PROJECT"}},
		{"pubsub without push identity", with(map[string]string{"QUEUE": "pubsub", "GOOGLE_CLOUD_PROJECT": "p"}), []string{"PUBSUB_SERVICE_ACCOUNT"}},
		{"pubsub unverified outside the emulator", with(map[string]string{"QUEUE": "pubsub", "GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_VERIFY": "false"}), []string{"PUBSUB_EMULATOR_HOST"}},
		{"bad boolean", with(map[string]string{"PUBSUB_VERIFY": "perhaps"}), []string{"PUBSUB_VERIFY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(env(tt.env))
			if err == nil {
				t.Fatal("Load = nil error, want one")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestLoadPubSub(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(with(map[string]string{"QUEUE": "pubsub", "GOOGLE_CLOUD_PROJECT": "p",
		"PUBSUB_SERVICE_ACCOUNT": "push@p.iam.gserviceaccount.com"})))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queue != "pubsub" || c.PubSubTopic != "" || !c.PubSubVerify {
		t.Errorf("Load = %+v", c)
	}
	if _, err := config.Load(env(with(map[string]string{"QUEUE": "pubsub", "GOOGLE_CLOUD_PROJECT": "p",
		"PUBSUB_VERIFY": "false", "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}))); err != nil {
		t.Errorf("emulator without verification: %v", err)
	}
}

func TestLoadReadsSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(with(map[string]string{
		"STORE": "FIRESTORE", "GOOGLE_CLOUD_PROJECT": "p", "MARKER_TTL": "48h", "STT_LANGUAGES": "en-US, es-ES ,",
		"REPLY_MODE": "mirror", "LOG_LEVEL": "debug", "QUEUE_WORKERS": "3", "STT_ENGINE": "Gemini",
	})))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "firestore" || c.MarkerTTL != 48*time.Hour || c.ReplyMode != "mirror" || c.Workers != 3 || c.STTEngine != "gemini" ||
		strings.Join(c.STTLanguages, "|") != "en-US|es-ES" || c.LogLevel.String() != "DEBUG" {
		t.Errorf("Load = %+v", c)
	}
}

// TestLoadGuardsTheGuarantees: settings that would break a promise of the
// README are refused, and one that only weakens it is loaded with a warning.
func TestLoadGuardsTheGuarantees(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, value string
		refused          string // part of the error; empty when the value is accepted
		warning          string // part of the one warning expected; empty for none
	}{
		{"marker ttl of a week", "MARKER_TTL", "168h", "", ""},
		{"marker ttl of a month", "MARKER_TTL", "720h", "", ""},
		{"marker ttl under the retry window", "MARKER_TTL", "72h", "", "MARKER_TTL=72h0m0s is shorter than Meta's"},
		{"marker ttl of one hour", "MARKER_TTL", "1h", "", "MARKER_TTL=1h0m0s"},
		{"marker ttl under an hour", "MARKER_TTL", "59m", "MARKER_TTL=59m0s: want at least 1h0m0s", ""},
		{"graph over https", "GRAPH_API_BASE_URL", "https://graph.example.com", "", ""},
		{"graph over http on loopback", "GRAPH_API_BASE_URL", "http://127.0.0.1:8081", "", ""},
		{"graph over http on localhost", "GRAPH_API_BASE_URL", "http://localhost:8081", "", ""},
		{"graph over http on ipv6 loopback", "GRAPH_API_BASE_URL", "http://[::1]:8081", "", ""},
		{"graph over http elsewhere", "GRAPH_API_BASE_URL", "http://graph.facebook.com", "GRAPH_API_BASE_URL=\"http://graph.facebook.com\": want an https URL", ""},
		{"graph over http on a private address", "GRAPH_API_BASE_URL", "http://10.0.0.7", "GRAPH_API_BASE_URL", ""},
		{"graph with a loopback-looking name", "GRAPH_API_BASE_URL", "http://localhost.example.com", "GRAPH_API_BASE_URL", ""},
		{"graph without a host", "GRAPH_API_BASE_URL", "graph.facebook.com", "GRAPH_API_BASE_URL", ""},
		{"graph on another scheme", "GRAPH_API_BASE_URL", "ftp://127.0.0.1", "GRAPH_API_BASE_URL", ""},
		{"history of 100 turns", "HISTORY_TURNS", "100", "", ""},
		{"history of 101 turns", "HISTORY_TURNS", "101", "HISTORY_TURNS=101: want at most 100", ""},
		{"history of a million turns", "HISTORY_TURNS", "1000000", "HISTORY_TURNS", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(env(with(map[string]string{tt.key: tt.value})))
			switch {
			case tt.refused == "" && err != nil:
				t.Fatalf("Load(%s=%s) = %v, want it accepted", tt.key, tt.value, err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Fatalf("Load(%s=%s) = %v, want an error containing %q", tt.key, tt.value, err, tt.refused)
			}
			if tt.warning == "" && len(c.Warnings) > 0 {
				t.Errorf("Load(%s=%s) warns %q, want no warning", tt.key, tt.value, c.Warnings)
			}
			if tt.warning != "" && (len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tt.warning)) {
				t.Errorf("Load(%s=%s) warns %q, want one warning containing %q", tt.key, tt.value, c.Warnings, tt.warning)
			}
		})
	}
}

// TestLoadTrimsSecrets: a secret stored with a trailing newline (echo piped
// into gcloud) or pasted with spaces is the secret without them.
func TestLoadTrimsSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, value string }{
		{"trailing newline", "s3cret\n"},
		{"crlf", "s3cret\r\n"},
		{"spaces and tab", " \ts3cret  "},
		{"clean", "s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(env(map[string]string{
				"WHATSAPP_APP_SECRET": tt.value, "WHATSAPP_VERIFY_TOKEN": tt.value, "WHATSAPP_ACCESS_TOKEN": tt.value,
			}))
			if err != nil {
				t.Fatal(err)
			}
			if c.AppSecret != "s3cret" || c.VerifyToken != "s3cret" || c.AccessToken != "s3cret" {
				t.Errorf("Load(%q) = secret %q, verify token %q, access token %q; want each \"s3cret\"",
					tt.value, c.AppSecret, c.VerifyToken, c.AccessToken)
			}
		})
	}
}
