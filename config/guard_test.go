package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/config"
)

func TestGuardDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Guard{
		PerMinute: 10, PerDay: 100,
		DailyMessages: 2000, DailyCostUSD: 20, CeilingAction: "notice",
		MaxTextChars: 2000, MaxVoice: 2 * time.Minute, MaxMediaBytes: 5 << 20,
		StopWords: []string{"stop", "unsubscribe"}, StartWords: []string{"start"}, ResetWords: []string{"/reset", "reset"},
	}
	if !reflect.DeepEqual(c.Guard, want) {
		t.Errorf("Guard = %+v\nwant    %+v", c.Guard, want)
	}
	if c.Numbers != nil {
		t.Errorf("Numbers = %v, want none", c.Numbers)
	}
}

func TestGuardSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(with(map[string]string{
		"ALLOW_SENDERS": "+1 650 555 1234, US.1349", "SENDER_LIMIT_PER_MINUTE": "0", "SENDER_LIMIT_PER_DAY": "10000",
		"NUMBER_DAILY_COST_USD": "7.50", "CEILING_ACTION": "TEXT", "MAX_MEDIA_MB": "16", "STOP_WORDS": "stop, baja, arrêt",
		"NOTICE_STOP": "Adiós.", "NOTICE_UNSUPPORTED": "Solo texto y voz.",
	})))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Guard
	if !reflect.DeepEqual(g.AllowSenders, []string{"+1 650 555 1234", "US.1349"}) || g.PerMinute != 0 || g.PerDay != 10000 ||
		g.DailyCostUSD != 7.5 || g.CeilingAction != "text" || g.MaxMediaBytes != 16<<20 ||
		!reflect.DeepEqual(g.StopWords, []string{"stop", "baja", "arrêt"}) || g.NoticeStop != "Adiós." || g.NoticeUnsupported != "Solo texto y voz." {
		t.Errorf("Guard = %+v", g)
	}
}

func TestGuardRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, value, want string }{
		{"SENDER_LIMIT_PER_MINUTE", "-1", "SENDER_LIMIT_PER_MINUTE=\"-1\": want a whole number, 0 for none"},
		{"SENDER_LIMIT_PER_DAY", "10001", "SENDER_LIMIT_PER_DAY=10001: want at most 10000"},
		{"NUMBER_DAILY_COST_USD", "lots", "NUMBER_DAILY_COST_USD=\"lots\": want an amount in US dollars"},
		{"CEILING_ACTION", "shout", "CEILING_ACTION=\"shout\": want one of notice, text"},
		{"MAX_MEDIA_MB", "17", "MAX_MEDIA_MB=17: want at most 16"},
		{"MAX_VOICE_LENGTH", "2", "MAX_VOICE_LENGTH=\"2\": want a positive duration"},
		{"START_WORDS", "Stop", "\"stop\" is in more than one of STOP_WORDS, START_WORDS and RESET_WORDS"},
		{"RESET_WORDS", "start", "\"start\" is in both START_WORDS and RESET_WORDS"},
	}
	for _, tt := range tests {
		_, err := config.Load(env(with(map[string]string{tt.key: tt.value})))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%s=%s) = %v, want an error containing %q", tt.key, tt.value, err, tt.want)
		}
	}
}

func TestNumbers(t *testing.T) {
	t.Parallel()
	const good = `{"106540352242922": {"system_prompt": "Responde en español.", "voice": "es-ES-Chirp3-HD-Kore",
		"language": "es-ES", "reply_mode": "text"}, "106540352242923": {}}`
	want := map[string]config.Number{
		"106540352242922": {SystemPrompt: "Responde en español.", Voice: "es-ES-Chirp3-HD-Kore", Language: "es-ES", ReplyMode: "text"},
		"106540352242923": {},
	}
	file := filepath.Join(t.TempDir(), "numbers.json")
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range []map[string]string{{"NUMBERS": good}, {"NUMBERS_FILE": file}} {
		c, err := config.Load(env(with(e)))
		if err != nil {
			t.Fatalf("Load(%v): %v", e, err)
		}
		if !reflect.DeepEqual(c.Numbers, want) {
			t.Errorf("Load(%v).Numbers = %+v, want %+v", e, c.Numbers, want)
		}
	}

	bad := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"NUMBERS": `{"1065403522": {"prompt": "hi"}}`}, []string{`unknown field "prompt"`}},
		{map[string]string{"NUMBERS": `["1065403522"]`}, []string{"want a JSON object of phone_number_id"}},
		{map[string]string{"NUMBERS": `{"+1 650": {}, "1065403522": {"reply_mode": "video", "voice": "Kore", "language": "Spanish"}}`},
			[]string{`number "+1 650": want a phone_number_id`, `reply_mode "video"`, `voice "Kore"`, `language "Spanish"`}},
		{map[string]string{"NUMBERS": good, "NUMBERS_FILE": file}, []string{"NUMBERS and NUMBERS_FILE are both set"}},
		{map[string]string{"NUMBERS_FILE": filepath.Join(t.TempDir(), "missing.json")}, []string{"NUMBERS_FILE: open"}},
	}
	for _, tt := range bad {
		_, err := config.Load(env(with(tt.env)))
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Load(%v) = %v, want an error containing %q", tt.env, err, w)
			}
		}
	}
}
