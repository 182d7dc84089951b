package media_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/patternai/whatsapp-node/media"
	"github.com/patternai/whatsapp-node/media/mediatest"
)

// store is the method set that Bucket and Dir share.
type store interface {
	Put(ctx context.Context, name string, data []byte, contentType string) error
	Get(ctx context.Context, name string) ([]byte, error)
	URI(name string) string
}

var (
	_ store = (*media.Bucket)(nil)
	_ store = (*media.Dir)(nil)
)

// unsafeNames are names that must neither escape the storage area nor
// collide with each other. None of them is a folder of another, which only
// Cloud Storage allows (see TestDirFolderConflict).
var unsafeNames = []string{
	"inbound/wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUZCNzM+/a==.ogg",
	"inbound/wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUZCNzM+//a==.ogg",
	"../escaped.ogg",
	"../../../../../../tmp/escaped.ogg",
	"/abs/escaped.ogg",
	"replies/../../escaped2.ogg",
	"replies/./x.ogg",
	".",
	"sub/..",
	"trailing/",
	`back\slash\..\x.ogg`,
	"pct%2F..%2Fx.ogg",
	"space and ünïcode.ogg",
}

func newDir(t *testing.T) *media.Dir {
	t.Helper()
	d, err := media.NewDir(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	return d
}

func newBucket(t *testing.T) *media.Bucket {
	t.Helper()
	b, _ := mediatest.NewBucket(t)
	return b
}

// TestContract runs the same cases against both implementations.
func TestContract(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name string
		new  func(t *testing.T) store
	}{
		{"Bucket", func(t *testing.T) store { return newBucket(t) }},
		{"Dir", func(t *testing.T) store { return newDir(t) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Run("round trip", func(t *testing.T) {
				t.Parallel()
				testRoundTrip(t, b.new(t))
			})
			t.Run("put keeps the first bytes", func(t *testing.T) {
				t.Parallel()
				testPutKeepsFirst(t, b.new(t))
			})
			t.Run("get missing", func(t *testing.T) {
				t.Parallel()
				testGetMissing(t, b.new(t))
			})
			t.Run("unsafe names", func(t *testing.T) {
				t.Parallel()
				testUnsafeNames(t, b.new(t))
			})
			t.Run("concurrent puts", func(t *testing.T) {
				t.Parallel()
				testConcurrentPuts(t, b.new(t))
			})
			t.Run("empty name", func(t *testing.T) {
				t.Parallel()
				s := b.new(t)
				if err := s.Put(t.Context(), "", []byte("x"), "audio/ogg"); err == nil {
					t.Error(`Put("") = nil, want an error`)
				}
				if _, err := s.Get(t.Context(), ""); err == nil || errors.Is(err, media.ErrNotFound) {
					t.Errorf(`Get("") = %v, want an invalid-name error`, err)
				}
			})
		})
	}
}

// voiceNote returns bytes that exercise every byte value.
func voiceNote(seed byte) []byte {
	data := []byte("OggS\x00\x02")
	for i := range 1024 {
		data = append(data, byte(i)+seed)
	}
	return data
}

func testRoundTrip(t *testing.T, s store) {
	ctx := t.Context()
	const name = "inbound/wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUZCNzM.ogg"
	want := voiceNote(1)
	if err := s.Put(ctx, name, want, "audio/ogg"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := s.Get(ctx, name)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get = %d bytes, %v; want the %d bytes put", len(got), err, len(want))
	}
	empty := "replies/empty.ogg"
	if err := s.Put(ctx, empty, nil, "audio/ogg"); err != nil {
		t.Fatalf("Put(empty): %v", err)
	}
	if got, err := s.Get(ctx, empty); err != nil || len(got) != 0 {
		t.Errorf("Get(empty) = %q, %v; want no bytes", got, err)
	}
}

func testPutKeepsFirst(t *testing.T, s store) {
	ctx := t.Context()
	const name = "replies/wamid.X+Y/Z==.ogg"
	first, second := voiceNote(1), voiceNote(2)
	if err := s.Put(ctx, name, first, "audio/ogg"); err != nil {
		t.Fatalf("first Put: %v", err)
	}
	if err := s.Put(ctx, name, second, "audio/ogg"); err != nil {
		t.Fatalf("second Put = %v, want nil for an existing object", err)
	}
	got, err := s.Get(ctx, name)
	if err != nil || !bytes.Equal(got, first) {
		t.Errorf("Get after two Puts = %d bytes, %v; want the first bytes", len(got), err)
	}
}

func testGetMissing(t *testing.T, s store) {
	ctx := t.Context()
	if err := s.Put(ctx, "inbound/present.ogg", []byte("x"), "audio/ogg"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"inbound/absent.ogg", "nowhere/absent.ogg", "inbound/present.ogg/below", "inbound"} {
		if got, err := s.Get(ctx, name); !errors.Is(err, media.ErrNotFound) {
			t.Errorf("Get(%q) = %q, %v; want ErrNotFound", name, got, err)
		}
	}
}

