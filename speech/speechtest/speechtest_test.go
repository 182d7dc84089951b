package speechtest_test

import (
	"strings"
	"testing"

	texttospeech "cloud.google.com/go/texttospeech/apiv1"
	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/patternai/whatsapp-node/speech/speechtest"
)

// TestStartWithoutTesting starts the fake the way cmd/local does, then
// checks it rejects what the real service rejects.
func TestStartWithoutTesting(t *testing.T) {
	srv, err := speechtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.Addr, "127.0.0.1:") {
		t.Errorf("Addr = %q, want loopback", srv.Addr)
	}
	c, err := texttospeech.NewClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ogg := &texttospeechpb.AudioConfig{AudioEncoding: texttospeechpb.AudioEncoding_OGG_OPUS}
	tests := []struct {
		name  string
		req   *texttospeechpb.SynthesizeSpeechRequest
		want  codes.Code
		audio []byte
	}{
		{"ok", request("Hello.", ogg), codes.OK, speechtest.TTSAudio()[0]},
		{"next file", request("Again.", ogg), codes.OK, speechtest.TTSAudio()[1]},
		{"too long", request(strings.Repeat("é", 2501), ogg), codes.InvalidArgument, nil},
		{"not opus", request("Hello.", &texttospeechpb.AudioConfig{AudioEncoding: texttospeechpb.AudioEncoding_MP3}), codes.Unimplemented, nil},
	}
	for _, tt := range tests {
		resp, err := c.SynthesizeSpeech(t.Context(), tt.req)
		if status.Code(err) != tt.want {
			t.Errorf("%s: SynthesizeSpeech error = %v, want code %v", tt.name, err, tt.want)
		}
		if tt.audio != nil && string(resp.GetAudioContent()) != string(tt.audio) {
			t.Errorf("%s: audio is %d bytes, want the %d-byte fixture", tt.name, len(resp.GetAudioContent()), len(tt.audio))
		}
	}
	if n := len(srv.SynthesizeRequests()); n != len(tests) {
		t.Errorf("recorded %d requests, want %d", n, len(tests))
	}
}

func request(text string, audio *texttospeechpb.AudioConfig) *texttospeechpb.SynthesizeSpeechRequest {
	return &texttospeechpb.SynthesizeSpeechRequest{
		Input:       &texttospeechpb.SynthesisInput{InputSource: &texttospeechpb.SynthesisInput_Text{Text: text}},
		Voice:       &texttospeechpb.VoiceSelectionParams{LanguageCode: "en-US"},
		AudioConfig: audio,
	}
}
