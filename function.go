// Package whatsappnode is the WhatsApp channel of an AI agent, deployed as one
// HTTP Cloud Function named Webhook. Meta posts webhooks to it; it answers
// fast and replies asynchronously. See README.md.
package whatsappnode

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/service"
)

func init() {
	functions.HTTP("Webhook", Webhook)
}

var (
	setupOnce sync.Once
	svc       *service.Service
	setupErr  error
	logger    = logging.New(os.Stdout, slog.LevelInfo)
)

// setup builds the service once per instance, from the environment.
func setup() {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		setupErr = err
		return
	}
	logger = logging.New(os.Stdout, cfg.LogLevel)
	slog.SetDefault(logger)
	svc, setupErr = service.New(context.Background(), cfg, logger)
}

// Webhook is the function's entry point. A setup error (a missing secret, an
// unreachable backend) is reported on every request instead of crashing the
// instance or serving without verification.
func Webhook(w http.ResponseWriter, r *http.Request) {
	setupOnce.Do(setup)
	if setupErr != nil {
		logger.Error("service not configured", "error", setupErr)
		http.Error(w, "service unavailable", http.StatusInternalServerError)
		return
	}
	svc.ServeHTTP(w, r)
}

// Shutdown drains the in-process queue and closes the service's clients.
// cmd/local calls it on SIGTERM.
func Shutdown(ctx context.Context) error {
	if svc == nil {
		return nil
	}
	return svc.Close(ctx)
}
