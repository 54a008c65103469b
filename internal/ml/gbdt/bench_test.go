package gbdt

import (
	"context"
	"testing"
)

// BenchmarkPredict100Trees scores one row with 100 trees of at most 31 leaves, trained on
// Cleveland itself (303 rows, so MinSamplesLeaf 20 keeps trees small) and on 3030 rows
// resampled from it with jitter, where trees reach the full 31 leaves.
func BenchmarkPredict100Trees(b *testing.B) {
	X0, y0 := loadCleveland(b)
	X1, y1 := resample(X0, y0, clevelandFeatures, 3030, 1)
	for _, tc := range []struct {
		name string
		X, y []float64
	}{{"cleveland", X0, y0}, {"resampled3030", X1, y1}} {
		b.Run(tc.name, func(b *testing.B) {
			p := DefaultParams() // 100 trees, MaxLeaves 31
			e, err := Fit(context.Background(), tc.X, len(tc.y), clevelandFeatures, tc.y, nil, p)
			if err != nil {
				b.Fatal(err)
			}
			leaves := 0
			for _, tr := range e.trees {
				leaves += len(tr.leaf)
			}
			n := len(tc.y)
			b.ReportAllocs()
			var sink float64
			i := 0
			for b.Loop() {
				sink += e.Predict(tc.X[i*clevelandFeatures : (i+1)*clevelandFeatures])
				if i++; i == n {
					i = 0
				}
			}
			_ = sink
			b.ReportMetric(float64(leaves)/float64(e.NumTrees()), "leaves/tree")
		})
	}
}

// BenchmarkFitCleveland fits 100 trees (DefaultParams) on the 242 training rows of fold 0 of
// testdata/cleveland_folds.csv: the data sklearn_compare.py times scikit-learn on.
func BenchmarkFitCleveland(b *testing.B) {
	X, y := loadCleveland(b)
	Xtr, ytr, _, _ := foldSplit(X, y, clevelandFeatures, loadFolds(b), 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Fit(context.Background(), Xtr, len(ytr), clevelandFeatures, ytr, nil, DefaultParams()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFitLarge fits 100 trees on 100,000 rows resampled from Cleveland, where
// histograms dominate and are built by several goroutines.
func BenchmarkFitLarge(b *testing.B) {
	X0, y0 := loadCleveland(b)
	X, y := resample(X0, y0, clevelandFeatures, 100000, 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Fit(context.Background(), X, len(y), clevelandFeatures, y, nil, DefaultParams()); err != nil {
			b.Fatal(err)
		}
	}
}
