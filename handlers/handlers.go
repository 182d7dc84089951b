// Package handlers is the service's HTTP surface: Meta's webhook (the
// verification handshake and notifications) and, with Pub/Sub, the push
// endpoint that runs the reply pipeline. All routes are declared in New.
package handlers

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

// MaxBodyBytes caps a webhook body. Meta batches up to about 3 MB.
const MaxBodyBytes = 4 << 20

// Deduper records inbound messages so that Meta's redeliveries are
// recognised, and the status webhooks that confirm our replies went out.
// Release must go on when the request's context ends (see store.Store).
type Deduper interface {
	Accept(ctx context.Context, ids []string) ([]store.Admission, error)
	Release(ctx context.Context, ids []string) error
	Confirm(ctx context.Context, id, part string) error
}

// Enqueuer hands accepted messages to the reply pipeline.
type Enqueuer interface {
	Enqueue(ctx context.Context, jobs []queue.Job) error
}

// Deps are what the handlers need; all are required but Process.
type Deps struct {
	AppSecret   string
	VerifyToken string
	// Project names the Google Cloud project, for log trace ids.
	Project string
	Store   Deduper
	Queue   Enqueuer
	Logger  *slog.Logger
	// IDs hashes message ids for logs above debug level.
	IDs logging.IDs
	// Tags opens the tags our replies carry, which status webhooks echo.
	Tags *store.Tags
	// Audience says whom the service answers; the zero value, everyone.
	Audience Audience
	// Process, when set, serves Pub/Sub pushes at POST /process (see
	// Process). With the in-process queue there is nothing to push.
	Process http.Handler
}

// New returns the service's routes. The webhook answers at the function's
// root URL and at /webhook, whichever the Meta app was configured with.
func New(d Deps) http.Handler {
	mux := http.NewServeMux()
	webhook := Webhook(d)
	mux.Handle("/{$}", webhook)
	mux.Handle("/webhook", webhook)
	if d.Process != nil {
		mux.Handle("POST /process", d.Process)
	}
	return mux
}