func testUnsafeNames(t *testing.T, s store) {
	ctx := t.Context()
	for i, name := range unsafeNames {
		if err := s.Put(ctx, name, []byte(fmt.Sprint(i)), "audio/ogg"); err != nil {
			t.Errorf("Put(%q): %v", name, err)
		}
	}
	// Every name reads back its own bytes, so no two names share an object.
	for i, name := range unsafeNames {
		got, err := s.Get(ctx, name)
		if want := fmt.Sprint(i); err != nil || string(got) != want {
			t.Errorf("Get(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

func testConcurrentPuts(t *testing.T, s store) {
	ctx := t.Context()
	const name = "replies/concurrent.ogg"
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Put(ctx, name, voiceNote(byte(i)), "audio/ogg") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
	}
	got, err := s.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	oneWriter := func(i int) bool { return bytes.Equal(got, voiceNote(byte(i))) }
	if !slices.ContainsFunc([]int{0, 1, 2, 3, 4, 5, 6, 7}, oneWriter) {
		t.Errorf("Get = %d bytes that no single writer put", len(got))
	}
}

func TestBucketStoresEscapedNames(t *testing.T) {
	t.Parallel()
	b, srv := mediatest.NewBucket(t)
	ctx := t.Context()
	const name = "inbound/wamid.HBg+ab/cd==.ogg"
	const key = "inbound/wamid.HBg%2Bab/cd%3D%3D.ogg"
	if err := b.Put(ctx, name, []byte("OggS"), "audio/ogg; codecs=opus"); err != nil {
		t.Fatalf("Put: %v", err)
	}

	obj, err := srv.GetObject(mediatest.BucketName, key)
	if err != nil {
		t.Fatalf("object %q not in the bucket: %v", key, err)
	}
	if obj.ContentType != "audio/ogg; codecs=opus" {
		t.Errorf("ContentType = %q, want %q", obj.ContentType, "audio/ogg; codecs=opus")
	}
	if want := "gs://" + mediatest.BucketName + "/" + key; b.URI(name) != want {
		t.Errorf("URI(%q) = %q, want %q", name, b.URI(name), want)
	}
	if got := b.URI(""); got != "" {
		t.Errorf(`URI("") = %q, want ""`, got)
	}

	for _, n := range unsafeNames {
		if err := b.Put(ctx, n, []byte("x"), "audio/ogg"); err != nil {
			t.Fatalf("Put(%q): %v", n, err)
		}
	}
	objs, _, err := srv.ListObjectsWithOptions(mediatest.BucketName, fakestorage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		for _, seg := range strings.Split(o.Name, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Errorf("stored object name %q has segment %q", o.Name, seg)
			}
		}
	}
}

// TestBucketExistingObject checks that an object already in the bucket (from
// an earlier attempt) is left as it is.
func TestBucketExistingObject(t *testing.T) {
	t.Parallel()
	b, srv := mediatest.NewBucket(t)
	srv.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: mediatest.BucketName, Name: "replies/r1.ogg", ContentType: "audio/ogg"},
		Content:     []byte("earlier"),
	})
	if err := b.Put(t.Context(), "replies/r1.ogg", []byte("later"), "audio/ogg"); err != nil {
		t.Fatalf("Put over an existing object = %v, want nil", err)
	}
	if got, err := b.Get(t.Context(), "replies/r1.ogg"); err != nil || string(got) != "earlier" {
		t.Errorf("Get = %q, %v; want %q", got, err, "earlier")
	}
}

func TestDirStaysInside(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	root := filepath.Join(parent, "media")
	d, err := media.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range unsafeNames {
		if err := d.Put(t.Context(), n, []byte("x"), "audio/ogg"); err != nil {
			t.Fatalf("Put(%q): %v", n, err)
		}
	}

	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "media" {
		t.Errorf("parent directory holds %v, want only media", entries)
	}
	files := 0
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		files++
		if !e.Type().IsRegular() {
			t.Errorf("%s is not a regular file", p)
		}
		if strings.HasPrefix(e.Name(), "+tmp-") {
			t.Errorf("temporary file %s was left behind", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != len(unsafeNames) {
		t.Errorf("directory holds %d files, want %d", files, len(unsafeNames))
	}
	if got := d.URI(unsafeNames[0]); got != "" {
		t.Errorf("URI = %q, want \"\" for a local directory", got)
	}
}

// TestDirFolderConflict checks that a name already used as a folder is
// reported as an error by Put rather than taken for an existing object.
func TestDirFolderConflict(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	if err := d.Put(t.Context(), "a/b.ogg", []byte("x"), "audio/ogg"); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(t.Context(), "a", []byte("y"), "audio/ogg"); err == nil {
		t.Error(`Put("a") over the folder "a" = nil, want an error`)
	}
}

func TestNewDirDefault(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	d, err := media.NewDir("")
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	if err := d.Put(t.Context(), "inbound/a.ogg", []byte("x"), "audio/ogg"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "whatsapp-node-media", "inbound", "a.ogg")); err != nil {
		t.Errorf("file not in the default directory: %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, s := range map[string]store{"Bucket": newBucket(t), "Dir": newDir(t)} {
		if err := s.Put(ctx, "a.ogg", []byte("x"), "audio/ogg"); !errors.Is(err, context.Canceled) {
			t.Errorf("%s.Put with a canceled context = %v, want context.Canceled", name, err)
		}
	}
}
