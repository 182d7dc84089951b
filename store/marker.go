package store

import (
	"errors"
	"slices"
	"time"
)

// errDuplicate is what accept returns for a message that already has a live
// marker. Accept turns it into created=false; it never leaves the package.
var errDuplicate = errors.New("duplicate message")

// A transition changes a marker at now. It is given the live marker, or the
// zero Marker (State "") when the message has none, and may refuse with an
// error, in which case nothing is written. Both implementations run the same
// transitions, so they cannot disagree about the state machine.
type transition func(m *Marker, now time.Time) error

// step applies t to the stored marker m (found reports whether there is one)
// and returns the marker to store. An expired marker counts as absent: t then
// sees a zero Marker, and the result gets a fresh expiry. The expiry is not
// moved by later transitions, so a marker lives MarkerTTL from its creation.
func (o Options) step(m Marker, found bool, t transition) (Marker, error) {
	now := o.now()
	if !found || !now.Before(m.ExpireAt) {
		m = Marker{ExpireAt: now.Add(o.MarkerTTL)}
	}
	if err := t(&m, now); err != nil {
		return Marker{}, err
	}
	m.UpdatedAt = now
	return m, nil
}

// accept creates an Accepted marker unless a live one exists.
func accept(m *Marker, _ time.Time) error {
	if m.State != "" {
		return errDuplicate
	}
	m.State = Accepted
	return nil
}

// claim returns the transition that takes a message for lease.
func claim(lease time.Duration) transition {
	return func(m *Marker, now time.Time) error {
		switch {
		case m.State == Replied:
			return ErrReplied
		case m.State == Processing && now.Before(m.LeaseUntil):
			return ErrClaimed
		}
		m.State = Processing
		m.Attempts++
		m.LeaseUntil = now.Add(lease)
		return nil
	}
}

// markSent returns the transition that records part as delivered.
func markSent(part string) transition {
	return func(m *Marker, _ time.Time) error {
		if m.State == "" {
			// The lease is left zero, that is lapsed, so the next Claim
			// succeeds and resumes after the parts recorded here.
			m.State = Processing
		}
		if !slices.Contains(m.Sent, part) {
			m.Sent = append(m.Sent, part)
		}
		return nil
	}
}

// complete marks a message Replied, whatever state it was in.
func complete(m *Marker, _ time.Time) error {
	m.State = Replied
	return nil
}

// unclaim ends a Processing claim early by lapsing its lease, keeping the
// attempts and sent parts, so the next Claim may start at once.
func unclaim(m *Marker, _ time.Time) error {
	if m.State != Replied {
		m.State = Processing
		m.LeaseUntil = time.Time{}
	}
	return nil
}
