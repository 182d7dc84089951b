package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/patternai/whatsapp-node/graphapi"
	"github.com/patternai/whatsapp-node/logging"
	"github.com/patternai/whatsapp-node/queue"
	"github.com/patternai/whatsapp-node/store"
)

// Webhook serves Meta's verification handshake (GET) and notifications (POST).
func Webhook(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			verify(w, r, d.VerifyToken)
		case http.MethodPost:
			notify(w, r, d)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// verify answers the subscription handshake: the challenge when the token
// matches, 403 otherwise. An unset token matches nothing.
func verify(w http.ResponseWriter, r *http.Request, token string) {
	q := r.URL.Query()
	given := q.Get("hub.verify_token")
	if token == "" || q.Get("hub.mode") != "subscribe" ||
		subtle.ConstantTimeCompare([]byte(given), []byte(token)) != 1 {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, q.Get("hub.challenge"))
}

// notify takes one notification: check the signature over the raw bytes,
// parse, record each new message and queue it. It answers 200 only once every
// message is queued or known, and 503 when a retry by Meta can help.
func notify(w http.ResponseWriter, r *http.Request, d Deps) {
	trace := logging.Trace(d.Project, r.Header.Get("X-Cloud-Trace-Context"))
	log := logging.With(d.Logger, trace)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("webhook body too large", "limit", tooBig.Limit)
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		log.Warn("webhook body unreadable", "error", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if err := graphapi.ValidateSignature(body, r.Header.Get(graphapi.SignatureHeader), d.AppSecret); err != nil {
		log.Warn("webhook rejected", "error", err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	payload, err := graphapi.ParsePayload(body)
	if err != nil {
		log.Warn("webhook malformed", "error", err, "bytes", len(body))
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}

	n := collect(payload, d, log)
	n.trace = trace
	err = accept(r, d, &n, log)
	if err == nil {
		err = confirm(r, d, n.confirms)
	}
	if err == nil && n.pending > 0 {
		err = errPending
	}
	if err != nil {
		log.Error("webhook not accepted, asking Meta to retry", "error", err,
			"messages", n.messages, "statuses", n.statuses)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	var attrs [9]slog.Attr
	logging.Info(r.Context(), log, "webhook", n.summary(attrs[:0])...)
	w.WriteHeader(http.StatusOK)
}

// summary is the webhook's one line at info level: the messages it carried
// and the ones queued always, the other counts only when they are not zero
// (most webhooks are one message, or one status), and the hashes of the
// messages queued, as one string (a query finds one with
// jsonPayload.msgs:"HASH"). It appends to attrs, so that the caller's array
// can hold them.
func (n *notification) summary(attrs []slog.Attr) []slog.Attr {
	attrs = append(attrs, slog.Int("messages", n.messages), slog.Int("queued", n.queued))
	for _, c := range []struct {
		key string
		n   int
	}{
		{"requeued", n.requeued}, {"duplicates", n.duplicates}, {"unserved", n.unserved},
		{"statuses", n.statuses}, {"confirmed", len(n.confirms)}, {"errors", n.errors},
	} {
		if c.n != 0 {
			attrs = append(attrs, slog.Int(c.key, c.n))
		}
	}
	if len(n.msgs) > 0 {
		attrs = append(attrs, slog.String("msgs", n.msgs))
	}
	return attrs
}

// errPending asks Meta to deliver a message again later: it was accepted
// moments ago by another request and is not claimed yet (see
// store.Pending).
var errPending = errors.New("a message of this webhook is still being accepted elsewhere")

// notification is what one webhook carried that matters to us.
type notification struct {
	// jobs are the messages to answer (accept reuses the array for the
	// ones it queues).
	jobs                         []queue.Job
	messages                     int // the messages with an id from served senders, whatever became of them
	confirms                     []confirmation
	statuses, errors             int
	queued, requeued, duplicates int
	pending                      int
	unserved                     int // from senders the Audience does not serve
	// msgs are the hashes of the messages queued, space-separated, for the
	// log line: one string, as a list would be encoded by reflection.
	msgs  string
	trace string
}

// confirmation is a status webhook that echoed one of our tags: that part of
// a reply reached Meta.
type confirmation struct{ id, part string }

// collect flattens a payload's entries and changes into jobs and
// confirmations, logging statuses and errors, which are never answered.
func collect(p *graphapi.Payload, d Deps, log *slog.Logger) notification {
	var n notification
	for _, entry := range p.Entry {
		for _, change := range entry.Changes {
			if change.Field != "messages" {
				continue
			}
			v := &change.Value
			for _, s := range v.Statuses {
				n.statuses++
				logStatus(log, d.IDs, s)
				if id, part, ok := d.Tags.Open(s.CallbackData); ok {
					n.confirms = append(n.confirms, confirmation{id, part})
				}
			}
			for _, e := range v.Errors {
				n.errors++
				log.Warn("webhook error", "code", e.Code, "title", e.Title, "details", e.ErrorData.Details)
			}
			for _, m := range v.Messages {
				if m.ID == "" {
					log.Warn("message without id skipped", "type", m.Type)
					continue
				}
				sender := v.SenderKey(m)
				if !d.Audience.Serves(sender, m.From, m.FromUserID) {
					n.unserved++
					continue
				}
				n.jobs = append(n.jobs, queue.Job{
					Message:       *m,
					PhoneNumberID: v.Metadata.PhoneNumberID,
					Sender:        sender,
					ProfileName:   v.ProfileName(m),
				})
			}
		}
	}
	return n
}

// logStatus logs what happened to a message we sent: at debug level, or as a
// warning when it failed. The status's id is our message's wamid, which
// names the recipient, so only its hash is logged above debug.
func logStatus(log *slog.Logger, ids logging.IDs, s *graphapi.Status) {
	if s.Status != "failed" {
		// Most webhooks are a status: as in accept, the debug line's
		// arguments are built only when it is on.
		if log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug("status", "wamid", s.ID, "status", s.Status, "recipient", logging.Mask(s.RecipientID))
		}
		return
	}
	codes := make([]int, len(s.Errors))
	for i, e := range s.Errors {
		codes[i] = e.Code
	}
	log.Warn("message delivery failed", ids.Attr(s.ID), "recipient", logging.Mask(s.RecipientID), "codes", codes)
}

// accept records the messages' markers and queues the new ones, and the ones
// whose earlier job may have been lost (store.Requeue). When queueing fails
// the markers are released, so that Meta's redelivery is processed rather
// than dropped as a duplicate.
func accept(r *http.Request, d Deps, n *notification, log *slog.Logger) error {
	n.messages = len(n.jobs)
	if n.messages == 0 {
		return nil
	}
	ids := make([]string, len(n.jobs))
	for i, job := range n.jobs {
		ids[i] = job.Message.ID
	}
	// The store takes a repeat of an id within one webhook for a
	// duplicate too.
	got, err := d.Store.Accept(r.Context(), ids)
	if err != nil {
		return err
	}
	// The per-message lines are at debug, and their arguments (hashes among
	// them) cost nothing unless it is on.
	debug := log.Enabled(r.Context(), slog.LevelDebug)
	fresh, freshIDs := n.jobs[:0], ids[:0]
	for i, job := range n.jobs {
		switch got[i] {
		case store.Duplicate:
			n.duplicates++
			if debug {
				log.Debug("duplicate message", d.IDs.Attr(job.Message.ID), "wamid", job.Message.ID)
			}
			continue
		case store.Pending:
			n.pending++
			if debug {
				log.Debug("message accepted moments ago, not yet claimed", d.IDs.Attr(job.Message.ID), "wamid", job.Message.ID)
			}
			continue
		case store.Requeue:
			n.requeued++
			log.Warn("message accepted earlier but never claimed; queueing it again", d.IDs.Attr(job.Message.ID))
		}
		job.Trace = n.trace
		fresh = append(fresh, job)
		freshIDs = append(freshIDs, job.Message.ID)
	}
	if err := d.Queue.Enqueue(r.Context(), fresh); err != nil {
		// The store releases even when the request's context is what ended
		// (Meta hung up, or the publish ran past the deadline).
		if rerr := d.Store.Release(r.Context(), freshIDs); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	n.queued = len(fresh) - n.requeued
	// One hash per message, for the webhook's line, joined in an array
	// on the stack that holds the usual few: only the string is allocated.
	var joined [64]byte
	msgs := joined[:0]
	for _, job := range fresh {
		if len(msgs) > 0 {
			msgs = append(msgs, ' ')
		}
		msgs = d.IDs.Append(msgs, job.Message.ID)
		if debug {
			log.Debug("message queued", d.IDs.Attr(job.Message.ID), "wamid", job.Message.ID,
				"type", job.Message.Type, "from", logging.Mask(job.Sender))
		}
	}
	n.msgs = string(msgs)
	return nil
}

// confirm records the parts that status webhooks confirmed sent.
func confirm(r *http.Request, d Deps, confirms []confirmation) error {
	for _, c := range confirms {
		if err := d.Store.Confirm(r.Context(), c.id, c.part); err != nil {
			return err
		}
	}
	return nil
}
