// Package service builds the running service from its configuration: it picks
// each backend (store, queue, media, Google and Meta clients), wires them
// into the handlers and the reply pipeline, and closes them on shutdown. The
// Cloud Function and cmd/local both start here, so they behave the same.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/gemini"
	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/internal/localnet"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/media"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/reply"
	"github.com/patternai/whatsapp-node/speech"
	"github.com/patternai/whatsapp-node/store"
)

// The adapters satisfy the interfaces their consumers declare.
var (
	_ reply.Messenger       = (*graphapi.Client)(nil)
	_ reply.Transcriber     = (*speech.Client)(nil)
	_ reply.Synthesizer     = (*speech.Client)(nil)
	_ reply.Responder       = (*gemini.Client)(nil)
	_ reply.Stager          = (*media.Bucket)(nil)
	_ reply.Stager          = (*media.Dir)(nil)
	_ reply.Store           = (store.Store)(nil)
	_ handlers.Deduper      = (store.Store)(nil)
	_ handlers.Enqueuer     = (*queue.InProcess)(nil)
	_ handlers.Enqueuer     = (*queue.PubSub)(nil)
	_ handlers.PushVerifier = (*queue.PushAuth)(nil)
)

// Service is the wired service.
type Service struct {
	handler   http.Handler
	onHandled func(wamid string, err error) // see OnHandled
	closers   []func(context.Context) error
}

// New builds the service described by cfg. On error it has closed whatever
// it had opened.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (svc *Service, err error) {
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	s := &Service{}
	defer func() {
		if err != nil {
			s.Close(ctx)
		}
	}()
	st, err := s.newStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	stager, err := s.newStager(ctx, cfg)
	if err != nil {
		return nil, err
	}
	sp, err := speech.New(ctx, speech.Config{
		Project:        cfg.Project,
		STTLocation:    cfg.STTLocation,
		STTModel:       cfg.STTModel,
		STTLanguages:   cfg.STTLanguages,
		SpeechEndpoint: cfg.SpeechURL,
		TTSVoice:       cfg.TTSVoice,
		TTSLanguage:    cfg.TTSLanguage,
		TTSEndpoint:    cfg.TTSURL,
		ClientOptions:  emulatorOptions(cfg.SpeechURL, cfg.TTSURL),
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func(context.Context) error { return sp.Close() })
	llm, err := gemini.New(ctx, geminiConfig(cfg))
	if err != nil {
		return nil, err
	}
	tags, err := store.NewTags(cfg.AppSecret)
	if err != nil {
		return nil, err
	}
	ids := logging.NewIDs(cfg.AppSecret)
	pipeline := reply.New(reply.Deps{
		Messenger: graphapi.New(graphapi.Config{
			BaseURL: cfg.GraphBaseURL,
			Version: cfg.GraphVersion,
			Token:   cfg.AccessToken,
			Logger:  logger,
		}),
		Transcriber: sp,
		Synthesizer: sp,
		Responder:   llm,
		Stager:      stager,
		Store:       st,
		Logger:      logger,
		IDs:         ids,
		Tags:        tags,
		Numbers:     numbers(cfg, llm, sp),
	}, reply.Options{
		Mode:          reply.Mode(cfg.ReplyMode),
		STTEngine:     reply.Engine(cfg.STTEngine),
		Fallback:      cfg.Fallback,
		Unsupported:   cfg.Guard.NoticeUnsupported,
		HistoryTurns:  cfg.HistoryTurns,
		Lease:         cfg.ClaimLease,
		ConfirmWindow: cfg.ConfirmWindow,
		Guard:         guard(cfg.Guard),
	})
	deps := handlers.Deps{
		AppSecret:   cfg.AppSecret,
		VerifyToken: cfg.VerifyToken,
		Project:     cfg.Project,
		Store:       st,
		Logger:      logger,
		IDs:         ids,
		Tags:        tags,
		Audience:    audience(cfg.Guard),
	}
	if err := s.newQueue(ctx, cfg, s.observed(pipeline.Handle), logger, &deps); err != nil {
		return nil, err
	}
	s.handler = handlers.New(deps)
	return s, nil
}

