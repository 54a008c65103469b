// Package edge opens a signed Pulse model bundle and scores with it, offline, in any Go program
// (a phone app through gomobile, a gateway, a command-line tool). It computes exactly what the
// server computes (the same Go code: the same probability, bit for bit) and reads features
// under the same rules and error messages as POST /v1/models/{model}/predict.
//
// A bundle (GET /v1/models/{model}/versions/{version}/bundle, or pulse export --format bundle)
// is a zip archive of manifest.json, manifest.sig, model.json, model.onnx and schema.json. Open
// verifies the Ed25519 signature of the manifest with the server's public keys (GET
// /v1/signing-keys, read with ParseJWKSet), then the size and SHA-256 of every other file, that
// no file is missing or added, and that the model matches the manifest; it refuses anything
// else, naming what failed. Ship the public key with the app (or fetch it over TLS) so that a
// bundle downloaded over any channel can be trusted.
//
// The package depends only on the standard library and Pulse's model code (internal/ml,
// internal/features, internal/jsonscan, internal/pulse, internal/tabular): importing it pulls
// in none of the server's dependencies.
package edge

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"sync"

	"github.com/cloudmedical/pulse/internal/features"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Value is one raw input value for PredictValues: Num for a numeric input, Str (the canonical
// category, see pulse.CanonicalCategory) for a binary or categorical one; Present false means
// missing.
type Value = ml.Value

// Model is a verified bundle, ready to score. It is immutable and safe for concurrent use.
type Model struct {
	manifest Manifest
	model    *ml.Model
	onnx     []byte
	// scratch holds *[]float64 of the model's width, so that scoring allocates nothing.
	scratch sync.Pool
}

// Prediction is the answer for one set of features, as in the "prediction" block of REST.
type Prediction struct {
	// Probability is the probability of the positive class (label 1).
	Probability float64 `json:"probability"`
	// Label is 1 when Probability >= Threshold, else 0.
	Label     int     `json:"label"`
	Threshold float64 `json:"threshold"`
	// Warnings say which lenient rules were applied (a category not seen in training).
	Warnings []string `json:"warnings,omitempty"`
}

func bundleError(file, format string, args ...any) *Error {
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, file, "bundle: "+format, args...)
}

