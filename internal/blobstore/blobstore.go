// Package blobstore opens the blob bucket that holds Pulse's data lake and model artifacts,
// and adds the two things gocloud.dev/blob leaves out for a local directory: making a
// written object durable (fsync of the file and its directories) and sweeping the temp files
// of writes that a crash interrupted.
//
// URLs:
//
//	file:///abs/dir            a local directory (gocloud.dev/blob/fileblob)
//	azblob://container?...     Azure Blob Storage (gocloud.dev/blob/azureblob)
//	s3://bucket?region=...     Amazon S3 or a compatible store (gocloud.dev/blob/s3blob)
//
// For file:// URLs Open always sets create_dir=1 (the directory is created), metadata=skip
// (no ".attrs" sidecar files beside the objects) and no_tmp_dir=1 (temp files are written
// beside their final name, so the rename that publishes them never crosses filesystems).
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // registers azblob://
	_ "gocloud.dev/blob/fileblob"  // registers file://
	_ "gocloud.dev/blob/s3blob"    // registers s3://

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Store is an open bucket.
type Store struct {
	// Bucket is the opened bucket; use it for reads, writes, lists and deletes.
	Bucket *blob.Bucket

	url string
	dir string // absolute root directory of a file:// store, "" for cloud stores
}

// fileOptions are the query options Open forces on every file:// URL.
var fileOptions = [][2]string{
	{"create_dir", "1"},
	{"metadata", "skip"},
	{"no_tmp_dir", "1"},
}

// FileURL returns the file:// URL of a local directory, with the query options that Open
// would force anyway. A relative dir is made absolute.
func FileURL(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		// Abs fails only when the working directory is gone; keep the path as given so that
		// Open reports the problem.
		abs = dir
	}
	q := url.Values{}
	for _, o := range fileOptions {
		q.Set(o[0], o[1])
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Open opens the bucket at rawURL (see the package documentation for the schemes).
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, pulse.Errorf(pulse.EINVALID, "blobstore: bad URL %q: %v", rawURL, err)
	}
	s := &Store{url: rawURL}
	openURL := rawURL
	if u.Scheme == "file" {
		if u.Host != "" && u.Host != "localhost" {
			return nil, pulse.Errorf(pulse.EINVALID, "blobstore: bad URL %q: want file:///absolute/dir", rawURL)
		}
		if u.Path == "" || !filepath.IsAbs(filepath.FromSlash(u.Path)) {
			return nil, pulse.Errorf(pulse.EINVALID, "blobstore: bad URL %q: want an absolute directory (file:///absolute/dir)", rawURL)
		}
		s.dir = filepath.Clean(filepath.FromSlash(u.Path))
		q := u.Query()
		for _, o := range fileOptions {
			q.Set(o[0], o[1])
		}
		u.RawQuery = q.Encode()
		openURL = u.String()
	}
	b, err := blob.OpenBucket(ctx, openURL)
	if err != nil {
		return nil, fmt.Errorf("blobstore: open %s: %w", redact(rawURL), err)
	}
	s.Bucket = b
	return s, nil
}

// URL returns the URL the store was opened with.
func (s *Store) URL() string {
	return s.url
}

// Dir returns the root directory of a file:// store, and "" for a cloud store.
func (s *Store) Dir() string {
	return s.dir
}

// Close closes the bucket.
func (s *Store) Close() error {
	if err := s.Bucket.Close(); err != nil {
		return fmt.Errorf("blobstore: close: %w", err)
	}
	return nil
}

// Sync makes a written key durable. For a file:// store it fsyncs the file and every
// directory from the file's own up to the root of the store (a write may have created
// some of them). For a cloud store it does nothing: a completed upload is durable.
func (s *Store) Sync(ctx context.Context, key string) error {
	if s.dir == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.path(key)
	if err != nil {
		return err
	}
	if err := syncPath(path); err != nil {
		return fmt.Errorf("blobstore: sync %q: %w", key, err)
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if err := syncPath(dir); err != nil {
			return fmt.Errorf("blobstore: sync %q: %w", key, err)
		}
		if dir == s.dir || len(dir) <= len(s.dir) {
			return nil
		}
	}
}

// tempName matches the temp files of fileblob: "<key>.<hex nanoseconds>.tmp".
var tempName = regexp.MustCompile(`.\.[0-9a-f]+\.tmp$`)

// SweepTemp deletes the temp files that interrupted writes left under prefix and returns how
// many it deleted. It is a no-op for cloud stores. Call it only while nothing writes under
// prefix, for example when a component starts, or it deletes in-flight writes.
func (s *Store) SweepTemp(ctx context.Context, prefix string) (int, error) {
	if s.dir == "" {
		return 0, nil
	}
	// Walk the deepest directory that the prefix names, then filter on the whole prefix.
	root := s.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		var err error
		if root, err = s.path(prefix[:i]); err != nil {
			return 0, err
		}
	}
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !tempName.MatchString(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(s.dir, path)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(filepath.ToSlash(rel), prefix) {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("blobstore: sweep temp files under %q: %w", prefix, err)
	}
	return n, nil
}

// path returns the file of key in a file:// store. It accepts only the keys that fileblob
// stores under their own name (it hex-escapes some others); Pulse's keys are all of that kind.
func (s *Store) path(key string) (string, error) {
	bad := key == "" || strings.HasSuffix(key, "/") || strings.Contains(key, "//") ||
		strings.Contains(key, "../") || strings.Contains(key, "__0x") || strings.ContainsRune(key, '\\')
	for _, r := range key {
		if r < 32 {
			bad = true
		}
	}
	path := filepath.Join(s.dir, filepath.FromSlash(key))
	if bad || !strings.HasPrefix(path, s.dir+string(filepath.Separator)) {
		return "", pulse.FieldErrorf(pulse.EINVALID, "key", "blobstore: key %q: want a relative path of plain names", key)
	}
	return path, nil
}

// syncPath fsyncs a file or directory.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// redact drops the query of a URL for messages, since cloud URLs may carry credentials there.
func redact(rawURL string) string {
	if i := strings.IndexByte(rawURL, '?'); i >= 0 {
		return rawURL[:i]
	}
	return rawURL
}
