package reply_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/internal/logtest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/media"
	"github.com/patternai/whatsapp-node/media/mediatest"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
	"github.com/patternai/whatsapp-node/store"
	"github.com/patternai/whatsapp-node/store/storetest"
)

// harness is the pipeline on its real clients, each talking to a local
// server that speaks its service's protocol.
type harness struct {
	graph  *graphapitest.Server
	speech *speechtest.Server
	llm    *geminitest.Server
	store  store.Store
	stager *media.Bucket
	logs   *logtest.Buffer
	p      *reply.Pipeline
	deps   reply.Deps // what p was built with
	opts   reply.Options
}

func newHarness(t *testing.T, opts reply.Options) *harness {
	t.Helper()
	return newHarnessWithStore(t, opts, store.NewMemory(store.Options{}))
}

func newHarnessWithStore(t *testing.T, opts reply.Options, st store.Store) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{
		graph:  graphapitest.NewServer(t),
		speech: speechtest.NewServer(t),
		llm:    geminitest.NewServer(t),
		store:  st,
		logs:   &logtest.Buffer{},
	}
	h.stager, _ = mediatest.NewBucket(t)
	sp, err := speech.New(ctx, speech.Config{Project: "test-project", ClientOptions: h.speech.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	llm, err := gemini.New(ctx, h.llm.Config())
	if err != nil {
		t.Fatal(err)
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = time.Millisecond
	}
	h.deps, h.opts = reply.Deps{
		Messenger: graphapi.New(graphapi.Config{
			BaseURL: h.graph.URL, Token: graphapitest.Token, BaseBackoff: time.Millisecond,
			Logger: slog.New(slog.DiscardHandler),
		}),
		Transcriber: sp,
		Synthesizer: sp,
		Responder:   llm,
		Stager:      h.stager,
		Store:       st,
		Logger:      logging.New(h.logs, slog.LevelDebug),
		IDs:         logging.NewIDs("test-app-secret"),
		Tags:        mustTags(t),
	}, opts
	h.p = reply.New(h.deps, h.opts)
	return h
}

// mustTags is the sealer of the tests' app secret, which the harness's
// pipeline tags its messages with.
func mustTags(tb testing.TB) *store.Tags {
	tb.Helper()
	tags, err := store.NewTags("test-app-secret")
	if err != nil {
		tb.Fatal(err)
	}
	return tags
}

// job reads a webhook fixture holding one message and makes the job the
// webhook would have queued for it.
func job(t *testing.T, fixture string) queue.Job {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "webhooks", fixture))
	if err != nil {
		t.Fatal(err)
	}
	p, err := graphapi.ParsePayload(b)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Entry[0].Changes[0].Value
	m := v.Messages[0]
	return queue.Job{Message: *m, PhoneNumberID: v.Metadata.PhoneNumberID, Sender: v.SenderKey(m),
		Trace: "projects/p/traces/abc"}
}

// textJob is a text message with its own wamid.
func textJob(t *testing.T, id, body string) queue.Job {
	t.Helper()
	j := job(t, "text.json")
	j.Message.ID = id
	j.Message.Text = &graphapi.Text{Body: body}
	return j
}

