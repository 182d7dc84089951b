package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// This file keeps what the service knows about each sender: whether they
// opted out, and the messages they sent in the current minute and day, which
// the per-sender limits count. One document per sender holds both, so one
// conditional write per inbound message settles them together and many
// instances agree on every count.

// Limits bound the messages one sender may have answered per minute and per
// calendar day (UTC). Zero means no limit.
type Limits struct {
	PerMinute int
	PerDay    int
}

// MaxPerDay bounds Limits.PerDay: the day's window keeps a 16-character
// hash of every message it admitted, and Firestore's documents hold 1 MiB.
const MaxPerDay = 10000

// Inbound is one inbound message as Gate sees it: whether its text is an
// opt-out or opt-in word, and the limits that apply.
type Inbound struct {
	Stop, Start bool
	Limits      Limits
}

// Verdict is what a sender's state made of one inbound message.
type Verdict int

// The verdicts.
const (
	// Serve: the message was counted; answer it.
	Serve Verdict = iota + 1
	// Quiet: send nothing. The sender opted out, or repeated STOP, or is over
	// a limit whose notice another message of the window already got.
	Quiet
	// OverMinute and OverDay: over that limit, and the first message to be
	// so in its window; it gets the one notice.
	OverMinute
	OverDay
	// Stopped: this message opted the sender out; acknowledge it.
	Stopped
	// Started: this message opted the sender back in; acknowledge it.
	Started
)

// Sender is the state kept for one sender.
type Sender struct {
	// OptedOut is set by STOP and cleared by START. It is never forgotten:
	// while it is set the document has no expiry.
	OptedOut bool
	// OptBy is the hash of the message that last changed OptedOut, so that
	// a retried STOP or START is acknowledged again, and only that one.
	OptBy       string
	Minute, Day Window
}

// Window is one limit's current window.
type Window struct {
	Start time.Time
	// IDs are the hashes of the messages admitted in the window.
	IDs []string
	// Notice is the hash of the message that got the window's notice.
	Notice string
}

// roll starts a new window when now is past w's.
func (w *Window) roll(now time.Time, size time.Duration) {
	if start := now.Truncate(size); !w.Start.Equal(start) {
		*w = Window{Start: start}
	}
}

// expireAt is when the TTL policy may delete the sender's document, written
// at now: that of the day's documents (see dayExpiry), or never while the
// sender is opted out.
func (s Sender) expireAt(now time.Time) time.Time {
	if s.OptedOut {
		return time.Time{}
	}
	return dayExpiry(now)
}

// dayExpiry is when the TTL policy may delete a document about now's UTC day
// (a sender's windows, a number's spending): two days after the day began. It
// stops counting when the day ends; the spare day costs only storage, and no
// request straddling midnight, nor a clock a little behind, finds it gone.
func dayExpiry(now time.Time) time.Time {
	return now.Truncate(24 * time.Hour).Add(48 * time.Hour)
}

// shortID is the hash of a message id a sender's document keeps: 64 bits,
// enough to tell apart one sender's messages, and a quarter of a wamid's
// length, so a day's window of MaxPerDay fits in a document.
func shortID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// judge judges message id at now, counting it in s when it is to be served.
// A retry of the same message gets the same verdict and is not counted twice:
// the windows remember what they admitted, and the message that got a notice
// or changed the opt-out.
//
// Windows are fixed (the minute, the UTC day), so a sender can get up to
// twice a limit answered across a window's edge; in exchange a window turns
// at a time the notice can name.
func (s *Sender) judge(id string, in Inbound, now time.Time) Verdict {
	id = shortID(id)
	switch {
	case in.Stop && !s.OptedOut:
		s.OptedOut, s.OptBy = true, id
		return Stopped
	case in.Stop && s.OptBy == id:
		return Stopped
	case in.Stop:
		return Quiet
	case in.Start && s.OptedOut:
		s.OptedOut, s.OptBy = false, id
		return Started
	case in.Start && s.OptBy == id:
		return Started
	case s.OptedOut:
		return Quiet
	}
	// START from a sender who never stopped is an ordinary message.

	s.Minute.roll(now, time.Minute)
	s.Day.roll(now, 24*time.Hour)
	switch {
	case slices.Contains(s.Day.IDs, id), slices.Contains(s.Minute.IDs, id):
		return Serve
	case s.Day.Notice == id:
		return OverDay
	case s.Minute.Notice == id:
		return OverMinute
	case in.Limits.PerDay > 0 && len(s.Day.IDs) >= in.Limits.PerDay:
		return over(&s.Day, id, OverDay)
	case in.Limits.PerMinute > 0 && len(s.Minute.IDs) >= in.Limits.PerMinute:
		return over(&s.Minute, id, OverMinute)
	}
	// A window without a limit keeps nothing, so the document stays small.
	if in.Limits.PerMinute > 0 {
		s.Minute.IDs = append(s.Minute.IDs, id)
	}
	if in.Limits.PerDay > 0 {
		s.Day.IDs = append(s.Day.IDs, id)
	}
	return Serve
}