// Open verifies a bundle with the given public keys (any one of them may have signed it) and
// returns its model. Every refusal is an *Error with code "unprocessable" whose Field names
// the file that failed (manifest.sig for a bad signature or an unknown key).
func Open(bundle []byte, keys ...ed25519.PublicKey) (*Model, error) {
	if len(keys) == 0 {
		return nil, pulse.Errorf(pulse.EINVALID, "bundle: no public key given: pass the keys of GET /v1/signing-keys (see ParseJWKSet)")
	}
	if len(bundle) > MaxBundleBytes {
		return nil, bundleError("", "%d bytes, want at most %d", len(bundle), MaxBundleBytes)
	}
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		return nil, bundleError("", "not a zip archive: %v", err)
	}
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		if _, dup := entries[f.Name]; dup {
			return nil, bundleError(f.Name, "file %q appears twice in the archive", f.Name)
		}
		entries[f.Name] = f
	}
	manifestBytes, err := readEntry(entries, ManifestFile, maxManifestBytes)
	if err != nil {
		return nil, err
	}
	sig, err := readEntry(entries, SignatureFile, ed25519.SignatureSize)
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, bundleError(SignatureFile, "%s has %d bytes, want the %d of a raw Ed25519 signature", SignatureFile, len(sig), ed25519.SignatureSize)
	}
	var signer ed25519.PublicKey
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, manifestBytes, sig) {
			signer = k
			break
		}
	}
	if signer == nil {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = KeyID(k)
		}
		return nil, bundleError(SignatureFile, "the signature of %s does not verify with the given keys %q: the manifest was altered or signed by another key", ManifestFile, ids)
	}

	// From here on the manifest is the server's own. Its format decides how to read the rest.
	var head struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"format_version"`
	}
	if err := json.Unmarshal(manifestBytes, &head); err != nil {
		return nil, bundleError(ManifestFile, "%s: %v", ManifestFile, err)
	}
	if head.Format != Format {
		return nil, bundleError(ManifestFile, "format is %q, want %q", head.Format, Format)
	}
	if head.FormatVersion != FormatVersion {
		return nil, bundleError(ManifestFile, "format_version %d is unknown; this build reads %d", head.FormatVersion, FormatVersion)
	}
	var man Manifest
	dec := json.NewDecoder(bytes.NewReader(manifestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&man); err != nil {
		return nil, bundleError(ManifestFile, "%s: %v", ManifestFile, err)
	}
	if id := KeyID(signer); man.KeyID != id {
		return nil, bundleError(ManifestFile, "key_id is %q, but key %q signed the manifest", man.KeyID, id)
	}
	files, err := checkFiles(man.Files, zr.File)
	if err != nil {
		return nil, err
	}
	modelSHA := ""
	for _, f := range man.Files {
		b, err := readEntry(entries, f.Name, f.Size)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, bundleError(f.Name, "%s has %d bytes with SHA-256 %x, want the manifest's %d bytes with %s", f.Name, len(b), sum, f.Size, f.SHA256)
		}
		files[f.Name] = b
		if f.Name == ModelFile {
			modelSHA = f.SHA256
		}
	}

	m, err := ml.Decode(files[ModelFile], modelSHA)
	if err != nil {
		return nil, bundleError(ModelFile, "%s: %v", ModelFile, err)
	}
	var schema Schema
	dec = json.NewDecoder(bytes.NewReader(files[SchemaFile]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&schema); err != nil {
		return nil, bundleError(SchemaFile, "%s: %v", SchemaFile, err)
	}
	want := Schema{Model: man.Model, Version: man.Version, Target: m.Target(), Threshold: m.Threshold(), Inputs: m.Inputs()}
	switch {
	case man.Algorithm != m.Algorithm() || man.Target != m.Target() || man.Threshold != m.Threshold():
		return nil, bundleError(ManifestFile, "the manifest says %s, target %q, threshold %v; the model is %s, %q, %v",
			man.Algorithm, man.Target, man.Threshold, m.Algorithm(), m.Target(), m.Threshold())
	case !reflect.DeepEqual(man.Schema, want):
		return nil, bundleError(ManifestFile, "the manifest's schema is not the model's")
	case !reflect.DeepEqual(schema, want):
		return nil, bundleError(SchemaFile, "%s is not the model's schema", SchemaFile)
	}
	return &Model{manifest: man, model: m, onnx: files[ONNXFile]}, nil
}

// checkFiles checks that the manifest lists exactly model.json, model.onnx and schema.json, and
// that the archive (whose names are unique) holds exactly those and the manifest and its
// signature. It returns an empty map for their contents.
func checkFiles(listed []File, archive []*zip.File) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, f := range listed {
		switch f.Name {
		case ModelFile, ONNXFile, SchemaFile:
		default:
			return nil, bundleError(ManifestFile, "the manifest lists %q, which is not a file of format %d", f.Name, FormatVersion)
		}
		if _, dup := files[f.Name]; dup {
			return nil, bundleError(ManifestFile, "the manifest lists %q twice", f.Name)
		}
		if f.Size < 0 || f.Size > MaxBundleBytes {
			return nil, bundleError(ManifestFile, "the manifest gives %q a size of %d bytes", f.Name, f.Size)
		}
		files[f.Name] = nil
	}
	for _, name := range []string{ModelFile, ONNXFile, SchemaFile} {
		if _, ok := files[name]; !ok {
			return nil, bundleError(ManifestFile, "the manifest does not list %q", name)
		}
		if !slices.ContainsFunc(archive, func(f *zip.File) bool { return f.Name == name }) {
			return nil, bundleError(name, "%s is missing from the archive", name)
		}
	}
	for _, f := range archive {
		if _, ok := files[f.Name]; !ok && f.Name != ManifestFile && f.Name != SignatureFile {
			return nil, bundleError(f.Name, "the archive holds %q, which the manifest does not list", f.Name)
		}
	}
	return files, nil
}

// readEntry reads a file of the archive, refusing it when it is missing or larger than max.
func readEntry(entries map[string]*zip.File, name string, max int64) ([]byte, error) {
	f, ok := entries[name]
	if !ok {
		return nil, bundleError(name, "%s is missing from the archive", name)
	}
	if f.UncompressedSize64 > uint64(max) {
		return nil, bundleError(name, "%s has %d bytes, want at most %d", name, f.UncompressedSize64, max)
	}
	r, err := f.Open()
	if err != nil {
		return nil, bundleError(name, "%s: %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil { // also a checksum mismatch of the zip entry
		return nil, bundleError(name, "%s: %v", name, err)
	}
	if int64(len(b)) > max {
		return nil, bundleError(name, "%s has more than %d bytes", name, max)
	}
	return b, nil
}

// Manifest returns the bundle's manifest (a copy).
func (m *Model) Manifest() Manifest {
	c := m.manifest
	c.Files = slices.Clone(c.Files)
	c.Schema.Inputs = m.Inputs()
	if c.Holdout != nil {
		h := *c.Holdout
		h.Calibration = slices.Clone(h.Calibration)
		c.Holdout = &h
	}
	return c
}

// ONNX returns the bundle's ONNX model (a copy), for ONNX Runtime.
func (m *Model) ONNX() []byte { return bytes.Clone(m.onnx) }

// Inputs returns the model's input features in the order PredictValues takes them (a copy).
func (m *Model) Inputs() []Column {
	in := slices.Clone(m.model.Inputs())
	for i := range in {
		in[i].Categories = slices.Clone(in[i].Categories)
	}
	return in
}

// Predict scores one JSON object of features under the rules of REST's predict: a missing or
// null field is a missing value, numeric inputs take numbers, categorical inputs strings or
// numbers in canonical form (an unseen category is encoded as unknown, with a warning), binary
// inputs one of their two values (or true/false for 0/1), other fields are ignored, and the
// response's own field names are refused. Errors are *Error with code "invalid" (not a JSON
// object) or "unprocessable" (naming the field).
func (m *Model) Predict(featuresJSON []byte) (Prediction, error) {
	body := bytes.TrimSpace(featuresJSON)
	if len(body) == 0 || body[0] != '{' {
		return Prediction{}, pulse.Errorf(pulse.EINVALID, "features: want a JSON object of features")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Prediction{}, pulse.Errorf(pulse.EINVALID, "features are not valid JSON: %v", err)
	}
	values := make([]Value, len(m.model.Inputs()))
	warnings, err := features.Parse(m.model.Inputs(), fields, values, "", false)
	if err != nil {
		return Prediction{}, err
	}
	p, err := m.score(values)
	p.Warnings = warnings
	return p, err
}

// PredictValues scores values already parsed, one per input in Inputs() order. A numeric value
// that is not finite counts as missing. A binary value must be one of the input's categories;
// a categorical value not seen in training is encoded as unknown, with a warning, as Predict
// does. Without warnings it allocates nothing.
func (m *Model) PredictValues(values []Value) (Prediction, error) {
	inputs := m.model.Inputs()
	if len(values) != len(inputs) {
		return Prediction{}, pulse.Errorf(pulse.EINVALID, "got %d values, want %d (one per input, in Inputs() order)", len(values), len(inputs))
	}
	var warnings []string
	for i := range inputs {
		in := &inputs[i]
		v := &values[i]
		if in.Kind == pulse.Numeric || !v.Present {
			continue
		}
		if _, found := slices.BinarySearch(in.Categories, v.Str); !found {
			if in.Kind == pulse.Binary {
				return Prediction{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, in.Name, "field %q: got %q, want one of %q", in.Name, v.Str, in.Categories)
			}
			warnings = append(warnings, fmt.Sprintf("field %q: category %q was not seen in training; encoded as unknown", in.Name, v.Str))
		}
	}
	p, err := m.score(values)
	p.Warnings = warnings
	return p, err
}

// score runs the model on values of the right length.
func (m *Model) score(values []Value) (Prediction, error) {
	s, _ := m.scratch.Get().(*[]float64)
	if s == nil || len(*s) < m.model.Width() {
		x := make([]float64, m.model.Width())
		s = &x
	}
	p, _ := m.model.Predict(values, *s)
	m.scratch.Put(s)
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return Prediction{}, pulse.Errorf(pulse.EINTERNAL, "model %s version %d produced a non-finite probability", m.manifest.Model, m.manifest.Version)
	}
	label := 0
	if p >= m.model.Threshold() {
		label = 1
	}
	return Prediction{Probability: p, Label: label, Threshold: m.model.Threshold()}, nil
}
