package store

import (
	"errors"
	"maps"
	"slices"
	"time"
)

// Errors the transitions refuse with that never leave the package: admit
// reports its refusals as an Admission too, so Accept drops them, and Confirm
// and AddSpend take errUnchanged for success. A refusal writes nothing.
var (
	errDuplicate = errors.New("duplicate message")
	errPending   = errors.New("message accepted moments ago")
	errUnchanged = errors.New("nothing to change")
)

// A transition changes a marker at now. It is given the live marker, or the
// zero Marker (State "") when the message has none, and returns it changed,
// or refuses with an error, in which case nothing is written. Both
// implementations run the same transitions, so they cannot disagree about the
// state machine. The marker goes in and out by value: one passed by address
// to a function value would be allocated on every call, and the intake makes
// one for every message.
type transition func(m Marker, now time.Time) (Marker, error)

// step applies t to the stored marker m (found reports whether there is one)
// and returns the marker to store. An expired marker counts as absent: t then
// sees a zero Marker, and the result gets a fresh expiry. The expiry is not
// moved by later transitions, so a marker lives MarkerTTL from its creation.
// When t refuses, step returns the live marker as t saw it, with the error,
// so that a caller can tell, say, when a lease it could not take ends.
func (o Options) step(m Marker, found bool, t transition) (Marker, error) {
	now := o.now()
	if !found || !now.Before(m.ExpireAt) {
		m = Marker{ExpireAt: now.Add(o.MarkerTTL)}
	}
	seen := m.clone()
	m, err := t(m, now)
	if err != nil {
		return seen, err
	}
	m.UpdatedAt = now
	return m, nil
}

// clone copies m with its own Sent and Sending, because transitions change
// them in place.
func (m Marker) clone() Marker {
	m.Sent = slices.Clone(m.Sent)
	m.Sending = maps.Clone(m.Sending)
	return m
}

// admit returns the transition that takes in a message from a webhook, and
// reports through *got what became of it. It sets *got on every run, refused
// or not, since Firestore's compare-and-set may run it again after a lost race
// and the last run is the one that counts.
//
// A marker still Accepted, never claimed, is the trace of a delivery whose
// job may never have been queued (the process died between the two, or the
// queue failed and the release did not go through). Within grace of its
// acceptance another request is most likely queueing it right now, so the
// answer is "try again later"; after that the message is queued again: the
// claim makes a second job harmless, and Meta's retry heals the loss.
func admit(grace time.Duration, got *Admission) transition {
	return func(m Marker, now time.Time) (Marker, error) {
		switch {
		case m.State == "":
			m.State = Accepted
			*got = New
		case m.State != Accepted:
			*got = Duplicate
			return m, errDuplicate
		case now.Sub(m.UpdatedAt) < grace:
			*got = Pending
			return m, errPending
		default:
			// step moves UpdatedAt to now, which starts a new grace.
			*got = Requeue
		}
		return m, nil
	}
}

// claim returns the transition that takes a message for lease. Attempts,
// counted here, is the claim's fencing token.
func claim(lease time.Duration) transition {
	return func(m Marker, now time.Time) (Marker, error) {
		switch {
		case m.State == Replied:
			return m, ErrReplied
		case m.State == Processing && now.Before(m.LeaseUntil):
			return m, ErrClaimed
		}
		m.State = Processing
		m.Attempts++
		m.LeaseUntil = now.Add(lease)
		return m, nil
	}
}

// fenced wraps t so that it applies only while the claim with token holds:
// the marker is Processing and no later Claim has taken it. A claim whose
// lease ran out still holds until someone else claims the message, since
// until then nobody else can act on it.
func fenced(token int, t transition) transition {
	return func(m Marker, now time.Time) (Marker, error) {
		switch {
		case m.State == Replied:
			return m, ErrReplied
		case m.State != Processing || m.Attempts != token:
			return m, ErrLost
		}
		return t(m, now)
	}
}

// renew extends the claim's lease.
func renew(lease time.Duration) transition {
	return func(m Marker, now time.Time) (Marker, error) {
		m.LeaseUntil = now.Add(lease)
		return m, nil
	}
}

// startSend records that part is about to be sent, before the request
// leaves: if the attempt then dies, or the answer is lost, the next attempt
// finds the part uncertain instead of sending it again at once. The fallback
// is refused once any part of the answer is sent or uncertain, and the answer
// once the fallback is, so a user never gets "Sorry" beside an answer.
func startSend(part string) transition {
	return func(m Marker, now time.Time) (Marker, error) {
		for _, p := range slices.Concat(m.Sent, slices.Collect(maps.Keys(m.Sending))) {
			if p != part && (part == FallbackPart) != (p == FallbackPart) {
				return m, ErrAnswered
			}
		}
		if m.Sending == nil {
			m.Sending = make(map[string]time.Time)
		}
		m.Sending[part] = now
		return m, nil
	}
}

// abortSend forgets a send that certainly did not reach Meta.
func abortSend(part string) transition {
	return func(m Marker, _ time.Time) (Marker, error) {
		delete(m.Sending, part)
		return m, nil
	}
}

// markSent records part as delivered. It is not fenced: that a message went
// out is a fact whoever learns it, and forgetting it would send it twice. A
// missing marker is created Processing with a lapsed lease, so the fact is
// kept and a later Claim resumes after it.
func markSent(part string) transition {
	return func(m Marker, _ time.Time) (Marker, error) {
		if m.State == "" {
			m.State = Processing
		}
		delete(m.Sending, part)
		if !slices.Contains(m.Sent, part) {
			m.Sent = append(m.Sent, part)
		}
		return m, nil
	}
}

// confirm is markSent for a status webhook: it settles a part of a live
// marker and creates none (a status of a long-forgotten message changes
// nothing). A part gets a status for each of sent, delivered and read, and
// Graph's answer has often recorded it sent before the first: confirm refuses
// with errUnchanged, so that nothing is written, unless the part is missing
// from Sent or still uncertain.
func confirm(part string) transition {
	return func(m Marker, now time.Time) (Marker, error) {
		_, uncertain := m.Uncertain(part)
		if m.State == "" || slices.Contains(m.Sent, part) && !uncertain {
			return m, errUnchanged
		}
		return markSent(part)(m, now)
	}
}

// count records that the message's reply was added to its number's daily
// spending, and refuses with errUnchanged once it was, so that a retry adds
// nothing (see AddSpend). Like markSent it is not fenced, since the reply
// went out whoever counts it, and it keeps the count on a missing marker.
func count(m Marker, _ time.Time) (Marker, error) {
	if m.Counted {
		return m, errUnchanged
	}
	if m.State == "" {
		m.State = Processing
	}
	m.Counted = true
	return m, nil
}

// complete marks a message Replied.
func complete(m Marker, _ time.Time) (Marker, error) {
	m.State = Replied
	return m, nil
}

// unclaim ends the claim early by lapsing its lease, keeping the attempts
// and the parts, so the next Claim may start at once.
func unclaim(m Marker, _ time.Time) (Marker, error) {
	m.LeaseUntil = time.Time{}
	return m, nil
}
