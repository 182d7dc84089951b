package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/patternai/whatsapp-node/retry"
)

// The Firestore collections. Markers and conversations are root collections;
// turns are a subcollection of each conversation, so their TTL policy is set
// on the collection group.
const (
	MarkersCollection       = "markers"
	ConversationsCollection = "conversations"
	TurnsCollection         = "turns"
	SendersCollection       = "senders"
	SpendingCollection      = "spending"
)

// Firestore is the Store kept in Cloud Firestore. Its layout is
//
//	markers/{docID(wamid)}
//	    id, state, attempts, leaseUntil, sent, sending, updatedAt, expireAt
//	conversations/{docID(user)}/turns/{docID(turn ID)}
//	    id, role, text, at, expireAt
//	senders/{docID(sender)}
//	    id, optedOut, optBy, minute, day, expireAt (none while opted out)
//	spending/{docID(number/day)}
//	    number, day, messages, micros, warned, expireAt
//
// where docID is explained at its definition and id keeps the original key
// readable. Both expireAt fields are meant for TTL policies (see the package
// documentation). The only query, History, orders one conversation's turns by
// at, which Firestore's automatic single-field index serves: no composite
// index is needed.
type Firestore struct {
	client        *firestore.Client
	opts          Options
	markers       *firestore.CollectionRef
	conversations *firestore.CollectionRef
	senders       *firestore.CollectionRef
	spending      *firestore.CollectionRef
}

var _ Store = (*Firestore)(nil)

// NewFirestore returns a Store in the database client connects to.
func NewFirestore(client *firestore.Client, opts Options) *Firestore {
	return newFirestore(client, opts, "")
}

// newFirestore prefixes the root collections' names with prefix, so that tests
// can share one emulator database without seeing each other's documents.
func newFirestore(client *firestore.Client, opts Options, prefix string) *Firestore {
	return &Firestore{
		client:        client,
		opts:          opts.withDefaults(),
		markers:       client.Collection(prefix + MarkersCollection),
		conversations: client.Collection(prefix + ConversationsCollection),
		senders:       client.Collection(prefix + SendersCollection),
		spending:      client.Collection(prefix + SpendingCollection),
	}
}

// maxRawID is the longest key docID encodes as hex: 1024 hex digits stay
// well inside Firestore's 1500-byte limit on a document ID.
const maxRawID = 512

// docID turns a wamid, user or turn ID into a document ID. Keys may hold '/'
// (which would split the path), be "." or "..", look like the reserved
// __name__ form, or be too long. The lowercase hex of the key has none of
// those problems and sorts like the key itself, so turns at the same time are
// ordered by ID here as they are in Memory. A key longer than maxRawID bytes,
// or an empty one (whose hex would be the invalid empty ID), becomes "sha256-"
// and the hex of its SHA-256 instead; that form cannot collide with a hex one,
// which never contains 's' or '-'.
func docID(key string) string {
	if key == "" || len(key) > maxRawID {
		sum := sha256.Sum256([]byte(key))
		return "sha256-" + hex.EncodeToString(sum[:])
	}
	return hex.EncodeToString([]byte(key))
}

// markerDoc is a marker as stored.
type markerDoc struct {
	ID         string    `firestore:"id"`
	State      State     `firestore:"state"`
	Attempts   int       `firestore:"attempts"`
	LeaseUntil time.Time `firestore:"leaseUntil"`
	Sent       []string  `firestore:"sent"`
	// Sending maps a part to when its send started.
	Sending   map[string]time.Time `firestore:"sending"`
	Counted   bool                 `firestore:"counted"`
	UpdatedAt time.Time            `firestore:"updatedAt"`
	ExpireAt  time.Time            `firestore:"expireAt"`
}

func newMarkerDoc(id string, m Marker) markerDoc {
	return markerDoc{
		ID:         id,
		State:      m.State,
		Attempts:   m.Attempts,
		LeaseUntil: m.LeaseUntil,
		Sent:       m.Sent,
		Sending:    m.Sending,
		Counted:    m.Counted,
		UpdatedAt:  m.UpdatedAt,
		ExpireAt:   m.ExpireAt,
	}
}

func (d markerDoc) marker() Marker {
	return Marker{
		State:      d.State,
		Attempts:   d.Attempts,
		LeaseUntil: d.LeaseUntil,
		Sent:       d.Sent,
		Sending:    d.Sending,
		Counted:    d.Counted,
		UpdatedAt:  d.UpdatedAt,
		ExpireAt:   d.ExpireAt,
	}
}

