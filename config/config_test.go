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
	if c.Store != "memory" || c.Queue != "inprocess" || c.MarkerTTL != 7*24*time.Hour ||
		c.HistoryTurns != 10 || c.HistoryTTL != 24*time.Hour || c.ReplyMode != "audio" ||
		c.GraphVersion != "v25.0" || c.GraphBaseURL != "https://graph.facebook.com" ||
		c.MediaBucket != "" || c.MediaDir == "" {
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
		{"bad values", with(map[string]string{"STORE": "redis", "MARKER_TTL": "soon", "HISTORY_TURNS": "-1", "REPLY_MODE": "video", "LOG_LEVEL": "loud"}),
			[]string{"STORE", "MARKER_TTL", "HISTORY_TURNS", "REPLY_MODE", "LOG_LEVEL"}},
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
	if c.Queue != "pubsub" || c.PubSubTopic != "whatsapp-replies" || !c.PubSubVerify {
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
		"REPLY_MODE": "mirror", "LOG_LEVEL": "debug", "QUEUE_WORKERS": "3",
	})))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "firestore" || c.MarkerTTL != 48*time.Hour || c.ReplyMode != "mirror" || c.Workers != 3 ||
		strings.Join(c.STTLanguages, "|") != "en-US|es-ES" || c.LogLevel.String() != "DEBUG" {
		t.Errorf("Load = %+v", c)
	}
}
