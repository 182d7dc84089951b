package service_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech/speechtest"
)

// TestSenderLimitOnProductionPath is the end-to-end check: on
// production's backends, one sender sends 50 messages within a minute and
// gets at most the limit of answers and one notice, while another sender,
// in the same minute, is answered.
func TestSenderLimitOnProductionPath(t *testing.T) {
	const limit, flood = 5, 50
	const ana, bruno = "16505550001", "16505550002"
	f, env := startFakes(t)
	env["REPLY_MODE"] = "text"
	env["SENDER_LIMIT_PER_MINUTE"] = fmt.Sprint(limit)
	var mu sync.Mutex
	handled := map[string]bool{}
	svc, _ := startProduction(t, env, func(wamid string, err error) {
		mu.Lock()
		defer mu.Unlock()
		handled[wamid] = err == nil
	})
	f.llm.SetEcho(func(r geminitest.Request) string { return "answer to " + r.UserText() })

	// Within one minute's window: a run that would cross into the next
	// minute waits for it instead, so the count is that of one window.
	if now := time.Now(); now.Second() >= 40 {
		time.Sleep(now.Truncate(time.Minute).Add(time.Minute).Sub(now))
	}
	run := time.Now().UnixNano()
	var ids []string
	send := func(i int, sender string) {
		id := fmt.Sprintf("wamid.limit.%d.%s.%d", run, sender, i)
		ids = append(ids, id)
		body := textWebhook(id, sender, fmt.Sprintf("question %d from %s", i, sender))
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(body, secret))
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("POST message %d of %s = %d, want 200", i, sender, rec.Code)
		}
	}
	for i := range flood {
		send(i, ana)
		if i == flood/2 {
			send(0, bruno)
		}
	}

	deadline := time.Now().Add(60 * time.Second)
	for done := 0; done < len(ids); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages handled in a minute", done, len(ids))
		}
		mu.Lock()
		done = 0
		for _, id := range ids {
			if handled[id] {
				done++
			}
		}
		mu.Unlock()
	}
	if time.Since(time.Unix(0, run)) > time.Minute {
		t.Logf("the run took over a minute; the counts below span two windows")
	}

	var answers, notices int
	brunoAnswered := false
	for _, m := range f.graph.Messages() {
		switch {
		case m.To == bruno && strings.HasPrefix(m.Text, "answer to question 0 from "+bruno):
			brunoAnswered = true
		case m.To == ana && m.Text == reply.DefaultNoticeMinute:
			notices++
		case m.To == ana && strings.HasPrefix(m.Text, "answer to "):
			answers++
		default:
			t.Errorf("unexpected message to %s: %q", m.To, m.Text)
		}
	}
	if answers > limit || notices > 1 {
		t.Errorf("%s got %d answers and %d notices for %d messages, want at most %d and 1", ana, answers, notices, flood, limit)
	}
	if answers < limit || notices < 1 {
		t.Errorf("%s got %d answers and %d notices, want the limit's %d and its notice", ana, answers, notices, limit)
	}
	if !brunoAnswered {
		t.Errorf("%s, in the same minute, was not answered", bruno)
	}
	if n := len(f.llm.Requests()); n != limit+1 {
		t.Errorf("the model was asked %d times, want %d: none for a message over the limit", n, limit+1)
	}
}

// TestNumberSettings checks that NUMBERS reaches the pipeline: text.json's
// number answers with its own prompt, in its own mode.
func TestNumberSettings(t *testing.T) {
	f, env := startFakes(t)
	env["NUMBERS"] = `{"106540352242922": {"system_prompt": "Answer like a pirate.", "reply_mode": "text",
		"voice": "es-ES-Chirp3-HD-Kore", "language": "es-ES"}}`
	svc := newService(t, env)
	post(t, svc, "text.json")
	post(t, svc, "audio_voice.json")
	waitSent(t, f.graph, 2)
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sent(f.graph); got != "text:16505551234(voice=false) text:16505551234(voice=false)" {
		t.Errorf("sent %s, want two texts", got)
	}
	rec := f.speech.RecognizeRequests()
	if len(rec) != 1 || strings.Join(rec[0].GetConfig().GetLanguageCodes(), ",") != "es-ES" {
		t.Errorf("recognition requests = %v, want one in the number's es-ES", rec)
	}
	reqs := f.llm.Requests()
	if len(reqs) != 2 || reqs[0].SystemInstruction.Parts[0].Text != "Answer like a pirate." {
		t.Errorf("the model was asked %d times, first with %+v; want the number's prompt", len(reqs), reqs)
	}
}

