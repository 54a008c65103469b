package blobstore

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func TestFileURL(t *testing.T) {
	dir := t.TempDir()
	u, err := url.Parse(FileURL(dir))
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "file" || u.Path != filepath.ToSlash(dir) {
		t.Errorf("got scheme %q path %q, want file and %q", u.Scheme, u.Path, dir)
	}
	for k, want := range map[string]string{"create_dir": "1", "metadata": "skip", "no_tmp_dir": "1"} {
		if got := u.Query().Get(k); got != want {
			t.Errorf("query %s: got %q, want %q", k, got, want)
		}
	}
}

func TestOpenWriteSyncNoSidecars(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "lake", "root") // does not exist yet
	// A bare URL without options still gets create_dir, metadata=skip and no_tmp_dir.
	s, err := Open(ctx, "file://"+filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dir() != dir {
		t.Errorf("Dir: got %q, want %q", s.Dir(), dir)
	}
	key := "predictions/model=heart/date=2024-01-02/part-00000000000000000001.parquet"
	if err := s.Bucket.WriteAll(ctx, key, []byte("data"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, key); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil || string(got) != "data" {
		t.Fatalf("file content: got %q, %v; want \"data\"", got, err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if len(files) != 1 {
		t.Errorf("files in store: got %v, want only the object (no .attrs sidecar, no temp file)", files)
	}
}

func TestSyncErrors(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, FileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		key      string
		wantCode string
	}{
		{"missing/object", pulse.EINTERNAL},
		{"../escape", pulse.EINVALID},
		{"a//b", pulse.EINVALID},
		{"dir/", pulse.EINVALID},
		{"", pulse.EINVALID},
		{"a/__0x2f__b", pulse.EINVALID},
	}
	for _, tt := range tests {
		err := s.Sync(ctx, tt.key)
		if err == nil {
			t.Errorf("Sync(%q): got nil, want an error", tt.key)
			continue
		}
		if got := pulse.ErrorCode(err); got != tt.wantCode {
			t.Errorf("Sync(%q): got code %q (%v), want %q", tt.key, got, err, tt.wantCode)
		}
	}
	if err := s.Sync(ctx, "missing/object"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Sync of a missing key: got %v, want fs.ErrNotExist", err)
	}
}

func TestSweepTemp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, FileURL(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files := map[string]bool{ // path -> want kept
		"predictions/model=a/date=2024-01-01/part-1.parquet":                  true,
		"predictions/model=a/date=2024-01-01/part-2.parquet.17a3b4c5d6e7.tmp": false,
		"predictions/model=b/date=2024-01-01/part-3.parquet.1f.tmp":           false,
		"predictions/model=b/notes.tmp":                                       true, // no hex part
		"datasets/x.csv.17a3b4c5d6e7.tmp":                                     true, // outside the prefix
	}
	for p := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.SweepTemp(ctx, "predictions/")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("deleted: got %d, want 2", n)
	}
	var kept []string
	for p, want := range files {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		if got := err == nil; got != want {
			t.Errorf("%s: kept %v, want %v", p, got, want)
		}
		if err == nil {
			kept = append(kept, p)
		}
	}
	sort.Strings(kept)
	if len(kept) != 3 {
		t.Errorf("kept: got %v, want 3 files", kept)
	}
	// A prefix whose directory does not exist is not an error.
	if n, err := s.SweepTemp(ctx, "nothing/here/"); err != nil || n != 0 {
		t.Errorf("SweepTemp of a missing prefix: got %d, %v; want 0, nil", n, err)
	}
}

func TestOpenBadURL(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"file://./relative", "file://host/dir", "nosuch://bucket", "file://"} {
		s, err := Open(ctx, u)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q): got nil error, want one", u)
		}
	}
}
