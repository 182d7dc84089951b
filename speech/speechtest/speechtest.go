// Package speechtest is an in-process fake of Google Speech-to-Text v2 and
// Text-to-Speech v1 for tests and local runs. One gRPC server on 127.0.0.1
// hosts both services and the long-running Operations service, so the real
// client libraries connect to it unchanged (see ClientOptions). It records
// every request, answers with a configurable transcript, returns real
// OGG/Opus audio for synthesis (recorded, or read from the text by a Voice
// such as LocalVoice), can take as long as the real services (SetPace), and
// can be told to fail the next calls.
package speechtest

import (
	"context"
	"embed"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/speech/apiv2/speechpb"
	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"github.com/patternai/whatsapp-node/retry"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Method names for FailNext.
const (
	Recognize        = "Recognize"
	BatchRecognize   = "BatchRecognize"
	SynthesizeSpeech = "SynthesizeSpeech"
)

// DefaultTranscript and DefaultLanguage are what the server recognizes until
// SetTranscript says otherwise; they match testdata/voice_note.ogg.
const (
	DefaultTranscript = "Hello, can you book a table for two tomorrow evening?"
	DefaultLanguage   = "en-US"
)

//go:embed testdata/tts_booking.ogg testdata/tts_followup.ogg
var fixtures embed.FS

// TTSAudio returns the OGG/Opus files the server synthesizes by default, in
// the order it returns them: two short sentences spoken by espeak-ng and
// encoded by opusenc at 24 kHz, 24 kbit/s (4.378 s and 2.850 s long).
func TTSAudio() [][]byte {
	var out [][]byte
	for _, name := range []string{"testdata/tts_booking.ogg", "testdata/tts_followup.ogg"} {
		b, err := fixtures.ReadFile(name)
		if err != nil {
			panic(err) // the files are embedded, so this cannot happen
		}
		out = append(out, b)
	}
	return out
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	// Addr is the server's "127.0.0.1:port".
	Addr string

	grpc *grpc.Server

	mu           sync.Mutex
	transcript   string
	language     string
	audio        [][]byte
	voice        Voice
	synthesized  int
	pace         Pace
	inFlight     int // SynthesizeSpeech calls being answered
	maxInFlight  int
	pendingPolls int
	conns        int // connections clients have opened
	openConns    int // those not yet closed
	failures     map[string][]codes.Code
	operations   map[string]*operation
	recognize    []*speechpb.RecognizeRequest
	batch        []*speechpb.BatchRecognizeRequest
	synthesize   []*texttospeechpb.SynthesizeSpeechRequest
}

// operation is a batch recognition that reports done after some polls.
type operation struct {
	polls  int
	result *longrunningpb.Operation
}

// Start starts a server on a free port of 127.0.0.1. Close stops it.
func Start() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("speechtest: listen: %w", err)
	}
	s := &Server{
		Addr:       lis.Addr().String(),
		transcript: DefaultTranscript,
		language:   DefaultLanguage,
		audio:      TTSAudio(),
		failures:   map[string][]codes.Code{},
		operations: map[string]*operation{},
	}
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(32<<20), grpc.StatsHandler(connCounter{s}))
	speechpb.RegisterSpeechServer(s.grpc, speechService{s: s})
	texttospeechpb.RegisterTextToSpeechServer(s.grpc, ttsService{s: s})
	longrunningpb.RegisterOperationsServer(s.grpc, operationsService{s: s})
	// Serve returns an error only once Close has stopped the server.
	go s.grpc.Serve(lis)
	return s, nil
}

// NewServer starts a server that stops when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and ends open calls.
func (s *Server) Close() {
	s.grpc.Stop()
}

// ClientOptions point a Speech-to-Text or Text-to-Speech client at the server,
// without credentials or TLS.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// SetTranscript sets what Recognize and BatchRecognize hear from now on, and
// the language they report. An empty text means the audio held no speech.
func (s *Server) SetTranscript(text, language string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transcript, s.language = text, language
}

// SetAudio sets the OGG/Opus files SynthesizeSpeech returns, one per call in
// turn, starting again with the first after the last.
func (s *Server) SetAudio(files ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audio, s.synthesized = files, 0
}

// SetVoice makes SynthesizeSpeech read each request's text with voice instead
// of returning the files SetAudio set; nil goes back to the files.
func (s *Server) SetVoice(voice Voice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.voice = voice
}

