package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bucket stores objects in a Cloud Storage bucket.
type Bucket struct {
	handle *storage.BucketHandle
	name   string
}

// NewBucket returns a Bucket for the named bucket. The client decides where
// requests go; storage.NewClient honours STORAGE_EMULATOR_HOST.
func NewBucket(client *storage.Client, bucket string) *Bucket {
	return &Bucket{handle: client.Bucket(bucket), name: bucket}
}

// Put stores data under name unless an object of that name already exists,
// in which case it leaves that object alone and returns nil.
func (b *Bucket) Put(ctx context.Context, name string, data []byte, contentType string) error {
	key, err := objectKey(name)
	if err != nil {
		return err
	}
	// The DoesNotExist condition makes the write create-if-absent on the
	// server, and it also makes the write idempotent, so the client library
	// may retry it after a transient failure.
	w := b.handle.Object(key).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ContentType = contentType
	// A chunk larger than the object sends it in one request, and a chunk
	// buffer (unlike a ChunkSize of zero) lets the library retry that request.
	// The default chunk would allocate 16 MiB for every voice note.
	w.ChunkSize = len(data) + 1

	_, err = w.Write(data)
	if closeErr := w.Close(); err == nil {
		err = closeErr
	}
	if err != nil && !alreadyExists(err) {
		return fmt.Errorf("media: put object: %w", err)
	}
	return nil
}

// Get returns the bytes stored under name, or ErrNotFound.
func (b *Bucket) Get(ctx context.Context, name string) ([]byte, error) {
	key, err := objectKey(name)
	if err != nil {
		return nil, err
	}
	r, err := b.handle.Object(key).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media: get object: %w", err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("media: read object: %w", err)
	}
	return data, nil
}

// URI returns the gs:// URI of the object stored under name, which the
// Speech-to-Text batch API reads from. It returns "" for a name that cannot
// be stored.
func (b *Bucket) URI(name string) string {
	key, err := objectKey(name)
	if err != nil {
		return ""
	}
	return "gs://" + b.name + "/" + key
}

// alreadyExists reports whether err is the failed DoesNotExist precondition:
// HTTP 412 from the JSON API, FailedPrecondition from the gRPC API (the same
// *storage.Client type serves both).
func alreadyExists(err error) bool {
	var apiErr *googleapi.Error
	if errors.As(err, &apiErr) {
		return apiErr.Code == http.StatusPreconditionFailed
	}
	return status.Code(err) == codes.FailedPrecondition
}
