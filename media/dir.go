package media

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
)

// tempPrefix starts the names of files still being written. objectKey escapes
// '+', so no stored object can have such a name.
const tempPrefix = "+tmp-"

// Dir stores objects as files below a local directory.
type Dir struct {
	path string
}

// NewDir returns a Dir that keeps its files below dir, creating it if needed.
// An empty dir means whatsapp-node-media in the system's temporary directory.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "whatsapp-node-media")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("media: create directory: %w", err)
	}
	return &Dir{path: dir}, nil
}

// Put stores data under name unless a file of that name already exists, in
// which case it leaves that file alone and returns nil. contentType is not
// kept: callers put the type in the name's extension.
//
// The data is written to a temporary file first and then hard-linked under
// its name. The link appears with the whole file or not at all, so a crash
// never leaves a partial file that a retry would then keep; and linking,
// unlike renaming, fails when the name exists, so concurrent writers cannot
// replace each other's file.
func (d *Dir) Put(ctx context.Context, name string, data []byte, contentType string) error {
	key, err := objectKey(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// os.Root refuses any path that would leave the directory, which guards
	// against traversal even if objectKey had a flaw.
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return fmt.Errorf("media: open directory: %w", err)
	}
	defer root.Close()

	if parent := path.Dir(key); parent != "." {
		if err := root.MkdirAll(filepath.FromSlash(parent), 0o700); err != nil {
			return fmt.Errorf("media: put object: %w", err)
		}
	}
	tmp := tempPrefix + rand.Text()
	defer root.Remove(tmp)
	if err := writeSynced(root, tmp, data); err != nil {
		return fmt.Errorf("media: put object: %w", err)
	}
	err = root.Link(tmp, filepath.FromSlash(key))
	if errors.Is(err, fs.ErrExist) {
		return checkFile(root, key)
	}
	if err != nil {
		return fmt.Errorf("media: put object: %w", err)
	}
	return nil
}

// checkFile confirms that what exists under key is a stored object. Unlike in
// Cloud Storage, a name cannot be both an object and a folder of other
// objects ("a" and "a/b"), and that conflict must not pass for success.
func checkFile(root *os.Root, key string) error {
	info, err := root.Lstat(filepath.FromSlash(key))
	if err != nil {
		return fmt.Errorf("media: put object: %w", err)
	}
	if !info.Mode().IsRegular() {
		return errors.New("media: put object: the name is a folder of other objects")
	}
	return nil
}

// writeSynced writes a new file and flushes it to disk before it is linked,
// so that after a crash the link never points at missing data.
func writeSynced(root *os.Root, name string, data []byte) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Get returns the bytes stored under name, or ErrNotFound.
func (d *Dir) Get(ctx context.Context, name string) ([]byte, error) {
	key, err := objectKey(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return nil, fmt.Errorf("media: open directory: %w", err)
	}
	defer root.Close()
	data, err := root.ReadFile(filepath.FromSlash(key))
	// ENOTDIR (a folder in the path is an object) and EISDIR (the name is a
	// folder of other objects) mean there is no object of that name either,
	// which is what Cloud Storage reports in the same cases.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media: get object: %w", err)
	}
	return data, nil
}

// URI returns "": a local file has no gs:// URI, so callers cannot hand it to
// batch speech recognition.
func (d *Dir) URI(name string) string { return "" }
