package gbdt

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// clevelandPath is the shared dataset, relative to this package's directory.
var clevelandPath = filepath.Join("..", "..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

const clevelandFeatures = 13

// loadCleveland returns the 303 rows of the Cleveland file: the 13 raw columns as features
// (NaN for "?") and the label num > 0.
func loadCleveland(tb testing.TB) (X, y []float64) {
	tb.Helper()
	f, err := os.Open(clevelandPath)
	if err != nil {
		tb.Fatalf("open dataset: %v", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.TrimLeadingSpace = true
	recs, err := r.ReadAll()
	if err != nil {
		tb.Fatalf("read dataset: %v", err)
	}
	if got := strings.Join(recs[0], ","); got != "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num" {
		tb.Fatalf("header: got %q", got)
	}
	for i, rec := range recs[1:] {
		if len(rec) != clevelandFeatures+1 {
			tb.Fatalf("row %d: got %d fields, want %d", i+1, len(rec), clevelandFeatures+1)
		}
		for j, s := range rec {
			v := math.NaN()
			if s != "?" {
				if v, err = strconv.ParseFloat(s, 64); err != nil {
					tb.Fatalf("row %d, column %d: %v", i+1, j, err)
				}
			}
			if j < clevelandFeatures {
				X = append(X, v)
			} else if v > 0 {
				y = append(y, 1)
			} else {
				y = append(y, 0)
			}
		}
	}
	if len(y) != 303 {
		tb.Fatalf("got %d rows, want 303", len(y))
	}
	return X, y
}

// loadFolds reads testdata/cleveland_folds.csv, written by sklearn_compare.py.
func loadFolds(tb testing.TB) []int {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "cleveland_folds.csv"))
	if err != nil {
		tb.Fatalf("open folds: %v", err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		tb.Fatalf("read folds: %v", err)
	}
	folds := make([]int, len(recs)-1)
	for i, rec := range recs[1:] {
		row, err1 := strconv.Atoi(rec[0])
		k, err2 := strconv.Atoi(rec[1])
		if err1 != nil || err2 != nil || row != i {
			tb.Fatalf("folds line %d: bad record %q", i+2, rec)
		}
		folds[i] = k
	}
	return folds
}

// sklearnResults is testdata/sklearn_results.json.
type sklearnResults struct {
	SklearnVersion   string    `json:"sklearn_version"`
	FoldAUC          []float64 `json:"fold_auc"`
	MeanAUC          float64   `json:"mean_auc"`
	FitRows          int       `json:"fit_rows"`
	FitSecondsMedian float64   `json:"fit_seconds_median"`
}

func loadSklearn(tb testing.TB) sklearnResults {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sklearn_results.json"))
	if err != nil {
		tb.Fatalf("read sklearn results: %v", err)
	}
	var r sklearnResults
	if err := json.Unmarshal(b, &r); err != nil {
		tb.Fatalf("decode sklearn results: %v", err)
	}
	return r
}

// foldSplit returns the rows of X and y in fold k (test) and not in it (train).
func foldSplit(X, y []float64, d int, folds []int, k int) (Xtr, ytr, Xte, yte []float64) {
	for i, f := range folds {
		if f == k {
			Xte = append(Xte, X[i*d:(i+1)*d]...)
			yte = append(yte, y[i])
		} else {
			Xtr = append(Xtr, X[i*d:(i+1)*d]...)
			ytr = append(ytr, y[i])
		}
	}
	return
}

// rocAUC returns the area under the ROC curve (ties count one half).
func rocAUC(score, y []float64) float64 {
	idx := make([]int, len(score))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case score[a] < score[b]:
			return -1
		case score[a] > score[b]:
			return 1
		}
		return 0
	})
	// Sum of the (mid)ranks of the positives.
	var rankSum, pos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2
		for _, r := range idx[i:j] {
			if y[r] == 1 {
				rankSum += mid
				pos++
			}
		}
		i = j
	}
	neg := float64(len(y)) - pos
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// resample returns n rows drawn from X (d columns) with replacement, each non-missing value
// jittered by up to ±2% of its feature's spread, and their labels: "Cleveland-like" data of
// any size.
func resample(X, y []float64, d, n int, seed uint64) ([]float64, []float64) {
	rows := len(y)
	lo, hi := make([]float64, d), make([]float64, d)
	for j := range d {
		lo[j], hi[j] = math.Inf(1), math.Inf(-1)
		for i := range rows {
			if v := X[i*d+j]; v == v {
				lo[j], hi[j] = min(lo[j], v), max(hi[j], v)
			}
		}
	}
	r := rand.New(rand.NewPCG(seed, 1))
	Xo, yo := make([]float64, 0, n*d), make([]float64, 0, n)
	for range n {
		i := r.IntN(rows)
		for j := range d {
			v := X[i*d+j]
			if v == v {
				v += (r.Float64()*2 - 1) * 0.02 * (hi[j] - lo[j])
			}
			Xo = append(Xo, v)
		}
		yo = append(yo, y[i])
	}
	return Xo, yo
}