// Pace is how long calls take. SynthesizeSpeech takes Base, plus PerChar
// for each character of the input (Google's Chirp 3 HD voices take roughly
// 150 ms plus 2 ms a character); Recognize takes Recognize.
type Pace struct {
	Base, PerChar time.Duration
	Recognize     time.Duration
}

// SetPace makes later calls take as long as p says; the zero Pace, the
// default, answers at once.
func (s *Server) SetPace(p Pace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pace = p
}

// MaxConcurrentSynthesis is the most SynthesizeSpeech calls that were being
// answered at once so far.
func (s *Server) MaxConcurrentSynthesis() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// SetPendingPolls makes each later batch recognition report "not done" to
// this many polls before it reports its result, so clients must poll.
func (s *Server) SetPendingPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pendingPolls = n
}

// FailNext makes the next n calls of method (Recognize, BatchRecognize or
// SynthesizeSpeech) fail with a gRPC status of code.
func (s *Server) FailNext(method string, n int, code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], code)
	}
}

// Connections returns how many connections clients have opened to the
// server so far. A Speech-to-Text or Text-to-Speech client dials one when
// it is made; it is counted once the server has taken it.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// OpenConnections returns how many of those connections are still open: a
// connection closes once the server has seen its client close it.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openConns
}

// connCounter counts the server's connections for Connections and
// OpenConnections.
type connCounter struct{ s *Server }

func (c connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c connCounter) HandleRPC(context.Context, stats.RPCStats)                         {}

func (c connCounter) HandleConn(_ context.Context, st stats.ConnStats) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	switch st.(type) {
	case *stats.ConnBegin:
		c.s.conns++
		c.s.openConns++
	case *stats.ConnEnd:
		c.s.openConns--
	}
}

// RecognizeRequests returns copies of the Recognize requests received so far.
func (s *Server) RecognizeRequests() []*speechpb.RecognizeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clones(s.recognize)
}

// BatchRecognizeRequests returns copies of the BatchRecognize requests
// received so far.
func (s *Server) BatchRecognizeRequests() []*speechpb.BatchRecognizeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clones(s.batch)
}

// SynthesizeRequests returns copies of the SynthesizeSpeech requests received
// so far.
func (s *Server) SynthesizeRequests() []*texttospeechpb.SynthesizeSpeechRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clones(s.synthesize)
}

func clones[M proto.Message](ms []M) []M {
	out := make([]M, len(ms))
	for i, m := range ms {
		out[i] = proto.Clone(m).(M)
	}
	return out
}

// failure returns the injected error for a call of method, if one is due.
// The caller holds s.mu.
func (s *Server) failure(method string) error {
	queue := s.failures[method]
	if len(queue) == 0 {
		return nil
	}
	s.failures[method] = queue[1:]
	return status.Errorf(queue[0], "speechtest: injected %s failure", method)
}

// results is the recognition of any audio: the configured transcript as one
// result. The caller holds s.mu.
func (s *Server) results() []*speechpb.SpeechRecognitionResult {
	if s.transcript == "" {
		return nil
	}
	return []*speechpb.SpeechRecognitionResult{{
		Alternatives: []*speechpb.SpeechRecognitionAlternative{{Transcript: s.transcript, Confidence: 0.9}},
		LanguageCode: s.language,
	}}
}

type speechService struct {
	speechpb.UnimplementedSpeechServer
	s *Server
}

func (v speechService) Recognize(ctx context.Context, req *speechpb.RecognizeRequest) (*speechpb.RecognizeResponse, error) {
	resp, delay, err := v.s.recognizeOutcome(req)
	if err != nil {
		return nil, err
	}
	if err := retry.Sleep(ctx, delay); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return resp, nil
}

// recognizeOutcome records req and decides its answer: resp after delay, or
// an error at once.
func (s *Server) recognizeOutcome(req *speechpb.RecognizeRequest) (*speechpb.RecognizeResponse, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recognize = append(s.recognize, proto.Clone(req).(*speechpb.RecognizeRequest))
	if err := s.failure(Recognize); err != nil {
		return nil, 0, err
	}
	return &speechpb.RecognizeResponse{Results: s.results()}, s.pace.Recognize, nil
}