// TestNumbersShareClients starts the service with three numbers, each with
// its own prompt, language and voice, and sends each a voice note. Each is
// answered with its own prompt, language and voice, yet the service opened
// one connection to Gemini, one to Speech-to-Text and one to Text-to-Speech
// (the numbers' clients are copies sharing them), and Close closes them.
func TestNumbersShareClients(t *testing.T) {
	f, env := startFakes(t)
	numbers := []struct{ id, prompt, language, voice, answer string }{
		{"106540352242922", "Habla como un pirata.", "es-ES", "es-ES-Chirp3-HD-Kore",
			"Claro, he reservado una mesa para dos personas mañana por la noche."},
		{"106540352242923", "Parle comme un poète.", "fr-FR", "fr-FR-Chirp3-HD-Charon",
			"Bien sûr, j'ai réservé une table pour deux personnes demain soir."},
		{"106540352242924", "Sprich wie ein Butler.", "de-DE", "de-DE-Chirp3-HD-Puck",
			"Gewiss, ich habe für morgen Abend einen Tisch für zwei Personen reserviert."},
	}
	var settings []string
	answers := map[string]string{}
	for _, n := range numbers {
		settings = append(settings, fmt.Sprintf(`%q: {"system_prompt": %q, "language": %q, "voice": %q}`,
			n.id, n.prompt, n.language, n.voice))
		answers[n.prompt] = n.answer
	}
	env["NUMBERS"] = "{" + strings.Join(settings, ", ") + "}"
	// Each number is spoken to, and answers, in its language, so its own
	// voice speaks rather than another language's.
	f.llm.SetEcho(func(r geminitest.Request) string { return answers[r.SystemInstruction.Parts[0].Text] })
	svc := newService(t, env)

	voiceNote := readWebhook(t, "audio_voice.json")
	synthesized := 0
	for i, n := range numbers {
		body := bytes.ReplaceAll(voiceNote, []byte(numbers[0].id), []byte(n.id))
		body = bytes.ReplaceAll(body, []byte("wamid.HBgL"), []byte(fmt.Sprintf("wamid.%d.HBgL", i)))
		f.speech.SetTranscript(speechtest.DefaultTranscript, n.language)
		postBody(t, svc, "a voice note to "+n.id, body)
		waitSent(t, f.graph, i+1)

		if m := f.graph.Messages(); len(m) != i+1 || m[i].PhoneNumberID != n.id || m[i].Type != "audio" {
			t.Fatalf("sent %+v, want a voice note from %s last", m, n.id)
		}
		if rec := f.speech.RecognizeRequests(); len(rec) != i+1 || strings.Join(rec[i].GetConfig().GetLanguageCodes(), ",") != n.language {
			t.Errorf("%s: recognition requests = %v, want the last in %s", n.id, rec, n.language)
		}
		if reqs := f.llm.Requests(); len(reqs) != i+1 || reqs[i].SystemInstruction.Parts[0].Text != n.prompt {
			t.Errorf("%s: the model was asked %d times, the last with %+v; want %q", n.id, len(reqs), reqs[len(reqs)-1].SystemInstruction, n.prompt)
		}
		synth := f.speech.SynthesizeRequests()[synthesized:]
		synthesized += len(synth)
		for _, r := range synth {
			if v := r.GetVoice(); v.GetName() != n.voice || v.GetLanguageCode() != n.language {
				t.Errorf("%s: %q spoken by %q in %q, want %q in %q", n.id, r.GetInput().GetText(), v.GetName(), v.GetLanguageCode(), n.voice, n.language)
			}
		}
	}

	if got := f.llm.Connections(); got != 1 {
		t.Errorf("Gemini saw %d connections, want 1", got)
	}
	if got := f.speech.Connections(); got != 2 {
		t.Errorf("Speech saw %d connections, want 2: one for Speech-to-Text, one for Text-to-Speech", got)
	}
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.speech.OpenConnections() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if open := f.speech.OpenConnections(); open != 0 {
		t.Errorf("%d speech connections still open after Close, want 0", open)
	}
}
