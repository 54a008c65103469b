package ml

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func clevelandModel(t testing.TB) (*Model, *tabular.Table) {
	tab := cleveland(t)
	return train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV}).Model, tab
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	m, tab := clevelandModel(t)
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`{"format":"pulse.model","schema_version":1,"algorithm":"logreg","target":"num > 0",`)) {
		t.Errorf("artifact starts %.90s", b)
	}
	// The artifact is a file: write and read it back as the blob store would.
	path := filepath.Join(t.TempDir(), "model.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Decode(stored, sha(b))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Encode(m2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Error("encode(decode(artifact)) differs from the artifact")
	}
	p1, _, err := m.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	p2, _, err := m2.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p1 {
		if math.Float64bits(p1[i]) != math.Float64bits(p2[i]) {
			t.Fatalf("row %d: decoded model predicts %v, original %v", i+1, p2[i], p1[i])
		}
	}
	if m2.Threshold() != m.Threshold() || m2.Width() != m.Width() || len(m2.Inputs()) != len(m.Inputs()) {
		t.Errorf("decoded model: threshold %v width %d inputs %d", m2.Threshold(), m2.Width(), len(m2.Inputs()))
	}
	// Upper-case hex is accepted too.
	if _, err := Decode(b, strings.ToUpper(sha(b))); err != nil {
		t.Errorf("upper-case sha256: %v", err)
	}
}

// edit decodes an artifact into generic JSON, applies f and encodes it again.
func edit(t *testing.T, b []byte, f func(a map[string]any)) []byte {
	t.Helper()
	var a map[string]any
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	f(a)
	out, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecodeErrors(t *testing.T) {
	m, _ := clevelandModel(t)
	good, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	lr := func(a map[string]any) map[string]any { return a["logreg"].(map[string]any) }
	input := func(a map[string]any, i int) map[string]any { return a["inputs"].([]any)[i].(map[string]any) }
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x01
	tests := []struct {
		name string
		b    []byte
		sha  string
		has  string
	}{
		{"flipped byte", flipped, sha(good), "sha256 is"},
		{"wrong sha", good, strings.Repeat("0", 64), "sha256 is"},
		{"empty", nil, "", "not valid JSON"},
		{"truncated", good[:len(good)-1], "", "not valid JSON"},
		{"not an object", []byte(`[1,2]`), "", "not valid JSON"},
		{"trailing data", append(bytes.Clone(good), []byte(` {}`)...), "", "not valid JSON"},
		{"other format", edit(t, good, func(a map[string]any) { a["format"] = "onnx" }), "", `format is "onnx"`},
		{"unknown schema_version", edit(t, good, func(a map[string]any) { a["schema_version"] = 2 }), "", "schema_version 2 is unknown"},
		{"unknown algorithm", edit(t, good, func(a map[string]any) { a["algorithm"] = "svm" }), "", `algorithm "svm" is unknown`},
		{"other algorithm", edit(t, good, func(a map[string]any) { a["algorithm"] = "gbdt" }), "", "has no median, mean or scale"},
		{"unknown field", edit(t, good, func(a map[string]any) { a["weights"] = []int{1} }), "", "unknown field"},
		{"NaN coefficient", bytes.Replace(good, []byte(`"coef":[`), []byte(`"coef":[NaN,`), 1), "", "not valid JSON"},
		{"huge coefficient", bytes.Replace(good, []byte(`"coef":[`), []byte(`"coef":[1e999,`), 1), "", "1e999"},
		{"too few coefficients", edit(t, good, func(a map[string]any) {
			c := lr(a)["coef"].([]any)
			lr(a)["coef"] = c[1:]
		}), "", "21 coefficients, want 22"},
		{"too many coefficients", edit(t, good, func(a map[string]any) {
			lr(a)["coef"] = append(lr(a)["coef"].([]any), 0.5)
		}), "", "23 coefficients, want 22"},
		{"no coefficients", edit(t, good, func(a map[string]any) { delete(lr(a), "coef") }), "", "0 coefficients"},
		{"no intercept", edit(t, good, func(a map[string]any) { delete(lr(a), "intercept") }), "", "intercept is missing"},
		{"no logreg", edit(t, good, func(a map[string]any) { delete(a, "logreg") }), "", "logreg payload is missing"},
		{"bad class weight", edit(t, good, func(a map[string]any) { lr(a)["class_weight"] = "auto" }), "", "class_weight"},
		{"no inputs", edit(t, good, func(a map[string]any) { a["inputs"] = []any{} }), "", "no inputs"},
		{"extra input", edit(t, good, func(a map[string]any) {
			a["inputs"] = append(a["inputs"].([]any), map[string]any{"name": "bmi", "kind": "numeric", "missing": 0, "median": 1, "mean": 1, "scale": 1})
		}), "", "22 coefficients, want 23"},
		{"repeated input", edit(t, good, func(a map[string]any) { input(a, 1)["name"] = "age" }), "", `input "age" appears twice`},
		{"zero scale", edit(t, good, func(a map[string]any) { input(a, 0)["scale"] = 0 }), "", "scale positive"},
		{"missing mean", edit(t, good, func(a map[string]any) { delete(input(a, 0), "mean") }), "", "needs median, mean and scale"},
		{"unknown kind", edit(t, good, func(a map[string]any) { input(a, 0)["kind"] = "ordinal" }), "", `kind "ordinal"`},
		{"mode not a category", edit(t, good, func(a map[string]any) { input(a, 2)["mode"] = "9" }), "", `mode "9" is not a category`},
		{"three binary categories", edit(t, good, func(a map[string]any) { input(a, 1)["categories"] = []string{"0", "1", "2"} }), "", "3 categories"},
		{"repeated category", edit(t, good, func(a map[string]any) { input(a, 2)["categories"] = []string{"1", "1", "3", "4"} }), "", "unique and sorted"},
		{"unsorted categories", edit(t, good, func(a map[string]any) { input(a, 2)["categories"] = []string{"2", "1", "3", "4"} }), "", "unique and sorted"},
		{"negative missing", edit(t, good, func(a map[string]any) { input(a, 0)["missing"] = -1 }), "", "negative"},
		{"threshold out of range", edit(t, good, func(a map[string]any) { a["threshold"] = 1.5 }), "", "threshold 1.5"},
		{"empty target", edit(t, good, func(a map[string]any) { a["target"] = "" }), "", "target is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.b, tt.sha)
			if err == nil {
				t.Fatalf("got a model of width %d, want an error", got.Width())
			}
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != pulse.EUNPROCESSABLE {
				t.Errorf("got %T %v, want an EUNPROCESSABLE *pulse.Error", err, err)
			}
			if !strings.Contains(err.Error(), tt.has) {
				t.Errorf("got %q, want it to contain %q", err, tt.has)
			}
		})
	}
}

