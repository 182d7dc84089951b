// Package mediatest gives tests a media.Bucket backed by an in-process fake
// Cloud Storage server (fake-gcs-server), reached through the real storage
// client on 127.0.0.1 without credentials.
package mediatest

import (
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/patternai/whatsapp-node/media"
)

// BucketName is the bucket that NewBucket creates.
const BucketName = "test-media"

// NewBucket starts a fake Cloud Storage server with an empty bucket named
// BucketName and returns a media.Bucket on it, together with the server so
// the test can inspect the stored objects. Both are closed when the test ends.
func NewBucket(t testing.TB) (*media.Bucket, *fakestorage.Server) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Host:       "127.0.0.1",
		Scheme:     "http",
		PublicHost: "127.0.0.1",
	})
	if err != nil {
		t.Fatalf("start fake Cloud Storage: %v", err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: BucketName})

	client, err := storage.NewClient(t.Context(),
		option.WithEndpoint(srv.URL()+"/storage/v1/"),
		option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("storage.NewClient: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return media.NewBucket(client, BucketName), srv
}
