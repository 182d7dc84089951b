package reply_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
	"github.com/patternai/whatsapp-node/store"
)

// longAnswer is nine sentences, about 900 characters: long enough for
// several Text-to-Speech calls.
var longAnswer = strings.Join([]string{
	"Sure, here is a simple plan for your three days in Lisbon, starting with the old town on the first day.",
	"In the morning, walk up through Alfama to the castle, where the view over the river is best before noon.",
	"Have lunch near the cathedral, then take the old yellow tram toward the Estrela garden.",
	"On the second day, go out to Belem by train to see the monastery, the tower and the monument to explorers.",
	"Do not leave Belem without trying the famous custard tarts, still baked to the old recipe.",
	"In the afternoon, visit the art museum by the water, or rest along the riverside path.",
	"For the third day, take the train to Sintra early, because the palaces get very busy after eleven o'clock.",
	"The Pena palace and the Moorish castle are close together, so you can see both before a late lunch in town.",
	"Come back in time for dinner in Bairro Alto, and book a table if you would like to hear some fado tonight.",
}, " ")

const shortAnswer = "Sure, I have booked a table for two tomorrow at nine."

// replied returns the fields of the last reply's summary log line.
func (h *harness) replied(t *testing.T) map[string]any {
	t.Helper()
	var last map[string]any
	for line := range strings.Lines(h.logs.String()) {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) == nil && fields["message"] == "replied" {
			last = fields
		}
	}
	if last == nil {
		t.Fatalf("no replied line in the logs:\n%s", h.logs)
	}
	return last
}

// spokenTexts are the texts sent to Text-to-Speech, in the order sent.
func (h *harness) spokenTexts() []string {
	var out []string
	for _, r := range h.speech.SynthesizeRequests() {
		out = append(out, r.GetInput().GetText())
	}
	return out
}

// TestVoiceIsSpokenWhileTheModelWrites: a long answer is cut into several
// Text-to-Speech calls, the first made before the model has finished
// writing, and joined in order into one voice note; a short one is one call
// made once the answer is complete.
func TestVoiceIsSpokenWhileTheModelWrites(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, answer string
		voice        bool
	}{
		{"text/long", longAnswer, false},
		{"text/short", shortAnswer, false},
		{"voice/long", longAnswer, true},
		{"voice/short", shortAnswer, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{})
			const per = 100 * time.Millisecond
			h.llm.SetPace(geminitest.Pace{FirstChunk: per, PerChunk: per})
			h.llm.Enqueue(geminitest.Answer{Text: tt.answer})
			var (
				mu     sync.Mutex
				called []time.Time
			)
			// Each piece is spoken as its own text, so that the joined note
			// shows the order of the pieces.
			h.speech.SetVoice(func(_ context.Context, text, _ string) ([]byte, error) {
				mu.Lock()
				called = append(called, time.Now())
				mu.Unlock()
				return speechtest.TTSAudio()[strings.Count(text, ".")%2], nil
			})
			j := textJob(t, "wamid.stream."+tt.name, "Plan my trip, please.")
			if tt.voice {
				j = h.voiceJob(t, "voice_note.ogg")
			}
			start := time.Now()
			h.handle(t, j)
			h.wantSent(t, "audio(voice=true)")

			// Pieces are spoken concurrently, so their calls may arrive in
			// any order; together they are the answer.
			texts := h.spokenTexts()
			sorted := slices.SortedFunc(slices.Values(texts), func(a, b string) int {
				return strings.Index(tt.answer, a) - strings.Index(tt.answer, b)
			})
			if got := strings.Join(sorted, " "); got != tt.answer {
				t.Errorf("spoke %q, want the answer", texts)
			}
			wantCalls := 1
			if tt.answer == longAnswer {
				wantCalls = 4 // pieces of at least speech.DefaultMinChunk bytes
			}
			if len(texts) < wantCalls || tt.answer == shortAnswer && len(texts) != 1 {
				t.Errorf("%d Text-to-Speech calls, want %d or more (one for a short answer)", len(texts), wantCalls)
			}
			// The model writes for (sentences-1)*per after its first words:
			// a long answer's first piece is spoken well before that ends.
			sentences := strings.Count(tt.answer, ". ") + 1
			writing := per * time.Duration(sentences)
			if tt.answer == longAnswer && called[0].Sub(start) >= writing {
				t.Errorf("first Text-to-Speech call %v after the message, want it before the model finished writing (%v)",
					called[0].Sub(start), writing)
			}
			// The joined note is as long as its pieces together.
			var want time.Duration
			for _, text := range texts {
				d, _ := speech.OggDuration(speechtest.TTSAudio()[strings.Count(text, ".")%2])
				want += d
			}
			up := h.graph.Uploads()
			// Joining adds a few milliseconds a piece (each file's own
			// pre-skip and end trimming).
			got, err := speech.OggDuration(up[0].Data)
			if d := got - want; err != nil || d < -50*time.Millisecond*time.Duration(len(texts)) || d > 50*time.Millisecond*time.Duration(len(texts)) {
				t.Errorf("voice note of %v (%v), want %v: the pieces joined", got, err, want)
			}
			hist, _ := h.store.History(context.Background(), reply.ConversationKey(j.PhoneNumberID, j.Sender), 10)
			if len(hist) != 2 || hist[1].Text != tt.answer {
				t.Errorf("history = %+v, want the whole answer", hist)
			}
		})
	}
}

