package reply_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/store"
)

// guarded is a harness answering in text, with the guard g.
func guarded(t *testing.T, g reply.Guard) *harness {
	t.Helper()
	h := newHarness(t, reply.Options{Mode: reply.Text, Guard: g})
	h.llm.SetEcho(func(r geminitest.Request) string { return "answer to " + r.UserText() })
	return h
}

// from is a text message from another sender.
func from(j queue.Job, sender string) queue.Job {
	j.Sender, j.Message.From = sender, sender
	return j
}

func TestSenderLimits(t *testing.T) {
	t.Parallel()
	h := guarded(t, reply.Guard{Limits: store.Limits{PerMinute: 2, PerDay: 100}})
	for i := range 5 {
		h.handle(t, textJob(t, fmt.Sprint("wamid.ana", i), fmt.Sprint("question ", i)))
	}
	h.handle(t, from(textJob(t, "wamid.bruno", "my question"), "15550001111"))
	h.wantSent(t, "text:answer to question 0", "text:answer to question 1", "text:"+reply.DefaultNoticeMinute,
		"text:answer to my question")
	if n := len(h.llm.Requests()); n != 3 {
		t.Errorf("model asked %d times, want 3: none for a message over the limit", n)
	}
	if rr := h.graph.ReadReceipts(); len(rr) != 3 {
		t.Errorf("%d read receipts, want 3: a message over the limit is not even marked read", len(rr))
	}
	// The notice went out as a part of the reply to the message that got
	// it, tagged for its status webhooks and recorded as sent, like any part.
	if id, part, ok := mustTags(t).Open(h.graph.Messages()[2].CallbackData); !ok || id != "wamid.ana2" || part != "notice" {
		t.Errorf("the notice's tag opens to %q, %q, %v; want wamid.ana2, notice", id, part, ok)
	}
	if m := h.marker(t, "wamid.ana2"); !slices.Equal(m.Sent, []string{"notice"}) {
		t.Errorf("the notice's marker has sent %q, want [notice]", m.Sent)
	}
	if m := h.marker(t, "wamid.ana3"); len(m.Sent) != 0 {
		t.Errorf("a silenced message's marker has sent %q, want nothing (and it is completed)", m.Sent)
	}
}

