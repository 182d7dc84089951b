package store

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Memory is a Store held in process memory, for local runs and tests. It is
// safe for concurrent use and expires markers and turns exactly like the
// Firestore store, but it never evicts them, so it grows with traffic and
// forgets everything when the process ends.
type Memory struct {
	opts Options

	mu      sync.Mutex
	markers markerTable
	turns   map[string]map[string]Turn // by user, then by turn ID
	senders map[string]Sender
	spend   map[string]memorySpend // by number and day (spendKey)
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory(opts Options) *Memory {
	return &Memory{
		opts:    opts.withDefaults(),
		markers: newMarkerTable(),
		turns:   make(map[string]map[string]Turn),
		senders: make(map[string]Sender),
		spend:   make(map[string]memorySpend),
	}
}

// Accept records each id; see Store.
func (s *Memory) Accept(_ context.Context, ids []string) ([]Admission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := make([]Admission, len(ids))
	for i, id := range ids {
		// A repeat within ids stays Duplicate. A webhook holds few messages,
		// so the search costs less than a set would.
		if slices.Contains(ids[:i], id) {
			continue
		}
		// admit refuses only with errDuplicate or errPending, which it
		// reports in got[i] too.
		s.apply(id, admit(s.opts.AcceptGrace, &got[i]))
	}
	return got, nil
}

// Release deletes the markers of ids that are still Accepted.
func (s *Memory) Release(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		k := s.markers.key(id)
		if m, ok := s.markers.get(k); ok && m.State == Accepted {
			s.markers.delete(k)
		}
	}
	return nil
}

// Claim takes the message for lease; see Store.
func (s *Memory) Claim(_ context.Context, id string, lease time.Duration) (Marker, error) {
	return s.locked(id, claim(lease))
}

// Renew extends a claim's lease; see Store.
func (s *Memory) Renew(_ context.Context, id string, token int, lease time.Duration) (Marker, error) {
	return s.locked(id, fenced(token, renew(lease)))
}

// StartSend records a send about to leave; see Store.
func (s *Memory) StartSend(_ context.Context, id string, token int, part string) error {
	_, err := s.locked(id, fenced(token, startSend(part)))
	return err
}

// AbortSend forgets a send that did not leave; see Store.
func (s *Memory) AbortSend(_ context.Context, id string, token int, part string) error {
	_, err := s.locked(id, fenced(token, abortSend(part)))
	return err
}

// MarkSent records that part of the reply was delivered.
func (s *Memory) MarkSent(_ context.Context, id, part string) error {
	_, err := s.locked(id, markSent(part))
	return err
}

// Confirm settles a part a status webhook confirmed; see Store.
func (s *Memory) Confirm(_ context.Context, id, part string) error {
	if _, err := s.locked(id, confirm(part)); !errors.Is(err, errUnchanged) {
		return err
	}
	return nil
}

// Unclaim hands a claimed message back; see Store.
func (s *Memory) Unclaim(_ context.Context, id string, token int) error {
	_, err := s.locked(id, fenced(token, unclaim))
	return err
}

// Complete marks the message Replied.
func (s *Memory) Complete(_ context.Context, id string, token int) error {
	_, err := s.locked(id, fenced(token, complete))
	return err
}

// locked runs apply under mu and returns a copy of the marker, which shares
// nothing with the stored one. (step already returns a copy on error.)
func (s *Memory) locked(id string, t transition) (Marker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.apply(id, t)
	if err != nil {
		return m, err
	}
	return m.clone(), nil
}

// apply runs t on the marker of id and stores the result. The caller holds mu
// and must not change the marker returned, which is the stored one.
func (s *Memory) apply(id string, t transition) (Marker, error) {
	k := s.markers.key(id)
	m, found := s.markers.get(k)
	m, err := s.opts.step(m, found, t)
	if err != nil {
		return m, err
	}
	s.markers.put(k, m)
	return m, nil
}

// History returns the user's last n live turns, oldest first.
func (s *Memory) History(_ context.Context, user string, n int) ([]Turn, error) {
	if n <= 0 {
		return nil, nil
	}
	now := s.opts.now()
	s.mu.Lock()
	var live []Turn
	for _, t := range s.turns[user] {
		if now.Before(t.At.Add(s.opts.HistoryTTL)) {
			live = append(live, t)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(live, compareTurns)
	return live[max(0, len(live)-n):], nil
}

// compareTurns orders turns by At, then ID, as the Firestore query does.
func compareTurns(a, b Turn) int {
	return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.ID, b.ID))
}

// AppendTurns adds turns to the user's conversation, replacing any with the
// same ID. Nothing is stored if a turn has no ID.
func (s *Memory) AppendTurns(_ context.Context, user string, turns ...Turn) error {
	turns, err := s.opts.prepareTurns(turns)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := s.turns[user]
	if byID == nil {
		byID = make(map[string]Turn)
		s.turns[user] = byID
	}
	for _, t := range turns {
		byID[t.ID] = t
	}
	return nil
}
