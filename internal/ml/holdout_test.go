package ml

import (
	"math"
	"testing"
)

// TestHoldoutSplitReproducesTrain: the rows HoldoutSplit returns are those Train held out, so
// evaluating the model on them gives exactly its holdout metrics.
func TestHoldoutSplitReproducesTrain(t *testing.T) {
	tab := cleveland(t)
	for _, seed := range []uint64{0, 7} {
		res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Seed: seed, CVFolds: NoCV})
		rows, y, err := HoldoutSplit(tab, "num > 0", res.Holdout, seed)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != res.HoldoutRows {
			t.Fatalf("seed %d: got %d rows, want %d", seed, len(rows), res.HoldoutRows)
		}
		got, err := res.Model.EvaluateRows(tab, rows, y)
		if err != nil {
			t.Fatal(err)
		}
		want := res.Metrics.Holdout
		if got.N != want.N || got.Positives != want.Positives || math.Abs(got.ROCAUC-want.ROCAUC) > 1e-12 || math.Abs(got.LogLoss-want.LogLoss) > 1e-12 || got.Confusion != want.Confusion {
			t.Errorf("seed %d: got %+v, want %+v", seed, got, want)
		}
	}
	if _, _, err := HoldoutSplit(tab, "num > 0", NoHoldout, 1); err == nil {
		t.Error("no holdout: got nil error")
	}
}
