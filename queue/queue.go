// Package queue carries accepted messages from the webhook to the reply
// pipeline: in process locally, through Pub/Sub push in production.
package queue

import (
	"context"

	"github.com/patternai/whatsapp-node/graphapi"
)

// Job is one user message waiting for a reply, with what the pipeline needs
// to answer it from the right number.
type Job struct {
	Message       graphapi.Message `json:"message"`
	PhoneNumberID string           `json:"phone_number_id"`
	// Sender is the user's key: the wa_id, or the business-scoped user id.
	Sender      string `json:"sender"`
	ProfileName string `json:"profile_name,omitempty"`
	Trace       string `json:"trace,omitempty"`
}

// Handler processes one job. A returned error asks for a later retry.
type Handler func(ctx context.Context, job Job) error
