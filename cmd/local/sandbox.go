package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/speech/speechtest"
)

// fixtureVoiceNote is the media id testdata/webhooks/audio_voice.json names;
// the sandbox serves testdata/voice_note.ogg under it.
const fixtureVoiceNote = "1308761640948516"

// sandbox stands in for Meta's Graph API, Gemini and Google Speech with the
// local fakes the tests use, so the whole reply pipeline runs on a machine
// with no accounts. Replies are printed, and voice notes saved to a folder.
type sandbox struct {
	graph  *graphapitest.Server
	llm    *geminitest.Server
	speech *speechtest.Server
}

// startSandbox starts the fakes and returns the environment that points the
// service at them.
func startSandbox(out io.Writer, replyDir string) (*sandbox, map[string]string, error) {
	s := &sandbox{llm: geminitest.Start()}
	var err error
	if s.speech, err = speechtest.Start(); err != nil {
		s.close()
		return nil, nil, err
	}
	if err := os.MkdirAll(replyDir, 0o755); err != nil {
		s.close()
		return nil, nil, err
	}
	s.graph, err = graphapitest.New(graphapitest.WithOnMessage(func(m graphapitest.Message) {
		s.show(out, replyDir, m)
	}))
	if err != nil {
		s.close()
		return nil, nil, err
	}
	if voice, err := os.ReadFile(filepath.Join("testdata", "voice_note.ogg")); err == nil {
		s.graph.PutMedia(fixtureVoiceNote, voice, "audio/ogg; codecs=opus")
	}
	env := map[string]string{
		"WHATSAPP_ACCESS_TOKEN":  s.graph.Token,
		"GRAPH_API_BASE_URL":     s.graph.URL,
		"GOOGLE_VERTEX_BASE_URL": s.llm.URL,
		"SPEECH_ENDPOINT":        s.speech.Addr,
		"TTS_ENDPOINT":           s.speech.Addr,
	}
	return s, env, nil
}

// show prints a reply the service sent, saving a voice note to replyDir.
func (s *sandbox) show(out io.Writer, replyDir string, m graphapitest.Message) {
	switch m.Type {
	case "text":
		fmt.Fprintf(out, "sandbox: text to %s: %s\n", logging.Mask(m.To), m.Text)
	case "audio":
		media, ok := s.graph.Media(m.AudioID)
		if !ok {
			fmt.Fprintf(out, "sandbox: voice note to %s: unknown media %s\n", logging.Mask(m.To), m.AudioID)
			return
		}
		path := filepath.Join(replyDir, m.ID+".ogg")
		if err := os.WriteFile(path, media.Data, 0o644); err != nil {
			fmt.Fprintf(out, "sandbox: voice note to %s not saved: %v\n", logging.Mask(m.To), err)
			return
		}
		fmt.Fprintf(out, "sandbox: voice note to %s (%d bytes, voice=%v): %s\n", logging.Mask(m.To), len(media.Data), m.Voice, path)
	}
}

func (s *sandbox) close() {
	if s.graph != nil {
		s.graph.Close()
	}
	if s.speech != nil {
		s.speech.Close()
	}
	s.llm.Close()
}
