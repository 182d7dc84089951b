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
// lease before doing any work and completes it only after the reply was sent,
// so a second attempt finds Replied and sends nothing.
type State string

// The states of a marker.
const (
	Accepted   State = "accepted"
	Processing State = "processing"
	Replied    State = "replied"
)

// Marker is the record kept for one inbound message, keyed by its wamid.
type Marker struct {
	State State
	// Attempts counts the claims so far, so the pipeline can give up (and send
	// its fallback) after a bounded number of tries.
	Attempts int
	// LeaseUntil is when a Processing claim lapses and may be taken again.
	LeaseUntil time.Time
	// Sent lists the reply parts already delivered (such as "text" and
	// "audio"), so a retried reply resumes after them instead of repeating them.
	Sent      []string
	UpdatedAt time.Time
	// ExpireAt is when the marker stops counting; after it the message is
	// treated as never seen. Firestore's TTL policy deletes it some time later.
	ExpireAt time.Time
}

// Turn is one utterance in a conversation.
type Turn struct {
	// ID makes appends idempotent: a retried reply writes the same turn again
	// under the same ID instead of adding a copy. Use the wamid and the role.
	ID   string
	Role string // "user" or "model"
	Text string
	At   time.Time
}

// Errors returned by Claim.
var (
	ErrReplied = errors.New("message already replied")
	ErrClaimed = errors.New("message is being processed elsewhere")
)

// Store is what the service keeps between requests.
type Store interface {
	// Accept creates an Accepted marker for each id that has no live marker,
	// in as few round trips as the backend allows. created[i] reports whether
	// ids[i] was new; false means a duplicate.
	Accept(ctx context.Context, ids []string) (created []bool, err error)
	// Release deletes the markers of ids that are still Accepted. The webhook
	// calls it when queueing failed, so Meta's redelivery is not mistaken for
	// a duplicate and dropped.
	Release(ctx context.Context, ids []string) error
	// Claim moves the marker to Processing until now+lease and counts the
	// attempt. It succeeds for an Accepted marker, a Processing one whose lease
	// has run out, and a missing or expired one (created on the spot). It
	// returns ErrReplied once the message was answered and ErrClaimed while
	// another holder's lease is live.
	Claim(ctx context.Context, id string, lease time.Duration) (Marker, error)
	// Unclaim hands a claimed message back before its lease ends: the attempt
	// failed in a way a later try may not, and that try need not wait.
	Unclaim(ctx context.Context, id string) error
	// MarkSent records that one part of the reply was delivered; recording a
	// part twice keeps one copy. It never fails for want of a marker: a
	// missing or expired one is created in Processing with a lapsed lease, so
	// the fact that the part went out is kept and a later Claim resumes.
	MarkSent(ctx context.Context, id, part string) error
	// Complete marks the message Replied, creating the marker if it is
	// missing or expired, because the reply went out either way.
	Complete(ctx context.Context, id string) error

	// History returns the user's last n turns that have not expired, oldest
	// first. Turns with the same At are ordered by ID. A turn expires
	// HistoryTTL after its At.
	History(ctx context.Context, user string, n int) ([]Turn, error)
	// AppendTurns adds turns to the user's conversation. Concurrent appends
	// for one user never lose a turn. A turn whose ID is already stored
	// replaces it, so a retried append adds nothing. Every turn needs an ID;
	// a zero At is set to the current time.
	AppendTurns(ctx context.Context, user string, turns ...Turn) error
}

// Default retention, used where Options leaves a field zero.
const (
	DefaultMarkerTTL  = 7 * 24 * time.Hour
	DefaultHistoryTTL = 24 * time.Hour
)

// Options are the retention settings shared by both implementations. The zero
// value means the defaults.
type Options struct {
	MarkerTTL  time.Duration // default DefaultMarkerTTL
	HistoryTTL time.Duration // default DefaultHistoryTTL
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
