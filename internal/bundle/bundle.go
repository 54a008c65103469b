// Package bundle writes signed model bundles for phones and other edge devices: one zip file
// with the model in Pulse's JSON format and in ONNX, its feature schema, and a manifest signed
// with the server's Ed25519 key. Package edge defines the format and reads it; this package
// builds bundles and keeps the signing key.
package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/onnx"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Meta is what a bundle records besides the version.
type Meta struct {
	// PulseVersion is the version of the Pulse that builds the bundle.
	PulseVersion string
	// CreatedAt is the bundle's creation time (and its files' modification time in the
	// archive); zero means now.
	CreatedAt time.Time
}

// Build returns the bundle of version v, whose artifact (model.json, as stored) is artifact,
// signed by s. The artifact is decoded first (and checked against v.ArtifactSHA256 when that
// is set), so a corrupt artifact is an error, never a bundle. v.Metrics.Holdout, when set, goes
// into the manifest.
func Build(v *pulse.ModelVersion, artifact []byte, s *Signer, meta Meta) ([]byte, error) {
	if v == nil || s == nil {
		return nil, pulse.Errorf(pulse.EINVALID, "bundle: a version and a signer are required")
	}
	m, err := ml.Decode(artifact, v.ArtifactSHA256)
	if err != nil {
		return nil, fmt.Errorf("bundle of %s version %d: %w", v.Model, v.Version, err)
	}
	if v.Algorithm != "" && v.Algorithm != m.Algorithm() {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "bundle of %s version %d: the version says %s, the artifact is %s", v.Model, v.Version, v.Algorithm, m.Algorithm())
	}
	model, err := onnx.Export(m, onnx.Meta{Model: v.Model, Version: v.Version, PulseVersion: meta.PulseVersion})
	if err != nil {
		return nil, fmt.Errorf("bundle of %s version %d: %w", v.Model, v.Version, err)
	}
	created := meta.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC().Truncate(time.Second) // zip keeps seconds
	schema := edge.Schema{Model: v.Model, Version: v.Version, Target: m.Target(), Threshold: m.Threshold(), Inputs: m.Inputs()}
	schemaJSON, err := marshal(schema)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{edge.ModelFile, artifact},
		{edge.ONNXFile, model},
		{edge.SchemaFile, schemaJSON},
	}
	man := edge.Manifest{
		Format:        edge.Format,
		FormatVersion: edge.FormatVersion,
		Model:         v.Model,
		Version:       v.Version,
		Algorithm:     m.Algorithm(),
		Target:        m.Target(),
		Threshold:     m.Threshold(),
		CreatedAt:     created,
		PulseVersion:  meta.PulseVersion,
		KeyID:         s.KeyID(),
		Schema:        schema,
		Holdout:       v.Metrics.Holdout,
	}
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		man.Files = append(man.Files, edge.File{Name: f.name, Size: int64(len(f.data)), SHA256: hex.EncodeToString(sum[:])})
	}
	manifest, err := marshal(man)
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte, method uint16) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: created})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if err := add(edge.ManifestFile, manifest, zip.Deflate); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if err := add(edge.SignatureFile, s.Sign(manifest), zip.Store); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	for _, f := range files {
		if err := add(f.name, f.data, zip.Deflate); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// marshal writes indented JSON (readable when unzipped) with HTML characters as they are.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "num > 0" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return buf.Bytes(), nil
}