func TestOptOut(t *testing.T) {
	t.Parallel()
	h := guarded(t, reply.Guard{StopWords: []string{"stop", "baja"}, StartWords: []string{"start"}})
	for i, body := range []string{"  Stop! ", "are you there?", "STOP", "baja", "Start", "hello again", "start"} {
		h.handle(t, textJob(t, fmt.Sprint("wamid.", i), body))
	}
	h.wantSent(t, "text:"+reply.DefaultNoticeStop, "text:"+reply.DefaultNoticeStart,
		"text:answer to hello again", "text:answer to start")
	if n := len(h.llm.Requests()); n != 2 {
		t.Errorf("model asked %d times, want 2", n)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	h := guarded(t, reply.Guard{ResetWords: []string{"/reset", "start over"}})
	j := textJob(t, "wamid.1", "remember the number 7")
	h.handle(t, j)
	key := reply.ConversationKey(j.PhoneNumberID, j.Sender)
	if hist, _ := h.store.History(t.Context(), key, 10); len(hist) != 2 {
		t.Fatalf("history before the reset = %d turns, want 2", len(hist))
	}
	h.handle(t, textJob(t, "wamid.2", "/reset"))
	if hist, _ := h.store.History(t.Context(), key, 10); len(hist) != 0 {
		t.Errorf("history after /reset = %+v, want none", hist)
	}
	h.handle(t, textJob(t, "wamid.3", "what was the number?"))
	h.handle(t, textJob(t, "wamid.4", "Start over."))
	h.wantSent(t, "text:answer to remember the number 7", "text:"+reply.DefaultNoticeReset,
		"text:answer to what was the number?", "text:"+reply.DefaultNoticeReset)
	reqs := h.llm.Requests()
	if len(reqs) != 2 || len(reqs[1].Contents) != 1 {
		t.Errorf("the model was asked %d times, the last with %d contents; want 2, the last with no history",
			len(reqs), len(reqs[len(reqs)-1].Contents))
	}
}

func TestTextCap(t *testing.T) {
	t.Parallel()
	h := guarded(t, reply.Guard{MaxTextChars: 10})
	h.handle(t, textJob(t, "wamid.1", "ñandú sí 1")) // ten characters, more bytes
	h.handle(t, textJob(t, "wamid.2", "ñandú sí 12"))
	h.wantSent(t, "text:answer to ñandú sí 1", "text:"+reply.DefaultNoticeText)
	if n := len(h.llm.Requests()); n != 1 {
		t.Errorf("model asked %d times, want 1", n)
	}
}

func TestVoiceCaps(t *testing.T) {
	t.Parallel()
	audio, err := os.ReadFile(filepath.Join("..", "testdata", "voice_note.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	length, err := speech.OggDuration(audio)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		max      time.Duration
		answered bool
		// downloaded says whether the note's bytes were fetched: a note
		// surely too long by its announced size is refused before.
		downloaded bool
	}{
		{"at the cap", length, true, true},
		{"a little over, by the stream's duration", length - 10*time.Millisecond, false, true},
		{"far over, by its size", time.Duration(float64(time.Second) * float64(len(audio)) / 8000 / 2), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := guarded(t, reply.Guard{MaxVoice: tt.max})
			h.handle(t, h.voiceJob(t, "voice_note.ogg"))
			stt := len(h.speech.RecognizeRequests())
			if tt.answered {
				if stt != 1 || len(h.graph.Messages()) != 1 || h.sent()[0] == "text:"+reply.DefaultNoticeVoice {
					t.Errorf("a %v note with a %v cap: %d recognitions, sent %q; want it answered", length, tt.max, stt, h.sent())
				}
			} else {
				h.wantSent(t, "text:"+reply.DefaultNoticeVoice)
				if stt != 0 || len(h.llm.Requests()) != 0 {
					t.Errorf("%d recognitions, %d model calls; want none", stt, len(h.llm.Requests()))
				}
			}
			if got := h.graph.Count(graphapitest.KindMediaDownload) > 0; got != tt.downloaded {
				t.Errorf("downloaded = %v, want %v", got, tt.downloaded)
			}
		})
	}
}

func TestMediaCap(t *testing.T) {
	t.Parallel()
	h := guarded(t, reply.Guard{MaxMediaBytes: 1000})
	for i, size := range []int{1000, 1001} {
		j := job(t, "image.json")
		j.Message.ID = fmt.Sprint("wamid.", i)
		j.Message.Image.ID = h.graph.AddMedia([]byte("\xff\xd8\xff\xe0"+strings.Repeat("x", size-4)), "image/jpeg")
		j.Message.Image.SHA256 = ""
		h.handle(t, j)
	}
	h.wantSent(t, "text:answer to Is this plant healthy?", "text:"+reply.DefaultNoticeMedia)
	if n := len(h.llm.Requests()); n != 1 {
		t.Errorf("model asked %d times, want 1", n)
	}
}

func TestDailyCeiling(t *testing.T) {
	t.Parallel()
	t.Run("notice", func(t *testing.T) {
		t.Parallel()
		h := guarded(t, reply.Guard{DailyMessages: 2})
		for i := range 4 {
			h.handle(t, from(textJob(t, fmt.Sprint("wamid.", i), fmt.Sprint("question ", i)), fmt.Sprint("1555000000", i)))
		}
		h.wantSent(t, "text:answer to question 0", "text:answer to question 1",
			"text:"+reply.DefaultNoticeCeiling, "text:"+reply.DefaultNoticeCeiling)
		if n := strings.Count(h.logs.String(), `"message":"daily ceiling reached"`); n != 1 {
			t.Errorf("ceiling logged %d times, want once:\n%s", n, h.logs)
		}
		if n := strings.Count(h.logs.String(), `"severity":"WARNING","message":"daily ceiling reached"`); n != 1 {
			t.Errorf("ceiling not logged at warning:\n%s", h.logs)
		}
	})
	t.Run("text only", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, reply.Options{Mode: reply.Audio, Guard: reply.Guard{DailyMessages: 1, CeilingTextOnly: true}})
		h.llm.SetEcho(func(r geminitest.Request) string { return "answer to " + r.UserText() })
		h.handle(t, textJob(t, "wamid.1", "first"))
		h.handle(t, textJob(t, "wamid.2", "second"))
		h.wantSent(t, "audio(voice=true)", "text:answer to second")
	})
	t.Run("cost", func(t *testing.T) {
		t.Parallel()
		// A voice note costs its recognition and the synthesis of its
		// answer; a ceiling of a millionth of a dollar stops the next one.
		h := newHarness(t, reply.Options{Mode: reply.Audio, Guard: reply.Guard{DailyCostUSD: 1e-6}})
		h.handle(t, h.voiceJob(t, "voice_note.ogg"))
		h.handle(t, textJob(t, "wamid.2", "second"))
		h.wantSent(t, "audio(voice=true)", "text:"+reply.DefaultNoticeCeiling)
	})
}

