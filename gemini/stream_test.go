package gemini_test

import (
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
)

func fakeClient(t *testing.T) (*gemini.Client, *geminitest.Server) {
	t.Helper()
	s := geminitest.NewServer(t)
	c, err := gemini.New(t.Context(), s.Config())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, s
}

// collect ranges over a stream's text, returning the pieces and the error.
func collect(s *gemini.Stream) ([]string, error) {
	var pieces []string
	for piece, err := range s.Text() {
		if err != nil {
			return pieces, err
		}
		pieces = append(pieces, piece)
	}
	return pieces, nil
}

// TestGenerateStreamWire reads a stream recorded in Vertex's shape: thoughts
// are left out, and the usage of the last event, thoughts included, is kept.
func TestGenerateStreamWire(t *testing.T) {
	t.Parallel()
	v := newVertex(t, http.StatusOK, "stream_answer.sse")
	c := newClient(t, v.URL, gemini.Config{Project: "proj-1", Location: "europe-west4"})

	s := c.GenerateStream(t.Context(), nil, gemini.Prompt{Text: "¿A qué hora abre el museo?"})
	pieces, err := collect(s)

	if want := []string{"El museo abre a las nueve", " y cierra a las cinco."}; err != nil || !reflect.DeepEqual(pieces, want) {
		t.Fatalf("Text() = %q, %v; want %q, nil", pieces, err, want)
	}
	if got, want := s.Answer(), "El museo abre a las nueve y cierra a las cinco."; got != want {
		t.Errorf("Answer() = %q, want %q", got, want)
	}
	if got, want := s.Usage(), (gemini.Usage{PromptTokens: 41, AnswerTokens: 18}); got != want {
		t.Errorf("Usage() = %+v, want %+v", got, want)
	}
	wantPath := "POST /v1beta1/projects/proj-1/locations/europe-west4/publishers/google/models/" + gemini.DefaultModel + ":streamGenerateContent"
	if len(v.paths) != 1 || v.paths[0] != wantPath {
		t.Errorf("requests = %q, want [%q]", v.paths, wantPath)
	}
}