// voiceJob is a voice note of the given fixture file, added to the Graph fake.
func (h *harness) voiceJob(t *testing.T, file string) queue.Job {
	t.Helper()
	audio, err := os.ReadFile(filepath.Join("..", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	j := job(t, "audio_voice.json")
	j.Message.Audio.ID = h.graph.AddMedia(audio, "audio/ogg; codecs=opus")
	j.Message.Audio.SHA256 = ""
	return j
}

func (h *harness) handle(t *testing.T, j queue.Job) {
	t.Helper()
	if _, err := h.store.Accept(context.Background(), []string{j.Message.ID}); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Handle(context.Background(), j); err != nil {
		t.Fatalf("Handle(%s) = %v\nlogs:\n%s", j.Message.ID, err, h.logs)
	}
}

// sent lists what reached the user, as "text:<body>" and "audio" entries.
func (h *harness) sent() []string {
	var out []string
	for _, m := range h.graph.Messages() {
		switch m.Type {
		case "text":
			out = append(out, "text:"+m.Text)
		case "audio":
			out = append(out, fmt.Sprintf("audio(voice=%v)", m.Voice))
		}
	}
	return out
}

func (h *harness) wantSent(t *testing.T, want ...string) {
	t.Helper()
	if got := h.sent(); strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("sent %q, want %q\nlogs:\n%s", got, want, h.logs)
	}
}

// wantSentInAnyOrder is wantSent for parts that leave side by side (the text
// and the voice note of both mode), in whichever order they happen to.
func (h *harness) wantSentInAnyOrder(t *testing.T, want ...string) {
	t.Helper()
	if got := h.sent(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("sent %q, want %q in any order\nlogs:\n%s", got, want, h.logs)
	}
}

// textParts is what reaching the user as text takes body: "text:<piece>"
// for each message Graph takes of it.
func textParts(body string) []string {
	var parts []string
	for _, piece := range graphapi.SplitText(body) {
		parts = append(parts, "text:"+piece)
	}
	return parts
}

// twoMessages is an answer about topic too long for one text message: it
// leaves as two.
func twoMessages(topic string) string {
	return strings.TrimSpace(strings.Repeat(topic+" will be sunny tomorrow. ", 150))
}

func (h *harness) marker(t *testing.T, id string) store.Marker {
	t.Helper()
	// A claim of a replied message reports it without changing it.
	m, err := h.store.Claim(context.Background(), id, time.Minute)
	if !errors.Is(err, store.ErrReplied) {
		t.Fatalf("message %s was not completed: Claim = %+v, %v; want ErrReplied", id, m, err)
	}
	return m
}

func TestTextFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{})
	h.llm.Enqueue(geminitest.Answer{Text: "Tomorrow Lisbon will be sunny, around 22 degrees."})
	j := job(t, "text.json")
	h.handle(t, j)

	h.wantSent(t, "audio(voice=true)")
	if rr := h.graph.ReadReceipts(); len(rr) != 1 || rr[0].MessageID != j.Message.ID || !rr[0].Typing {
		t.Errorf("read receipts = %+v, want one with typing for %s", rr, j.Message.ID)
	}
	reqs := h.llm.Requests()
	if len(reqs) != 1 || reqs[0].UserText() != "What's the weather like in Lisbon tomorrow?" {
		t.Fatalf("model asked %+v", reqs)
	}
	tts := h.speech.SynthesizeRequests()
	if len(tts) != 1 || tts[0].GetInput().GetText() != "Tomorrow Lisbon will be sunny, around 22 degrees." {
		t.Errorf("synthesized %v", tts)
	}
	uploads := h.graph.Uploads()
	msgs := h.graph.Messages()
	if len(uploads) != 1 || uploads[0].MIMEType != "audio/ogg" || !bytes.HasPrefix(uploads[0].Data, []byte("OggS")) {
		t.Fatalf("uploads = %+v", uploads)
	}
	if msgs[0].AudioID != uploads[0].ID || msgs[0].To != "16505551234" || msgs[0].PhoneNumberID != "106540352242922" {
		t.Errorf("voice note %+v does not carry the upload %s from the receiving number", msgs[0], uploads[0].ID)
	}
	h.marker(t, j.Message.ID)
	hist, _ := h.store.History(context.Background(), reply.ConversationKey(j.PhoneNumberID, j.Sender), 10)
	if len(hist) != 2 || hist[0].Role != "user" || hist[1].Role != "model" || hist[1].Text != "Tomorrow Lisbon will be sunny, around 22 degrees." {
		t.Errorf("history = %+v", hist)
	}
	for _, want := range []string{`"message":"replied"`, `"logging.googleapis.com/trace":"projects/p/traces/abc"`, `"llm_ms"`, `"tts_ms"`, `"upload_ms"`, `"send_audio_ms"`, `"model":"` + gemini.DefaultModel} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("reply log lacks %s:\n%s", want, h.logs)
		}
	}
	if strings.Contains(h.logs.String(), "Lisbon") {
		t.Errorf("logs contain message text:\n%s", h.logs)
	}
}

func TestVoiceFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{})
	h.speech.SetTranscript("Hola, ¿puedes reservar una mesa para dos?", "es-ES")
	j := h.voiceJob(t, "voice_note.ogg")
	h.handle(t, j)

	h.wantSent(t, "audio(voice=true)")
	rec := h.speech.RecognizeRequests()
	voice, _ := os.ReadFile(filepath.Join("..", "testdata", "voice_note.ogg"))
	if len(rec) != 1 || !bytes.Equal(rec[0].GetContent(), voice) {
		t.Fatalf("Recognize got %d requests, want 1 with the voice note's bytes", len(rec))
	}
	staged, err := h.stager.Get(context.Background(), "inbound/"+objectName(j.Message.ID)+".ogg")
	if err != nil || !bytes.Equal(staged, voice) {
		t.Errorf("voice note not staged: %v", err)
	}
	reqs := h.llm.Requests()
	if len(reqs) != 1 || reqs[0].UserText() != "Hola, ¿puedes reservar una mesa para dos?" {
		t.Fatalf("model asked %+v", reqs)
	}
	tts := h.speech.SynthesizeRequests()
	if len(tts) != 1 || !strings.HasPrefix(tts[0].GetVoice().GetLanguageCode(), "es") {
		t.Errorf("reply voice %v, want the user's language es-ES", tts[0].GetVoice())
	}
	for _, want := range []string{`"download_ms"`, `"stt_ms"`, `"audio_in_seconds"`, `"audio_out_seconds"`} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("reply log lacks %s:\n%s", want, h.logs)
		}
	}
}

func TestLongVoiceNoteTakesBatchPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{})
	j := h.voiceJob(t, "voice_note_long.ogg")
	h.handle(t, j)
	if n := len(h.speech.RecognizeRequests()); n != 0 {
		t.Errorf("Recognize called %d times for an 84 s note", n)
	}
	batch := h.speech.BatchRecognizeRequests()
	want := "gs://" + mediatest.BucketName + "/" // the staged object
	if len(batch) != 1 || len(batch[0].GetFiles()) != 1 || !strings.HasPrefix(batch[0].GetFiles()[0].GetUri(), want) {
		t.Fatalf("BatchRecognize = %v, want one file under %s", batch, want)
	}
	h.wantSent(t, "audio(voice=true)")
}

func TestHistoryCarriedIntoNextTurn(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		testHistoryCarried(t, store.NewMemory(store.Options{}))
	})
	t.Run("firestore", func(t *testing.T) {
		t.Parallel()
		testHistoryCarried(t, storetest.Firestore(t, store.Options{}))
	})
}

