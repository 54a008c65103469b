package edge_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/bundle"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/mltest"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// The tests build bundles with the server's own writer (internal/bundle), from models trained
// on the Cleveland data once.

var fixture struct {
	once      sync.Once
	tab       *tabular.Table
	artifacts map[string][]byte // by algorithm
	signer    *bundle.Signer
	err       error
}

// testKey is a fixed Ed25519 seed, so that the example's output does not depend on a random key.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func load() error {
	fixture.once.Do(func() {
		var err error
		fixture.tab, err = mltest.ReadCleveland()
		if err != nil {
			fixture.err = err
			return
		}
		fixture.artifacts = map[string][]byte{}
		for _, alg := range []string{"logreg", "gbdt", "ftrl"} {
			res, err := ml.Train(context.Background(), fixture.tab, ml.Spec{Target: "num > 0", Algorithm: alg, CVFolds: ml.NoCV, Seed: 7})
			if err != nil {
				fixture.err = err
				return
			}
			if fixture.artifacts[alg], err = ml.Encode(res.Model); err != nil {
				fixture.err = err
				return
			}
		}
		fixture.signer, fixture.err = bundle.NewSigner(testKey)
	})
	return fixture.err
}

func cleveland(t testing.TB) *tabular.Table {
	t.Helper()
	if err := load(); err != nil {
		t.Fatal(err)
	}
	return fixture.tab
}

// build returns the bundle of a model of the algorithm, signed by s (the test key when nil).
func build(t testing.TB, alg string, s *bundle.Signer) []byte {
	t.Helper()
	b, err := buildBundle(alg, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func buildBundle(alg string, s *bundle.Signer) ([]byte, error) {
	if err := load(); err != nil {
		return nil, err
	}
	if s == nil {
		s = fixture.signer
	}
	art := fixture.artifacts[alg]
	sum := sha256.Sum256(art)
	v := &pulse.ModelVersion{Model: "heart-disease", Version: 2, Algorithm: alg, ArtifactSHA256: hex.EncodeToString(sum[:])}
	return bundle.Build(v, art, s, bundle.Meta{PulseVersion: "test", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
}

// entry is one file of an archive.
type entry struct {
	name string
	data []byte
}

// unzip returns the files of an archive in order.
func unzip(t testing.TB, b []byte) []entry {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{f.Name, data})
	}
	return out
}

// rezip writes files as an archive.
func rezip(t testing.TB, files []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// file returns the named file's data.
func file(files []entry, name string) []byte {
	for _, f := range files {
		if f.name == name {
			return f.data
		}
	}
	return nil
}

// replace returns a copy of files with the named file's data replaced.
func replace(files []entry, name string, data []byte) []entry {
	out := make([]entry, len(files))
	for i, f := range files {
		out[i] = entry{f.name, bytes.Clone(f.data)}
		if f.name == name {
			out[i].data = data
		}
	}
	return out
}

// flip returns data with one byte changed, at the first occurrence of old (or the middle).
func flip(data []byte, old, new string) []byte {
	out := bytes.Clone(data)
	if old == "" {
		out[len(out)/2] ^= 0x01
		return out
	}
	i := bytes.Index(out, []byte(old))
	if i < 0 {
		panic("flip: " + old + " not found")
	}
	copy(out[i:], new)
	return out
}
