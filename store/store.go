// Package store keeps the service's state: one marker per inbound message (the
// dedupe record that also makes replies exactly-once) and each user's recent
// conversation turns. Firestore backs it in production (NewFirestore), memory
// locally (NewMemory).
//
// Expired markers and turns are deleted by Firestore TTL policies on their
// expireAt fields, set up once per database:
//
//	gcloud firestore fields ttls update expireAt --collection-group=markers --enable-ttl
//	gcloud firestore fields ttls update expireAt --collection-group=turns --enable-ttl
//	gcloud firestore fields ttls update expireAt --collection-group=senders --enable-ttl
//	gcloud firestore fields ttls update expireAt --collection-group=spending --enable-ttl
//
// A sender who opted out keeps a document without expireAt, which the TTL
// policy never deletes.
//
// TTL deletion can lag expiry by about a day, so the code checks expireAt
// itself and never relies on the deletion. The store needs no composite
// index: its one query orders a conversation's turns by a single field, at.
// No query reads expireAt, so its automatic index can be switched off, which
// Firestore advises for timestamps that keep increasing:
//
//	gcloud firestore indexes fields update expireAt --collection-group=markers --disable-indexes
//	gcloud firestore indexes fields update expireAt --collection-group=turns --disable-indexes
package store

import (
	"context"
	"errors"
	"time"
)

// State is where a message is on its way to a reply.
//
//	accepted ──Claim──> processing ──Complete──> replied
//	             ^           │
//	             └── lease runs out (worker died) ──┘
//
// A marker is created in Accepted by the webhook (create-if-absent, so a
// redelivery is recognised as a duplicate). The reply pipeline claims it for a
// short lease before doing any work, renews the lease while it works, and
// completes it only after the reply was sent, so a second attempt finds
// Replied and sends nothing.
//
// Every claim gets a fencing token (the attempt number). The writes an
// attempt makes about its claim (Renew, StartSend, AbortSend, Unclaim,
// Complete) apply only while its token still holds, so an attempt that lost
// its lease can never undo the work of the one that holds the message now,
// nor send anything more: StartSend, which comes before every send, refuses.
type State string

// The states of a marker.
const (
	Accepted   State = "accepted"
	Processing State = "processing"
	Replied    State = "replied"
)

// FallbackPart is the part name of the fallback message. StartSend refuses it
// once any other part is sent or uncertain, and any other part once it is.
const FallbackPart = "fallback"

// Marker is the record kept for one inbound message, keyed by its wamid.
type Marker struct {
	State State
	// Attempts counts the claims so far, so the pipeline can give up (and send
	// its fallback) after a bounded number of tries. The count at a Claim is
	// that claim's fencing token.
	Attempts int
	// LeaseUntil is when a Processing claim lapses and may be taken again.
	LeaseUntil time.Time
	// Sent lists the reply parts known delivered (such as "text.1" and
	// "audio"): Graph answered with a message id, or a status webhook echoed
	// the part's tag. A retried reply resumes after them.
	Sent []string
	// Sending holds the parts whose send started at the given time and whose
	// outcome is not known yet: the request may have reached Meta. A later
	// attempt sends such a part again only after no status confirmed it for
	// a while (see package reply).
	Sending map[string]time.Time
	// Counted records that the reply was added to its number's daily
	// spending (AddSpend), so that a retry does not add it again.
	Counted   bool
	UpdatedAt time.Time
	// ExpireAt is when the marker stops counting; after it the message is
	// treated as never seen. Firestore's TTL policy deletes it some time later.
	ExpireAt time.Time
}

// Uncertain reports whether part's send started at some point and neither
// succeeded nor was known to fail, and since when.
func (m Marker) Uncertain(part string) (since time.Time, ok bool) {
	since, ok = m.Sending[part]
	return since, ok
}

// Admission is what Accept made of one message id.
type Admission int

// The admissions.
const (
	// Duplicate: the message is known and on its way (or answered).
	Duplicate Admission = iota
	// New: first seen now; queue it.
	New
	// Requeue: accepted long ago and never claimed, so its job may have been
	// lost; queue it again.
	Requeue
	// Pending: accepted moments ago and not claimed yet; another request is
	// most likely queueing it. Ask Meta to deliver it again later.
	Pending
)

// Queue reports whether the message should be queued.
func (a Admission) Queue() bool { return a == New || a == Requeue }

// Turn is one utterance in a conversation.
type Turn struct {
	// ID makes appends idempotent: a retried reply writes the same turn again
	// under the same ID instead of adding a copy. Use the wamid and the role.
	ID   string
	Role string // "user" or "model"
	Text string
	At   time.Time
}

// Errors returned by Claim and the fenced writes.
var (
	ErrReplied = errors.New("message already replied")
	ErrClaimed = errors.New("message is being processed elsewhere")
	// ErrLost means the attempt's claim no longer holds: its lease ran out
	// and another attempt claimed the message. The attempt must stop.
	ErrLost = errors.New("claim lost to another attempt")
	// ErrAnswered refuses a StartSend that would put the fallback beside an
	// answer, or an answer beside the fallback.
	ErrAnswered = errors.New("the user has or may have another reply")
)

