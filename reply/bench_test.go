package reply_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/media"
	"github.com/patternai/whatsapp-node/media/mediatest"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/speech/speechtest"
	"github.com/patternai/whatsapp-node/store"
)

// latency is what every external call costs in the benchmark: each HTTP
// request to the Graph API, Gemini and Cloud Storage, and each gRPC call to
// Speech, waits this long before it is sent.
const latency = 20 * time.Millisecond

type slowTransport struct{ base http.RoundTripper }

func (t slowTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	time.Sleep(latency)
	return t.base.RoundTrip(r)
}

func slowUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	time.Sleep(latency)
	return invoker(ctx, method, req, reply, cc, opts...)
}

// BenchmarkPipelineOverhead measures what the pipeline adds to the external
// calls on its critical path, each of which takes `latency`. The text flow's
// critical path is four calls (model, synthesis, upload, send); the voice
// flow's is eight (media URL, media download, staging, recognition, then the
// same four). Read receipts, history and staged copies of the answer and the
// audio run beside them. It reports overhead-ms: the time per reply beyond
// those calls.
func BenchmarkPipelineOverhead(b *testing.B) {
	for _, flow := range []struct {
		name  string
		calls int
		voice bool
	}{{"text", 4, false}, {"voice", 8, true}} {
		b.Run(flow.name, func(b *testing.B) {
			ctx := context.Background()
			graph := graphapitest.NewServer(b)
			llmSrv := geminitest.NewServer(b)
			sp := speechtest.NewServer(b)
			gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Scheme: "http", PublicHost: "127.0.0.1"})
			if err != nil {
				b.Fatal(err)
			}
			defer gcs.Stop()
			gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: mediatest.BucketName})
			slow := &http.Client{Transport: slowTransport{http.DefaultTransport}}
			gcsClient, err := storage.NewClient(ctx, option.WithEndpoint(gcs.URL()+"/storage/v1/"), option.WithHTTPClient(slow))
			if err != nil {
				b.Fatal(err)
			}
			defer gcsClient.Close()
			speechClient, err := speech.New(ctx, speech.Config{Project: "p", ClientOptions: append(sp.ClientOptions(),
				option.WithGRPCDialOption(grpc.WithUnaryInterceptor(slowUnary)))})
			if err != nil {
				b.Fatal(err)
			}
			defer speechClient.Close()
			gcfg := llmSrv.Config()
			gcfg.HTTPClient = slow
			llm, err := gemini.New(ctx, gcfg)
			if err != nil {
				b.Fatal(err)
			}
			st := store.NewMemory(store.Options{})
			p := reply.New(reply.Deps{
				Messenger:   graphapi.New(graphapi.Config{BaseURL: graph.URL, Token: graphapitest.Token, HTTPClient: slow}),
				Transcriber: speechClient, Synthesizer: speechClient, Responder: llm,
				Stager: media.NewBucket(gcsClient, mediatest.BucketName), Store: st,
				Logger: slog.New(slog.DiscardHandler), IDs: logging.NewIDs("bench-secret"), Tags: mustTags(b),
			}, reply.Options{})
			voice, err := os.ReadFile(filepath.Join("..", "testdata", "voice_note.ogg"))
			if err != nil {
				b.Fatal(err)
			}
			jobs := make([]queue.Job, b.N)
			for i := range jobs {
				jobs[i] = queue.Job{Sender: fmt.Sprint("1650555", i), PhoneNumberID: "106540352242922",
					Message: graphapi.Message{ID: fmt.Sprint("wamid.bench.", i), Type: "text", Text: &graphapi.Text{Body: "What's the weather like in Lisbon tomorrow?"}}}
				if flow.voice {
					jobs[i].Message.Type, jobs[i].Message.Text = "audio", nil
					jobs[i].Message.Audio = &graphapi.Media{ID: graph.AddMedia(voice, "audio/ogg; codecs=opus"), Voice: true}
				}
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := p.Handle(ctx, jobs[i]); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if n := len(graph.Messages()); n != b.N {
				b.Fatalf("%d replies sent for %d messages", n, b.N)
			}
			perReply := elapsed / time.Duration(b.N)
			b.ReportMetric(float64(perReply-time.Duration(flow.calls)*latency)/float64(time.Millisecond), "overhead-ms")
		})
	}
}