// TestNumbers gives one number its own mode and prompt: its messages are
// answered so, the other number's as the deployment's defaults, and one
// sender has a conversation with each.
func TestNumbers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{Mode: reply.Audio})
	cfg := h.llm.Config()
	cfg.SystemPrompt = "Eres un asistente que responde en español."
	spanish, err := gemini.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.deps.Numbers = map[string]reply.Number{"222": {Mode: reply.Text, Responder: spanish}}
	h.p = reply.New(h.deps, h.opts)

	j := textJob(t, "wamid.1", "hello")
	es := textJob(t, "wamid.2", "hola")
	es.PhoneNumberID = "222"
	h.handle(t, j)
	h.handle(t, es)
	msgs := h.graph.Messages()
	if len(msgs) != 2 || msgs[0].Type != "audio" || msgs[1].Type != "text" || msgs[1].PhoneNumberID != "222" {
		t.Fatalf("sent %+v, want a voice note, then text from 222", msgs)
	}
	reqs := h.llm.Requests()
	if got := reqs[0].SystemInstruction.Parts[0].Text; got != gemini.DefaultSystemPrompt {
		t.Errorf("first number's system prompt = %q, want the default", got)
	}
	if got := reqs[1].SystemInstruction.Parts[0].Text; got != cfg.SystemPrompt {
		t.Errorf("second number's system prompt = %q, want its own", got)
	}
	for _, num := range []string{j.PhoneNumberID, "222"} {
		if hist, _ := h.store.History(context.Background(), reply.ConversationKey(num, j.Sender), 10); len(hist) != 2 {
			t.Errorf("conversation with %s = %d turns, want its own 2", num, len(hist))
		}
	}
	// A third message to the second number carries only that conversation.
	es3 := textJob(t, "wamid.3", "¿y ahora?")
	es3.PhoneNumberID = "222"
	h.handle(t, es3)
	if last := h.llm.Requests()[2]; len(last.Contents) != 3 || !strings.Contains(fmt.Sprint(last.Contents[0].Parts[0].Text), "hola") {
		t.Errorf("third request's contents = %d, first %q; want the 2 turns with 222 and the message", len(last.Contents), last.Contents[0].Parts[0].Text)
	}
}

// TestNoticeAfterARetry is a message whose first attempt was judged over
// the limit and died before sending: the retry sends the window's notice,
// which no other message of the window gets.
func TestNoticeAfterARetry(t *testing.T) {
	t.Parallel()
	limits := store.Limits{PerMinute: 1}
	h := guarded(t, reply.Guard{Limits: limits})
	h.handle(t, textJob(t, "wamid.0", "first"))
	j := textJob(t, "wamid.1", "second")
	if v, err := h.store.Gate(t.Context(), j.Sender, j.Message.ID, store.Inbound{Limits: limits}); err != nil || v != store.OverMinute {
		t.Fatalf("Gate = %v, %v; want OverMinute", v, err)
	}
	h.handle(t, textJob(t, "wamid.2", "third"))
	h.handle(t, j)
	h.wantSent(t, "text:answer to first", "text:"+reply.DefaultNoticeMinute)
	if id, _, _ := mustTags(t).Open(h.graph.Messages()[1].CallbackData); id != "wamid.1" {
		t.Errorf("the notice went to the reply to %q, want wamid.1", id)
	}
}

