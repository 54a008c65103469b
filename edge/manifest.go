package edge

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// The bundle format: a zip archive of exactly these files.
const (
	Format        = "pulse.bundle"
	FormatVersion = 1

	// ManifestFile describes the bundle; SignatureFile is the raw 64-byte Ed25519 signature
	// (RFC 8032, not base64) of ManifestFile's exact bytes.
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.sig"
	// ModelFile is the model in Pulse's JSON artifact format, as the server stores it;
	// ONNXFile the same model as ONNX (see internal/onnx for its inputs and outputs);
	// SchemaFile the feature schema (a Schema), for app developers who use the ONNX file alone.
	ModelFile  = "model.json"
	ONNXFile   = "model.onnx"
	SchemaFile = "schema.json"
)

// Limits that Open enforces before reading more.
const (
	MaxBundleBytes   = 256 << 20 // the whole archive
	maxManifestBytes = 1 << 20
)

// Column is one input feature of a model: its name, kind (numeric, binary or categorical),
// the categories seen in training and the number of missing training values.
type Column = pulse.Column

// Error is the error type of the package: a Code (such as "unprocessable"), a Message, and the
// Field (the bundle file, or the input feature) it is about.
type Error = pulse.Error

// EvalMetrics are a version's metrics on its holdout rows.
type EvalMetrics = pulse.EvalMetrics

// Manifest describes a bundle. It is signed: its bytes are exactly what manifest.sig signs.
type Manifest struct {
	Format        string `json:"format"`         // "pulse.bundle"
	FormatVersion int    `json:"format_version"` // 1
	Model         string `json:"model"`
	Version       int    `json:"version"`
	Algorithm     string `json:"algorithm"`
	Target        string `json:"target"`
	// Threshold is the probability at or above which the label is 1.
	Threshold    float64   `json:"threshold"`
	CreatedAt    time.Time `json:"created_at"`
	PulseVersion string    `json:"pulse_version"`
	// KeyID names the signing key: KeyID of its public key.
	KeyID  string `json:"key_id"`
	Schema Schema `json:"schema"`
	// Holdout are the version's holdout metrics, when it has them.
	Holdout *EvalMetrics `json:"holdout_metrics,omitempty"`
	// Files lists every file of the bundle but the manifest and its signature.
	Files []File `json:"files"`
}

// File is one file of a bundle: its name, size in bytes and SHA-256 (lower-case hex).
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Schema is the feature schema of a model version: what a caller sends and what comes back.
// schema.json holds it alone. In the ONNX file every input is a [N,1] tensor named as the
// feature: tensor(double) for a numeric input (NaN = missing), tensor(string) for a binary or
// categorical one (the canonical category, "" = missing); the outputs are "probability"
// (double) and "label" (int64).
type Schema struct {
	Model     string   `json:"model"`
	Version   int      `json:"version"`
	Target    string   `json:"target"`
	Threshold float64  `json:"threshold"`
	Inputs    []Column `json:"inputs"`
}

// KeyID returns the id of a signing key: the first 16 hex characters of the SHA-256 of the
// raw 32-byte public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])[:16]
}

// JWK is an Ed25519 public key as a JSON Web Key (RFC 7517, RFC 8037).
type JWK struct {
	Kty string `json:"kty"`           // "OKP"
	Crv string `json:"crv"`           // "Ed25519"
	X   string `json:"x"`             // the raw public key, base64url without padding
	Kid string `json:"kid,omitempty"` // KeyID
	Use string `json:"use,omitempty"` // "sig"
	Alg string `json:"alg,omitempty"` // "EdDSA"
}

// JWKSet is a JSON Web Key Set, as GET /v1/signing-keys answers.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK returns pub as a JWK with its key id.
func PublicJWK(pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: KeyID(pub), Use: "sig", Alg: "EdDSA"}
}

// ParseJWKSet returns the Ed25519 signing keys of a JSON Web Key Set (the body of GET
// /v1/signing-keys), for Open. Keys of other types or uses are skipped, as RFC 7517 asks; a
// set without any Ed25519 signing key, or with a malformed one, is an error.
func ParseJWKSet(b []byte) ([]ed25519.PublicKey, error) {
	var set struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "key set: not a JSON Web Key Set: %v", err)
	}
	var keys []ed25519.PublicKey
	for i, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "keys", "key set: keys[%d].x: want %d bytes in base64url without padding", i, ed25519.PublicKeySize)
		}
		keys = append(keys, ed25519.PublicKey(x))
	}
	if len(keys) == 0 {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "keys", "key set: no Ed25519 signing key (kty OKP, crv Ed25519)")
	}
	return keys, nil
}
