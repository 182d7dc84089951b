package main

import (
	"embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
)

// Dev settings for a run whose Meta is the stand-in and whose environment
// sets none. They are printed, so that the README's curl lines work.
const (
	devAppSecret   = "dev-secret"
	devVerifyToken = "dev-token"
	// sandboxProject names the Google project when no real Google service
	// needs one.
	sandboxProject = "sandbox"
)

// media holds the files the Meta stand-in serves for the media ids of the
// fixtures in testdata/webhooks, embedded so that the sandbox has them
// wherever it runs. voice_note.ogg is a copy of testdata/voice_note.ogg.
//
//go:embed media
var media embed.FS

// fixtureMedia maps each media id named in testdata/webhooks to its file and
// type. The fixtures carry these files' SHA-256, which the service checks.
var fixtureMedia = map[string]struct{ file, mimeType string }{
	"1308761640948516": {"media/voice_note.ogg", "audio/ogg; codecs=opus"}, // audio_voice.json
	"777000111":        {"media/voice_note.ogg", "audio/ogg; codecs=opus"}, // batch.json
	"2754859441498128": {"media/photo.jpg", "image/jpeg"},                  // image.json
	"4455667788990011": {"media/invoice.pdf", "application/pdf"},           // document.json
}

// sandbox stands in for the services the run does not use for real, with
// the fakes the tests use: Meta's Graph API (graphapitest), Gemini
// (geminitest) and Google Speech (speechtest). The Meta stand-in plays the
// user's WhatsApp: each message the service sends is printed, its voice notes
// saved to a folder.
type sandbox struct {
	graph  *graphapitest.Server
	llm    *geminitest.Server
	speech *speechtest.Server
	// voice says how the stand-in voice speaks, for the start-up lines.
	voice string

	out      io.Writer
	replyDir string // created on the first voice note
	started  string // the run's start time, which keeps voice-note names apart between runs
}

// startSandbox starts the stand-ins that s names. Replies are printed to
// out; voice notes are saved to replyDir, which the caller sets before the
// service runs.
func startSandbox(s standIns, out io.Writer) (*sandbox, error) {
	sb := &sandbox{out: out, started: time.Now().Format("20060102-150405")}
	if s.Meta {
		var err error
		if sb.graph, err = graphapitest.New(graphapitest.WithOnMessage(sb.show)); err != nil {
			return nil, err
		}
		for id, m := range fixtureMedia {
			data, err := media.ReadFile(m.file)
			if err != nil {
				sb.close()
				return nil, err // embedded, so only a build mistake gets here
			}
			sb.graph.PutMedia(id, data, m.mimeType)
		}
	}
	if s.Gemini {
		sb.llm = geminitest.Start()
		sb.llm.SetEcho(geminitest.StandIn)
	}
	if s.Speech {
		var err error
		if sb.speech, err = speechtest.Start(); err != nil {
			sb.close()
			return nil, err
		}
		if voice, err := speechtest.LocalVoice(); err == nil {
			sb.speech.SetVoice(voice)
			sb.voice = "reads each answer aloud with espeak-ng"
		} else {
			sb.voice = fmt.Sprintf("cannot read answers aloud (%v), so it plays its two recorded sentences whatever the answer", err)
		}
	}
	return sb, nil
}

// env returns the settings that point the service at the stand-ins, on top
// of getenv, and a line for each dev default it chose.
func (sb *sandbox) env(getenv func(string) string) (overlay map[string]string, notes []string) {
	overlay = map[string]string{}
	if sb.graph != nil {
		overlay["WHATSAPP_ACCESS_TOKEN"] = sb.graph.Token
		overlay["GRAPH_API_BASE_URL"] = sb.graph.URL
		if strings.TrimSpace(getenv("WHATSAPP_ACCESS_TOKEN")) == "" {
			notes = append(notes, "WHATSAPP_ACCESS_TOKEN is not set: the sandbox uses its Meta stand-in's token")
		} else {
			notes = append(notes, "WHATSAPP_ACCESS_TOKEN is set, but Meta is the stand-in, which takes its own token")
		}
		for _, v := range [][2]string{{"WHATSAPP_APP_SECRET", devAppSecret}, {"WHATSAPP_VERIFY_TOKEN", devVerifyToken}} {
			if name, def := v[0], v[1]; strings.TrimSpace(getenv(name)) == "" {
				overlay[name] = def
				notes = append(notes, fmt.Sprintf("%s is not set: the sandbox uses %q", name, def))
			}
		}
	}
	if sb.llm != nil {
		overlay["GOOGLE_VERTEX_BASE_URL"] = sb.llm.URL
	}
	if sb.speech != nil {
		overlay["SPEECH_ENDPOINT"] = sb.speech.Addr
		overlay["TTS_ENDPOINT"] = sb.speech.Addr
	}
	if (sb.llm != nil || sb.speech != nil) && strings.TrimSpace(getenv("GOOGLE_CLOUD_PROJECT")) == "" {
		overlay["GOOGLE_CLOUD_PROJECT"] = sandboxProject
	}
	return overlay, notes
}

// describe returns a line per service: real, or which stand-in.
func (sb *sandbox) describe() []string {
	var lines []string
	if sb.graph != nil {
		lines = append(lines, "Meta: stand-in at "+sb.graph.URL+" (it plays the user's WhatsApp and serves the fixtures' media)")
	} else {
		lines = append(lines, "Meta: real (WHATSAPP_ACCESS_TOKEN is set)")
	}
	if sb.llm != nil {
		lines = append(lines, "Gemini: stand-in at "+sb.llm.URL+" (it says it is one and repeats what it was sent)")
	} else {
		lines = append(lines, "Gemini: real")
	}
	if sb.speech != nil {
		lines = append(lines, fmt.Sprintf("Speech: stand-in at %s (it hears every voice note as %q, and %s)",
			sb.speech.Addr, speechtest.DefaultTranscript, sb.voice))
	} else {
		lines = append(lines, "Speech: real")
	}
	return lines
}

// show prints a message the service sent, saving a voice note to replyDir.
func (sb *sandbox) show(m graphapitest.Message) {
	to := logging.Mask(m.To)
	switch m.Type {
	case "text":
		fmt.Fprintf(sb.out, "reply to %s: %s\n", to, m.Text)
	case "audio":
		fmt.Fprintf(sb.out, "reply to %s: %s\n", to, sb.saveVoiceNote(m))
	}
}

// saveVoiceNote saves the voice note m sends and says where, and how long it
// plays.
func (sb *sandbox) saveVoiceNote(m graphapitest.Message) string {
	media, ok := sb.graph.Media(m.AudioID)
	if !ok {
		return "a voice note of unknown media " + m.AudioID
	}
	length := "not Ogg/Opus"
	if d, err := speech.OggDuration(media.Data); err == nil {
		length = fmt.Sprintf("%.1f s", d.Seconds())
	}
	path := filepath.Join(sb.replyDir, sb.started+"-"+m.ID+".ogg")
	if err := os.MkdirAll(sb.replyDir, 0o755); err != nil {
		return fmt.Sprintf("a voice note (%s), not saved: %v", length, err)
	}
	if err := os.WriteFile(path, media.Data, 0o644); err != nil {
		return fmt.Sprintf("a voice note (%s), not saved: %v", length, err)
	}
	return fmt.Sprintf("voice note (%s) %s", length, path)
}

func (sb *sandbox) close() {
	if sb.graph != nil {
		sb.graph.Close()
	}
	if sb.llm != nil {
		sb.llm.Close()
	}
	if sb.speech != nil {
		sb.speech.Close()
	}
}