func TestGenerateStream(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	chunks := []string{"Sure", ", Dr. Smith can see you at 3.", "30 tomorrow", ". See you then!"}
	s.Enqueue(geminitest.Answer{Text: strings.Join(chunks, ""), Chunks: chunks})
	history := []gemini.Turn{{Role: "user", Text: "Hi"}, {Role: "model", Text: "Hello!"}}

	st := c.GenerateStream(t.Context(), history, gemini.Prompt{Text: "Can I see the doctor?", Language: "en-GB"})
	pieces, err := collect(st)

	if err != nil || !reflect.DeepEqual(pieces, chunks) {
		t.Fatalf("Text() = %q, %v; want %q, nil", pieces, err, chunks)
	}
	if got := st.Usage(); got != (gemini.Usage{PromptTokens: 7, AnswerTokens: 12}) {
		t.Errorf("Usage() = %+v, want 7 prompt and 12 answer tokens (the fake counts words)", got)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || !reqs[0].Stream || reqs[0].UserText() != "Can I see the doctor?" || len(reqs[0].Contents) != 3 {
		t.Fatalf("Requests() = %+v, want one stream request with the history and the prompt", reqs)
	}
	if si := reqs[0].SystemInstruction; si == nil || len(si.Parts) != 2 || !strings.Contains(si.Parts[1].Text, "en-GB") {
		t.Errorf("system instruction = %+v, want the prompt and the language hint", si)
	}
}

// TestGenerateStreamPace checks that the fake writes no earlier than its
// pace says, which is what the benchmarks rely on.
func TestGenerateStreamPace(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	s.SetPace(geminitest.Pace{FirstChunk: 80 * time.Millisecond, PerChunk: 40 * time.Millisecond})
	s.Enqueue(geminitest.Answer{Text: "One. Two. Three."})

	start := time.Now()
	var arrivals []time.Duration
	var pieces []string
	for piece, err := range c.GenerateStream(t.Context(), nil, gemini.Prompt{Text: "Count"}).Text() {
		if err != nil {
			t.Fatal(err)
		}
		arrivals = append(arrivals, time.Since(start))
		pieces = append(pieces, piece)
	}

	if want := []string{"One.", " Two.", " Three."}; !reflect.DeepEqual(pieces, want) {
		t.Fatalf("pieces = %q, want a sentence each: %q", pieces, want)
	}
	for i, at := range arrivals {
		if earliest := 80*time.Millisecond + time.Duration(i)*40*time.Millisecond; at < earliest {
			t.Errorf("piece %d arrived after %v, before its pace allows (%v)", i, at, earliest)
		}
	}
}

// TestGenerateStreamPaceFirstOnly checks that a pace with only a first delay
// waits before the first piece alone, as Pace says.
func TestGenerateStreamPaceFirstOnly(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	const first = 300 * time.Millisecond
	s.SetPace(geminitest.Pace{FirstChunk: first})
	s.Enqueue(geminitest.Answer{Text: "One. Two. Three."})

	start := time.Now()
	var arrivals []time.Duration
	for _, err := range c.GenerateStream(t.Context(), nil, gemini.Prompt{Text: "Count"}).Text() {
		if err != nil {
			t.Fatal(err)
		}
		arrivals = append(arrivals, time.Since(start))
	}

	if len(arrivals) != 3 {
		t.Fatalf("got %d pieces, want 3", len(arrivals))
	}
	if arrivals[0] < first {
		t.Errorf("first piece arrived after %v, before its pace allows (%v)", arrivals[0], first)
	}
	if gap := arrivals[2] - arrivals[0]; gap >= first {
		t.Errorf("last piece arrived %v after the first, want the later pieces without the first delay", gap)
	}
}

func TestGenerateStreamNoAnswer(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	s.Enqueue(geminitest.Answer{BlockReason: "SAFETY"}, geminitest.Answer{FinishReason: "SAFETY"})

	for i, want := range []string{"prompt blocked: SAFETY", "finish reason SAFETY"} {
		st := c.GenerateStream(t.Context(), nil, gemini.Prompt{Text: "hi"})
		pieces, err := collect(st)
		if !errors.Is(err, gemini.ErrNoAnswer) || !strings.Contains(err.Error(), want) || len(pieces) != 0 {
			t.Errorf("call %d: Text() = %q, %v; want no pieces and ErrNoAnswer naming %q", i, pieces, err, want)
		}
	}
}

func TestGenerateStreamFailure(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	s.FailNext(1, http.StatusServiceUnavailable)

	st := c.GenerateStream(t.Context(), nil, gemini.Prompt{Text: "hi"})
	_, err := collect(st)

	if err == nil || !gemini.IsTransient(err) {
		t.Fatalf("Text() error = %v, want a transient 503", err)
	}
	if st.Err() != err {
		t.Errorf("Err() = %v, want the error Text yielded", st.Err())
	}
}

// TestGenerateStreamStopEarly checks that a caller may stop reading: the
// request is abandoned rather than read to the end.
func TestGenerateStreamStopEarly(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	s.SetPace(geminitest.Pace{PerChunk: time.Hour})
	s.Enqueue(geminitest.Answer{Text: "First. Never sent."})

	for piece, err := range c.GenerateStream(t.Context(), nil, gemini.Prompt{Text: "hi"}).Text() {
		if err != nil || piece != "First." {
			t.Fatalf("first piece = %q, %v; want \"First.\"", piece, err)
		}
		break
	}
}

func TestAnswerAudio(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	note, err := os.ReadFile("../testdata/voice_note.ogg")
	if err != nil {
		t.Fatal(err)
	}
	s.SetHeard("Hola, ¿tienen mesa para dos mañana?", "es-ES")
	s.Enqueue(geminitest.Answer{Text: "Sí, tenemos mesa para dos a las nueve."})
	history := []gemini.Turn{{Role: "user", Text: "Hola"}, {Role: "model", Text: "¡Hola! ¿En qué puedo ayudarte?"}}

	got, err := c.AnswerAudio(t.Context(), history, gemini.Attachment{MIMEType: "audio/ogg", Data: note})

	want := gemini.Heard{
		Transcript: "Hola, ¿tienen mesa para dos mañana?",
		Language:   "es-ES",
		Answer:     "Sí, tenemos mesa para dos a las nueve.",
		Usage:      gemini.Usage{PromptTokens: 6, AnswerTokens: 13}, // the fake counts words, JSON included
	}
	if err != nil || got != want {
		t.Fatalf("AnswerAudio = %+v, %v; want %+v, nil", got, err, want)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Stream {
		t.Fatalf("Requests() = %+v, want one generateContent request", reqs)
	}
	r := reqs[0]
	gc := r.GenerationConfig
	if gc == nil || gc.ResponseMIMEType != "application/json" || gc.ResponseSchema == nil ||
		!reflect.DeepEqual(gc.ResponseSchema.PropertyOrdering, []string{"transcript", "language", "answer"}) {
		t.Errorf("generation config = %+v, want JSON output with the transcript, language, answer schema", gc)
	}
	last := r.Contents[len(r.Contents)-1]
	if len(r.Contents) != 3 || len(last.Parts) != 1 || last.Parts[0].InlineData == nil ||
		last.Parts[0].InlineData.MIMEType != "audio/ogg" || len(last.Parts[0].InlineData.Data) != len(note) {
		t.Errorf("contents = %+v, want the history and the voice note inline", r.Contents)
	}
}

func TestAnswerAudioNoSpeech(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)
	s.SetHeard("", "")

	_, err := c.AnswerAudio(t.Context(), nil, gemini.Attachment{MIMEType: "audio/ogg", Data: []byte("OggS")})

	if !errors.Is(err, gemini.ErrNoSpeech) {
		t.Fatalf("AnswerAudio error = %v, want ErrNoSpeech", err)
	}
}

// TestAnswerAudioNotJSON covers a model that ignores the schema.
func TestAnswerAudioNotJSON(t *testing.T) {
	t.Parallel()
	v := newVertex(t, http.StatusOK, "answer.json")
	c := newClient(t, v.URL, gemini.Config{})

	_, err := c.AnswerAudio(t.Context(), nil, gemini.Attachment{MIMEType: "audio/ogg", Data: []byte("OggS")})

	if !errors.Is(err, gemini.ErrNoAnswer) {
		t.Fatalf("AnswerAudio error = %v, want ErrNoAnswer", err)
	}
}

func TestAnswerAudioRejectsOtherMedia(t *testing.T) {
	t.Parallel()
	c, s := fakeClient(t)

	_, err := c.AnswerAudio(t.Context(), nil, gemini.Attachment{MIMEType: "image/png", Data: []byte("x")})

	if err == nil || len(s.Requests()) != 0 {
		t.Fatalf("AnswerAudio(image) = %v with %d requests, want an error and no request", err, len(s.Requests()))
	}
}