// Store is what the service keeps between requests.
type Store interface {
	// Accept records each id of a webhook, in as few round trips as the
	// backend allows, and says for each what became of it (see Admission).
	// A repeated id within ids is a Duplicate of its first occurrence. On
	// error it leaves no marker it may have created, so that Meta's
	// redelivery is not mistaken for a duplicate.
	Accept(ctx context.Context, ids []string) ([]Admission, error)
	// Release deletes the markers of ids that are still Accepted. The webhook
	// calls it when queueing failed, so Meta's redelivery is not mistaken for
	// a duplicate and dropped. It outlives ctx's cancellation, for a bounded
	// time: the request's end is often why queueing failed.
	Release(ctx context.Context, ids []string) error
	// Claim moves the marker to Processing until now+lease and counts the
	// attempt; the returned Attempts is the claim's fencing token. It
	// succeeds for an Accepted marker, a Processing one whose lease has run
	// out, and a missing or expired one (created on the spot). It returns
	// ErrReplied once the message was answered, and ErrClaimed, with the
	// marker (to tell when its lease ends), while another claim is live.
	Claim(ctx context.Context, id string, lease time.Duration) (Marker, error)
	// Renew extends the claim's lease to now+lease and returns the marker,
	// which shows the parts confirmed since.
	Renew(ctx context.Context, id string, token int, lease time.Duration) (Marker, error)
	// StartSend records that part is about to be sent; no part is sent
	// without it. It refuses with ErrAnswered as FallbackPart says.
	StartSend(ctx context.Context, id string, token int, part string) error
	// AbortSend forgets a started send that certainly did not reach Meta.
	AbortSend(ctx context.Context, id string, token int, part string) error
	// MarkSent records that part was delivered. It is not fenced, since the
	// part went out whoever holds the claim, and it never fails for want of
	// a marker: a missing or expired one is created Processing with a lapsed
	// lease, so the fact is kept and a later Claim resumes after it.
	MarkSent(ctx context.Context, id, part string) error
	// Confirm settles part as delivered when a status webhook echoed its tag.
	// It writes nothing when the message has no live marker, or when part is
	// already recorded sent and not uncertain: a part gets up to three
	// statuses (sent, delivered, read), and once one settled it the others
	// change nothing.
	Confirm(ctx context.Context, id, part string) error
	// Unclaim hands a claimed message back before its lease ends: the attempt
	// failed in a way a later try may not, and that try need not wait.
	Unclaim(ctx context.Context, id string, token int) error
	// Complete marks the message Replied.
	Complete(ctx context.Context, id string, token int) error

	// History returns the user's last n turns that have not expired, oldest
	// first. Turns with the same At are ordered by ID. A turn expires
	// HistoryTTL after its At.
	History(ctx context.Context, user string, n int) ([]Turn, error)
	// AppendTurns adds turns to the user's conversation. Concurrent appends
	// for one user never lose a turn. A turn whose ID is already stored
	// replaces it, so a retried append adds nothing. Every turn needs an ID;
	// turns with a zero At are dated now, in the order given.
	AppendTurns(ctx context.Context, user string, turns ...Turn) error
	// ResetHistory forgets the user's conversation; markers are kept.
	ResetHistory(ctx context.Context, user string) error

	// Gate judges an inbound message against its sender's opt-out and
	// limits, and counts it when it is to be served (see Verdict). A retry
	// of the same message gets the same verdict and is not counted again.
	Gate(ctx context.Context, sender, id string, in Inbound) (Verdict, error)
	// Spending returns what a number's replies cost today (UTC).
	Spending(ctx context.Context, number string) (Spend, error)
	// AddSpend adds the reply to message id to its number's spending today,
	// once: the message's marker records it, and a later call for the same
	// message (a retry's) adds nothing.
	AddSpend(ctx context.Context, number, id string, sp Spend) error
	// FirstOverCeiling returns true for the first call per number and day,
	// false after.
	FirstOverCeiling(ctx context.Context, number string) (bool, error)
}

// Default retention, used where Options leaves a field zero.
const (
	DefaultMarkerTTL  = 7 * 24 * time.Hour
	DefaultHistoryTTL = 24 * time.Hour
	// DefaultAcceptGrace is how long a redelivery of a message accepted but
	// not yet claimed is answered "later" rather than queued again. Queueing
	// takes milliseconds and a push reaches the pipeline in about a second.
	DefaultAcceptGrace = 10 * time.Second
)

// Options are the retention settings shared by both implementations. The zero
// value means the defaults.
type Options struct {
	MarkerTTL  time.Duration // default DefaultMarkerTTL
	HistoryTTL time.Duration // default DefaultHistoryTTL
	// AcceptGrace is DefaultAcceptGrace when zero; a negative value means none.
	AcceptGrace time.Duration
	// Now is the clock (default time.Now); tests replace it to expire markers.
	Now func() time.Time
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.MarkerTTL <= 0 {
		o.MarkerTTL = DefaultMarkerTTL
	}
	if o.HistoryTTL <= 0 {
		o.HistoryTTL = DefaultHistoryTTL
	}
	if o.AcceptGrace == 0 {
		o.AcceptGrace = DefaultAcceptGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// now reads the clock the way Firestore keeps time: in UTC, to the
// microsecond. Memory uses it too, so both return equal times.
func (o Options) now() time.Time {
	return o.Now().UTC().Truncate(time.Microsecond)
}
