package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

func clevelandPath() string {
	return filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")
}

// cleveland reads the Cleveland file with cp, restecg, slope and thal categorical (sex, fbs
// and exang are inferred binary), as the ml tests do.
func cleveland(t testing.TB) *tabular.Table {
	t.Helper()
	b, err := os.ReadFile(clevelandPath())
	if err != nil {
		t.Fatal(err)
	}
	tab, err := tabular.ReadCSV(bytes.NewReader(b), tabular.Options{Kinds: map[string]pulse.Kind{
		"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// trainCleveland trains the showcase's logistic regression (seed 0, 20% holdout, no CV).
func trainCleveland(t testing.TB, tab *tabular.Table) *ml.Result {
	t.Helper()
	res, err := ml.Train(context.Background(), tab, ml.Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: ml.NoCV})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// rowValues returns row r of tab as the model's input values.
func rowValues(t testing.TB, m *ml.Model, tab *tabular.Table, r int) []ml.Value {
	t.Helper()
	vals := make([]ml.Value, len(m.Inputs()))
	for i, in := range m.Inputs() {
		v, err := tableValue(tab, tab.Schema.Index(in.Name), r, in.Kind)
		if err != nil {
			t.Fatal(err)
		}
		vals[i] = v
	}
	return vals
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

func TestBuildProfileCleveland(t *testing.T) {
	tab := cleveland(t)
	res := trainCleveland(t, tab)
	m := res.Model
	p, err := BuildProfile(m, tab)
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != 1 || p.Rows != 303 {
		t.Errorf("got format %d and %d rows, want 1 and 303", p.Format, p.Rows)
	}
	if len(p.Features) != len(m.Inputs()) {
		t.Fatalf("got %d features, want %d", len(p.Features), len(m.Inputs()))
	}
	for i, in := range m.Inputs() {
		f := p.Features[i]
		if f.Name != in.Name || f.Kind != in.Kind {
			t.Errorf("feature %d: got %s (%s), want %s (%s)", i, f.Name, f.Kind, in.Name, in.Kind)
		}
		if s := sum(f.Proportions); math.Abs(s-1) > 1e-12 {
			t.Errorf("%s: proportions sum to %v, want 1", f.Name, s)
		}
		if f.Kind == pulse.Numeric {
			if len(f.Edges) > DefaultBins-1 || !slices.IsSorted(f.Edges) {
				t.Errorf("%s: got edges %v, want at most 9, increasing", f.Name, f.Edges)
			}
			for b, q := range f.Proportions {
				if q == 0 {
					t.Errorf("%s: bin %d is empty in training", f.Name, b)
				}
			}
		} else {
			if !slices.Equal(f.Categories, in.Categories) {
				t.Errorf("%s: got categories %v, want the model's %v", f.Name, f.Categories, in.Categories)
			}
			if other := f.Proportions[len(f.Proportions)-1]; other != 0 {
				t.Errorf("%s: got other share %v, want 0", f.Name, other)
			}
		}
	}
	feature := func(name string) FeatureProfile {
		for _, f := range p.Features {
			if f.Name == name {
				return f
			}
		}
		t.Fatalf("no feature %q", name)
		return FeatureProfile{}
	}
	// Counts from the data set's README and file: sex 97 female, 206 male; cp 23, 50, 86,
	// 144; ca 4 missing; thal 2 missing; age none missing.
	for _, tt := range []struct {
		name    string
		want    []float64
		missing float64
	}{
		{"sex", []float64{97.0 / 303, 206.0 / 303, 0}, 0},
		{"cp", []float64{23.0 / 303, 50.0 / 303, 86.0 / 303, 144.0 / 303, 0}, 0},
		{"thal", []float64{166.0 / 301, 18.0 / 301, 117.0 / 301, 0}, 2.0 / 303},
		{"ca", []float64{176.0 / 299, 65.0 / 299, 58.0 / 299}, 4.0 / 303},
	} {
		f := feature(tt.name)
		if !slices.EqualFunc(f.Proportions, tt.want, func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }) {
			t.Errorf("%s: got proportions %v, want %v", tt.name, f.Proportions, tt.want)
		}
		if math.Abs(f.MissingRate-tt.missing) > 1e-12 {
			t.Errorf("%s: got missing rate %v, want %v", tt.name, f.MissingRate, tt.missing)
		}
	}
	// ca is numeric with values 0-3 (176, 65, 38, 20): its deciles are 0 (1st to 5th), 1
	// (6th to 8th) and 2 (9th), so the bins are 0, 1 and 2 or more.
	if ca := feature("ca"); !slices.Equal(ca.Edges, []float64{1, 2}) {
		t.Errorf("ca: got edges %v, want [1 2]", ca.Edges)
	}
	// age is nearly continuous: ten bins of about a tenth each.
	if age := feature("age"); len(age.Edges) != 9 {
		t.Errorf("age: got %d edges, want 9", len(age.Edges))
	} else {
		for b, q := range age.Proportions {
			if q < 0.05 || q > 0.15 {
				t.Errorf("age: bin %d holds %.3f, want about 0.1", b, q)
			}
		}
	}

	// The score's bins are the calibration bins: the shares equal the calibration counts of
	// every row.
	scores, _, err := m.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, 10)
	for _, c := range ml.Evaluate(make([]int, len(scores)), scores, 0.5).Calibration {
		want[int(math.Round(c.Lower*10))] = float64(c.Count) / 303
	}
	if !slices.Equal(p.Score.Proportions, want) {
		t.Errorf("score: got proportions %v, want %v", p.Score.Proportions, want)
	}

	// Small, stable JSON that reads back the same and validates.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 8<<10 {
		t.Errorf("profile JSON is %d bytes, want under 8 KiB", len(b))
	}
	for _, field := range []string{`"format":1`, `"features":`, `"edges":`, `"categories":`, `"proportions":`, `"missing_rate":`, `"score":`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("profile JSON lacks %s", field)
		}
	}
	var back Profile
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, p) {
		t.Errorf("profile changed through JSON")
	}
	if err := back.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	t.Logf("profile of the Cleveland logreg: %d bytes of JSON", len(b))
}