// over gives the window's notice to id if no message has had it yet.
func over(w *Window, id string, notice Verdict) Verdict {
	if w.Notice != "" {
		return Quiet
	}
	w.Notice = id
	return notice
}

// Gate judges one inbound message from sender against the sender's opt-out
// and limits, and counts it when it is to be served; see Verdict.
func (s *Memory) Gate(_ context.Context, sender, id string, in Inbound) (Verdict, error) {
	now := s.opts.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.senders[sender]
	v := st.judge(id, in, now)
	s.senders[sender] = st
	return v, nil
}

// senderDoc is a sender as stored.
type senderDoc struct {
	ID       string    `firestore:"id"`
	OptedOut bool      `firestore:"optedOut"`
	OptBy    string    `firestore:"optBy"`
	Minute   windowDoc `firestore:"minute"`
	Day      windowDoc `firestore:"day"`
	// ExpireAt is nil while the sender is opted out, which the TTL policy
	// never deletes.
	ExpireAt *time.Time `firestore:"expireAt"`
}

type windowDoc struct {
	Start  time.Time `firestore:"start"`
	IDs    []string  `firestore:"ids"`
	Notice string    `firestore:"notice"`
}

// Gate judges one inbound message; see Memory.Gate. It is a compare-and-set
// like the markers' (see Firestore.apply), for the same reason, and so that
// concurrent messages of one sender are counted exactly: the losers of a
// race read again.
func (s *Firestore) Gate(ctx context.Context, sender, id string, in Inbound) (Verdict, error) {
	ref := s.senders.Doc(docID(sender))
	var v Verdict
	err := untilFirst(ctx, maxSenderTries, func() (err error) {
		v, err = s.gateOnce(ctx, ref, sender, id, in)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("gate message: %w", err)
	}
	return v, nil
}

// maxSenderTries bounds Gate's reads again (see untilFirst). n messages of one
// sender racing settle in n tries (one wins each round). The queues hand a
// sender's messages over one at a time (a worker per sender in process, an
// ordering key in Pub/Sub), so races are rare in service; the bound is
// generous so that a burst without that order still settles.
const maxSenderTries = 100

// gateOnce is one read and conditional write of Gate.
func (s *Firestore) gateOnce(ctx context.Context, ref *firestore.DocumentRef, sender, id string, in Inbound) (Verdict, error) {
	snap, err := ref.Get(ctx)
	found := err == nil
	var d senderDoc
	switch {
	case status.Code(err) == codes.NotFound:
	case err != nil:
		return 0, err
	default:
		if err := snap.DataTo(&d); err != nil {
			return 0, fmt.Errorf("decode sender: %w", err)
		}
	}
	st := Sender{OptedOut: d.OptedOut, OptBy: d.OptBy, Minute: Window(d.Minute), Day: Window(d.Day)}
	now := s.opts.now()
	v := st.judge(id, in, now)
	d = senderDoc{ID: sender, OptedOut: st.OptedOut, OptBy: st.OptBy,
		Minute: windowDoc(st.Minute), Day: windowDoc(st.Day)}
	if exp := st.expireAt(now); !exp.IsZero() {
		d.ExpireAt = &exp
	}
	if !found {
		_, err = ref.Create(ctx, d)
		return v, err
	}
	_, err = ref.Update(ctx, []firestore.Update{
		{Path: "id", Value: d.ID},
		{Path: "optedOut", Value: d.OptedOut},
		{Path: "optBy", Value: d.OptBy},
		{Path: "minute", Value: d.Minute},
		{Path: "day", Value: d.Day},
		{Path: "expireAt", Value: d.ExpireAt},
	}, firestore.LastUpdateTime(snap.UpdateTime))
	return v, err
}

// Spend is what a number's replies cost in a day, as far as the service
// estimates it.
type Spend struct {
	Messages int
	// Micros is the estimated cost in millionths of a US dollar, kept whole
	// so that concurrent increments add up exactly.
	Micros int64
}

// day is the UTC day of now, as a document key.
func day(now time.Time) string { return now.Format(time.DateOnly) }

// spendKey names a number's spending on a day.
func spendKey(number string, now time.Time) string { return number + "/" + day(now) }

// Spending returns what number spent today (UTC).
func (s *Memory) Spending(_ context.Context, number string) (Spend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spend[spendKey(number, s.opts.now())].Spend, nil
}

// AddSpend adds the reply to message id and its estimated cost to number's
// day, once per message; see Store.
func (s *Memory) AddSpend(_ context.Context, number, id string, sp Spend) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.apply(id, count); errors.Is(err, errUnchanged) {
		return nil
	}
	k := spendKey(number, s.opts.now())
	d := s.spend[k]
	d.Messages += sp.Messages
	d.Micros += sp.Micros
	s.spend[k] = d
	return nil
}

