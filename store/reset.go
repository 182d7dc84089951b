package store

import (
	"context"
	"fmt"

	"cloud.google.com/go/firestore"
)

// ResetHistory forgets the user's conversation, so that the next message
// starts a new one. Markers are kept: a message already answered stays
// answered.
func (s *Memory) ResetHistory(_ context.Context, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.turns, user)
	return nil
}

// ResetHistory deletes every turn document of the user's conversation. The
// documents are deleted by one BulkWriter, which batches the writes and
// retries the ones Firestore refuses for a moment.
func (s *Firestore) ResetHistory(ctx context.Context, user string) error {
	refs, err := s.turns(user).DocumentRefs(ctx).GetAll()
	if err != nil {
		return fmt.Errorf("reset history: list turns: %w", err)
	}
	if len(refs) == 0 {
		return nil
	}
	bw := s.client.BulkWriter(ctx)
	jobs := make([]*firestore.BulkWriterJob, 0, len(refs))
	for _, ref := range refs {
		job, err := bw.Delete(ref)
		if err != nil {
			bw.End()
			return fmt.Errorf("reset history: %w", err)
		}
		jobs = append(jobs, job)
	}
	bw.End()
	for _, job := range jobs {
		if _, err := job.Results(); err != nil {
			return fmt.Errorf("reset history: %w", err)
		}
	}
	return nil
}
