package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/mltest"
	"github.com/cloudmedical/pulse/internal/pulse"
)

var trained struct {
	once     sync.Once
	artifact []byte
	err      error
}

// artifact returns the artifact of a logreg model trained on the Cleveland data.
func artifact(t testing.TB) []byte {
	t.Helper()
	trained.once.Do(func() {
		tab, err := mltest.ReadCleveland()
		if err != nil {
			trained.err = err
			return
		}
		res, err := ml.Train(context.Background(), tab, ml.Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: ml.NoCV, Seed: 7})
		if err != nil {
			trained.err = err
			return
		}
		trained.artifact, trained.err = ml.Encode(res.Model)
	})
	if trained.err != nil {
		t.Fatal(trained.err)
	}
	return trained.artifact
}

func newSigner(t testing.TB) *Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func version(art []byte) *pulse.ModelVersion {
	sum := sha256.Sum256(art)
	return &pulse.ModelVersion{
		Model: "heart-disease", Version: 4, Algorithm: "logreg", ArtifactSHA256: hex.EncodeToString(sum[:]),
		Metrics: pulse.Metrics{Holdout: &pulse.EvalMetrics{N: 61, Accuracy: 0.85, ROCAUC: 0.9}},
	}
}

func TestBuild(t *testing.T) {
	art := artifact(t)
	s := newSigner(t)
	created := time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC)
	b, err := Build(version(art), art, s, Meta{PulseVersion: "1.2.3", CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(version(art), art, s, Meta{PulseVersion: "1.2.3", CreatedAt: created})
	if err != nil || !bytes.Equal(b, again) {
		t.Errorf("two builds with the same inputs differ (err %v)", err)
	}

	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var names []string
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
		files[f.Name] = data
		if !f.Modified.Equal(created) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, created)
		}
	}
	if want := []string{"manifest.json", "manifest.sig", "model.json", "model.onnx", "schema.json"}; !slices.Equal(names, want) {
		t.Fatalf("files: got %v, want %v", names, want)
	}
	if !ed25519.Verify(s.PublicKey(), files["manifest.json"], files["manifest.sig"]) {
		t.Error("manifest.sig does not verify manifest.json with the signer's key")
	}
	if !bytes.Equal(files["model.json"], art) {
		t.Error("model.json is not the artifact as stored")
	}
	var man edge.Manifest
	if err := json.Unmarshal(files["manifest.json"], &man); err != nil {
		t.Fatal(err)
	}
	if man.Format != "pulse.bundle" || man.FormatVersion != 1 || man.Model != "heart-disease" || man.Version != 4 ||
		man.Algorithm != "logreg" || man.Target != "num > 0" || man.PulseVersion != "1.2.3" || !man.CreatedAt.Equal(created) ||
		man.KeyID != s.KeyID() || man.Holdout == nil || man.Holdout.ROCAUC != 0.9 {
		t.Errorf("manifest: got %+v", man)
	}
	if len(man.Schema.Inputs) != 13 || man.Schema.Inputs[0].Name != "age" || man.Schema.Model != "heart-disease" || man.Schema.Version != 4 {
		t.Errorf("manifest schema: got %+v", man.Schema)
	}
	if len(man.Files) != 3 {
		t.Fatalf("manifest files: got %+v, want model.json, model.onnx and schema.json", man.Files)
	}
	for _, f := range man.Files {
		sum := sha256.Sum256(files[f.Name])
		if f.Size != int64(len(files[f.Name])) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("manifest entry %+v: the file has %d bytes, sha256 %x", f, len(files[f.Name]), sum)
		}
	}
	var schema edge.Schema
	if err := json.Unmarshal(files["schema.json"], &schema); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(files["schema.json"]), `"target": "num > 0"`) || len(schema.Inputs) != 13 {
		t.Errorf("schema.json: got %s", files["schema.json"])
	}

	// The reader accepts it.
	m, err := edge.Open(b, s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if m.Manifest().KeyID != s.KeyID() {
		t.Errorf("edge manifest key id: got %q, want %q", m.Manifest().KeyID, s.KeyID())
	}
}