// TestDecodeEveryTruncation checks that no prefix of an artifact decodes to a model.
func TestDecodeEveryTruncation(t *testing.T) {
	m, _ := clevelandModel(t)
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		if _, err := Decode(b[:n], ""); err == nil {
			t.Fatalf("the first %d of %d bytes decoded to a model", n, len(b))
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Encode(nil); err == nil {
		t.Error("Encode(nil): got no error")
	}
	m, _ := clevelandModel(t)
	bad := *m
	lr := *m.logReg
	lr.coef = append([]float64{math.NaN()}, lr.coef[1:]...)
	bad.logReg = &lr
	if _, err := Encode(&bad); err == nil {
		t.Error("NaN coefficient: got no error")
	}
}

func TestDescribe(t *testing.T) {
	m, tab := clevelandModel(t)
	d := m.Describe()
	if d["algorithm"] != "logreg" || d["converged"] != true || d["iterations"].(int) < 1 {
		t.Errorf("describe: got %v", d)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Errorf("describe is not JSON: %v", err)
	}
	// Not finite numbers become null rather than breaking JSON.
	bad := *m
	lr := *m.logReg
	lr.gradNorm = math.NaN()
	lr.coef = append([]float64{math.Inf(1)}, lr.coef[1:]...)
	bad.logReg = &lr
	if b, err := json.Marshal(bad.Describe()); err != nil || !bytes.Contains(b, []byte(`"gradient_norm":null`)) {
		t.Errorf("describe with NaN: %v, %.200s", err, b)
	}
	coefs := d["coefficients"].([]map[string]any)
	if len(coefs) != m.Width() {
		t.Fatalf("got %d coefficients, want %d", len(coefs), m.Width())
	}
	// In original units, the score of a row is intercept_original_units plus each numeric
	// value times its coef_original_units plus the coefficients of its categories.
	b0 := d["intercept_original_units"].(float64)
	p, _, err := m.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 5 {
		z := b0
		for _, c := range coefs {
			j := tab.Schema.Index(c["input"].(string))
			if cat, ok := c["category"]; ok {
				if tab.Cat[j][r] == cat.(string) {
					z += c["coef_original_units"].(float64)
				}
				continue
			}
			v := tab.Num[j][r]
			if math.IsNaN(v) {
				v = c["median"].(float64)
			}
			z += c["coef_original_units"].(float64) * v
		}
		if want := 1 / (1 + math.Exp(-z)); !near(p[r], want, 1e-9) {
			t.Errorf("row %d: model says %v, original units say %v", r+1, p[r], want)
		}
	}
}

func BenchmarkPredict(b *testing.B) {
	m, tab := clevelandModel(b)
	values := make([]Value, len(m.inputs))
	for i, in := range m.Inputs() {
		v, err := tableValue(tab, tab.Schema.Index(in.Name), 0, in.Kind)
		if err != nil {
			b.Fatal(err)
		}
		values[i] = v
	}
	scratch := make([]float64, m.Width())
	b.ReportAllocs()
	var sum float64
	for b.Loop() {
		p, _ := m.Predict(values, scratch)
		sum += p
	}
	if math.IsNaN(sum) {
		b.Fatal("NaN")
	}
}

func BenchmarkTrainCleveland(b *testing.B) {
	tab := cleveland(b)
	spec := Spec{Target: "num > 0", Algorithm: "logreg"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Train(b.Context(), tab, spec); err != nil {
			b.Fatal(err)
		}
	}
}

func TestArtifactPenalties(t *testing.T) {
	tab := cleveland(t)
	for _, params := range []map[string]any{
		{"penalty": "l1", "C": 0.1},
		{"penalty": "elasticnet", "l1_ratio": 0.3},
	} {
		m := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV, Params: params}).Model
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		want := `"penalty":"` + params["penalty"].(string) + `"`
		if params["penalty"] == "elasticnet" {
			want += `,"l1_ratio":0.3`
		}
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%v: the artifact lacks %s", params, want)
		}
		m2, err := Decode(b, sha(b))
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := Encode(m2)
		if !bytes.Equal(b, b2) || !reflect.DeepEqual(m2.Describe(), m.Describe()) {
			t.Errorf("%v: the round trip changed the model", params)
		}
	}
}

