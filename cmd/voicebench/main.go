// Command voicebench measures how soon a voice reply is sent, on this
// project's fakes run at a realistic pace: the model writes its first words
// after -first, then a sentence every -per; Text-to-Speech takes -tts-base
// plus -tts-char for each character; each Graph API call (download, upload,
// send) takes -graph. Over -runs rounds it times the reply pipeline itself
// (reply.Pipeline.Handle on a queued message, through the real clients: the
// answer streamed into speech while the model writes) against the sum of the
// same stages made one after another with the same clients (whole answer,
// then speech of the whole, then upload and send: the reply before
// streaming), and prints the medians and their ratios to the sum. With
// -input voice the message is a voice note, downloaded and recognized in
// -stt first, and a third way runs the pipeline with STT_ENGINE=gemini (the
// model hears the voice note and answers in one call).
// Everything runs on 127.0.0.1.
//
//	go run ./cmd/voicebench -runs 7
//	go run ./cmd/voicebench -runs 7 -answer short
//	go run ./cmd/voicebench -runs 7 -input voice
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/media"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
	"github.com/patternai/whatsapp-node/store"
)

// longAnswer is nine spoken sentences, about 900 characters: the issue's
// long case.
var longAnswer = strings.Join([]string{
	"Sure, here is a simple plan for your three days in Lisbon, starting with the old town on the first day.",
	"In the morning, walk up through Alfama to the castle, where the view over the river is best before noon.",
	"Have lunch near the cathedral, then take the old yellow tram toward the Estrela garden.",
	"On the second day, go out to Belém by train to see the monastery, the tower and the monument to explorers.",
	"Do not leave Belém without trying the famous custard tarts, still baked to the old recipe.",
	"In the afternoon, visit the art museum by the water, or rest along the riverside path.",
	"For the third day, take the train to Sintra early, because the palaces get very busy after eleven o'clock.",
	"The Pena palace and the Moorish castle are close together, so you can see both before a late lunch in town.",
	"Come back in time for dinner in Bairro Alto, and book a table if you would like to hear some fado tonight.",
}, " ")

// shortAnswer is the short case: one sentence.
const shortAnswer = "Sure, I have booked a table for two tomorrow at nine, and they will hold it for fifteen minutes."

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "voicebench:", err)
		os.Exit(1)
	}
}