func TestProfileValidate(t *testing.T) {
	good := func() *Profile {
		p, err := ProfileFromRows(
			[]pulse.Column{{Name: "x", Kind: pulse.Numeric}, {Name: "c", Kind: pulse.Categorical, Categories: []string{"a", "b"}}},
			[][]ml.Value{{{Num: 1, Present: true}, {Str: "a", Present: true}}, {{Num: 2, Present: true}, {Str: "b", Present: true}}},
			[]float64{0.2, 0.8}, 2)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("valid profile: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Profile)
		field  string
	}{
		{"format", func(p *Profile) { p.Format = 2 }, "format"},
		{"no features", func(p *Profile) { p.Features = nil }, "features"},
		{"edges order", func(p *Profile) {
			p.Features[0].Edges = []float64{3, 1}
			p.Features[0].Proportions = []float64{0.5, 0.5, 0}
		}, "features[0]"},
		{"proportions length", func(p *Profile) { p.Features[1].Proportions = []float64{1} }, "features[1]"},
		{"proportion range", func(p *Profile) { p.Features[1].Proportions[0] = -0.5 }, "features[1]"},
		{"kind", func(p *Profile) { p.Features[0].Kind = "text" }, "features[0]"},
		{"missing rate", func(p *Profile) { p.Features[0].MissingRate = math.NaN() }, "features[0]"},
		{"score edges", func(p *Profile) { p.Score.Edges = p.Score.Edges[1:] }, "score"},
	}
	for _, tt := range tests {
		p := good()
		tt.change(p)
		err := p.Validate()
		var pe *pulse.Error
		if !errorAs(err, &pe) || pe.Field != tt.field {
			t.Errorf("%s: got %v, want an error about %q", tt.name, err, tt.field)
		}
	}
}

func TestProfileFromRowsErrors(t *testing.T) {
	num := []pulse.Column{{Name: "x", Kind: pulse.Numeric}}
	v := func(f float64) []ml.Value { return []ml.Value{{Num: f, Present: true}} }
	tests := []struct {
		name   string
		inputs []pulse.Column
		rows   [][]ml.Value
		scores []float64
		bins   int
		want   string
	}{
		{"lengths", num, [][]ml.Value{v(1)}, []float64{0.1, 0.2}, 0, "got 1 rows and 2 scores"},
		{"row width", num, [][]ml.Value{{}}, []float64{0.1}, 0, "row 1 has 0 values, want 1"},
		{"no rows", num, nil, nil, 0, "no rows"},
		{"bad score", num, [][]ml.Value{v(1)}, []float64{math.NaN()}, 0, "row 1: score NaN"},
		{"bins", num, [][]ml.Value{v(1)}, []float64{0.1}, 1, "bins: got 1"},
		{"all missing", num, [][]ml.Value{{{}}}, []float64{0.1}, 0, `input "x" has no values`},
		{"no categories", []pulse.Column{{Name: "c", Kind: pulse.Categorical}}, [][]ml.Value{{{Str: "a", Present: true}}}, []float64{0.1}, 0, `input "c" lists no categories`},
	}
	for _, tt := range tests {
		_, err := ProfileFromRows(tt.inputs, tt.rows, tt.scores, tt.bins)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestQuantileEdges(t *testing.T) {
	tests := []struct {
		x    []float64
		bins int
		want []float64
	}{
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7}, 4, []float64{2, 4, 6}},
		{[]float64{0, 0, 0, 0, 0, 0, 1, 2}, 4, []float64{1}}, // ties at the minimum
		{[]float64{5, 5, 5}, 10, nil},                        // constant: one bin
		{[]float64{1, 2, 2, 2, 2, 2, 2, 3}, 4, []float64{2}}, // repeats dropped; 3 is under a quarter
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 3, []float64{3, 6}},
	}
	for _, tt := range tests {
		if got := quantileEdges(tt.x, tt.bins); !slices.Equal(got, tt.want) {
			t.Errorf("quantileEdges(%v, %d): got %v, want %v", tt.x, tt.bins, got, tt.want)
		}
	}
}