// TestRetryOfABegunAnswer: an attempt sent part of its answer and died;
// meanwhile the number's ceiling was reached or the sender's limit tripped.
// The retry finishes the answer, in the form it began, and sends no notice
// beside it: the first attempt's guard admitted the message.
func TestRetryOfABegunAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		mode  reply.Mode
		guard reply.Guard
		// meanwhile happens between the attempts.
		meanwhile func(t *testing.T, h *harness, j queue.Job)
		want      []string // what the retry sends
	}{
		{"ceiling reached", reply.Both, reply.Guard{DailyMessages: 1},
			func(t *testing.T, h *harness, j queue.Job) {
				if err := h.store.AddSpend(t.Context(), j.PhoneNumberID, "wamid.other", store.Spend{Messages: 1}); err != nil {
					t.Fatal(err)
				}
			},
			[]string{"audio(voice=true)"}},
		{"sender over the limit in a new minute", reply.Both, reply.Guard{Limits: store.Limits{PerMinute: 1}},
			func(t *testing.T, h *harness, j queue.Job) {
				h.handle(t, textJob(t, "wamid.next", "next question"))
			},
			// The next message's answer, then the rest of this one's.
			[]string{"text:answer to next question", "audio(voice=true)", "audio(voice=true)"}},
		{"begun as text in audio mode", reply.Audio, reply.Guard{},
			func(*testing.T, *harness, queue.Job) {},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{now: time.Now()}
			h := newHarnessWithStore(t, reply.Options{Mode: tt.mode, Guard: tt.guard}, store.NewMemory(store.Options{Now: c.Now}))
			h.llm.SetEcho(func(r geminitest.Request) string { return "answer to " + r.UserText() })
			j := job(t, "text.json")
			h.store.Accept(t.Context(), []string{j.Message.ID})
			// The first attempt was admitted, and counted in its minute.
			if v, err := h.store.Gate(t.Context(), j.Sender, j.Message.ID, store.Inbound{Limits: tt.guard.Limits}); err != nil || v != store.Serve {
				t.Fatalf("Gate = %v, %v; want Serve", v, err)
			}
			h.crashed(t, c, j, nil, "text.1")
			tt.meanwhile(t, h, j)

			h.handle(t, j)
			h.wantSent(t, tt.want...)
			if m := h.marker(t, j.Message.ID); slices.Contains(m.Sent, "notice") {
				t.Errorf("marker has sent %q, want no notice", m.Sent)
			}
		})
	}
}

// TestRetryCountsOnce: an attempt answers and counts the reply toward the
// number's day, then fails to complete the message; the retry, which finds
// the answer sent, does not count it again.
func TestRetryCountsOnce(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Now()}
	st := &incomplete{Store: store.NewMemory(store.Options{Now: c.Now})}
	h := newHarnessWithStore(t, reply.Options{Mode: reply.Text, Guard: reply.Guard{DailyMessages: 10}}, st)
	j := job(t, "text.json")
	h.store.Accept(t.Context(), []string{j.Message.ID})
	st.fail.Store(true)
	if err := h.p.Handle(t.Context(), j); err == nil {
		t.Fatal("Handle = nil with Complete failing, want an error so the message is tried again")
	}
	st.fail.Store(false)
	c.Add(2 * time.Minute) // the claim's lease lapses
	h.handle(t, j)
	h.wantSent(t, "text:You said: What's the weather like in Lisbon tomorrow?")
	if sp, err := h.store.Spending(t.Context(), j.PhoneNumberID); err != nil || sp.Messages != 1 {
		t.Errorf("Spending = %+v, %v; want the message counted once", sp, err)
	}
}

// incomplete is a store whose Complete fails while fail is set.
type incomplete struct {
	store.Store
	fail atomic.Bool
}

func (s *incomplete) Complete(ctx context.Context, id string, token int) error {
	if s.fail.Load() {
		return errors.New("complete refused")
	}
	return s.Store.Complete(ctx, id, token)
}