// BatchRecognize answers with an operation whose response holds an inline
// result for every file of the request, as the real service does when asked
// for inline output.
func (v speechService) BatchRecognize(_ context.Context, req *speechpb.BatchRecognizeRequest) (*longrunningpb.Operation, error) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batch = append(s.batch, proto.Clone(req).(*speechpb.BatchRecognizeRequest))
	if err := s.failure(BatchRecognize); err != nil {
		return nil, err
	}
	resp := &speechpb.BatchRecognizeResponse{Results: map[string]*speechpb.BatchRecognizeFileResult{}}
	for _, f := range req.GetFiles() {
		resp.Results[f.GetUri()] = &speechpb.BatchRecognizeFileResult{
			Result: &speechpb.BatchRecognizeFileResult_InlineResult{
				InlineResult: &speechpb.InlineResult{
					Transcript: &speechpb.BatchRecognizeResults{Results: s.results()},
				},
			},
		}
	}
	anyResp, err := anypb.New(resp)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	name := fmt.Sprintf("%s/operations/%d", parent(req.GetRecognizer()), len(s.batch))
	done := &longrunningpb.Operation{
		Name:   name,
		Done:   true,
		Result: &longrunningpb.Operation_Response{Response: anyResp},
	}
	if s.pendingPolls == 0 {
		return done, nil
	}
	s.operations[name] = &operation{polls: s.pendingPolls, result: done}
	return &longrunningpb.Operation{Name: name}, nil
}

// parent is "projects/P/locations/L" of a recognizer name
// ("projects/P/locations/L/recognizers/R"), where the real service keeps its
// operations.
func parent(recognizer string) string {
	parts := strings.Split(recognizer, "/")
	if len(parts) < 4 {
		return "operations"
	}
	return strings.Join(parts[:4], "/")
}

type ttsService struct {
	texttospeechpb.UnimplementedTextToSpeechServer
	s *Server
}

// SynthesizeSpeech reads the text with the voice SetVoice set or, without
// one, returns the next audio file whatever the text, after the time SetPace
// sets. It rejects what the
// real service rejects: input over 5000 bytes, and encodings other than
// OGG_OPUS, which this fake has no audio for.
func (v ttsService) SynthesizeSpeech(ctx context.Context, req *texttospeechpb.SynthesizeSpeechRequest) (*texttospeechpb.SynthesizeSpeechResponse, error) {
	s := v.s
	voice, audio, delay, err := s.synthesizeOutcome(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if voice != nil {
		// The voice runs outside the lock: it may take a while, and calls
		// for other requests need not wait for it.
		if audio, err = voice(ctx, req.GetInput().GetText(), req.GetVoice().GetLanguageCode()); err != nil {
			return nil, status.Errorf(codes.Internal, "speechtest: voice: %v", err)
		}
	}
	if err := retry.Sleep(ctx, delay); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return &texttospeechpb.SynthesizeSpeechResponse{AudioContent: audio}, nil
}

// synthesizeOutcome records req and decides its answer: the voice to read it
// with or else the audio, after delay; or an error at once.
func (s *Server) synthesizeOutcome(req *texttospeechpb.SynthesizeSpeechRequest) (Voice, []byte, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.synthesize = append(s.synthesize, proto.Clone(req).(*texttospeechpb.SynthesizeSpeechRequest))
	if err := s.failure(SynthesizeSpeech); err != nil {
		return nil, nil, 0, err
	}
	text := req.GetInput().GetText()
	if n := len(text) + len(req.GetInput().GetSsml()); n > 5000 {
		return nil, nil, 0, status.Errorf(codes.InvalidArgument, "input size limit exceeded: %d bytes, limit 5000", n)
	}
	if e := req.GetAudioConfig().GetAudioEncoding(); e != texttospeechpb.AudioEncoding_OGG_OPUS {
		return nil, nil, 0, status.Errorf(codes.Unimplemented, "speechtest: only OGG_OPUS audio, not %v", e)
	}
	var audio []byte
	switch {
	case s.voice != nil:
		if text == "" {
			return nil, nil, 0, status.Error(codes.Unimplemented, "speechtest: the voice reads text input only")
		}
	case len(s.audio) == 0:
		return nil, nil, 0, status.Error(codes.Internal, "speechtest: no audio set")
	default:
		audio = s.audio[s.synthesized%len(s.audio)]
		s.synthesized++
	}
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	return s.voice, audio, s.pace.Base + time.Duration(utf8.RuneCountInString(text))*s.pace.PerChar, nil
}

type operationsService struct {
	longrunningpb.UnimplementedOperationsServer
	s *Server
}

// GetOperation reports a batch recognition as running until it has been
// polled as often as SetPendingPolls said, then returns its result.
func (v operationsService) GetOperation(_ context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	op, ok := s.operations[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "operation %q not found", req.GetName())
	}
	if op.polls > 0 {
		op.polls--
		return &longrunningpb.Operation{Name: req.GetName()}, nil
	}
	return op.result, nil
}