// settings are the flags of one benchmark.
type settings struct {
	runs                        int
	answer, input               string
	stt                         time.Duration
	first, per                  time.Duration
	ttsBase, ttsChar, graphCall time.Duration
	parallel, minChunk          int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("voicebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s settings
	fs.IntVar(&s.runs, "runs", 5, "rounds; each runs every way once, starting with a different one")
	fs.StringVar(&s.answer, "answer", "long", `"long" (9 sentences, 900 characters) or "short" (one sentence)`)
	fs.StringVar(&s.input, "input", "text", `the message: "text", or "voice" (a voice note)`)
	fs.DurationVar(&s.stt, "stt", 700*time.Millisecond, "Speech-to-Text: time to recognize the voice note")
	fs.DurationVar(&s.first, "first", 400*time.Millisecond, "model: time to the first words")
	fs.DurationVar(&s.per, "per", 200*time.Millisecond, "model: time to each further sentence")
	fs.DurationVar(&s.ttsBase, "tts-base", 150*time.Millisecond, "Text-to-Speech: time per call")
	fs.DurationVar(&s.ttsChar, "tts-char", 2*time.Millisecond, "Text-to-Speech: time per character")
	fs.DurationVar(&s.graphCall, "graph", 100*time.Millisecond, "Graph API: time per call")
	fs.IntVar(&s.parallel, "parallel", speech.DefaultParallel, "Text-to-Speech calls at once when streaming")
	fs.IntVar(&s.minChunk, "min-chunk", speech.DefaultMinChunk, "smallest piece cut for Text-to-Speech, in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	answer := map[string]string{"long": longAnswer, "short": shortAnswer}[s.answer]
	if answer == "" || s.runs < 1 || s.input != "text" && s.input != "voice" {
		return fmt.Errorf("want -answer long or short, -input text or voice and -runs >= 1, got %q, %q and %d", s.answer, s.input, s.runs)
	}

	r, err := newRig(ctx, s)
	if err != nil {
		return err
	}
	defer r.close()

	fmt.Fprintf(stdout, "%s message; answer: %d sentence(s), %d characters; model %v then %v a sentence; TTS %v + %v/char (parallel %d, pieces >= %d bytes); Graph %v a call",
		s.input, strings.Count(answer, ". ")+1, utf8.RuneCountInString(answer), s.first, s.per, s.ttsBase, s.ttsChar, s.parallel, s.minChunk, s.graphCall)
	if s.input == "voice" {
		fmt.Fprintf(stdout, "; Speech-to-Text %v", s.stt)
	}
	fmt.Fprintln(stdout)
	ways := []way{{"sequential", r.sequential}, {"pipeline", r.replier(r.pipeline)}}
	if s.input == "voice" {
		ways = append(ways, way{"pipeline-gemini", r.replier(r.hearing)})
	}
	times := make([][]time.Duration, len(ways))
	for i := range s.runs {
		// Each round starts with another way, so that none always runs
		// first on a machine that warms up or is shared.
		for k := range ways {
			j := (i + k) % len(ways)
			d, err := ways[j].reply(ctx, answer, s.input == "voice")
			if err != nil {
				return fmt.Errorf("%s: %w", ways[j].name, err)
			}
			times[j] = append(times[j], d)
		}
		fmt.Fprintf(stdout, "run %d:", i+1)
		for j, w := range ways {
			fmt.Fprintf(stdout, " %s %v", w.name, times[j][i].Round(time.Millisecond))
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "median of %d:", s.runs)
	base := median(times[0])
	for j, w := range ways {
		m := median(times[j])
		fmt.Fprintf(stdout, " %s %v (%.2f)", w.name, m.Round(time.Millisecond), float64(m)/float64(base))
	}
	fmt.Fprintln(stdout)
	return nil
}

// way is one way of replying, timed from the message's arrival to the voice
// note's send.
type way struct {
	name  string
	reply func(ctx context.Context, answer string, voice bool) (time.Duration, error)
}

func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	if n := len(ds); n%2 == 0 {
		return (ds[n/2-1] + ds[n/2]) / 2
	}
	return ds[len(ds)/2]
}

// rig is the fakes, the real clients pointed at them, and two pipelines on
// those clients: one that has voice notes recognized by Speech-to-Text (the
// default), one that has Gemini hear them (STT_ENGINE=gemini).
type rig struct {
	llm    *geminitest.Server
	speech *speechtest.Server
	graph  *graphapitest.Server

	gemini    *gemini.Client
	tts       *speech.Client
	messenger *graphapi.Client
	store     *store.Memory

	pipeline, hearing *reply.Pipeline
	dir               string // the pipelines' staged media
	messages          int    // numbers the messages' wamids
}

func newRig(ctx context.Context, s settings) (r *rig, err error) {
	r = &rig{llm: geminitest.Start(), store: store.NewMemory(store.Options{})}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	r.llm.SetPace(geminitest.Pace{FirstChunk: s.first, PerChunk: s.per})
	if r.speech, err = speechtest.Start(); err != nil {
		return nil, err
	}
	r.speech.SetPace(speechtest.Pace{Base: s.ttsBase, PerChar: s.ttsChar, Recognize: s.stt})
	if r.graph, err = graphapitest.New(); err != nil {
		return nil, err
	}
	if r.gemini, err = gemini.New(ctx, r.llm.Config()); err != nil {
		return nil, err
	}
	r.tts, err = speech.New(ctx, speech.Config{
		Project:       geminitest.Project,
		TTSParallel:   s.parallel,
		TTSMinChunk:   s.minChunk,
		ClientOptions: r.speech.ClientOptions(),
	})
	if err != nil {
		return nil, err
	}
	r.messenger = graphapi.New(graphapi.Config{
		BaseURL:    r.graph.URL,
		Token:      graphapitest.Token,
		HTTPClient: &http.Client{Transport: slowTransport{wait: s.graphCall, next: http.DefaultTransport}},
	})
	if r.dir, err = os.MkdirTemp("", "voicebench"); err != nil {
		return nil, err
	}
	stager, err := media.NewDir(r.dir)
	if err != nil {
		return nil, err
	}
	tags, err := store.NewTags("voicebench")
	if err != nil {
		return nil, err
	}
	deps := reply.Deps{
		Messenger: r.messenger, Transcriber: r.tts, Synthesizer: r.tts, Responder: r.gemini,
		Stager: stager, Store: r.store, Logger: slog.New(slog.DiscardHandler),
		IDs: logging.NewIDs("voicebench"), Tags: tags,
	}
	r.pipeline = reply.New(deps, reply.Options{Mode: reply.Audio})
	r.hearing = reply.New(deps, reply.Options{Mode: reply.Audio, STTEngine: reply.GeminiAudio})
	return r, nil
}

// close stops what newRig started, which after a failed setup is not all.
func (r *rig) close() {
	if r.tts != nil {
		r.tts.Close()
	}
	if r.graph != nil {
		r.graph.Close()
	}
	if r.speech != nil {
		r.speech.Close()
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
	r.llm.Close()
}

// slowTransport makes every Graph API call take at least wait, as a call
// to Meta from Cloud Run does.
type slowTransport struct {
	wait time.Duration
	next http.RoundTripper
}

func (t slowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-req.Context().Done():
		return nil, req.Context().Err()
	case <-time.After(t.wait):
	}
	return t.next.RoundTrip(req)
}

// note is the voice note a voice message carries: any real OGG/Opus file
// does, as the fakes hear a set sentence in all audio.
var note = speechtest.TTSAudio()[0]

// sequential is the sum of the stages, one after another: the voice note
// downloaded and recognized, the whole answer, the whole of it spoken (by
// Synthesize, one call per 3,000 bytes), then upload and send.
func (r *rig) sequential(ctx context.Context, answer string, voice bool) (time.Duration, error) {
	r.llm.Enqueue(geminitest.Answer{Text: answer})
	start := time.Now()
	p := gemini.Prompt{Text: "Plan my trip, please."}
	if voice {
		dl, err := r.messenger.DownloadMedia(ctx, r.graph.AddMedia(note, "audio/ogg; codecs=opus"), 16<<20, "")
		if err != nil {
			return 0, err
		}
		t, err := r.tts.Transcribe(ctx, dl.Data, "")
		if err != nil {
			return 0, err
		}
		p = gemini.Prompt{Text: t.Text, Language: t.Language}
	}
	text, err := r.gemini.Generate(ctx, nil, p)
	if err != nil {
		return 0, err
	}
	sp, err := r.tts.Synthesize(ctx, text, p.Language)
	if err != nil {
		return 0, err
	}
	id, err := r.messenger.UploadMedia(ctx, "1000", bytes.NewReader(sp.Audio), "audio/ogg", "reply.ogg")
	if err != nil {
		return 0, err
	}
	if _, err := r.messenger.SendAudio(ctx, "1000", "15550001111", id, true); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// replier times p answering one message, as the queue hands it over, until
// Handle returns: the voice note sent, the message completed.
func (r *rig) replier(p *reply.Pipeline) func(ctx context.Context, answer string, voice bool) (time.Duration, error) {
	return func(ctx context.Context, answer string, voice bool) (time.Duration, error) {
		r.llm.Enqueue(geminitest.Answer{Text: answer})
		r.messages++
		sent := len(r.graph.Messages())
		m := graphapi.Message{ID: fmt.Sprintf("wamid.voicebench.%d", r.messages), Type: graphapi.TypeText,
			Text: &graphapi.Text{Body: "Plan my trip, please."}}
		if voice {
			m.Type, m.Text = graphapi.TypeAudio, nil
			m.Audio = &graphapi.Media{ID: r.graph.AddMedia(note, "audio/ogg; codecs=opus"), Voice: true}
		}
		// Each message from a new sender: no history grows between runs.
		job := queue.Job{Message: m, Sender: fmt.Sprint("1555000", r.messages), PhoneNumberID: "1000"}
		if _, err := r.store.Accept(ctx, []string{m.ID}); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := p.Handle(ctx, job); err != nil {
			return 0, err
		}
		took := time.Since(start)
		msgs := r.graph.Messages()
		if len(msgs) != sent+1 || msgs[sent].Type != "audio" {
			return 0, fmt.Errorf("the pipeline sent %d messages, want one voice note", len(msgs)-sent)
		}
		return took, nil
	}
}