func testHistoryCarried(t *testing.T, st store.Store) {
	h := newHarnessWithStore(t, reply.Options{Mode: reply.Text}, st)
	// Users and wamids are fresh per run: the emulator is shared.
	sender := fmt.Sprint("1650555", time.Now().UnixNano()%1e6)
	h.llm.Enqueue(geminitest.Answer{Text: "Nice to meet you, Ana."}, geminitest.Answer{Text: "Your name is Ana."})
	first, second := textJob(t, sender+".one", "My name is Ana."), textJob(t, sender+".two", "What is my name?")
	first.Sender, second.Sender = sender, sender
	h.handle(t, first)
	h.handle(t, second)
	reqs := h.llm.Requests()
	if len(reqs) != 2 {
		t.Fatalf("model asked %d times, want 2", len(reqs))
	}
	want := "user:My name is Ana. | model:Nice to meet you, Ana. | user:What is my name?"
	if got := contents(reqs[1]); got != want {
		t.Errorf("second request contents = %q, want %q", got, want)
	}
	h.wantSent(t, "text:Nice to meet you, Ana.", "text:Your name is Ana.")
}

func TestSecondAttemptSendsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{})
	j := job(t, "text.json")
	h.handle(t, j)
	if err := h.p.Handle(context.Background(), j); err != nil {
		t.Fatalf("second Handle = %v", err)
	}
	h.wantSent(t, "audio(voice=true)")
	if n := len(h.llm.Requests()); n != 1 {
		t.Errorf("model asked %d times, want 1", n)
	}
}

func TestConcurrentAttemptsReplyOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{})
	j := job(t, "text.json")
	h.store.Accept(context.Background(), []string{j.Message.ID})
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { h.p.Handle(context.Background(), j) })
	}
	wg.Wait()
	h.wantSent(t, "audio(voice=true)")
}

func TestReplyModes(t *testing.T) {
	t.Parallel()
	const answer = "Sure, a table for two at seven."
	tests := []struct {
		mode  reply.Mode
		voice bool
		want  []string
	}{
		{reply.Audio, false, []string{"audio(voice=true)"}},
		{reply.Audio, true, []string{"audio(voice=true)"}},
		{reply.Text, false, []string{"text:" + answer}},
		{reply.Text, true, []string{"text:" + answer}},
		{reply.Both, false, []string{"text:" + answer, "audio(voice=true)"}},
		{reply.Both, true, []string{"text:" + answer, "audio(voice=true)"}},
		{reply.Mirror, false, []string{"text:" + answer}},
		{reply.Mirror, true, []string{"audio(voice=true)"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/voice=%v", tt.mode, tt.voice), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{Mode: tt.mode})
			h.llm.Enqueue(geminitest.Answer{Text: answer})
			j := job(t, "text.json")
			if tt.voice {
				j = h.voiceJob(t, "voice_note.ogg")
			}
			h.handle(t, j)
			if tt.mode == reply.Both {
				// The text and the voice note leave side by side: the text
				// first as a rule, the voice note when a busy machine
				// synthesizes it sooner.
				h.wantSentInAnyOrder(t, tt.want...)
			} else {
				h.wantSent(t, tt.want...)
			}
			if tts := len(h.speech.SynthesizeRequests()); (tts > 0) != strings.HasPrefix(tt.want[len(tt.want)-1], "audio") {
				t.Errorf("%d synthesis requests for %v", tts, tt.want)
			}
		})
	}
}

func TestOtherMessageTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		want    []string
		llm     int
	}{
		{"reaction.json", nil, 0},
		{"reaction_removed.json", nil, 0},
		{"sticker.json", nil, 0},
		{"location.json", []string{"text:" + reply.DefaultUnsupported}, 0},
		{"contacts.json", []string{"text:" + reply.DefaultUnsupported}, 0},
		{"unsupported.json", []string{"text:" + reply.DefaultUnsupported}, 0},
		{"interactive_button_reply.json", []string{"text:You said: Yes, book it"}, 1},
		{"interactive_list_reply.json", []string{"text:You said: 7 pm Tomorrow, table for two"}, 1},
		{"button.json", []string{"text:You said: Stop promotions"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{Mode: reply.Text})
			h.handle(t, job(t, tt.fixture))
			h.wantSent(t, tt.want...)
			if n := len(h.llm.Requests()); n != tt.llm {
				t.Errorf("model asked %d times, want %d", n, tt.llm)
			}
		})
	}
}

// TestLongNotice checks that a notice too long for one message reaches the
// user whole, in the messages Graph takes.
func TestLongNotice(t *testing.T) {
	t.Parallel()
	notice := strings.Repeat("I read only text and voice notes. ", 150)
	h := newHarness(t, reply.Options{Mode: reply.Text, Unsupported: notice})
	h.handle(t, job(t, "location.json"))
	want := textParts(notice)
	if len(want) < 2 {
		t.Fatalf("the notice fits one message (%d characters); the test needs a longer one", len(notice))
	}
	h.wantSent(t, want...)
}

func TestAttachmentsGoToModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture, mime, caption string
		data                   []byte
	}{
		{"image.json", "image/jpeg", "Is this plant healthy?", []byte("\xff\xd8\xff\xe0 a small jpeg")},
		{"document.json", "application/pdf", "Summarise this please", []byte("%PDF-1.7 a small pdf")},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{Mode: reply.Text})
			j := job(t, tt.fixture)
			m := j.Message.Image
			if m == nil {
				m = j.Message.Document
			}
			m.ID, m.SHA256 = h.graph.AddMedia(tt.data, tt.mime), ""
			h.llm.Enqueue(geminitest.Answer{Text: "Here is what I see."})
			h.handle(t, j)
			reqs := h.llm.Requests()
			if len(reqs) != 1 {
				t.Fatalf("model asked %d times", len(reqs))
			}
			var mime, text string
			for _, p := range reqs[0].Contents[len(reqs[0].Contents)-1].Parts {
				if p.InlineData != nil && bytes.Equal(p.InlineData.Data, tt.data) {
					mime = p.InlineData.MIMEType
				}
				text += p.Text
			}
			if mime != tt.mime || !strings.Contains(text, tt.caption) {
				t.Errorf("model got a %q file and text %q, want the %s and its caption", mime, text, tt.mime)
			}
			h.wantSent(t, "text:Here is what I see.")
		})
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	fallback := "text:" + reply.DefaultFallback
	answer := "text:You said: What's the weather like in Lisbon tomorrow?"
	tests := []struct {
		name  string
		voice bool
		setup func(h *harness)
		want  []string
	}{
		{"llm 500 for good", false, func(h *harness) { h.llm.FailNext(10, http.StatusInternalServerError) }, []string{fallback}},
		{"llm 400", false, func(h *harness) { h.llm.FailNext(1, http.StatusBadRequest) }, []string{fallback}},
		{"llm blocked", false, func(h *harness) { h.llm.Enqueue(geminitest.Answer{BlockReason: "SAFETY"}) }, []string{fallback}},
		{"llm 503 then success", false, func(h *harness) { h.llm.FailNext(2, http.StatusServiceUnavailable) }, []string{"audio(voice=true)"}},
		{"stt error", true, func(h *harness) { h.speech.FailNext(speechtest.Recognize, 1, codes.InvalidArgument) }, []string{fallback}},
		{"stt unavailable then success", true, func(h *harness) { h.speech.FailNext(speechtest.Recognize, 1, codes.Unavailable) }, []string{"audio(voice=true)"}},
		{"no speech", true, func(h *harness) { h.speech.SetTranscript("", "") }, []string{fallback}},
		{"voice note download 131052", true, func(h *harness) {
			h.graph.FailNext(graphapitest.KindMediaGet, 1, 400, &graphapi.APIError{Code: graphapi.CodeMediaDownload, Message: "Media download error"})
		}, []string{fallback}},
		{"tts error", false, func(h *harness) { h.speech.FailNext(speechtest.SynthesizeSpeech, 1, codes.InvalidArgument) }, []string{answer}},
		{"upload 131053", false, func(h *harness) {
			h.graph.FailNext(graphapitest.KindMediaUpload, 1, 400, &graphapi.APIError{Code: graphapi.CodeMediaUpload, Message: "Media upload error"})
		}, []string{answer}},
		{"upload 503 then success", false, func(h *harness) { h.graph.FailNext(graphapitest.KindMediaUpload, 1, 503, nil) }, []string{"audio(voice=true)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, reply.Options{})
			j := job(t, "text.json")
			if tt.voice {
				j = h.voiceJob(t, "voice_note.ogg")
			}
			tt.setup(h)
			h.handle(t, j)
			h.wantSent(t, tt.want...)
			h.marker(t, j.Message.ID)
		})
	}
}

// TestModelRetries: a failure of the model is retried within the attempt
// with the pipeline's policy, the same for an answer spoken while the model
// writes (audio) as for one only read (text): a transient failure, before
// the first words or mid-stream, is asked again and answered; a permanent
// one, or a transient one past the retries, gets the fallback.
func TestModelRetries(t *testing.T) {
	t.Parallel()
	const answer = "Sure, a table for two at seven."
	tests := []struct {
		name  string
		setup func(h *harness)
		asked int  // requests the model gets
		fails bool // the user gets the fallback rather than the answer
	}{
		{"503 then success", func(h *harness) {
			h.llm.FailNext(1, http.StatusServiceUnavailable)
			h.llm.Enqueue(geminitest.Answer{Text: answer})
		}, 2, false},
		{"cut mid-stream then success", func(h *harness) {
			h.llm.Enqueue(geminitest.Answer{Text: longAnswer, CutAfter: 2}, geminitest.Answer{Text: answer})
		}, 2, false},
		{"400 is not retried", func(h *harness) { h.llm.FailNext(1, http.StatusBadRequest) }, 1, true},
		{"503 past the retries", func(h *harness) { h.llm.FailNext(10, http.StatusServiceUnavailable) }, 4, true},
	}
	for _, mode := range []reply.Mode{reply.Audio, reply.Text} {
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, reply.Options{Mode: mode})
				tt.setup(h)
				j := textJob(t, "wamid.retries", "Book a table, please.")
				h.handle(t, j)
				if n := len(h.llm.Requests()); n != tt.asked {
					t.Errorf("model asked %d times, want %d", n, tt.asked)
				}
				switch {
				case tt.fails:
					h.wantSent(t, "text:"+reply.DefaultFallback)
				case mode == reply.Audio:
					h.wantSent(t, "audio(voice=true)")
					// The voice note speaks the answer that came whole (the
					// broken stream's pieces, if any, are left out: see
					// TestModelFailingMidStream).
					if spoken := h.spokenTexts(); !slices.Contains(spoken, answer) {
						t.Errorf("spoke %q, want the answer", spoken)
					}
				default:
					h.wantSent(t, "text:"+answer)
					if n := len(h.speech.SynthesizeRequests()); n != 0 {
						t.Errorf("%d Text-to-Speech calls for a text reply, want 0", n)
					}
				}
				h.marker(t, j.Message.ID)
			})
		}
	}
}

func TestSendOutsideWindowGivesUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{Mode: reply.Text})
	outside := &graphapi.APIError{Code: graphapi.CodeOutsideWindow, Message: "Re-engagement message"}
	h.graph.FailNext(graphapitest.KindMessages, 2, 400, outside) // the answer, then the fallback
	j := job(t, "text.json")
	h.handle(t, j)
	h.wantSent(t)
	if n := h.graph.Count(graphapitest.KindMessages); n != 2 {
		t.Errorf("%d send attempts, want 2 (answer, fallback) and no retries", n)
	}
	h.marker(t, j.Message.ID)
	if !strings.Contains(h.logs.String(), "user unreachable") {
		t.Errorf("no error logged for the unreachable user:\n%s", h.logs)
	}
}

func TestFallbackUnavailableIsRetriedLater(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{Mode: reply.Text})
	h.llm.FailNext(100, http.StatusBadRequest)
	h.graph.FailNext(graphapitest.KindMessages, 100, 503, &graphapi.APIError{Code: graphapi.CodeAPIService, Message: "Service temporarily unavailable"})
	j := job(t, "text.json")
	h.store.Accept(context.Background(), []string{j.Message.ID})
	if err := h.p.Handle(context.Background(), j); err == nil {
		t.Fatal("Handle = nil with Meta down, want an error so the queue retries")
	}
	// The claim was handed back: the next attempt may start at once.
	if _, err := h.store.Claim(context.Background(), j.Message.ID, time.Minute); err != nil {
		t.Errorf("Claim after a failed attempt = %v, want the message free", err)
	}
}

// clock is a settable time for the memory store, so a lease can lapse
// without the test waiting.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// died leaves the state of an attempt that claimed the message, did what
// during does with the claim's fencing token, and died; then it lets the
// attempt's lease lapse.
func (h *harness) died(t *testing.T, c *clock, j queue.Job, during func(token int)) {
	t.Helper()
	m, err := h.store.Claim(context.Background(), j.Message.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	during(m.Attempts)
	c.Add(2 * time.Minute)
}

// crashed leaves the state of an attempt that staged its answer (and, when
// audio is given, its voice note), sent the parts named, and died; then it
// lets the attempt's lease lapse.
func (h *harness) crashed(t *testing.T, c *clock, j queue.Job, audio []byte, parts ...string) {
	t.Helper()
	h.died(t, c, j, func(int) {
		ctx := context.Background()
		answer := []byte(`{"question":"What's the weather like in Lisbon tomorrow?","answer":"Staged answer."}`)
		if err := h.stager.Put(ctx, "replies/"+objectName(j.Message.ID)+".json", answer, "application/json"); err != nil {
			t.Fatal(err)
		}
		if audio != nil {
			if err := h.stager.Put(ctx, "replies/"+objectName(j.Message.ID)+".ogg", audio, "audio/ogg"); err != nil {
				t.Fatal(err)
			}
		}
		h.markSent(t, j.Message.ID, parts...)
	})
}

// markSent records the parts named as sent, as their status webhooks do.
func (h *harness) markSent(t *testing.T, id string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if err := h.store.MarkSent(context.Background(), id, p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRetryResumesAfterSentParts(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Now()}
	h := newHarnessWithStore(t, reply.Options{Mode: reply.Both}, store.NewMemory(store.Options{Now: c.Now}))
	j := job(t, "text.json")
	h.store.Accept(context.Background(), []string{j.Message.ID})
	h.crashed(t, c, j, nil, "text.1")

	h.handle(t, j)
	h.wantSent(t, "audio(voice=true)") // the text went out before the crash
	if n := len(h.llm.Requests()); n != 0 {
		t.Errorf("model asked %d times, want 0: the staged answer stands", n)
	}
	if tts := h.speech.SynthesizeRequests(); len(tts) != 1 || tts[0].GetInput().GetText() != "Staged answer." {
		t.Errorf("synthesized %v, want the staged answer", tts)
	}
}

func TestRetryReusesStagedVoiceNote(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Now()}
	h := newHarnessWithStore(t, reply.Options{}, store.NewMemory(store.Options{Now: c.Now}))
	j := job(t, "text.json")
	h.store.Accept(context.Background(), []string{j.Message.ID})
	staged := speechtest.TTSAudio()[0]
	h.crashed(t, c, j, staged)

	h.handle(t, j)
	h.wantSent(t, "audio(voice=true)")
	if n := len(h.speech.SynthesizeRequests()); n != 0 {
		t.Errorf("synthesized %d times, want 0: the staged voice note stands", n)
	}
	if up := h.graph.Uploads(); len(up) != 1 || !bytes.Equal(up[0].Data, staged) {
		t.Errorf("uploaded %d files, want the staged voice note", len(up))
	}
}

// objectName is the pipeline's staging name for a wamid.
var objectName = strings.NewReplacer("+", "-", "/", "_", "=", "").Replace

// TestNoFallbackAfterAnAnswer: in both mode one of the two sends is refused
// (the text, as a rule; the voice note when a busy machine synthesizes it
// first), but the other carried the answer, so no fallback follows it.
func TestNoFallbackAfterAnAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{Mode: reply.Both})
	h.graph.FailNext(graphapitest.KindMessages, 1, 400, &graphapi.APIError{Code: graphapi.CodeInvalidParameter, Message: "Invalid parameter"})
	j := job(t, "text.json")
	h.handle(t, j)
	if got := h.sent(); len(got) != 1 || got[0] == "text:"+reply.DefaultFallback {
		t.Errorf("sent %q, want the voice note or the text alone\nlogs:\n%s", got, h.logs)
	}
	h.marker(t, j.Message.ID)
}