// readMarker decodes a snapshot read with err. found is false when the
// document does not exist.
func readMarker(snap *firestore.DocumentSnapshot, err error) (m Marker, found bool, _ error) {
	if status.Code(err) == codes.NotFound {
		return Marker{}, false, nil
	}
	if err != nil {
		return Marker{}, false, err
	}
	var d markerDoc
	if err := snap.DataTo(&d); err != nil {
		return Marker{}, false, fmt.Errorf("decode marker %s: %w", snap.Ref.ID, err)
	}
	return d.marker(), true, nil
}

func (s *Firestore) markerRef(id string) *firestore.DocumentRef {
	return s.markers.Doc(docID(id))
}

// maxInFlight bounds the requests one call has outstanding. 64 sends a
// 1000-id batch in about 16 round trips while staying under the 100
// concurrent streams a gRPC server commonly allows on one connection.
const maxInFlight = 64

// inParallel calls fn(i) for every i in [0, n), at most maxInFlight at a
// time, and returns when all calls have.
func inParallel(n int, fn func(i int)) {
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// Accept records each id; see Store.
//
// The common case costs one round of concurrent Creates: DocumentRef.Create is
// Firestore's atomic create-if-absent. On the emulator this accepts 1000 ids
// in about 0.3 s, where a BulkWriter (batches of 20, rate-limited) took about
// 0.45 s; see BenchmarkAccept1000. Only ids that already have a document
// are read (in one GetAll); live markers past Accepted are duplicates, and
// the rest (expired, vanished, or Accepted and maybe stranded) are settled in
// a transaction each, which re-checks under the transaction.
//
// A Create whose outcome is unknown (it timed out, or the connection broke)
// may have committed. If Accept fails it releases every marker it created or
// may have created, so that Meta's redelivery is not mistaken for a
// duplicate.
func (s *Firestore) Accept(ctx context.Context, ids []string) ([]Admission, error) {
	got := make([]Admission, len(ids))
	// first holds the index of each id's first occurrence; repeats stay
	// Duplicate.
	var first []int
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if !seen[id] {
			seen[id] = true
			first = append(first, i)
		}
	}

	// admit cannot refuse when there is no marker, so step cannot fail here.
	fresh, _ := s.opts.step(Marker{}, false, admit(0, new(Admission)))
	errs := s.createAll(ctx, ids, first, fresh)
	var existing []int
	var failed error
	var unsure []string
	for k, i := range first {
		switch err := errs[k]; {
		case err == nil:
			got[i] = New
		case status.Code(err) == codes.AlreadyExists:
			existing = append(existing, i)
		default:
			failed = err
			unsure = append(unsure, ids[i])
		}
	}
	if failed == nil && len(existing) > 0 {
		failed = s.admitExisting(ctx, ids, existing, got)
	}
	if failed != nil {
		for i, a := range got {
			if a == New {
				unsure = append(unsure, ids[i])
			}
		}
		// Release goes on though ctx may be done (the request's end is
		// often why Accept failed). Its error is dropped, since Accept's is
		// the one to report, and a marker it leaves is requeued by the
		// redelivery after the grace.
		_ = s.Release(ctx, unsure)
		return nil, fmt.Errorf("accept: %w", failed)
	}
	return got, nil
}

// createAll creates a marker m for ids[i] for each i in which and returns
// each Create's error in the same order.
func (s *Firestore) createAll(ctx context.Context, ids []string, which []int, m Marker) []error {
	errs := make([]error, len(which))
	inParallel(len(which), func(k int) {
		id := ids[which[k]]
		_, errs[k] = s.markerRef(id).Create(ctx, newMarkerDoc(id, m))
	})
	return errs
}

// admitExisting settles the ids at existing, which already had a document
// when Accept tried to create their markers, and writes the outcome to got.
func (s *Firestore) admitExisting(ctx context.Context, ids []string, existing []int, got []Admission) error {
	refs := make([]*firestore.DocumentRef, len(existing))
	for k, i := range existing {
		refs[k] = s.markerRef(ids[i])
	}
	snaps, err := s.client.GetAll(ctx, refs)
	if err != nil {
		return err
	}
	// A refusal read from the snapshot is final (Duplicate or Pending, set
	// in got); the rest are settled by a compare-and-set each.
	var settle []int
	for k, snap := range snaps {
		i := existing[k]
		if snap.Exists() {
			m, _, err := readMarker(snap, nil)
			if err != nil {
				return err
			}
			if _, err := s.opts.step(m, true, admit(s.opts.AcceptGrace, &got[i])); err != nil {
				continue
			}
		}
		settle = append(settle, i)
	}
	errs := make([]error, len(settle))
	inParallel(len(settle), func(k int) {
		i := settle[k]
		_, errs[k] = s.apply(ctx, ids[i], admit(s.opts.AcceptGrace, &got[i]))
	})
	for _, err := range errs {
		// admit's refusals are in got already.
		if err != nil && !errors.Is(err, errDuplicate) && !errors.Is(err, errPending) {
			return err
		}
	}
	return nil
}