// newQueue sets the webhook's queue and, with Pub/Sub, the push endpoint
// that runs handle.
func (s *Service) newQueue(ctx context.Context, cfg config.Config, handle queue.Handler, logger *slog.Logger, deps *handlers.Deps) error {
	if cfg.Queue == config.InProcess {
		q := queue.NewInProcess(handle, queue.InProcessOptions{Workers: cfg.Workers, Logger: logger, IDs: deps.IDs})
		s.closers = append(s.closers, q.Close)
		deps.Queue = q
		return nil
	}
	// The client connects to PUBSUB_EMULATOR_HOST, without credentials,
	// when that is set.
	client, err := pubsub.NewClient(ctx, cfg.Project)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	s.closers = append(s.closers, func(context.Context) error { return client.Close() })
	ps := queue.NewPubSub(client, cfg.PubSubTopic)
	// Closers run in reverse, so the publisher flushes before the client closes.
	s.closers = append(s.closers, ps.Close)
	pd := handlers.ProcessDeps{Handle: handle, Logger: logger, IDs: deps.IDs, InsecureSkipVerify: !cfg.PubSubVerify}
	if cfg.PubSubVerify {
		auth, err := queue.NewPushAuth(ctx, queue.PushAuthConfig{
			ServiceAccount: cfg.PubSubServiceAccount,
			Audience:       cfg.PubSubAudience,
		})
		if err != nil {
			return err
		}
		pd.Verifier = auth
	}
	deps.Queue = ps
	deps.Process = handlers.Process(pd)
	return nil
}

func (s *Service) newStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	opts := store.Options{MarkerTTL: cfg.MarkerTTL, HistoryTTL: cfg.HistoryTTL}
	if cfg.Store == config.Memory {
		return store.NewMemory(opts), nil
	}
	// The client connects to FIRESTORE_EMULATOR_HOST, without credentials,
	// when that is set.
	client, err := firestore.NewClient(ctx, cfg.Project)
	if err != nil {
		return nil, fmt.Errorf("firestore client: %w", err)
	}
	s.closers = append(s.closers, func(context.Context) error { return client.Close() })
	return store.NewFirestore(client, opts), nil
}

func (s *Service) newStager(ctx context.Context, cfg config.Config) (reply.Stager, error) {
	if cfg.MediaBucket == "" {
		return media.NewDir(cfg.MediaDir)
	}
	// The client honours STORAGE_EMULATOR_HOST.
	client, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("cloud storage client: %w", err)
	}
	s.closers = append(s.closers, func(context.Context) error { return client.Close() })
	return media.NewBucket(client, cfg.MediaBucket), nil
}

// geminiConfig points Gemini at GOOGLE_VERTEX_BASE_URL when set; on a
// loopback address (an emulator or the local sandbox) it sends no
// credentials. The client then gets a transport of its own, as the SDK gives
// it one with credentials, so its connections are its own there too.
func geminiConfig(cfg config.Config) gemini.Config {
	gc := gemini.Config{
		Project:      cfg.Project,
		Location:     cfg.Location,
		Model:        cfg.GeminiModel,
		SystemPrompt: cfg.SystemPrompt,
		BaseURL:      cfg.GeminiURL,
	}
	if u, err := url.Parse(cfg.GeminiURL); err == nil && localnet.Host(u.Hostname()) {
		gc.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return gc
}

// emulatorOptions follow the Google emulators' convention: an endpoint on a
// loopback address speaks plain gRPC and takes no credentials.
func emulatorOptions(endpoints ...string) []option.ClientOption {
	for _, e := range endpoints {
		if !localnet.HostPort(e) {
			return nil
		}
	}
	return []option.ClientOption{
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// ServeHTTP serves the service's routes.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close drains the queue and closes the clients, in reverse order of creation.
func (s *Service) Close(ctx context.Context) error {
	var first error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}
