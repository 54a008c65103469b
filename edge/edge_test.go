package edge_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/bundle"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

func open(t *testing.T, b []byte) *edge.Model {
	t.Helper()
	m, err := edge.Open(b, testKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpen(t *testing.T) {
	b := build(t, "gbdt", nil)
	m := open(t, b)
	man := m.Manifest()
	if man.Model != "heart-disease" || man.Version != 2 || man.Algorithm != "gbdt" || man.Target != "num > 0" ||
		man.KeyID != edge.KeyID(testKey.Public().(ed25519.PublicKey)) || man.PulseVersion != "test" || len(man.Files) != 3 {
		t.Errorf("manifest: got %+v", man)
	}
	if got := m.ONNX(); !bytes.Equal(got, file(unzip(t, b), edge.ONNXFile)) || len(got) == 0 {
		t.Errorf("ONNX: got %d bytes, want model.onnx", len(got))
	}
	ins := m.Inputs()
	if len(ins) != 13 || ins[0].Name != "age" || ins[12].Name != "thal" {
		t.Errorf("inputs: got %+v", ins)
	}
	// Accessors return copies.
	ins[0].Name = "changed"
	man.Files[0].Name = "changed"
	m.ONNX()[0] ^= 1
	if m.Inputs()[0].Name != "age" || m.Manifest().Files[0].Name != edge.ModelFile || !bytes.Equal(m.ONNX(), file(unzip(t, b), edge.ONNXFile)) {
		t.Error("changing what an accessor returned changed the model")
	}
	// Any of several keys may have signed it.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := edge.Open(b, other, testKey.Public().(ed25519.PublicKey)); err != nil {
		t.Errorf("with the signing key second of two: %v", err)
	}
}

// resign returns files with the manifest edited by change and signed again with the test key.
func resign(t *testing.T, files []entry, change func(m map[string]any)) []entry {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(file(files, edge.ManifestFile), &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := load(); err != nil {
		t.Fatal(err)
	}
	return replace(replace(files, edge.ManifestFile, b), edge.SignatureFile, fixture.signer.Sign(b))
}

func TestOpenRefuses(t *testing.T) {
	good := unzip(t, build(t, "logreg", nil))
	otherModel := unzip(t, build(t, "gbdt", nil))
	otherKey, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, impostorKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := bundle.NewSigner(impostorKey)
	if err != nil {
		t.Fatal(err)
	}
	swapped := replace(good, edge.ModelFile, file(good, edge.ONNXFile))
	swapped = replace(swapped, edge.ONNXFile, file(good, edge.ModelFile))
	key := testKey.Public().(ed25519.PublicKey)

	tests := []struct {
		name   string
		bundle []byte
		keys   []ed25519.PublicKey
		field  string // the file the error names
		text   string // in the message
	}{
		{"model.json one byte changed", rezip(t, replace(good, edge.ModelFile, flip(file(good, edge.ModelFile), `"num > 0"`, `"num > 1"`))), nil, edge.ModelFile, "SHA-256"},
		{"model.onnx one byte changed", rezip(t, replace(good, edge.ONNXFile, flip(file(good, edge.ONNXFile), "", ""))), nil, edge.ONNXFile, "SHA-256"},
		{"schema.json one byte changed", rezip(t, replace(good, edge.SchemaFile, flip(file(good, edge.SchemaFile), `"num > 0"`, `"num > 1"`))), nil, edge.SchemaFile, "SHA-256"},
		{"manifest one byte changed", rezip(t, replace(good, edge.ManifestFile, flip(file(good, edge.ManifestFile), `"version": 2`, `"version": 3`))), nil, edge.SignatureFile, "does not verify"},
		{"signature one byte changed", rezip(t, replace(good, edge.SignatureFile, flip(file(good, edge.SignatureFile), "", ""))), nil, edge.SignatureFile, "does not verify"},
		{"signature truncated", rezip(t, replace(good, edge.SignatureFile, file(good, edge.SignatureFile)[:63])), nil, edge.SignatureFile, "63 bytes"},
		{"model.json of another version", rezip(t, replace(good, edge.ModelFile, file(otherModel, edge.ModelFile))), nil, edge.ModelFile, "bytes"},
		{"model.json and model.onnx swapped", rezip(t, swapped), nil, edge.ModelFile, "bytes"},
		{"a file added", rezip(t, append(replace(good, "", nil), entry{"extra.txt", []byte("hi")})), nil, "extra.txt", "does not list"},
		{"model.onnx missing", rezip(t, []entry{good[0], good[1], good[2], good[4]}), nil, edge.ONNXFile, "missing"},
		{"manifest.sig missing", rezip(t, []entry{good[0], good[2], good[3], good[4]}), nil, edge.SignatureFile, "missing"},
		{"manifest.json missing", rezip(t, good[1:]), nil, edge.ManifestFile, "missing"},
		{"model.json twice", rezip(t, append(replace(good, "", nil), good[2])), nil, edge.ModelFile, "twice"},
		{"not a zip archive", []byte("PK not really"), nil, "", "not a zip archive"},
		{"wrong key", rezip(t, good), []ed25519.PublicKey{otherKey}, edge.SignatureFile, "does not verify"},
		{"no usable key", rezip(t, good), []ed25519.PublicKey{ed25519.PublicKey{1, 2, 3}}, edge.SignatureFile, "does not verify"},
		{"signed by another key claiming ours", rezip(t, func() []entry {
			fs := replace(good, "", nil)
			return replace(fs, edge.SignatureFile, impostor.Sign(file(fs, edge.ManifestFile)))
		}()), nil, edge.SignatureFile, "does not verify"},
		{"key id not the signer's", rezip(t, resign(t, good, func(m map[string]any) { m["key_id"] = "0000000000000000" })), nil, edge.ManifestFile, "key_id"},
		{"threshold not the model's", rezip(t, resign(t, good, func(m map[string]any) { m["threshold"] = 0.3 })), nil, edge.ManifestFile, "threshold"},
		{"schema not the model's", rezip(t, resign(t, good, func(m map[string]any) {
			m["schema"].(map[string]any)["inputs"] = m["schema"].(map[string]any)["inputs"].([]any)[1:]
		})), nil, edge.ManifestFile, "schema"},
		{"unknown file listed", rezip(t, resign(t, good, func(m map[string]any) {
			m["files"] = append(m["files"].([]any), map[string]any{"name": "notes.txt", "size": 2, "sha256": "00"})
		})), nil, edge.ManifestFile, "notes.txt"},
		{"a file not listed", rezip(t, resign(t, good, func(m map[string]any) { m["files"] = m["files"].([]any)[:2] })), nil, edge.ManifestFile, "does not list"},
		{"newer format", rezip(t, resign(t, good, func(m map[string]any) { m["format_version"] = 2 })), nil, edge.ManifestFile, "format_version 2"},
		{"unknown manifest field", rezip(t, resign(t, good, func(m map[string]any) { m["extra"] = true })), nil, edge.ManifestFile, "extra"},
		{"size not the file's", rezip(t, resign(t, good, func(m map[string]any) {
			m["files"].([]any)[0].(map[string]any)["size"] = 10
		})), nil, edge.ModelFile, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := tt.keys
			if keys == nil {
				keys = []ed25519.PublicKey{key}
			}
			m, err := edge.Open(tt.bundle, keys...)
			var e *edge.Error
			if m != nil || !errors.As(err, &e) {
				t.Fatalf("got %v, %v; want no model and an *edge.Error", m, err)
			}
			if e.Code != pulse.EUNPROCESSABLE || e.Field != tt.field || !strings.Contains(e.Message, tt.text) {
				t.Errorf("got %s error about %q: %q; want %s about %q containing %q", e.Code, e.Field, e.Message, pulse.EUNPROCESSABLE, tt.field, tt.text)
			}
		})
	}
	if _, err := edge.Open(rezip(t, good)); pulse.ErrorCode(err) != pulse.EINVALID || !strings.Contains(err.Error(), "no public key") {
		t.Errorf("no keys: got %v, want an %s error", err, pulse.EINVALID)
	}
	// The unchanged files, archived again, still open: the checks are about content.
	if _, err := edge.Open(rezip(t, good), key); err != nil {
		t.Errorf("the good files archived again: %v", err)
	}
}

// clevelandRows returns, per Cleveland row, the model's values and the same row as a JSON
// object (numbers as numbers, categories as numbers or strings, missing values left out or
// null, alternately).
func clevelandRows(t *testing.T, inputs []edge.Column) ([][]edge.Value, [][]byte) {
	t.Helper()
	tab := cleveland(t)
	var values [][]edge.Value
	var objects [][]byte
	missing := 0
	for r := range tab.Rows {
		vs := make([]edge.Value, len(inputs))
		var b bytes.Buffer
		b.WriteByte('{')
		for i, in := range inputs {
			j := tab.Schema.Index(in.Name)
			if j < 0 {
				t.Fatalf("no column %q", in.Name)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:", in.Name)
			switch {
			case in.Kind == pulse.Numeric && !math.IsNaN(tab.Num[j][r]):
				vs[i] = edge.Value{Num: tab.Num[j][r], Present: true}
				b.WriteString(strconv.FormatFloat(tab.Num[j][r], 'g', -1, 64))
			case in.Kind != pulse.Numeric && tab.Cat[j][r] != "":
				vs[i] = edge.Value{Str: tab.Cat[j][r], Present: true}
				if r%2 == 0 {
					b.WriteString(tab.Cat[j][r] + ".0") // a number, as "1.0" in the CSV
				} else {
					fmt.Fprintf(&b, "%q", tab.Cat[j][r])
				}
			default:
				missing++
				b.WriteString("null")
			}
		}
		b.WriteByte('}')
		values = append(values, vs)
		objects = append(objects, b.Bytes())
	}
	if missing == 0 || len(values) != 303 {
		t.Fatalf("got %d rows and %d missing values, want 303 rows with some missing values", len(values), missing)
	}
	return values, objects
}

// TestParity scores every Cleveland row (6 with missing values) with each algorithm: the edge
// model answers exactly what the server's model does, from values and from JSON.
func TestParity(t *testing.T) {
	for _, alg := range []string{"logreg", "gbdt", "ftrl"} {
		t.Run(alg, func(t *testing.T) {
			m := open(t, build(t, alg, nil))
			ref, err := ml.Decode(fixture.artifacts[alg], "")
			if err != nil {
				t.Fatal(err)
			}
			values, objects := clevelandRows(t, m.Inputs())
			for r := range values {
				want, _ := ref.Predict(values[r], nil)
				wantLabel := 0
				if want >= ref.Threshold() {
					wantLabel = 1
				}
				got, err := m.PredictValues(values[r])
				if err != nil || got.Probability != want || got.Label != wantLabel || got.Threshold != ref.Threshold() || got.Warnings != nil {
					t.Fatalf("row %d: PredictValues = %+v, %v; want probability %v, label %d", r+1, got, err, want, wantLabel)
				}
				got, err = m.Predict(objects[r])
				if err != nil || got.Probability != want || got.Label != wantLabel || got.Warnings != nil {
					t.Fatalf("row %d: Predict(%s) = %+v, %v; want probability %v, label %d", r+1, objects[r], got, err, want, wantLabel)
				}
			}
		})
	}
}

func TestPredictRules(t *testing.T) {
	m := open(t, build(t, "logreg", nil))
	base := `"age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0`
	tests := []struct {
		name    string
		body    string
		code    string // "" for success
		field   string
		text    string
		warning string
	}{
		{"complete", `{` + base + `,"thal":6}`, "", "", "", ""},
		{"extra fields ignored", `{` + base + `,"thal":6,"device":"abc"}`, "", "", "", ""},
		{"all missing", `{}`, "", "", "", ""},
		{"unseen category", `{` + base + `,"thal":5}`, "", "", "", `field "thal": category "5" was not seen in training; encoded as unknown`},
		{"binary as boolean", `{"sex":true,"fbs":false}`, "", "", "", ""},
		{"not an object", `[1,2]`, pulse.EINVALID, "", "want a JSON object", ""},
		{"not JSON", `{"age":`, pulse.EINVALID, "", "not valid JSON", ""},
		{"string for a number", `{"age":"63"}`, pulse.EUNPROCESSABLE, "age", `field "age": got a string "63", want a number`, ""},
		{"unknown binary value", `{"sex":3}`, pulse.EUNPROCESSABLE, "sex", `field "sex": got "3", want one of`, ""},
		{"object for a category", `{"cp":{}}`, pulse.EUNPROCESSABLE, "cp", "want a string or a number", ""},
		{"reserved field", `{"prediction":1}`, pulse.EUNPROCESSABLE, "prediction", "reserved", ""},
	}
	for _, tt := range tests {
		p, err := m.Predict([]byte(tt.body))
		if tt.code == "" {
			if err != nil || !(p.Probability > 0 && p.Probability < 1) {
				t.Errorf("%s: got %+v, %v; want a probability", tt.name, p, err)
			}
			if tt.warning != "" && (len(p.Warnings) != 1 || p.Warnings[0] != tt.warning) {
				t.Errorf("%s: warnings %q, want [%q]", tt.name, p.Warnings, tt.warning)
			}
			continue
		}
		var e *edge.Error
		if !errors.As(err, &e) || e.Code != tt.code || e.Field != tt.field || !strings.Contains(e.Message, tt.text) || p.Probability != 0 {
			t.Errorf("%s: got %+v, %v; want a %s error about %q containing %q", tt.name, p, err, tt.code, tt.field, tt.text)
		}
	}

	// PredictValues applies the same category rules.
	values := make([]edge.Value, len(m.Inputs()))
	if _, err := m.PredictValues(values[:3]); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("3 values: got %v, want an %s error", err, pulse.EINVALID)
	}
	values[1] = edge.Value{Str: "7", Present: true} // sex
	if _, err := m.PredictValues(values); pulse.ErrorCode(err) != pulse.EUNPROCESSABLE || !strings.Contains(err.Error(), `field "sex": got "7"`) {
		t.Errorf("unknown binary value: got %v", err)
	}
	values[1] = edge.Value{}
	values[12] = edge.Value{Str: "9", Present: true} // thal
	p, err := m.PredictValues(values)
	if err != nil || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], `category "9" was not seen`) {
		t.Errorf("unseen category: got %+v, %v", p, err)
	}
}

