// Package whatsappnode is the WhatsApp channel of an AI agent, deployed as one
// HTTP Cloud Function named Webhook. Meta posts webhooks to it; it answers
// fast and replies asynchronously. See README.md.
package whatsappnode

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/service"
)

func init() {
	functions.HTTP("Webhook", Webhook)
	// On Cloud Run (K_SERVICE is set) the clients are built while the
	// instance starts, which has CPU, instead of inside Meta's first webhook.
	// Locally setup waits for the first request, after cmd/local has set up
	// its sandbox's environment.
	if os.Getenv("K_SERVICE") != "" {
		go setupOnce.Do(setup)
	}
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
	if svc, setupErr = service.New(context.Background(), cfg, logger); setupErr == nil {
		go drainOnSignal()
	}
}

// drainOnSignal lets queued replies finish when the instance is told to stop:
// Cloud Run sends SIGTERM and waits 10 s before it kills the instance, and a
// person stops cmd/local with Ctrl-C.
func drainOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		logger.Error("shutdown: queue not drained", "error", err)
		os.Exit(1)
	}
	os.Exit(0)
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