// TestNoFallbackAfterASendInFlight: the answer's send is still in flight when
// the attempt's budget runs out. Whether Meta took it is unknown, so no
// fallback may follow it; the message is handed back, and the next attempt,
// seeing the send confirmed by its status, sends nothing more.
func TestNoFallbackAfterASendInFlight(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{Mode: reply.Text, Budget: 2 * time.Second, ConfirmWindow: time.Hour})
	h.graph.SetFaults(func(k graphapitest.Kind) graphapitest.Fault {
		if k == graphapitest.KindMessages {
			return graphapitest.Fault{Delay: 3 * time.Second}
		}
		return graphapitest.Fault{}
	})
	j := job(t, "text.json")
	h.store.Accept(context.Background(), []string{j.Message.ID})
	if err := h.p.Handle(context.Background(), j); err == nil {
		t.Fatal("Handle = nil with the send's outcome unknown, want an error so the message is tried again")
	}
	time.Sleep(2 * time.Second) // the slow send arrives at Meta
	h.graph.SetFaults(nil)
	msgs := h.graph.Messages()
	if len(msgs) != 1 || msgs[0].Text == reply.DefaultFallback {
		t.Fatalf("sent %v, want the answer alone", h.sent())
	}
	// Meta's status for it echoes the tag; the webhook confirms the part.
	id, part, ok := mustTags(t).Open(msgs[0].CallbackData)
	if !ok || id != j.Message.ID {
		t.Fatalf("the answer's tag %q does not open to this message", msgs[0].CallbackData)
	}
	if err := h.store.Confirm(context.Background(), id, part); err != nil {
		t.Fatal(err)
	}
	h.handle(t, j)
	if len(h.graph.Messages()) != 1 {
		t.Errorf("sent %v after the retry, want the answer alone", h.sent())
	}
	h.marker(t, j.Message.ID)
}

// TestUncertainSendIsRepeatedOnlyAfterTheWindow: a send's answer is lost and
// no status comes; the part is sent again only once the confirmation window
// has passed, and never beside a fallback.
func TestUncertainSendIsRepeatedOnlyAfterTheWindow(t *testing.T) {
	t.Parallel()
	const window = 1500 * time.Millisecond
	h := newHarness(t, reply.Options{Mode: reply.Text, ConfirmWindow: window})
	var lost atomic.Bool
	h.graph.SetFaults(func(k graphapitest.Kind) graphapitest.Fault {
		if k == graphapitest.KindMessages && lost.CompareAndSwap(false, true) {
			return graphapitest.Fault{Lose: true}
		}
		return graphapitest.Fault{}
	})
	j := job(t, "text.json")
	start := time.Now()
	h.handle(t, j)
	if took := time.Since(start); took < window {
		t.Errorf("the send was repeated after %v, before the %v window", took, window)
	}
	msgs := h.graph.Messages()
	if len(msgs) != 2 || msgs[0].Text != msgs[1].Text || msgs[0].Text == reply.DefaultFallback {
		t.Errorf("sent %v, want the answer twice (lost, then repeated) and no fallback", h.sent())
	}
}