// releaseTimeout bounds a Release, which does not end with its caller's
// context.
const releaseTimeout = 10 * time.Second

// Release deletes the markers of ids that are still Accepted; see Store. It
// runs on a context of its own, detached from ctx's cancellation and bounded
// by releaseTimeout: its callers release because a request failed, often
// because the request itself ended, and a marker left behind would make
// Meta's redelivery wait out the accept grace.
func (s *Firestore) Release(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = s.markerRef(id)
	}
	snaps, err := s.client.GetAll(ctx, refs)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := deleteAccepted(ctx, snaps); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// deleteAccepted deletes the markers that snaps show Accepted. Each delete is
// conditional on the document not having changed since its snapshot, so a
// marker claimed in the meantime is left alone.
func deleteAccepted(ctx context.Context, snaps []*firestore.DocumentSnapshot) error {
	var accepted []*firestore.DocumentSnapshot
	seen := make(map[string]bool)
	for _, snap := range snaps {
		if !snap.Exists() || seen[snap.Ref.ID] {
			continue
		}
		seen[snap.Ref.ID] = true
		m, _, err := readMarker(snap, nil)
		if err != nil {
			return err
		}
		if m.State == Accepted {
			accepted = append(accepted, snap)
		}
	}
	errs := make([]error, len(accepted))
	inParallel(len(accepted), func(k int) {
		snap := accepted[k]
		_, err := snap.Ref.Delete(ctx, firestore.LastUpdateTime(snap.UpdateTime))
		if status.Code(err) != codes.FailedPrecondition {
			errs[k] = err
		}
	})
	return errors.Join(errs...)
}

// Claim takes the message for lease; see Store.
func (s *Firestore) Claim(ctx context.Context, id string, lease time.Duration) (Marker, error) {
	m, err := s.apply(ctx, id, claim(lease))
	if err != nil {
		return m, fmt.Errorf("claim: %w", err)
	}
	return m, nil
}

// Renew extends a claim's lease; see Store.
func (s *Firestore) Renew(ctx context.Context, id string, token int, lease time.Duration) (Marker, error) {
	m, err := s.apply(ctx, id, fenced(token, renew(lease)))
	if err != nil {
		return m, fmt.Errorf("renew claim: %w", err)
	}
	return m, nil
}

// StartSend records a send about to leave; see Store.
func (s *Firestore) StartSend(ctx context.Context, id string, token int, part string) error {
	return s.write(ctx, "start send of "+part, id, fenced(token, startSend(part)))
}

// AbortSend forgets a send that did not leave; see Store.
func (s *Firestore) AbortSend(ctx context.Context, id string, token int, part string) error {
	return s.write(ctx, "abort send of "+part, id, fenced(token, abortSend(part)))
}

// MarkSent records that part of the reply was delivered.
func (s *Firestore) MarkSent(ctx context.Context, id, part string) error {
	return s.write(ctx, "mark "+part+" sent", id, markSent(part))
}

// Confirm settles a part a status webhook confirmed; see Store.
func (s *Firestore) Confirm(ctx context.Context, id, part string) error {
	if err := s.write(ctx, "confirm "+part, id, confirm(part)); !errors.Is(err, errUnchanged) {
		return err
	}
	return nil
}

// Unclaim hands a claimed message back; see Store.
func (s *Firestore) Unclaim(ctx context.Context, id string, token int) error {
	return s.write(ctx, "unclaim", id, fenced(token, unclaim))
}

// Complete marks the message Replied.
func (s *Firestore) Complete(ctx context.Context, id string, token int) error {
	return s.write(ctx, "complete", id, fenced(token, complete))
}