func TestConcurrentPredict(t *testing.T) {
	m := open(t, build(t, "gbdt", nil))
	values, _ := clevelandRows(t, m.Inputs())
	want := make([]float64, len(values))
	for r := range values {
		p, err := m.PredictValues(values[r])
		if err != nil {
			t.Fatal(err)
		}
		want[r] = p.Probability
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for r := range values {
				r = (r + g*37) % len(values)
				if p, err := m.PredictValues(values[r]); err != nil || p.Probability != want[r] {
					errs <- fmt.Sprintf("row %d: got %v, %v; want %v", r+1, p.Probability, err, want[r])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestJWKSet(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	jwk, err := json.Marshal(edge.PublicJWK(pub))
	if err != nil {
		t.Fatal(err)
	}
	set := []byte(`{"keys":[{"kty":"RSA","n":"0vx7","e":"AQAB","use":"sig"},` + string(jwk) + `]}`) // RSA is skipped
	keys, err := edge.ParseJWKSet(set)
	if err != nil || len(keys) != 1 || !keys[0].Equal(pub) {
		t.Fatalf("got %v, %v; want the one Ed25519 key", keys, err)
	}
	if jwk := edge.PublicJWK(pub); jwk.Kty != "OKP" || jwk.Crv != "Ed25519" || jwk.Alg != "EdDSA" || jwk.Use != "sig" || jwk.Kid != edge.KeyID(pub) || len(jwk.Kid) != 16 || strings.ContainsAny(jwk.X, "=+/") {
		t.Errorf("JWK: got %+v", jwk)
	}
	for _, bad := range []string{
		`not json`,
		`{"keys":[]}`,
		`{"keys":[{"kty":"OKP","crv":"X25519","x":"AAAA"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + edge.PublicJWK(pub).X + `","use":"enc"}]}`,
	} {
		if keys, err := edge.ParseJWKSet([]byte(bad)); err == nil {
			t.Errorf("%s: got %d keys, want an error", bad, len(keys))
		}
	}
}

// TestDependencies keeps the package light for apps: it may import only the standard library
// and Pulse's model code.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is required to list the dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/cloudmedical/pulse/"
	allowed := []string{mod + "edge", mod + "internal/ml", mod + "internal/pulse", mod + "internal/features", mod + "internal/jsonscan", mod + "internal/tabular"}
	var deps []string
	for _, p := range strings.Fields(string(out)) {
		deps = append(deps, p)
		ok := strings.HasPrefix(p, mod+"internal/ml/")
		for _, a := range allowed {
			ok = ok || p == a
		}
		if !ok {
			t.Errorf("package edge depends on %s; allowed are the standard library and %q (and internal/ml/...)", p, allowed)
		}
	}
	if len(deps) < 2 {
		t.Errorf("go list found %q: the check would not catch anything", deps)
	}
}

func BenchmarkPredict(b *testing.B) {
	body := []byte(`{"age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0,"thal":6}`)
	for _, alg := range []string{"logreg", "gbdt"} {
		m, err := edge.Open(build(b, alg, nil), testKey.Public().(ed25519.PublicKey))
		if err != nil {
			b.Fatal(err)
		}
		values := make([]edge.Value, len(m.Inputs()))
		for i, in := range m.Inputs() {
			if in.Kind == pulse.Numeric {
				values[i] = edge.Value{Num: 100, Present: true}
			} else {
				values[i] = edge.Value{Str: in.Categories[0], Present: true}
			}
		}
		b.Run(alg+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Predict(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/values", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.PredictValues(values); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	bundle := build(b, "gbdt", nil)
	key := testKey.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := edge.Open(bundle, key); err != nil {
			b.Fatal(err)
		}
	}
}