// TestSpeechFailingMidStream: a piece after the first fails for good, after
// its retries within the attempt. The answer goes out whole as text, once,
// with no fallback beside it.
func TestSpeechFailingMidStream(t *testing.T) {
	t.Parallel()
	for _, mode := range []reply.Mode{reply.Audio, reply.Both} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{Mode: mode})
			h.llm.Enqueue(geminitest.Answer{Text: longAnswer})
			h.speech.SetVoice(func(_ context.Context, text, _ string) ([]byte, error) {
				if strings.Contains(text, "monastery") { // the fourth sentence: not in the first piece
					return nil, errors.New("the voice broke")
				}
				return speechtest.TTSAudio()[0], nil
			})
			j := textJob(t, "wamid.midstream."+string(mode), "Plan my trip, please.")
			h.handle(t, j)
			h.wantSent(t, "text:"+longAnswer)
			h.marker(t, j.Message.ID)
			failing, first := 0, false
			for _, text := range h.spokenTexts() {
				if strings.Contains(text, "monastery") {
					failing++
				}
				first = first || strings.HasPrefix(text, "Sure, here is a simple plan")
			}
			if failing != 4 {
				t.Errorf("the failing piece was tried %d times, want 4 (the pipeline's default of 3 retries)", failing)
			}
			if !first {
				t.Errorf("spoke %q, want the answer's first piece too: the failure comes mid-stream", h.spokenTexts())
			}
		})
	}
}

// TestRetrySpeaksTheStagedAnswerInItsLanguage: an attempt died after staging
// its answer, before its voice note; the next one speaks the staged answer,
// in the staged language, without asking the model again, and stages the
// audio it made.
func TestRetrySpeaksTheStagedAnswerInItsLanguage(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Now()}
	h := newHarnessWithStore(t, reply.Options{}, store.NewMemory(store.Options{Now: c.Now}))
	j := job(t, "text.json")
	ctx := context.Background()
	h.store.Accept(ctx, []string{j.Message.ID})
	if _, err := h.store.Claim(ctx, j.Message.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	const answer = "Mañana hará sol en Lisboa, con unos veintidós grados. Lleva una chaqueta ligera para la noche."
	staged, _ := json.Marshal(map[string]string{"question": "¿Qué tiempo hará mañana?", "answer": answer, "language": "es-ES"})
	if err := h.stager.Put(ctx, "replies/"+objectName(j.Message.ID)+".json", staged, "application/json"); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)

	h.handle(t, j)
	h.wantSent(t, "audio(voice=true)")
	if n := len(h.llm.Requests()); n != 0 {
		t.Errorf("model asked %d times, want 0: the staged answer stands", n)
	}
	reqs := h.speech.SynthesizeRequests()
	if len(reqs) != 1 || reqs[0].GetInput().GetText() != answer || reqs[0].GetVoice().GetLanguageCode() != "es-ES" {
		t.Errorf("synthesized %v, want the staged answer in es-ES", reqs)
	}
	if audio, err := h.stager.Get(ctx, "replies/"+objectName(j.Message.ID)+".ogg"); err != nil || len(audio) == 0 {
		t.Errorf("voice note not staged for a later retry: %v", err)
	}
}