// write applies t and names op in its error. The wamid is left out of the
// error, since it embeds the sender's number and errors end up in logs.
func (s *Firestore) write(ctx context.Context, op, id string, t transition) error {
	if _, err := s.apply(ctx, id, t); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// maxWriteTries bounds how often apply reads again after another writer
// came first; ten racing claims settle in ten.
const maxWriteTries = 25

// apply runs t on the marker of id and returns the marker written. It is a
// compare-and-set: it reads the marker and writes the result only if the
// document has not changed since (a LastUpdateTime precondition, or Create
// when there was none), reading again when another writer came first. Unlike
// a transaction it holds no lock between the read and the write: Firestore
// keeps an abandoned transaction's locks until the transaction expires, so a
// process killed inside one would block the marker (the next attempt's claim,
// and the status webhooks that settle the reply) for a minute or more.
func (s *Firestore) apply(ctx context.Context, id string, t transition) (Marker, error) {
	return s.applyWith(ctx, id, t, nil)
}

// applyWith is apply with also's writes committed together with the
// marker's. The commit is then a transaction without reads, which holds no
// locks (see apply): the marker's write keeps its condition, and also
// should write only what does not contend, such as increments.
func (s *Firestore) applyWith(ctx context.Context, id string, t transition, also func(*firestore.Transaction) error) (Marker, error) {
	ref := s.markerRef(id)
	var out Marker
	var refused error // t's refusal, returned with the marker t saw
	err := untilFirst(ctx, maxWriteTries, func() error {
		snap, err := ref.Get(ctx)
		m, found, err := readMarker(snap, err)
		if err != nil {
			return err
		}
		if out, refused = s.opts.step(m, found, t); refused != nil {
			return nil
		}
		doc := newMarkerDoc(id, out)
		if also != nil {
			return s.client.RunTransaction(ctx, func(_ context.Context, tx *firestore.Transaction) error {
				var err error
				if found {
					err = tx.Update(ref, doc.updates(), firestore.LastUpdateTime(snap.UpdateTime))
				} else {
					err = tx.Create(ref, doc)
				}
				if err != nil {
					return err
				}
				return also(tx)
			})
		}
		if !found {
			_, err = ref.Create(ctx, doc)
			return err
		}
		_, err = ref.Update(ctx, doc.updates(), firestore.LastUpdateTime(snap.UpdateTime))
		return err
	})
	if err != nil {
		return Marker{}, err
	}
	return out, refused
}

// untilFirst runs write, a read and a conditional write, again while another
// writer came first (the condition failed, or the document appeared or
// vanished in between), up to tries times, after a short random pause so that
// racing writers fall out of step.
func untilFirst(ctx context.Context, tries int, write func() error) error {
	for try := 1; ; try++ {
		err := write()
		switch status.Code(err) {
		case codes.FailedPrecondition, codes.AlreadyExists, codes.NotFound:
			if try < tries {
				if err := retry.Sleep(ctx, rand.N(20*time.Millisecond)); err != nil {
					return err
				}
				continue
			}
		}
		return err
	}
}

// updates is d as the field updates that replace every field of a stored
// marker.
func (d markerDoc) updates() []firestore.Update {
	return []firestore.Update{
		{Path: "id", Value: d.ID},
		{Path: "state", Value: d.State},
		{Path: "attempts", Value: d.Attempts},
		{Path: "leaseUntil", Value: d.LeaseUntil},
		{Path: "sent", Value: d.Sent},
		{Path: "sending", Value: d.Sending},
		{Path: "counted", Value: d.Counted},
		{Path: "updatedAt", Value: d.UpdatedAt},
		{Path: "expireAt", Value: d.ExpireAt},
	}
}

// turnDoc is a turn as stored.
type turnDoc struct {
	ID       string    `firestore:"id"`
	Role     string    `firestore:"role"`
	Text     string    `firestore:"text"`
	At       time.Time `firestore:"at"`
	ExpireAt time.Time `firestore:"expireAt"`
}

func (s *Firestore) turns(user string) *firestore.CollectionRef {
	return s.conversations.Doc(docID(user)).Collection(TurnsCollection)
}

// History returns the user's last n live turns, oldest first. It reads the
// newest n turns and drops the expired ones, which the TTL policy may not
// have deleted yet. That loses no live turn: a turn expires HistoryTTL after
// its at, so the expired ones are always the oldest.
func (s *Firestore) History(ctx context.Context, user string, n int) ([]Turn, error) {
	if n <= 0 {
		return nil, nil
	}
	snaps, err := s.turns(user).OrderBy("at", firestore.Desc).Limit(n).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	now := s.opts.now()
	var turns []Turn
	for i := len(snaps) - 1; i >= 0; i-- {
		var d turnDoc
		if err := snaps[i].DataTo(&d); err != nil {
			return nil, fmt.Errorf("read history: decode turn %s: %w", snaps[i].Ref.ID, err)
		}
		if now.Before(d.ExpireAt) {
			turns = append(turns, Turn{ID: d.ID, Role: d.Role, Text: d.Text, At: d.At})
		}
	}
	return turns, nil
}

// AppendTurns writes each turn to its own document, named after its ID, so
// that concurrent appends never contend and a retried append overwrites
// rather than adds. The turns are written in one transaction, so a user's
// message and the reply to it are stored together or not at all.
func (s *Firestore) AppendTurns(ctx context.Context, user string, turns ...Turn) error {
	turns, err := s.opts.prepareTurns(turns)
	if err != nil || len(turns) == 0 {
		return err
	}
	coll := s.turns(user)
	err = s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		for _, t := range turns {
			d := turnDoc{ID: t.ID, Role: t.Role, Text: t.Text, At: t.At, ExpireAt: t.At.Add(s.opts.HistoryTTL)}
			if err := tx.Set(coll.Doc(docID(t.ID)), d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append turns: %w", err)
	}
	return nil
}
