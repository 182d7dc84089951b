// Package storetest connects tests to the Firestore emulator.
package storetest

import (
	"context"
	"os"
	"testing"

	"cloud.google.com/go/firestore"

	"github.com/patternai/whatsapp-node/store"
)

// Firestore returns a store on the emulator at FIRESTORE_EMULATOR_HOST. Without
// one the test is skipped, except under CI=true, where a skip would hide that
// nothing was tested.
func Firestore(tb testing.TB, opts store.Options) *store.Firestore {
	tb.Helper()
	if os.Getenv("FIRESTORE_EMULATOR_HOST") == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("FIRESTORE_EMULATOR_HOST is not set; CI must start the Firestore emulator")
		}
		tb.Skip("FIRESTORE_EMULATOR_HOST is not set; start the Firestore emulator to run this test")
	}
	client, err := firestore.NewClient(context.Background(), "storetest")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	return store.NewFirestore(client, opts)
}