func TestBuildRejects(t *testing.T) {
	art := artifact(t)
	s := newSigner(t)
	wrongSHA := version(art)
	wrongSHA.ArtifactSHA256 = strings.Repeat("0", 64)
	wrongAlg := version(art)
	wrongAlg.Algorithm = "gbdt"
	tests := []struct {
		name     string
		v        *pulse.ModelVersion
		artifact []byte
		s        *Signer
		code     string
		contains string
	}{
		{"no signer", version(art), art, nil, pulse.EINVALID, "signer"},
		{"no version", nil, art, s, pulse.EINVALID, "version"},
		{"corrupt artifact", wrongSHA, art, s, pulse.EUNPROCESSABLE, "sha256"},
		{"not an artifact", &pulse.ModelVersion{Model: "m", Version: 1}, []byte(`{"format":"x"}`), s, pulse.EUNPROCESSABLE, "format"},
		{"algorithm differs", wrongAlg, art, s, pulse.EUNPROCESSABLE, "the version says gbdt"},
	}
	for _, tt := range tests {
		b, err := Build(tt.v, tt.artifact, tt.s, Meta{})
		if b != nil || pulse.ErrorCode(err) != tt.code || !strings.Contains(err.Error(), tt.contains) {
			t.Errorf("%s: got %d bytes, %v; want no bundle and a %s error containing %q", tt.name, len(b), err, tt.code, tt.contains)
		}
	}
}

func TestLoadOrCreateSigner(t *testing.T) {
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, DefaultKeyFile)
	s1, created, err := OpenSigner("", dataDir)
	if err != nil || !created {
		t.Fatalf("first start: got created %v, %v; want a new key", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: got %v, want 0600", st.Mode().Perm())
	}
	if dst, err := os.Stat(filepath.Dir(path)); err != nil || dst.Mode().Perm() != 0o700 {
		t.Errorf("key directory: got %v, %v; want mode 0700", dst.Mode().Perm(), err)
	}
	s2, created, err := OpenSigner("", dataDir)
	if err != nil || created || s2.KeyID() != s1.KeyID() {
		t.Errorf("second start: got key %v (created %v, %v), want the same key %s", s2, created, err, s1.KeyID())
	}
	// --signing-key reads the same file, and openssl's PKCS#8 PEM is the same format.
	s3, created, err := OpenSigner(path, t.TempDir())
	if err != nil || created || s3.KeyID() != s1.KeyID() {
		t.Errorf("--signing-key: got %v (created %v, %v), want key %s", s3, created, err, s1.KeyID())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the key directory holds %d files, want only the key", len(entries))
	}
	msg := []byte("manifest")
	if !ed25519.Verify(s3.PublicKey(), msg, s1.Sign(msg)) {
		t.Error("a signature of the first signer does not verify with the loaded key")
	}
	if set := s1.JWKSet(); len(set.Keys) != 1 || set.Keys[0].Kid != s1.KeyID() || set.Keys[0].Crv != "Ed25519" {
		t.Errorf("JWK set: got %+v", set)
	}
}

func TestLoadSignerRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, contains string
	}{
		{"missing file", filepath.Join(dir, "absent.pem"), "no such file"},
		{"not PEM", write("text.pem", []byte("hello")), "PRIVATE KEY"},
		{"wrong block", write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})), "PRIVATE KEY"},
		{"not PKCS#8", write("junk.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})), "junk.pem"},
		{"ECDSA key", write("ec.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "want an Ed25519 key"},
	}
	for _, tt := range tests {
		s, created, err := OpenSigner(tt.path, dir)
		if s != nil || created || err == nil || !strings.Contains(err.Error(), tt.contains) {
			t.Errorf("%s: got %v, %v, %v; want an error containing %q", tt.name, s, created, err, tt.contains)
		}
	}
	// A malformed key at the default path is an error, not replaced by a new key.
	write(filepath.Base(DefaultKeyFile), []byte("garbage"))
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, filepath.Base(DefaultKeyFile)), filepath.Join(dir, DefaultKeyFile)); err != nil {
		t.Fatal(err)
	}
	if s, created, err := OpenSigner("", dir); err == nil || created {
		t.Errorf("malformed default key: got %v, %v, %v; want an error", s, created, err)
	}
	if _, err := NewSigner(ed25519.PrivateKey{1, 2}); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("short key: got %v, want an %s error", err, pulse.EINVALID)
	}
}

func BenchmarkBuild(b *testing.B) {
	art := artifact(b)
	s := newSigner(b)
	v := version(art)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(v, art, s, Meta{PulseVersion: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}
