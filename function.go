// Package whatsappnode is the WhatsApp channel of an AI agent, deployed as one
// HTTP Cloud Function named Webhook. Meta posts webhooks to it; it answers
// fast and replies asynchronously. See README.md.
package whatsappnode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/service"
)

// startTimeout bounds building the clients on Cloud Run, well inside the
// startup probe's four minutes, so that a hung lookup fails the start too.
const startTimeout = 30 * time.Second

func init() {
	functions.HTTP("Webhook", Webhook)
	// On Cloud Run (K_SERVICE is set) the service is built here, before the
	// Functions Framework listens. A bad setting then stops the instance and
	// the new revision never becomes ready, so the previous one keeps
	// serving, instead of answering 500 to every webhook.
	if os.Getenv("K_SERVICE") != "" {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		startMu.Lock()
		err := start(ctx, os.Getenv, os.Stdout)
		startMu.Unlock()
		cancel()
		if err != nil {
			startLog.Error("cannot start", "error", err.Error())
			os.Exit(1)
		}
	}
}

var (
	startMu sync.Mutex // held while a service is being built
	running atomic.Pointer[service.Service]
	// startLog reports failures to start, before a configuration has
	// chosen the level; Cloud Logging reads it from stdout.
	startLog = logging.New(os.Stdout, slog.LevelInfo)
)

// start reads the configuration through getenv, builds the service and every
// client it uses, and makes Webhook serve it; logs go to logs. It returns
// every configuration problem at once, or the first client that could not be
// built. On SIGINT or SIGTERM the service drains its queue and the process
// exits, because the Functions Framework owns the server and has no shutdown
// hook of its own. The caller holds startMu.
func start(ctx context.Context, getenv func(string) string, logs io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := logging.New(logs, cfg.LogLevel)
	slog.SetDefault(logger)
	svc, err := service.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	running.Store(svc)
	go drainOnSignal(svc, logger)
	return nil
}

// drainOnSignal lets queued replies finish when the instance is told to stop:
// Cloud Run sends SIGTERM and waits 10 s before it kills the instance, and a
// person stops cmd/local with Ctrl-C.
func drainOnSignal(svc *service.Service, logger *slog.Logger) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	drain, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	if err := svc.Close(drain); err != nil {
		logger.Error("shutdown: queue not drained", "error", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Webhook is the function's entry point.
func Webhook(w http.ResponseWriter, r *http.Request) {
	svc, err := started()
	if err != nil {
		startLog.Error("service not started", "error", err.Error())
		http.Error(w, "service unavailable", http.StatusInternalServerError)
		return
	}
	svc.ServeHTTP(w, r)
}

// started returns the running service. When init has not started one (off
// Cloud Run), it starts one from the process's environment. A failure is not
// kept: the next request tries again, so a fixed setting or a recovered
// backend is picked up.
func started() (*service.Service, error) {
	if svc := running.Load(); svc != nil {
		return svc, nil
	}
	startMu.Lock()
	defer startMu.Unlock()
	if svc := running.Load(); svc != nil {
		return svc, nil
	}
	if err := start(context.Background(), os.Getenv, os.Stdout); err != nil {
		return nil, err
	}
	return running.Load(), nil
}
