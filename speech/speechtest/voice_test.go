package speechtest_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	texttospeech "cloud.google.com/go/texttospeech/apiv1"
	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"

	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
)

// localVoice returns the espeak-ng voice. Without espeak-ng or opusenc the
// test is skipped, except under CI=true, which installs them.
func localVoice(t *testing.T) speechtest.Voice {
	t.Helper()
	voice, err := speechtest.LocalVoice()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("LocalVoice: %v; CI must install espeak-ng and opus-tools", err)
		}
		t.Skipf("LocalVoice: %v; install espeak-ng and opus-tools to run this test", err)
	}
	return voice
}

// TestLocalVoice reads different texts through the real Text-to-Speech client
// and checks that each answer is its own valid Ogg/Opus voice note, longer
// for a longer text, in a language espeak-ng knows or one it does not.
func TestLocalVoice(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewServer(t)
	srv.SetVoice(localVoice(t))
	c, err := texttospeech.NewClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ogg := &texttospeechpb.AudioConfig{AudioEncoding: texttospeechpb.AudioEncoding_OGG_OPUS}

	tests := []struct {
		text, language string
	}{
		{"Hello.", "en-US"},
		{"Hello. This answer is a good deal longer than the first one, so it takes longer to say.", "en-US"},
		{"Olá, tudo bem?", "pt-BR"},
		{"Hello again.", "xx-YY"}, // no such voice: espeak-ng's default reads it
	}
	var prev []byte
	var lengths []time.Duration
	for _, tt := range tests {
		req := request(tt.text, ogg)
		req.Voice.LanguageCode = tt.language
		resp, err := c.SynthesizeSpeech(t.Context(), req)
		if err != nil {
			t.Fatalf("SynthesizeSpeech(%q, %s): %v", tt.text, tt.language, err)
		}
		audio := resp.GetAudioContent()
		d, err := speech.OggDuration(audio)
		if err != nil || d <= 0 {
			t.Fatalf("SynthesizeSpeech(%q, %s) = %d bytes of length %v, %v; want Ogg/Opus audio", tt.text, tt.language, len(audio), d, err)
		}
		if bytes.Equal(audio, prev) {
			t.Errorf("SynthesizeSpeech(%q) returned the same audio as the text before it", tt.text)
		}
		if opusinfo, err := exec.LookPath("opusinfo"); err == nil {
			file := filepath.Join(t.TempDir(), "voice.ogg")
			if err := os.WriteFile(file, audio, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(opusinfo, file).CombinedOutput(); err != nil {
				t.Errorf("opusinfo rejects the audio for %q: %v\n%s", tt.text, err, out)
			}
		}
		prev = audio
		lengths = append(lengths, d)
	}
	if lengths[1] <= lengths[0] {
		t.Errorf("a longer text lasts %v, the short one %v; want the longer text to take longer", lengths[1], lengths[0])
	}
	if n := len(srv.SynthesizeRequests()); n != len(tests) {
		t.Errorf("recorded %d requests, want %d", n, len(tests))
	}
}