// TestLastAttemptSettlesAnUncertainSend: a message whose attempts ran out
// while a send of its answer was uncertain (the process died after recording
// the send, before Meta took it) is not given up on in silence: the send is
// repeated once no status confirmed it, and the user gets the answer once.
func TestLastAttemptSettlesAnUncertainSend(t *testing.T) {
	t.Parallel()
	opts := reply.Options{Mode: reply.Text, MaxAttempts: 2, ConfirmWindow: 100 * time.Millisecond}
	h := newHarness(t, opts)
	j := job(t, "text.json")
	ctx := context.Background()
	h.store.Accept(ctx, []string{j.Message.ID})
	const lease = 10 * time.Millisecond
	for range opts.MaxAttempts {
		m, err := h.store.Claim(ctx, j.Message.ID, lease)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.store.StartSend(ctx, j.Message.ID, m.Attempts, "text.1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * lease) // the attempt died; its lease lapses
	}
	h.handle(t, j)
	h.wantSent(t, "text:You said: What's the weather like in Lisbon tomorrow?")
	h.marker(t, j.Message.ID)
}

// TestFallbackAfterAnUnconfirmedSend: an earlier attempt died after recording
// the answer's send, and now the model fails for good. Once the window has
// passed with no status, the send is taken as never made, and the fallback
// goes out instead of nothing at all.
func TestFallbackAfterAnUnconfirmedSend(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reply.Options{Mode: reply.Text, ConfirmWindow: 100 * time.Millisecond})
	j := job(t, "text.json")
	ctx := context.Background()
	h.store.Accept(ctx, []string{j.Message.ID})
	m, err := h.store.Claim(ctx, j.Message.ID, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.StartSend(ctx, j.Message.ID, m.Attempts, "text.1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	h.llm.FailNext(100, http.StatusBadRequest)
	h.handle(t, j)
	h.wantSent(t, "text:"+reply.DefaultFallback)
	h.marker(t, j.Message.ID)
}

// TestAnswerThatWentOutIsRecorded: whenever the user saw the answer, whole or
// in part, the next message from them is answered with that exchange in the
// model's conversation, however the message ended: a retry after a crash
// that finds every part sent, or attempts or the budget that ran out after a
// part went out (the answer stands, without a fallback).
func TestAnswerThatWentOutIsRecorded(t *testing.T) {
	t.Parallel()
	const question = "What's the weather like in Lisbon tomorrow?"
	long := twoMessages("Lisbon")
	tests := []struct {
		name   string
		opts   reply.Options
		setup  func(t *testing.T, h *harness, c *clock, j queue.Job)
		answer string // what the model's conversation must hold
		stands bool   // the message ends with its answer standing
	}{
		{"crash after every part", reply.Options{Mode: reply.Text},
			func(t *testing.T, h *harness, c *clock, j queue.Job) { h.crashed(t, c, j, nil, "text.1") },
			"Staged answer.", false},
		{"attempts ran out", reply.Options{Mode: reply.Text, MaxAttempts: 1},
			func(t *testing.T, h *harness, c *clock, j queue.Job) { h.crashed(t, c, j, nil, "text.1") },
			"Staged answer.", true},
		{"budget ran out", reply.Options{Mode: reply.Text, Budget: 2 * time.Second, ConfirmWindow: 100 * time.Millisecond},
			func(t *testing.T, h *harness, _ *clock, _ queue.Job) {
				h.llm.Enqueue(geminitest.Answer{Text: long})
				var sends atomic.Int32
				h.graph.SetFaults(func(k graphapitest.Kind) graphapitest.Fault {
					// The first message goes out; Meta never takes the
					// others, which the attempt sends again until its
					// budget ends.
					return graphapitest.Fault{Drop: k == graphapitest.KindMessages && sends.Add(1) > 1}
				})
			},
			long, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{now: time.Now()}
			h := newHarnessWithStore(t, tt.opts, store.NewMemory(store.Options{Now: c.Now}))
			j := job(t, "text.json")
			h.store.Accept(context.Background(), []string{j.Message.ID})
			tt.setup(t, h, c, j)
			h.handle(t, j)
			h.marker(t, j.Message.ID)
			if slices.Contains(h.sent(), "text:"+reply.DefaultFallback) {
				t.Fatalf("sent %q, want no fallback after the answer", h.sent())
			}
			if stands := strings.Contains(h.logs.String(), "it stands"); stands != tt.stands {
				t.Fatalf("the answer stands: %v, want %v\nlogs:\n%s", stands, tt.stands, h.logs)
			}
			h.graph.SetFaults(nil)

			h.llm.Enqueue(geminitest.Answer{Text: "The day after, rain."})
			next := textJob(t, "wamid.next", "And the day after?")
			h.handle(t, next)
			reqs := h.llm.Requests()
			want := "user:" + question + " | model:" + tt.answer + " | user:And the day after?"
			if got := contents(reqs[len(reqs)-1]); got != want {
				t.Errorf("the model answering the next message was sent %q, want %q\nlogs:\n%s", got, want, h.logs)
			}
		})
	}
}

// contents reads the conversation a model request carried as
// "role:text | role:text ...".
func contents(req geminitest.Request) string {
	var turns []string
	for _, c := range req.Contents {
		var text strings.Builder
		for _, p := range c.Parts {
			text.WriteString(p.Text)
		}
		turns = append(turns, c.Role+":"+text.String())
	}
	return strings.Join(turns, " | ")
}

// TestAnswerThatStandsUnrecorded: when the exchange of an answer that stands
// cannot be recorded (no attempt staged the answer, or the store refuses the
// turns), that is logged as the record of a whole answer's is, and the
// message is completed all the same: no fallback, nothing sent again.
func TestAnswerThatStandsUnrecorded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		st     func(store.Options) store.Store
		staged bool
		want   string // in the error logged
	}{
		{"not staged", func(o store.Options) store.Store { return store.NewMemory(o) }, false, "answer not staged"},
		{"store refuses", func(o store.Options) store.Store { return unrecordable{store.NewMemory(o)} }, true, "turns refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{now: time.Now()}
			h := newHarnessWithStore(t, reply.Options{Mode: reply.Text, MaxAttempts: 1}, tt.st(store.Options{Now: c.Now}))
			j := job(t, "text.json")
			h.store.Accept(context.Background(), []string{j.Message.ID})
			if tt.staged {
				h.crashed(t, c, j, nil, "text.1")
			} else {
				// The attempt died after the send, before its answer was
				// staged beside it.
				h.died(t, c, j, func(int) { h.markSent(t, j.Message.ID, "text.1") })
			}
			h.handle(t, j)
			h.marker(t, j.Message.ID)
			h.wantSent(t)
			var logged bool
			for line := range strings.Lines(h.logs.String()) {
				logged = logged || strings.Contains(line, `"conversation not recorded"`) && strings.Contains(line, tt.want)
			}
			if !logged {
				t.Errorf("no %q logged for the unrecorded exchange:\n%s", tt.want, h.logs)
			}
			// The staged answer is read to be recorded, not sent again.
			if strings.Contains(h.logs.String(), "reusing staged answer") {
				t.Errorf("the answer given up on is logged as reused:\n%s", h.logs)
			}
		})
	}
}

// unrecordable is a store that refuses every turn.
type unrecordable struct{ store.Store }

func (unrecordable) AppendTurns(context.Context, string, ...store.Turn) error {
	return errors.New("turns refused")
}

// dying is the process of an attempt that dies as it starts to send the
// answer's second part, its staging writes slowed by delay: from then on it
// writes nothing, and a staging write still in flight never lands.
type dying struct {
	reply.Store
	reply.Stager
	delay time.Duration
	parts atomic.Int32
	dead  atomic.Bool
}

