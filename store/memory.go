package store

import (
	"cmp"
	"context"
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
	markers map[string]Marker
	turns   map[string]map[string]Turn // by user, then by turn ID
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory(opts Options) *Memory {
	return &Memory{
		opts:    opts.withDefaults(),
		markers: make(map[string]Marker),
		turns:   make(map[string]map[string]Turn),
	}
}

// Accept creates an Accepted marker for each id without a live one. A repeated
// id within ids is a duplicate of its first occurrence.
func (s *Memory) Accept(_ context.Context, ids []string) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	created := make([]bool, len(ids))
	for i, id := range ids {
		// accept refuses only with errDuplicate.
		_, err := s.apply(id, accept)
		created[i] = err == nil
	}
	return created, nil
}

// Release deletes the markers of ids that are still Accepted.
func (s *Memory) Release(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if m, ok := s.markers[id]; ok && m.State == Accepted {
			delete(s.markers, id)
		}
	}
	return nil
}

// Claim takes the message for lease; see Store.
func (s *Memory) Claim(_ context.Context, id string, lease time.Duration) (Marker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apply(id, claim(lease))
}

// Unclaim hands a claimed message back; see Store.
func (s *Memory) Unclaim(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.apply(id, unclaim)
	return err
}

// MarkSent records that part of the reply was delivered.
func (s *Memory) MarkSent(_ context.Context, id, part string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.apply(id, markSent(part))
	return err
}

// Complete marks the message Replied.
func (s *Memory) Complete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.apply(id, complete)
	return err
}

// apply runs t on the marker of id and stores the result. The caller holds mu.
// Sent is copied on the way in, because transitions append to it in place,
// and on the way out, so no caller shares the stored slice.
func (s *Memory) apply(id string, t transition) (Marker, error) {
	m, found := s.markers[id]
	m.Sent = slices.Clone(m.Sent)
	m, err := s.opts.step(m, found, t)
	if err != nil {
		return Marker{}, err
	}
	s.markers[id] = m
	m.Sent = slices.Clone(m.Sent)
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
