package service_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/gemini/geminitest"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/graphapi/graphapitest"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue/queuetest"
	"github.com/patternai/whatsapp-node/service"
	"github.com/patternai/whatsapp-node/speech/speechtest"
	"github.com/patternai/whatsapp-node/store"
)

const secret = "e2e-app-secret"

// fakes are the stand-ins for Meta and Google every end-to-end test uses.
type fakes struct {
	graph  *graphapitest.Server
	llm    *geminitest.Server
	speech *speechtest.Server
}

func startFakes(t *testing.T) (fakes, map[string]string) {
	t.Helper()
	f := fakes{graph: graphapitest.NewServer(t), llm: geminitest.NewServer(t), speech: speechtest.NewServer(t)}
	voice, err := os.ReadFile(filepath.Join("..", "testdata", "voice_note.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	f.graph.PutMedia("1308761640948516", voice, "audio/ogg; codecs=opus") // the id audio_voice.json names
	env := map[string]string{
		"WHATSAPP_APP_SECRET":    secret,
		"WHATSAPP_VERIFY_TOKEN":  "e2e-verify",
		"WHATSAPP_ACCESS_TOKEN":  f.graph.Token,
		"GRAPH_API_BASE_URL":     f.graph.URL,
		"GOOGLE_CLOUD_PROJECT":   "e2e-project",
		"GOOGLE_VERTEX_BASE_URL": f.llm.URL,
		"SPEECH_ENDPOINT":        f.speech.Addr,
		"TTS_ENDPOINT":           f.speech.Addr,
		"MEDIA_DIR":              t.TempDir(),
	}
	return f, env
}

func newService(t *testing.T, env map[string]string) *service.Service {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(context.Background(), cfg, logging.New(os.Stderr, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func post(t *testing.T, h http.Handler, fixture string) {
	t.Helper()
	postBody(t, h, fixture, readWebhook(t, fixture))
}

func readWebhook(t *testing.T, fixture string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "webhooks", fixture))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// postBody posts a webhook signed as Meta signs it; name says which in an
// error.
func postBody(t *testing.T, h http.Handler, name string, body []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set(graphapi.SignatureHeader, graphapi.ComputeSignature(body, secret))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST %s = %d, want 200", name, rec.Code)
	}
}

// waitSent waits until g has sent n messages.
func waitSent(t *testing.T, g *graphapitest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(g.Messages()) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func sent(g *graphapitest.Server) string {
	var out []string
	for _, m := range g.Messages() {
		out = append(out, fmt.Sprintf("%s:%s(voice=%v)", m.Type, m.To, m.Voice))
	}
	return strings.Join(out, " ")
}

// TestLocalDefaults is what cmd/local runs: memory store, in-process queue,
// local media folder, and the fakes standing in for Meta and Google.
func TestLocalDefaults(t *testing.T) {
	f, env := startFakes(t)
	svc := newService(t, env)
	post(t, svc, "text.json")
	post(t, svc, "audio_voice.json")
	waitSent(t, f.graph, 2)
	post(t, svc, "text.json") // Meta's duplicate
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "audio:16505551234(voice=true) audio:16505551234(voice=true)"
	if got := sent(f.graph); got != want {
		t.Errorf("sent %s, want %s", got, want)
	}
	if n := len(f.speech.RecognizeRequests()); n != 1 {
		t.Errorf("%d voice notes transcribed, want 1", n)
	}
}

func TestMissingSecretServesNothing(t *testing.T) {
	_, env := startFakes(t)
	delete(env, "WHATSAPP_APP_SECRET")
	if _, err := config.Load(func(k string) string { return env[k] }); err == nil {
		t.Fatal("config without WHATSAPP_APP_SECRET loaded")
	}
}

// startProduction starts the service on production's backends on this
// machine: Firestore and Pub/Sub emulators, Cloud Storage on fake-gcs-server
// (bucket e2e-media). The webhook is deduped in Firestore and published;
// the push subscription calls /process on the same service. onHandled, when
// set, is the service's OnHandled.
func startProduction(t *testing.T, env map[string]string, onHandled func(string, error)) (*service.Service, *fakestorage.Server) {
	t.Helper()
	requireEmulators(t)
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Scheme: "http", PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "e2e-media"})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(gcs.URL(), "http://"))

	suffix := time.Now().UnixNano()
	topic := fmt.Sprintf("replies-%d", suffix)
	env["STORE"], env["QUEUE"], env["MEDIA_BUCKET"] = "firestore", "pubsub", "e2e-media"
	env["PUBSUB_TOPIC"], env["PUBSUB_VERIFY"], env["PUBSUB_EMULATOR_HOST"] = topic, "false", os.Getenv("PUBSUB_EMULATOR_HOST")
	// A project of its own keeps this run's markers apart from earlier runs'
	// in the same emulator: the fixtures' wamids are fixed.
	env["GOOGLE_CLOUD_PROJECT"] = fmt.Sprintf("e2e-%d", suffix)

	ctx := context.Background()
	admin := queuetest.PubSub(t, env["GOOGLE_CLOUD_PROJECT"])
	topicName := "projects/" + env["GOOGLE_CLOUD_PROJECT"] + "/topics/" + topic
	if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicName}); err != nil {
		t.Fatal(err)
	}
	svc := newService(t, env)
	if onHandled != nil {
		svc.OnHandled(onHandled)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { svc.Close(context.Background()) })
	if _, err := admin.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  fmt.Sprintf("projects/%s/subscriptions/push-%d", env["GOOGLE_CLOUD_PROJECT"], suffix),
		Topic:                 topicName,
		PushConfig:            &pubsubpb.PushConfig{PushEndpoint: srv.URL + "/process"},
		EnableMessageOrdering: true,
		AckDeadlineSeconds:    60,
	}); err != nil {
		t.Fatal(err)
	}
	return svc, gcs
}

// TestProductionPath answers a voice note on production's backends, once.
func TestProductionPath(t *testing.T) {
	f, env := startFakes(t)
	svc, gcs := startProduction(t, env, nil)

	post(t, svc, "audio_voice.json")
	waitSent(t, f.graph, 1)
	post(t, svc, "audio_voice.json") // Meta's duplicate, after the first was answered
	want := "audio:16505551234(voice=true)"
	deadline := time.Now().Add(30 * time.Second)
	for sent(f.graph) != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := sent(f.graph); got != want {
		t.Fatalf("sent %q, want %q", got, want)
	}
	// The voice note was staged in the bucket the speech client reads long notes from.
	objs, _, err := gcs.ListObjectsWithOptions("e2e-media", fakestorage.ListOptions{Prefix: "inbound/"})
	if err != nil || len(objs) != 1 {
		t.Errorf("staged voice notes = %d (%v), want 1", len(objs), err)
	}
}

// TestMarkersOutliveMetaRetries: MARKER_TTL unset means the store's default,
// which config takes to cover Meta's retry window; shorter, a late
// redelivery would be answered twice. config cannot import store, so the two
// constants meet here, where the service joins them.
func TestMarkersOutliveMetaRetries(t *testing.T) {
	if store.DefaultMarkerTTL < config.MetaRetryWindow {
		t.Errorf("store.DefaultMarkerTTL = %v, shorter than config.MetaRetryWindow = %v", store.DefaultMarkerTTL, config.MetaRetryWindow)
	}
}
