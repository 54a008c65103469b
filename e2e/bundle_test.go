package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/bundle"
)

// checkBinary checks a response whose body is not JSON (a file download) against the document:
// the status and the content type must be documented; a problem is checked as JSON.
func (a *apiDoc) checkBinary(t *testing.T, method, route string, r response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); strings.HasPrefix(ct, "application/problem+json") {
		a.check(t, method, route, r)
		return
	}
	op, ok := a.doc["paths"].(map[string]any)[route].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Fatalf("openapi: %s %s is not documented", method, route)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(r.status)].(map[string]any)
	if !ok {
		t.Fatalf("openapi: %s %s: status %d is not documented", method, route, r.status)
	}
	ct := strings.TrimSpace(strings.Split(r.header.Get("Content-Type"), ";")[0])
	if _, ok := resp["content"].(map[string]any)[ct]; !ok {
		t.Fatalf("openapi: %s %s %d: content type %q is not documented", method, route, r.status, ct)
	}
	for name := range resp["headers"].(map[string]any) {
		if r.header.Get(name) == "" {
			t.Errorf("openapi: %s %s %d: documented header %s is missing", method, route, r.status, name)
		}
	}
	a.checked[method+" "+route] = true
}

// validate checks a JSON document against a schema of the OpenAPI document's components.
func (a *apiDoc) validate(t *testing.T, schema string, doc []byte) {
	t.Helper()
	loc := "openapi.json#/components/schemas/" + schema
	sch, ok := a.cache[loc]
	if !ok {
		var err error
		if sch, err = a.compiler.Compile(loc); err != nil {
			t.Fatalf("openapi: compile %s: %v", loc, err)
		}
		a.cache[loc] = sch
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: not JSON: %v", schema, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("openapi: %s does not match the documented schema: %v\n%s", schema, err, doc)
	}
}

// unzipFiles returns the files of a zip archive by name.
func unzipFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the bundle is not a zip archive: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// rezipFiles writes files as a zip archive, in the order of names.
func rezipFiles(t *testing.T, files map[string][]byte, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkBundleRoutes downloads the bundle of heart-disease version 1 and the server's keys on a
// running server started without --signing-key, checks both against the OpenAPI document, and
// scores the first Cleveland patient offline with package edge as REST does. TestServeExample
// calls it.
func checkBundleRoutes(t *testing.T, s *server, api *apiDoc) {
	t.Helper()
	r := s.get("/v1/signing-keys")
	api.check(t, "GET", "/v1/signing-keys", r)
	keys, err := edge.ParseJWKSet(r.body)
	if err != nil || len(keys) != 1 {
		t.Fatalf("signing keys: got %v, %v; want one key", keys, err)
	}
	// Generated on first start, private to the server's user.
	keyFile := filepath.Join(s.dataDir, "keys", "bundle-signing.pem")
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("signing key file %s: got %v, %v; want mode 0600", keyFile, st, err)
	} else if signer, err := bundle.LoadSigner(keyFile); err != nil || !signer.PublicKey().Equal(keys[0]) {
		t.Errorf("the key file is not the published key (%v)", err)
	}

	route := "/v1/models/{model}/versions/{version}/bundle"
	r = s.get("/v1/models/heart-disease/versions/1/bundle")
	api.checkBinary(t, "GET", route, r)
	if r.status != 200 || r.header.Get("Content-Disposition") != `attachment; filename="heart-disease-v1.pulse.zip"` {
		t.Fatalf("bundle: got %d, headers %v", r.status, r.header)
	}
	m, err := edge.Open(r.body, keys...)
	if err != nil {
		t.Fatalf("the bundle does not open with the published keys: %v", err)
	}
	files := unzipFiles(t, r.body)
	api.validate(t, "BundleManifest", files[edge.ManifestFile])
	api.validate(t, "BundleSchema", files[edge.SchemaFile])
	if id := r.header.Get("X-Pulse-Key-Id"); id != m.Manifest().KeyID || id != edge.KeyID(keys[0]) {
		t.Errorf("X-Pulse-Key-Id %q, manifest key_id %q, want the published key %s", id, m.Manifest().KeyID, edge.KeyID(keys[0]))
	}
	art := s.get("/v1/models/heart-disease/versions/1/artifact")
	if !bytes.Equal(files[edge.ModelFile], art.body) {
		t.Error("model.json is not the version's artifact")
	}

	p, err := m.Predict([]byte(patientJSON))
	if err != nil {
		t.Fatal(err)
	}
	rest := s.postJSON("/v1/models/heart-disease/predict?version=1", patientJSON)
	var want struct {
		Prediction edge.Prediction `json:"prediction"`
	}
	if err := json.Unmarshal(rest.body, &want); err != nil || rest.status != 200 {
		t.Fatalf("REST predict: got %d %s", rest.status, rest.body)
	}
	if p.Probability != want.Prediction.Probability || p.Label != want.Prediction.Label || p.Threshold != want.Prediction.Threshold {
		t.Errorf("edge: got %+v, REST %+v", p, want.Prediction)
	}

	for path, status := range map[string]int{
		"/v1/models/heart-disease/versions/99/bundle":       404,
		"/v1/models/no-such-model/versions/1/bundle":        404,
		"/v1/models/heart-disease/versions/champion/bundle": 400,
	} {
		r := s.get(path)
		api.checkBinary(t, "GET", route, r)
		if r.status != status {
			t.Errorf("GET %s: got %d %s, want %d", path, r.status, r.body, status)
		}
	}
}

