// Package service builds the running service from its configuration: it picks
// each backend (store, queue, media, Google and Meta clients), wires them
// into the handlers, and closes them on shutdown. The Cloud Function and
// cmd/local both start here, so they behave the same.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/handlers"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

// Service is the wired service.
type Service struct {
	handler http.Handler
	closers []func(context.Context) error
}

// New builds the service described by cfg.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Service, error) {
	s := &Service{}
	st, err := s.newStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	q := queue.NewInProcess(logJob(logger), queue.InProcessOptions{Workers: cfg.Workers, Logger: logger})
	s.closers = append(s.closers, q.Close)
	s.handler = handlers.New(handlers.Deps{
		AppSecret:   cfg.AppSecret,
		VerifyToken: cfg.VerifyToken,
		Project:     cfg.Project,
		Store:       st,
		Queue:       q,
		Logger:      logger,
	})
	return s, nil
}

func (s *Service) newStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	opts := store.Options{MarkerTTL: cfg.MarkerTTL, HistoryTTL: cfg.HistoryTTL}
	switch cfg.Store {
	case "memory":
		return store.NewMemory(opts), nil
	default:
		return nil, fmt.Errorf("store %q not available", cfg.Store)
	}
}

// logJob is the queue's handler until the reply pipeline is wired: it logs
// each message without its content.
func logJob(logger *slog.Logger) queue.Handler {
	return func(ctx context.Context, job queue.Job) error {
		logging.With(logger, job.Trace).Info("message received", "wamid", job.Message.ID,
			"type", job.Message.Type, "from", logging.Mask(job.Sender))
		return nil
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