// TestDecodeArtifactV1 reads an artifact written before penalties existed (testdata; no
// "penalty" field): it is an L2 model, and it predicts from its stored numbers.
func TestDecodeArtifactV1(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "artifact_v1_logreg.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("penalty")) {
		t.Fatal("the old artifact mentions a penalty")
	}
	m, err := Decode(b, "")
	if err != nil {
		t.Fatal(err)
	}
	d := m.Describe()
	if d["params"].(map[string]any)["penalty"] != "l2" || m.Algorithm() != "logreg" || m.Width() != 22 {
		t.Errorf("got %v", d)
	}
	// The first Cleveland row, scored by hand from the artifact's own numbers.
	var a struct {
		Inputs []struct {
			Name        string
			Median      *float64
			Mean, Scale float64
			Categories  []string
		}
		LogReg struct {
			Intercept float64
			Coef      []float64
		}
	}
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	tab := cleveland(t)
	z := a.LogReg.Intercept
	k := 0
	for _, in := range a.Inputs {
		j := tab.Schema.Index(in.Name)
		switch {
		case in.Median != nil:
			z += a.LogReg.Coef[k] * (tab.Num[j][0] - in.Mean) / in.Scale
			k++
		case len(in.Categories) == 2 && tab.Schema.Columns[j].Kind == pulse.Binary:
			if tab.Cat[j][0] == in.Categories[1] {
				z += a.LogReg.Coef[k]
			}
			k++
		default:
			for _, c := range in.Categories {
				if tab.Cat[j][0] == c {
					z += a.LogReg.Coef[k]
				}
				k++
			}
		}
	}
	p, _, err := m.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 / (1 + math.Exp(-z)); !near(p[0], want, 1e-12) {
		t.Errorf("row 1: got %v, want %v", p[0], want)
	}
}

func TestDecodePenaltyErrors(t *testing.T) {
	tab := cleveland(t)
	m := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV, Params: map[string]any{"penalty": "elasticnet", "l1_ratio": 0.5}}).Model
	good, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	lr := func(a map[string]any) map[string]any { return a["logreg"].(map[string]any) }
	tests := []struct {
		name string
		b    []byte
		has  string
	}{
		{"unknown penalty", edit(t, good, func(a map[string]any) { lr(a)["penalty"] = "l0" }), `penalty "l0" is unknown`},
		{"no l1_ratio", edit(t, good, func(a map[string]any) { delete(lr(a), "l1_ratio") }), "l1_ratio is missing"},
		{"l1_ratio above 1", edit(t, good, func(a map[string]any) { lr(a)["l1_ratio"] = 1.5 }), "l1_ratio is missing or not from 0 to 1"},
		{"l1_ratio with l2", edit(t, good, func(a map[string]any) { lr(a)["penalty"] = "l2" }), "l1_ratio is set for penalty l2"},
	}
	for _, tt := range tests {
		if _, err := Decode(tt.b, ""); err == nil || !strings.Contains(err.Error(), tt.has) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.has)
		}
	}
}
