package service

import "context"

// ResetHistory forgets the user's conversation in the service's store, so
// that cmd/local's chat can start over (its /reset).
func (s *Service) ResetHistory(ctx context.Context, user string) error {
	return s.store.ResetHistory(ctx, user)
}
