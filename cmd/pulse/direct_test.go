package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectWriter: whatever the sizes of the writes, the file holds exactly the bytes
// written, with O_DIRECT or without, and when the file system refuses the direct writes
// (misaligned memory here) the writer goes on through the page cache.
func TestDirectWriter(t *testing.T) {
	want := make([]byte, 2*directBuffer+directAlign+123)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(r.IntN(256))
	}
	for _, tc := range []struct {
		name     string
		direct   bool
		misalign bool
	}{{"direct", true, false}, {"buffered", false, false}, {"refused", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			w := newDirectWriter(f, tc.direct)
			if !tc.direct && w.direct {
				t.Fatalf("direct is on, want off")
			}
			t.Logf("O_DIRECT on: %v", w.direct)
			if tc.misalign {
				w.buf = w.buf[1:1:directBuffer]
			}
			for p := want; len(p) > 0; {
				n := min(len(p), 1+r.IntN(3*directBuffer/2))
				if k, err := w.Write(p[:n]); err != nil || k != n {
					t.Fatalf("write %d bytes: got %d, %v", n, k, err)
				}
				p = p[n:]
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the file has %d bytes, want the %d written", len(got), len(want))
			}
			if _, err := w.Write([]byte("more")); err == nil {
				t.Errorf("a write after Flush succeeded")
			}
			if err := w.Flush(); err != nil {
				t.Errorf("a second Flush: %v", err)
			}
			if tc.misalign && w.direct {
				t.Errorf("O_DIRECT still on after misaligned writes")
			}
		})
	}
}

// TestDirectWriterErrors: a failed write fails Write or Flush and every later Flush; a writer
// stopped without Flush (a failed run) refuses to flush.
func TestDirectWriterErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newDirectWriter(f, true)
	_, werr := w.Write(make([]byte, 3*directBuffer+10))
	ferr := w.Flush()
	if werr == nil && ferr == nil {
		t.Fatalf("writes to a read-only file: Write and Flush succeeded")
	}
	if err := w.Flush(); err == nil {
		t.Errorf("a second Flush after a failed one succeeded")
	}

	g, err := os.Create(filepath.Join(dir, "stopped"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w = newDirectWriter(g, true)
	if _, err := w.Write([]byte("scored rows")); err != nil {
		t.Fatal(err)
	}
	w.stop()
	if err := w.Flush(); err == nil {
		t.Errorf("Flush after stop succeeded")
	}
}
