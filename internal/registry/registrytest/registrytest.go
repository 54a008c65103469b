// Package registrytest gives tests the real stores a registry runs on, in a temporary
// directory: a SQLite metadata store and file buckets for blobs and the lake, closed when the
// test ends.
package registrytest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/sqlite"
)

// Stores are a registry's stores under Dir.
type Stores struct {
	Dir   string
	DB    *sqlite.DB
	Blobs *blobstore.Store
	Lake  *blobstore.Store
}

// New opens fresh stores in t.TempDir().
func New(t testing.TB) Stores {
	t.Helper()
	ctx := context.Background()
	s := Stores{Dir: t.TempDir()}
	var err error
	if s.DB, err = sqlite.Open(ctx, filepath.Join(s.Dir, "pulse.db"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DB.Close() })
	if s.Blobs, err = blobstore.Open(ctx, blobstore.FileURL(filepath.Join(s.Dir, "blobs"))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Blobs.Close() })
	if s.Lake, err = blobstore.Open(ctx, blobstore.FileURL(filepath.Join(s.Dir, "lake"))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Lake.Close() })
	return s
}
