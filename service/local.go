package service

import (
	"context"

	"github.com/patternai/whatsapp-node/queue"
)

// This file holds what cmd/local's chat needs from the service: it waits
// for each message to be answered before it reads the next line.

// OnHandled makes the service call f each time the reply pipeline has
// finished with a message: err is nil when the message is done with (answered,
// or answered with the fallback), else the queue tries it again. Call it
// before the service takes requests.
func (s *Service) OnHandled(f func(wamid string, err error)) { s.onHandled = f }

// observed wraps handle so that OnHandled's function learns of each result.
func (s *Service) observed(handle queue.Handler) queue.Handler {
	return func(ctx context.Context, job queue.Job) error {
		err := handle(ctx, job)
		if s.onHandled != nil {
			s.onHandled(job.Message.ID, err)
		}
		return err
	}
}
