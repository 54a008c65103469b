// Package mltest helps tests that need real data and real models: the shared Cleveland file
// read as training reads it, and models trained on it. Tests only.
package mltest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cloudmedical/pulse/internal/example"
	"github.com/cloudmedical/pulse/internal/ml"
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
