// Package queuetest connects tests to the Pub/Sub emulator.
package queuetest

import (
	"context"
	"os"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
)

// PubSub returns a client of the emulator at PUBSUB_EMULATOR_HOST for
// project. Without one the test is skipped, except under CI=true, where a
// skip would hide that nothing was tested.
func PubSub(tb testing.TB, project string, opts ...option.ClientOption) *pubsub.Client {
	tb.Helper()
	if os.Getenv("PUBSUB_EMULATOR_HOST") == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("PUBSUB_EMULATOR_HOST is not set; CI must start the Pub/Sub emulator")
		}
		tb.Skip("PUBSUB_EMULATOR_HOST is not set; start the Pub/Sub emulator to run this test")
	}
	client, err := pubsub.NewClient(context.Background(), project, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	return client
}