// clevelandInstances returns the Cleveland rows as JSON objects of features (a missing value
// "?" as null), without the label.
func clevelandInstances(t *testing.T) []json.RawMessage {
	t.Helper()
	f, err := os.Open(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := recs[0]
	var out []json.RawMessage
	missing := 0
	for _, rec := range recs[1:] {
		var b bytes.Buffer
		b.WriteByte('{')
		for j, cell := range rec[:len(rec)-1] { // the last column, num, is the label
			if j > 0 {
				b.WriteByte(',')
			}
			cell = strings.TrimSpace(cell)
			if cell == "?" {
				cell = "null"
				missing++
			}
			fmt.Fprintf(&b, "%q:%s", strings.TrimSpace(header[j]), cell)
		}
		b.WriteByte('}')
		out = append(out, b.Bytes())
	}
	if len(out) != 303 || missing == 0 {
		t.Fatalf("got %d rows and %d missing values, want 303 rows with some missing", len(out), missing)
	}
	return out
}

// TestBundle downloads the bundles of a logreg, a gbdt and an ftrl version from a server that
// signs with a key given by --signing-key, verifies them with the published keys, and scores
// every Cleveland row with package edge: each probability equals REST's, bit for bit. Tampered
// bundles are refused, and pulse export writes the same bundles and ONNX files.
func TestBundle(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "shared-key.pem")
	signer, _, err := bundle.LoadOrCreateSigner(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cwd, _ := os.Getwd()
	s := startServer(t, filepath.Join(dir, "data"), cwd, "--signing-key", keyFile)
	data, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/v1/datasets?name=cleveland&kinds=cp:categorical,restecg:categorical,slope:categorical,thal:categorical", "text/csv", data); r.status != 201 {
		t.Fatalf("register: got %d %s", r.status, r.body)
	}
	algorithms := []string{"logreg", "gbdt", "ftrl"}
	for i, alg := range algorithms {
		r := s.postJSON("/v1/models/heart/train?wait=true", `{"dataset":"cleveland","target":"num > 0","cv_folds":-1,"seed":7,"algorithm":"`+alg+`"}`)
		if r.status != 201 || r.json(t)["version"] != float64(i+1) {
			t.Fatalf("train %s: got %d %s", alg, r.status, r.body)
		}
	}

	r := s.get("/v1/signing-keys")
	keys, err := edge.ParseJWKSet(r.body)
	if err != nil || len(keys) != 1 || !keys[0].Equal(signer.PublicKey()) {
		t.Fatalf("signing keys: got %s (%v), want the key of --signing-key", r.body, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "keys")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("with --signing-key the server made a key in its data dir too (%v)", err)
	}

	instances := clevelandInstances(t)
	batch, err := json.Marshal(map[string]any{"instances": instances})
	if err != nil {
		t.Fatal(err)
	}
	bundles := map[string][]byte{}
	for i, alg := range algorithms {
		version := i + 1
		r := s.get(fmt.Sprintf("/v1/models/heart/versions/%d/bundle", version))
		if r.status != 200 {
			t.Fatalf("bundle of %s: got %d %s", alg, r.status, r.body)
		}
		bundles[alg] = r.body
		m, err := edge.Open(r.body, keys...)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if man := m.Manifest(); man.Algorithm != alg || man.Version != version || man.KeyID != signer.KeyID() || man.Holdout == nil {
			t.Errorf("%s: manifest %+v", alg, man)
		}

		rest := s.do("POST", fmt.Sprintf("/v1/models/heart/predict?version=%d", version), "application/json", batch)
		var out struct {
			Predictions []struct {
				Prediction edge.Prediction `json:"prediction"`
			} `json:"predictions"`
		}
		if err := json.Unmarshal(rest.body, &out); err != nil || rest.status != 200 || len(out.Predictions) != len(instances) {
			t.Fatalf("%s: REST predict: got %d, %d predictions (%v)", alg, rest.status, len(out.Predictions), err)
		}
		for j, inst := range instances {
			p, err := m.Predict(inst)
			want := out.Predictions[j].Prediction
			if err != nil || p.Probability != want.Probability || p.Label != want.Label {
				t.Fatalf("%s, row %d %s: edge %+v (%v), REST %+v", alg, j+1, inst, p, err, want)
			}
		}
	}

	// Tampered bundles are refused, naming the file.
	good := unzipFiles(t, bundles["logreg"])
	names := []string{edge.ManifestFile, edge.SignatureFile, edge.ModelFile, edge.ONNXFile, edge.SchemaFile}
	tamper := func(name string, change func([]byte) []byte) []byte {
		files := map[string][]byte{}
		for n, b := range good {
			files[n] = bytes.Clone(b)
		}
		files[name] = change(files[name])
		return rezipFiles(t, files, names...)
	}
	oneByte := func(b []byte) []byte { b[len(b)/2] ^= 1; return b }
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		keys   []ed25519.PublicKey
		field  string
	}{
		{"one byte of model.json", tamper(edge.ModelFile, oneByte), keys, edge.ModelFile},
		{"one byte of the manifest", tamper(edge.ManifestFile, oneByte), keys, edge.SignatureFile},
		{"model.json of the gbdt version", tamper(edge.ModelFile, func([]byte) []byte { return unzipFiles(t, bundles["gbdt"])[edge.ModelFile] }), keys, edge.ModelFile},
		{"schema.json in place of model.json", tamper(edge.ModelFile, func([]byte) []byte { return bytes.Clone(good[edge.SchemaFile]) }), keys, edge.ModelFile},
		{"another key", bundles["logreg"], []ed25519.PublicKey{otherKey.Public().(ed25519.PublicKey)}, edge.SignatureFile},
	} {
		m, err := edge.Open(tc.bundle, tc.keys...)
		var e *edge.Error
		if m != nil || !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("%s: got %v, %v; want an error about %s", tc.name, m, err, tc.field)
		}
	}

	// pulse export writes the server's bundle (verified) and the ONNX file of a version.
	out := filepath.Join(dir, "gbdt.pulse.zip")
	cmd := exec.Command(pulseBin, "export", "--server", s.base, "--format", "bundle", "--model", "heart", "--alias", "champion", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "signed by key "+signer.KeyID()) {
		t.Fatalf("pulse export --format bundle: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := edge.Open(b, keys...); err != nil || m.Manifest().Version != 1 {
		t.Errorf("exported bundle: got %v; want the champion, version 1", err)
	}
	cmd = exec.Command(pulseBin, "export", "--server", s.base, "--format", "onnx", "--model", "heart", "--version", "2")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "wrote heart-v2.onnx") {
		t.Fatalf("pulse export --format onnx: %v\n%s", err, b)
	}
	onnxFile, err := os.ReadFile(filepath.Join(dir, "heart-v2.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := edge.Open(bundles["gbdt"], keys...); err != nil || !bytes.Equal(m.ONNX(), onnxFile) {
		t.Errorf("heart-v2.onnx is not the gbdt bundle's model.onnx (%v)", err)
	}
}