// TestVoiceSpeaksTheAnswersLanguage: the voice is chosen from the answer's
// language, for text messages and voice notes alike, whatever the user's
// language was; the staged answer and the log line record it.
func TestVoiceSpeaksTheAnswersLanguage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, question, heard, answer, want string
	}{
		{"spanish text", "¿Qué tiempo hará mañana en Lisboa?", "",
			"Mañana hará sol en Lisboa, con unos veintidós grados. Lleva una chaqueta ligera para la noche.", "es"},
		{"english text", "What's the weather like in Lisbon tomorrow?", "",
			"Tomorrow Lisbon will be sunny, around twenty two degrees. Take a light jacket for the evening.", "en"},
		{"english voice note, french answer", "", "Please answer me in French.",
			"Bien sûr, je vous réponds en français avec plaisir. Demain, il fera beau à Lisbonne toute la journée.", "fr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{})
			h.llm.Enqueue(geminitest.Answer{Text: tt.answer})
			j := textJob(t, "wamid.language."+tt.want, tt.question)
			if tt.heard != "" {
				h.speech.SetTranscript(tt.heard, "en-US")
				j = h.voiceJob(t, "voice_note.ogg")
			}
			h.handle(t, j)
			h.wantSent(t, "audio(voice=true)")
			for _, r := range h.speech.SynthesizeRequests() {
				if lang := r.GetVoice().GetLanguageCode(); !strings.HasPrefix(lang, tt.want+"-") {
					t.Errorf("spoken in %q (voice %q), want %s", lang, r.GetVoice().GetName(), tt.want)
				}
			}
			if lang, _ := h.replied(t)["language"].(string); !strings.HasPrefix(lang, tt.want) {
				t.Errorf("replied line says language %q, want %s", lang, tt.want)
			}
			b, err := h.stager.Get(context.Background(), "replies/"+objectName(j.Message.ID)+".json")
			var st struct{ Language string }
			if err != nil || json.Unmarshal(b, &st) != nil || !strings.HasPrefix(st.Language, tt.want) {
				t.Errorf("staged %s (%v), want the language %s recorded", b, err, tt.want)
			}
		})
	}
}

// TestGeminiHearsTheVoiceNote: with STT_ENGINE=gemini a voice note goes to
// the model as audio, and one call returns the transcript (kept for the
// history) and the answer, spoken in the answer's language; Speech-to-Text
// is not called. A text message still goes to the model as text.
func TestGeminiHearsTheVoiceNote(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{STTEngine: reply.GeminiAudio})
	const (
		heard  = "Hola, ¿puedes reservar una mesa para dos mañana?"
		answer = "Claro, he reservado una mesa para dos personas mañana a las nueve. Te la guardan quince minutos."
	)
	// A text message first: it still goes to the model as streamed text,
	// and gives the voice note's prompt a history to count.
	h.llm.Enqueue(geminitest.Answer{Text: "Hola. ¿En qué puedo ayudarte hoy?"})
	text := textJob(t, "wamid.heard.text", "Hola, buenas tardes.")
	h.handle(t, text)
	if reqs := h.llm.Requests(); len(reqs) != 1 || !reqs[0].Stream || reqs[0].UserText() != "Hola, buenas tardes." {
		t.Errorf("a text message under STT_ENGINE=gemini went to the model as %+v, want a streamed text prompt", reqs)
	}
	spokenBefore := len(h.spokenTexts())
	h.llm.SetHeard(heard, "es-ES")
	h.llm.Enqueue(geminitest.Answer{Text: answer})
	j := h.voiceJob(t, "voice_note.ogg")
	j.Sender = text.Sender
	h.handle(t, j)

	h.wantSent(t, "audio(voice=true)", "audio(voice=true)")
	if n := len(h.speech.RecognizeRequests()) + len(h.speech.BatchRecognizeRequests()); n != 0 {
		t.Errorf("Speech-to-Text called %d times, want 0", n)
	}
	reqs := h.llm.Requests()
	if len(reqs) != 2 || len(reqs[1].Attachments()) != 1 || reqs[1].Attachments()[0].MIMEType != "audio/ogg" ||
		reqs[1].GenerationConfig == nil || reqs[1].GenerationConfig.ResponseMIMEType != "application/json" {
		t.Fatalf("model asked %+v, want one structured call with the voice note", reqs[1:])
	}
	spoken := h.spokenTexts()[spokenBefore:]
	if got := strings.Join(spoken, " "); got != answer {
		t.Errorf("spoke %q, want the answer", got)
	}
	for _, r := range h.speech.SynthesizeRequests()[spokenBefore:] {
		if !strings.HasPrefix(r.GetVoice().GetLanguageCode(), "es-") {
			t.Errorf("spoken in %q, want Spanish", r.GetVoice().GetLanguageCode())
		}
	}
	hist, _ := h.store.History(context.Background(), reply.ConversationKey(j.PhoneNumberID, j.Sender), 10)
	if len(hist) != 4 || hist[2].Text != heard || hist[3].Text != answer {
		t.Errorf("history = %+v, want the transcript and the answer after the first turns", hist)
	}
	f := h.replied(t)
	if f["audio_in_seconds"] != 0.0 || f["prompt_tokens"] == 0.0 || f["tts_chars"] != float64(utf8.RuneCountInString(answer)) {
		t.Errorf("replied line %v, want no audio recognized, the prompt's tokens and the answer's characters", f)
	}
}