// dyingAttempt is the harness's pipeline running in a dying process.
func (h *harness) dyingAttempt(delay time.Duration) *reply.Pipeline {
	deps := h.deps
	d := &dying{Store: deps.Store, Stager: deps.Stager, delay: delay}
	deps.Store, deps.Stager = d, d
	return reply.New(deps, h.opts)
}

func (d *dying) StartSend(ctx context.Context, id string, token int, part string) error {
	if d.parts.Add(1) > 1 {
		d.dead.Store(true)
	}
	if d.dead.Load() {
		return store.ErrLost
	}
	return d.Store.StartSend(ctx, id, token, part)
}

func (d *dying) Complete(ctx context.Context, id string, token int) error {
	if d.dead.Load() {
		return store.ErrLost
	}
	return d.Store.Complete(ctx, id, token)
}

func (d *dying) AppendTurns(ctx context.Context, user string, turns ...store.Turn) error {
	if d.dead.Load() {
		return errors.New("process died")
	}
	return d.Store.AppendTurns(ctx, user, turns...)
}

func (d *dying) Put(ctx context.Context, name string, data []byte, contentType string) error {
	if strings.HasPrefix(name, "replies/") {
		time.Sleep(d.delay)
		if d.dead.Load() {
			return errors.New("process died")
		}
	}
	return d.Stager.Put(ctx, name, data, contentType)
}

// TestLaterPartsWaitForTheStagedAnswer: an answer's first part leaves beside
// its staging write, but a later part waits for the write, so that a process
// dying as it sends that later part leaves the answer staged; the retry then
// sends the rest of the same answer rather than of a new one.
func TestLaterPartsWaitForTheStagedAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode           reply.Mode
		answer, second string // the first attempt's answer, and the one a second question would get
	}{
		{reply.Text, twoMessages("Lisbon"), twoMessages("Porto")},
		{reply.Both, shortAnswer, "Sorry, there is no table left tomorrow."},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			t.Parallel()
			c := &clock{now: time.Now()}
			h := newHarnessWithStore(t, reply.Options{Mode: tt.mode}, store.NewMemory(store.Options{Now: c.Now}))
			h.llm.Enqueue(geminitest.Answer{Text: tt.answer}, geminitest.Answer{Text: tt.second})
			j := job(t, "text.json")
			h.store.Accept(context.Background(), []string{j.Message.ID})
			if err := h.dyingAttempt(300*time.Millisecond).Handle(context.Background(), j); err != nil {
				t.Fatalf("dying Handle = %v", err)
			}
			if n := len(h.graph.Messages()); n != 1 {
				t.Fatalf("the dying attempt sent %v, want one part", h.sent())
			}
			c.Add(2 * time.Minute) // its lease lapses

			h.handle(t, j)
			h.marker(t, j.Message.ID)
			if n := len(h.llm.Requests()); n != 1 {
				t.Errorf("model asked %d times, want 1: the retry finishes the staged answer", n)
			}
			want := textParts(tt.answer)
			if tt.mode == reply.Both {
				want = append(want, "audio(voice=true)")
			}
			h.wantSentInAnyOrder(t, want...)
			for _, text := range h.spokenTexts() {
				if !strings.Contains(tt.answer, text) {
					t.Errorf("spoke %q, which is not in the answer %q", text, tt.answer)
				}
			}
		})
	}
}

// TestNoNewAnswerAfterAnUnstagedPart: an attempt died after a part of its
// answer went out and before the answer was staged. That answer is unknown
// now, and no part of a new one may follow it (the rest of a long text, or
// the voice note beside the text): the part that went out stands alone, and
// its exchange is not recorded, which is logged. A part whose send was
// uncertain counts once its status confirms it.
func TestNoNewAnswerAfterAnUnstagedPart(t *testing.T) {
	t.Parallel()
	long := twoMessages("Porto")
	sent := func(part string) func(t *testing.T, h *harness, id string, token int) {
		return func(t *testing.T, h *harness, id string, _ int) { h.markSent(t, id, part) }
	}
	tests := []struct {
		name  string
		mode  reply.Mode
		setup func(t *testing.T, h *harness, id string, token int)
	}{
		{"text", reply.Text, sent("text.1")},
		{"both/text", reply.Both, sent("text.1")},
		{"both/audio", reply.Both, sent("audio")},
		{"text/confirmed while waiting", reply.Text, func(t *testing.T, h *harness, id string, token int) {
			if err := h.store.StartSend(context.Background(), id, token, "text.1"); err != nil {
				t.Fatal(err)
			}
			// The status comes while the retry waits for it.
			time.AfterFunc(200*time.Millisecond, func() { h.store.Confirm(context.Background(), id, "text.1") })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{now: time.Now()}
			h := newHarnessWithStore(t, reply.Options{Mode: tt.mode, ConfirmWindow: time.Minute}, store.NewMemory(store.Options{Now: c.Now}))
			h.llm.Enqueue(geminitest.Answer{Text: long})
			j := job(t, "text.json")
			h.store.Accept(context.Background(), []string{j.Message.ID})
			h.died(t, c, j, func(token int) { tt.setup(t, h, j.Message.ID, token) })

			h.handle(t, j)
			h.marker(t, j.Message.ID)
			h.wantSent(t)
			if n := len(h.llm.Requests()); n != 0 {
				t.Errorf("model asked %d times, want 0: no new answer follows the part that went out", n)
			}
			for _, want := range []string{`"part of the answer went out; it stands"`, `"conversation not recorded"`} {
				if !strings.Contains(h.logs.String(), want) {
					t.Errorf("no %s logged:\n%s", want, h.logs)
				}
			}
		})
	}
}
