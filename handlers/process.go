package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
)

// MaxPushBytes caps a push request body. A job is a few kilobytes; anything
// near this size did not come from our publisher.
const MaxPushBytes = 1 << 20

// PushVerifier authenticates a Pub/Sub push request; queue.PushAuth checks
// its OIDC token.
type PushVerifier interface {
	Verify(r *http.Request) error
}

// ProcessDeps are what the push endpoint needs. Handle and Logger are
// required, and so is Verifier unless InsecureSkipVerify is set.
type ProcessDeps struct {
	// Handle runs the reply pipeline for one job.
	Handle   queue.Handler
	Verifier PushVerifier
	// InsecureSkipVerify accepts push requests without checking their token,
	// and Verifier is then unused. It exists for the Pub/Sub emulator, which
	// sends no token; in production it would let anyone on the internet make
	// the service send messages.
	InsecureSkipVerify bool
	Logger             *slog.Logger
	// IDs hashes message ids for logs above debug level.
	IDs logging.IDs
}

// pushRequest is the body Pub/Sub POSTs to a push endpoint.
type pushRequest struct {
	Message struct {
		// Data stays a string so that bad base64 is reported with the
		// message id rather than failing the whole envelope.
		Data        string            `json:"data"`
		Attributes  map[string]string `json:"attributes"`
		MessageID   string            `json:"messageId"`
		OrderingKey string            `json:"orderingKey"`
	} `json:"message"`
	Subscription string `json:"subscription"`
	// DeliveryAttempt is set only when the subscription has a dead-letter
	// topic.
	DeliveryAttempt int `json:"deliveryAttempt"`
}

// Process is the push endpoint: it authenticates Pub/Sub, decodes the job and
// runs it. Pub/Sub acks on 2xx and redelivers with backoff otherwise, so the
// answer is 204 when the job is done or can never be done (acking a message
// that cannot be decoded keeps it from looping), and 500 when the pipeline
// failed and a later attempt can help.
func Process(d ProcessDeps) http.Handler {
	if d.InsecureSkipVerify {
		d.Logger.Warn("push endpoint accepts unauthenticated requests; use this only with the Pub/Sub emulator")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.InsecureSkipVerify {
			if err := verifyPush(r, d.Verifier); err != nil {
				level := slog.LevelWarn
				if errors.Is(err, errNoVerifier) {
					level = slog.LevelError
				}
				d.Logger.Log(r.Context(), level, "push request rejected", "error", err)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPushBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				d.Logger.Error("push body too large", "limit", tooBig.Limit)
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			d.Logger.Warn("push body unreadable", "error", err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		push, job, err := decodePush(body)
		if err != nil {
			d.Logger.Error("push message dropped: it can never be processed", "error", err,
				"message_id", push.Message.MessageID, "subscription", push.Subscription, "bytes", len(body))
			w.WriteHeader(http.StatusNoContent)
			return
		}

		log := logging.With(d.Logger, job.Trace).With(d.IDs.Attr(job.Message.ID),
			"message_id", push.Message.MessageID, "attempt", push.DeliveryAttempt)
		if err := d.Handle(r.Context(), job); err != nil {
			log.Warn("job failed, Pub/Sub will redeliver it", "error", err)
			http.Error(w, "temporarily unavailable", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// errNoVerifier keeps a push endpoint that was wired without a verifier
// closed rather than open.
var errNoVerifier = errors.New("no push verifier configured")

func verifyPush(r *http.Request, v PushVerifier) error {
	if v == nil {
		return errNoVerifier
	}
	return v.Verify(r)
}

// decodePush reads the envelope and the job inside it. On error the envelope
// is returned as far as it was read, for the log.
func decodePush(body []byte) (pushRequest, queue.Job, error) {
	var push pushRequest
	var job queue.Job
	if err := json.Unmarshal(body, &push); err != nil {
		return push, job, fmt.Errorf("decode push envelope: %w", err)
	}
	data, err := base64.StdEncoding.DecodeString(push.Message.Data)
	if err != nil {
		return push, job, fmt.Errorf("decode message data: %w", err)
	}
	if err := json.Unmarshal(data, &job); err != nil {
		return push, job, fmt.Errorf("decode job: %w", err)
	}
	if job.Message.ID == "" {
		return push, job, errors.New("decode job: no message id")
	}
	return push, job, nil
}
