// Package mltest helps tests that need real data and real models: the shared Cleveland file
// read as training reads it, and models trained on it. Tests only.
package mltest

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cloudmedical/pulse/internal/example"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// ClevelandPath is the shared Cleveland file: ../shared/datasets/heart-disease beside the
// checkout, found from this source file so that it holds in every package's test.
func ClevelandPath() string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	return filepath.Join(root, "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")
}

// ReadCleveland reads the Cleveland file with the example's column names and kinds.
func ReadCleveland() (*tabular.Table, error) {
	b, err := os.ReadFile(ClevelandPath())
	if err != nil {
		return nil, err
	}
	return tabular.ReadCSV(bytes.NewReader(b), tabular.Options{Header: "auto", Columns: example.Columns, Kinds: example.Kinds})
}

// Cleveland is ReadCleveland, failing t on error.
func Cleveland(t testing.TB) *tabular.Table {
	t.Helper()
	tab, err := ReadCleveland()
	if err != nil {
		t.Fatalf("the shared Cleveland data must be present: %v", err)
	}
	return tab
}

// TrainAll trains logreg, gbdt and ftrl on tab for "num > 0" (no cross-validation, seed 7).
func TrainAll(t testing.TB, tab *tabular.Table) map[string]*ml.Model {
	t.Helper()
	models := map[string]*ml.Model{}
	for _, alg := range []string{"logreg", "gbdt", "ftrl"} {
		res, err := ml.Train(context.Background(), tab, ml.Spec{Target: "num > 0", Algorithm: alg, CVFolds: ml.NoCV, Seed: 7})
		if err != nil {
			t.Fatalf("train %s: %v", alg, err)
		}
		models[alg] = res.Model
	}
	return models
}

// Case is a row of a model's input values and Predict's probability of it.
type Case struct {
	Values []ml.Value
	Want   float64
}

// Cases returns the rows of tab as m's input values (failing t when none has a missing value:
// the cases must cover them), then a row with every value missing, one with categories not
// seen in training ("99") and extreme numbers (1e6), and the extra rows given, each with
// Predict's probability.
func Cases(t testing.TB, m *ml.Model, tab *tabular.Table, extra ...[]ml.Value) []Case {
	t.Helper()
	ins := m.Inputs()
	var cases []Case
	missing := 0
	for r := range tab.Rows {
		vs := make([]ml.Value, len(ins))
		for i, in := range ins {
			j := tab.Schema.Index(in.Name)
			if j < 0 {
				t.Fatalf("no column %q", in.Name)
			}
			if in.Kind == pulse.Numeric {
				if f := tab.Num[j][r]; !math.IsNaN(f) {
					vs[i] = ml.Value{Num: f, Present: true}
				}
			} else if s := tab.Cat[j][r]; s != "" {
				vs[i] = ml.Value{Str: s, Present: true}
			}
			if !vs[i].Present {
				missing++
			}
		}
		cases = append(cases, Case{Values: vs})
	}
	if missing == 0 {
		t.Fatal("the data has no missing values: the cases would not cover them")
	}
	cases = append(cases, Case{Values: make([]ml.Value, len(ins))})
	unknown := make([]ml.Value, len(ins))
	for i, in := range ins {
		if in.Kind == pulse.Numeric {
			unknown[i] = ml.Value{Num: 1e6, Present: true}
		} else {
			unknown[i] = ml.Value{Str: "99", Present: true}
		}
	}
	cases = append(cases, Case{Values: unknown})
	for _, vs := range extra {
		cases = append(cases, Case{Values: vs})
	}
	for i := range cases {
		cases[i].Want, _ = m.Predict(cases[i].Values, nil)
		if math.IsNaN(cases[i].Want) {
			t.Fatalf("case %d: Predict returned NaN", i+1)
		}
	}
	return cases
}
