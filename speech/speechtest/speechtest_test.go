package speechtest_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestPace checks that a synthesis takes no less than the pace says (the
// benchmarks rely on it), and that a caller that gives up is not kept
// waiting.
func TestPace(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewServer(t)
	c, err := texttospeech.NewClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.SetPace(speechtest.Pace{Base: 40 * time.Millisecond, PerChar: 5 * time.Millisecond})
	ogg := &texttospeechpb.AudioConfig{AudioEncoding: texttospeechpb.AudioEncoding_OGG_OPUS}

	start := time.Now()
	if _, err := c.SynthesizeSpeech(t.Context(), request("Hello, ünïcode.", ogg)); err != nil {
		t.Fatal(err)
	}
	if took, want := time.Since(start), 40*time.Millisecond+15*5*time.Millisecond; took < want {
		t.Errorf("SynthesizeSpeech of 15 characters took %v, want at least %v", took, want)
	}

	srv.SetPace(speechtest.Pace{Base: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.SynthesizeSpeech(ctx, request("Hello.", ogg))
	if status.Code(err) != codes.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("SynthesizeSpeech past its deadline: error %v after %v, want DeadlineExceeded at once", err, time.Since(start))
	}
}

// TestVoiceByText checks that a voice can choose the audio by the text, and
// that the peak of concurrent calls is counted.
func TestVoiceByText(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewServer(t)
	c, err := texttospeech.NewClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	files := speechtest.TTSAudio()
	srv.SetVoice(func(_ context.Context, text, _ string) ([]byte, error) { return files[len(text)%2], nil })
	srv.SetPace(speechtest.Pace{Base: 30 * time.Millisecond})
	ogg := &texttospeechpb.AudioConfig{AudioEncoding: texttospeechpb.AudioEncoding_OGG_OPUS}

	var wg sync.WaitGroup
	for _, text := range []string{"ab", "abc", "abcd"} {
		wg.Go(func() {
			resp, err := c.SynthesizeSpeech(t.Context(), request(text, ogg))
			if err != nil || !bytes.Equal(resp.GetAudioContent(), files[len(text)%2]) {
				t.Errorf("SynthesizeSpeech(%q) = %d bytes, %v; want file %d", text, len(resp.GetAudioContent()), err, len(text)%2)
			}
		})
	}
	wg.Wait()
	if n := srv.MaxConcurrentSynthesis(); n != 3 {
		t.Errorf("MaxConcurrentSynthesis() = %d, want 3", n)
	}
}

// TestConnections checks that the fake counts one connection for each
// client, however many calls it makes, and sees it close when the client
// closes.
func TestConnections(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewServer(t)
	ogg := &texttospeechpb.AudioConfig{AudioEncoding: texttospeechpb.AudioEncoding_OGG_OPUS}
	var clients []*texttospeech.Client
	for range 2 {
		c, err := texttospeech.NewClient(t.Context(), srv.ClientOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		for range 2 {
			if _, err := c.SynthesizeSpeech(t.Context(), request("Hello.", ogg)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, open := srv.Connections(), srv.OpenConnections(); n != 2 || open != 2 {
		t.Errorf("Connections() = %d, OpenConnections() = %d; want 2 and 2", n, open)
	}
	for _, c := range clients {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.OpenConnections() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n, open := srv.Connections(), srv.OpenConnections(); n != 2 || open != 0 {
		t.Errorf("after the clients closed: Connections() = %d, OpenConnections() = %d; want 2 and 0", n, open)
	}
}