// FirstOverCeiling reports whether this is the first call today for number,
// so that reaching the daily ceiling is logged once however many instances
// see it.
func (s *Memory) FirstOverCeiling(_ context.Context, number string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := spendKey(number, s.opts.now())
	d := s.spend[k]
	first := !d.warned
	d.warned = true
	s.spend[k] = d
	return first, nil
}

// memorySpend is a number's day in Memory.
type memorySpend struct {
	Spend
	warned bool
}

// spendDoc is a number's day as stored, under spending/{docID(number/day)}.
type spendDoc struct {
	Number   string    `firestore:"number"`
	Day      string    `firestore:"day"`
	Messages int       `firestore:"messages"`
	Micros   int64     `firestore:"micros"`
	Warned   bool      `firestore:"warned"`
	ExpireAt time.Time `firestore:"expireAt"`
}

// spendRef is number's document for the day of now. A caller reads the clock
// once and passes it here and to the fields it writes, so that at midnight a
// document cannot get the other day's date.
func (s *Firestore) spendRef(number string, now time.Time) *firestore.DocumentRef {
	return s.spending.Doc(docID(spendKey(number, now)))
}

// Spending returns what number spent today (UTC). It is a plain read: the
// ceiling is checked against it before a reply and the reply's cost added
// after, so replies in flight at that moment can pass it, by at most the
// number of messages being answered at once.
func (s *Firestore) Spending(ctx context.Context, number string) (Spend, error) {
	snap, err := s.spendRef(number, s.opts.now()).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return Spend{}, nil
	}
	if err != nil {
		return Spend{}, fmt.Errorf("read spending: %w", err)
	}
	var d spendDoc
	if err := snap.DataTo(&d); err != nil {
		return Spend{}, fmt.Errorf("read spending: %w", err)
	}
	return Spend{Messages: d.Messages, Micros: d.Micros}, nil
}

// AddSpend adds to number's day once per message; see Store. The message's
// marker records the count (see count), in one commit with the day's
// Firestore atomic increments: every answered message of a number writes
// this one document, and increments do not contend and retry the way reads
// in transactions on a busy document do.
func (s *Firestore) AddSpend(ctx context.Context, number, id string, sp Spend) error {
	now := s.opts.now()
	ref := s.spendRef(number, now)
	fields := map[string]any{
		"number":   number,
		"day":      day(now),
		"messages": firestore.Increment(sp.Messages),
		"micros":   firestore.Increment(sp.Micros),
		"expireAt": dayExpiry(now),
	}
	_, err := s.applyWith(ctx, id, count, func(tx *firestore.Transaction) error {
		return tx.Set(ref, fields, firestore.MergeAll)
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return fmt.Errorf("add spending: %w", err)
	}
	return nil
}

// FirstOverCeiling reports whether this is the first call today for number;
// see Memory.FirstOverCeiling. It sets the day's flag by compare-and-set, so
// that of two instances racing only one sees it unset.
func (s *Firestore) FirstOverCeiling(ctx context.Context, number string) (bool, error) {
	now := s.opts.now()
	ref := s.spendRef(number, now)
	flag := map[string]any{"number": number, "day": day(now), "warned": true, "expireAt": dayExpiry(now)}
	first := false
	err := untilFirst(ctx, maxSenderTries, func() error {
		snap, err := ref.Get(ctx)
		switch {
		case status.Code(err) == codes.NotFound:
			_, err = ref.Create(ctx, flag)
		case err != nil:
			return err
		default:
			if warned, _ := snap.DataAt("warned"); warned == true {
				return nil
			}
			_, err = ref.Update(ctx, []firestore.Update{{Path: "warned", Value: true}},
				firestore.LastUpdateTime(snap.UpdateTime))
		}
		first = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("mark ceiling: %w", err)
	}
	return first, nil
}