// TestRepliedLineCarriesTheCost: every reply's summary line carries the four
// numbers README's cost command sums, as JSON numbers, zeros included.
func TestRepliedLineCarriesTheCost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		mode  reply.Mode
		voice bool
	}{
		{"text message, voice note", reply.Audio, false},
		{"voice note, voice note", reply.Audio, true},
		{"text message, text", reply.Text, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{Mode: tt.mode})
			h.llm.Enqueue(geminitest.Answer{Text: longAnswer})
			j := textJob(t, "wamid.cost", "Plan my trip, please.")
			if tt.voice {
				j = h.voiceJob(t, "voice_note.ogg")
			}
			h.handle(t, j)
			f := h.replied(t)
			line, _ := json.Marshal(f)
			t.Logf("replied line: %s", line)
			num := func(name string) float64 {
				v, ok := f[name].(float64)
				if !ok {
					t.Errorf("replied line's %s = %#v, want a number", name, f[name])
				}
				return v
			}
			prompt := 0
			for _, c := range h.llm.Requests()[0].Contents {
				for _, p := range c.Parts {
					prompt += len(strings.Fields(p.Text))
				}
			}
			chars := 0
			for _, text := range h.spokenTexts() {
				chars += utf8.RuneCountInString(text)
			}
			if got := num("prompt_tokens"); got != float64(prompt) || prompt == 0 {
				t.Errorf("prompt_tokens = %v, want the model's count %d", got, prompt)
			}
			if got, want := num("answer_tokens"), len(strings.Fields(longAnswer)); got != float64(want) {
				t.Errorf("answer_tokens = %v, want %d", got, want)
			}
			if got := num("tts_chars"); got != float64(chars) || (chars == 0) != (tt.mode == reply.Text) {
				t.Errorf("tts_chars = %v, want the %d characters sent to Text-to-Speech", got, chars)
			}
			if got := num("audio_in_seconds"); (got > 0) != tt.voice {
				t.Errorf("audio_in_seconds = %v for a voice note: %v", got, tt.voice)
			}
		})
	}
}

// TestModelFailingMidStream: the model's stream breaks after its first
// sentences, while speech has already started on them. The model is asked
// again, and the new answer is spoken afresh: the voice note holds the second
// stream's words only, once, and the history has the whole answer.
func TestModelFailingMidStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{})
	const per = 20 * time.Millisecond
	h.llm.SetPace(geminitest.Pace{FirstChunk: per, PerChunk: per})
	broken := strings.Replace(longAnswer, "Sure, here is", "Well, here is", 1)
	h.llm.Enqueue(geminitest.Answer{Text: broken, CutAfter: 4}, geminitest.Answer{Text: longAnswer})
	h.speech.SetVoice(func(_ context.Context, text, _ string) ([]byte, error) {
		return speechtest.TTSAudio()[strings.Count(text, ".")%2], nil
	})
	j := textJob(t, "wamid.model.midstream", "Plan my trip, please.")
	h.handle(t, j)

	h.wantSent(t, "audio(voice=true)")
	if n := len(h.llm.Requests()); n != 2 {
		t.Fatalf("model asked %d times, want 2: the broken stream and its retry", n)
	}
	var second []string
	for _, text := range h.spokenTexts() {
		if strings.HasPrefix(text, "Well,") {
			continue // the broken stream's first piece, if it was spoken before the break
		}
		second = append(second, text)
	}
	slices.SortFunc(second, func(a, b string) int { return strings.Index(longAnswer, a) - strings.Index(longAnswer, b) })
	if got := strings.Join(second, " "); got != longAnswer {
		t.Errorf("spoke %q after the break, want the second answer whole", second)
	}
	var want time.Duration
	for _, text := range second {
		d, _ := speech.OggDuration(speechtest.TTSAudio()[strings.Count(text, ".")%2])
		want += d
	}
	got, err := speech.OggDuration(h.graph.Uploads()[0].Data)
	if d := got - want; err != nil || d < -50*time.Millisecond*time.Duration(len(second)) || d > 50*time.Millisecond*time.Duration(len(second)) {
		t.Errorf("voice note of %v (%v), want %v: the second answer's pieces alone", got, err, want)
	}
	hist, _ := h.store.History(context.Background(), reply.ConversationKey(j.PhoneNumberID, j.Sender), 10)
	if len(hist) != 2 || hist[1].Text != longAnswer {
		t.Errorf("history = %+v, want the second answer", hist)
	}
}
