package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// DefaultKeyFile is where a server keeps its signing key, relative to its data directory.
var DefaultKeyFile = filepath.Join("keys", "bundle-signing.pem")

// Signer signs bundle manifests with an Ed25519 private key. It is safe for concurrent use.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, pulse.Errorf(pulse.EINVALID, "signing key: got %d bytes, want an Ed25519 private key of %d", len(key), ed25519.PrivateKeySize)
	}
	return &Signer{key: key, id: edge.KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// KeyID returns the id of the key (edge.KeyID of its public key), written into manifests.
func (s *Signer) KeyID() string { return s.id }

// PublicKey returns the public key that verifies the signatures.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign returns the raw 64-byte Ed25519 signature of msg.
func (s *Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.key, msg) }

// JWKSet returns the public key as a JSON Web Key Set, as GET /v1/signing-keys answers.
func (s *Signer) JWKSet() edge.JWKSet {
	return edge.JWKSet{Keys: []edge.JWK{edge.PublicJWK(s.PublicKey())}}
}

// LoadSigner reads an Ed25519 private key from a PKCS#8 PEM file ("PRIVATE KEY", as
// `openssl genpkey -algorithm ed25519` writes it).
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: want a PEM block \"PRIVATE KEY\" (PKCS#8)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: got a %T, want an Ed25519 key", path, k)
	}
	return NewSigner(key)
}

// LoadOrCreateSigner reads the key at path, or, when there is no file, generates one and writes
// it there (mode 0600, its directory 0700) first. created says whether it did. Two processes
// that start together end up with the same key: the file is linked into place only if absent.
func LoadOrCreateSigner(path string) (s *Signer, created bool, err error) {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		s, err := LoadSigner(path)
		return s, false, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".bundle-signing-*.pem")
	if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600.
	werr := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, false, fmt.Errorf("signing key: %w", werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process was first: use its key
			s, err := LoadSigner(path)
			return s, false, err
		}
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	s, err = NewSigner(key)
	return s, err == nil, err
}

// OpenSigner returns the signer of a server: the key in file when given (it must exist, so that
// several servers sign with one key), else the key at DefaultKeyFile under dataDir, generated
// on first start.
func OpenSigner(file, dataDir string) (s *Signer, created bool, err error) {
	if file != "" {
		s, err := LoadSigner(file)
		return s, false, err
	}
	return LoadOrCreateSigner(filepath.Join(dataDir, DefaultKeyFile))
}
