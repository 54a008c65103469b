package ml

import (
	"math"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol
}

func TestEvaluate(t *testing.T) {
	clip := 1e-15
	tests := []struct {
		name      string
		y         []int
		p         []float64
		threshold float64
		want      pulse.EvalMetrics
	}{
		{
			// Sorted: 0.1(n) 0.35(p) 0.4(n) 0.4(n) 0.4(p) 0.8(p); ranks 1 2 4 4 4 6;
			// positives 2+4+6 = 12; AUC = (12 - 3*4/2) / (3*3) = 2/3 (scikit-learn agrees).
			name: "ties", y: []int{0, 0, 1, 1, 0, 1}, p: []float64{0.1, 0.4, 0.35, 0.8, 0.4, 0.4}, threshold: 0.4,
			want: pulse.EvalMetrics{
				N: 6, Positives: 3, Accuracy: 0.5, ROCAUC: 2.0 / 3,
				LogLoss: -(math.Log(0.9) + math.Log(0.6) + math.Log(0.35) + math.Log(0.8) + math.Log(0.6) + math.Log(0.4)) / 6,
				Brier:   (0.01 + 0.16 + 0.65*0.65 + 0.04 + 0.16 + 0.36) / 6,
				// p >= 0.4 is label 1: rows 2, 4, 5, 6
				Precision: 0.5, Recall: 2.0 / 3, F1: 4.0 / 7, Specificity: 1.0 / 3, Threshold: 0.4,
				Confusion: pulse.Confusion{TP: 2, FP: 2, TN: 1, FN: 1},
			},
		},
		{
			name: "perfect ranking", y: []int{0, 1, 0, 1}, p: []float64{0.2, 0.7, 0.4, 0.9}, threshold: 0.5,
			want: pulse.EvalMetrics{
				N: 4, Positives: 2, Accuracy: 1, ROCAUC: 1,
				LogLoss:   -(math.Log(0.8) + math.Log(0.7) + math.Log(0.6) + math.Log(0.9)) / 4,
				Brier:     (0.04 + 0.09 + 0.16 + 0.01) / 4,
				Precision: 1, Recall: 1, F1: 1, Specificity: 1, Threshold: 0.5,
				Confusion: pulse.Confusion{TP: 2, TN: 2},
			},
		},
		{
			name: "all tied", y: []int{1, 0, 1, 0}, p: []float64{0.5, 0.5, 0.5, 0.5}, threshold: 0.6,
			want: pulse.EvalMetrics{
				N: 4, Positives: 2, Accuracy: 0.5, ROCAUC: 0.5, LogLoss: math.Ln2, Brier: 0.25,
				Specificity: 1, Threshold: 0.6, Confusion: pulse.Confusion{TN: 2, FN: 2},
			},
		},
		{
			name: "certain and wrong: clipped log loss", y: []int{1, 0, 1, 0}, p: []float64{1, 0, 0, 1}, threshold: 0.5,
			want: pulse.EvalMetrics{
				N: 4, Positives: 2, Accuracy: 0.5, ROCAUC: 0.5,
				// p = 1 for a negative is clipped to 1-1e-15, whose complement rounds to 1.11e-15
				LogLoss:   -(2*math.Log(1-clip) + math.Log(clip) + math.Log(1-(1-clip))) / 4,
				Brier:     0.5,
				Precision: 0.5, Recall: 0.5, F1: 0.5, Specificity: 0.5, Threshold: 0.5,
				Confusion: pulse.Confusion{TP: 1, FP: 1, TN: 1, FN: 1},
			},
		},
		{
			name: "one class: AUC and precision undefined", y: []int{0, 0}, p: []float64{0.2, 0.3}, threshold: 0.5,
			want: pulse.EvalMetrics{
				N: 2, Accuracy: 1, LogLoss: -(math.Log(0.8) + math.Log(0.7)) / 2, Brier: (0.04 + 0.09) / 2,
				Specificity: 1, Threshold: 0.5, Confusion: pulse.Confusion{TN: 2},
			},
		},
		{name: "empty", threshold: 0.5, want: pulse.EvalMetrics{Threshold: 0.5}},
		{
			name: "lengths differ: the extra label is ignored", y: []int{1, 0, 1}, p: []float64{0.9, 0.1}, threshold: 0.5,
			want: pulse.EvalMetrics{
				N: 2, Positives: 1, Accuracy: 1, ROCAUC: 1, LogLoss: -math.Log(0.9), Brier: 0.01,
				Precision: 1, Recall: 1, F1: 1, Specificity: 1, Threshold: 0.5, Confusion: pulse.Confusion{TP: 1, TN: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.y, tt.p, tt.threshold)
			w := tt.want
			if got.N != w.N || got.Positives != w.Positives || got.Confusion != w.Confusion || got.Threshold != w.Threshold {
				t.Errorf("counts: got n %d pos %d %+v thr %v, want n %d pos %d %+v thr %v",
					got.N, got.Positives, got.Confusion, got.Threshold, w.N, w.Positives, w.Confusion, w.Threshold)
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"accuracy", got.Accuracy, w.Accuracy}, {"roc_auc", got.ROCAUC, w.ROCAUC},
				{"log_loss", got.LogLoss, w.LogLoss}, {"brier", got.Brier, w.Brier},
				{"precision", got.Precision, w.Precision}, {"recall", got.Recall, w.Recall}, {"f1", got.F1, w.F1},
				{"sensitivity", got.Sensitivity, w.Recall}, {"specificity", got.Specificity, w.Specificity},
			} {
				if !near(f.got, f.want, 1e-12) {
					t.Errorf("%s: got %v, want %v", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestSummarizeCV(t *testing.T) {
	folds := []pulse.EvalMetrics{
		{ROCAUC: 0.8, Accuracy: 0.7, F1: 0.5, Sensitivity: 0.6, Specificity: 0.9},
		{ROCAUC: 0.9, Accuracy: 0.7, F1: 0.6, Sensitivity: 0.8, Specificity: 0.9},
		{ROCAUC: 1.0, Accuracy: 0.7, F1: 1.0, Sensitivity: 1.0, Specificity: 0.6},
	}
	cv := summarizeCV(folds)
	if cv.Folds != 3 || len(cv.PerFold) != 3 {
		t.Errorf("folds: got %d (%d per fold), want 3", cv.Folds, len(cv.PerFold))
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"mean auc", cv.ROCAUC, 0.9},
		{"sd auc (ddof 1)", cv.SD.ROCAUC, 0.1},
		{"mean accuracy", cv.Accuracy, 0.7},
		{"sd accuracy", cv.SD.Accuracy, 0},
		{"mean f1", cv.F1, 0.7},
		{"sd f1", cv.SD.F1, math.Sqrt((0.04 + 0.01 + 0.09) / 2)},
		{"mean sensitivity", cv.Sensitivity, 0.8},
		{"sd sensitivity", cv.SD.Sensitivity, 0.2},
		{"mean specificity", cv.Specificity, 0.8},
		{"sd specificity", cv.SD.Specificity, math.Sqrt((0.01 + 0.01 + 0.04) / 2)},
	}
	for _, c := range checks {
		if !near(c.got, c.want, 1e-12) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEvaluateCalibration(t *testing.T) {
	y := []int{0, 1, 1, 0, 1, 0, 1, 1}
	p := []float64{0.05, 0.1, 0.15, 0.55, 0.59, 0.99, 1.0, 0.3}
	// By hand: [0, 0.1) holds 0.05; [0.1, 0.2) 0.1 and 0.15; [0.3, 0.4) 0.3; [0.5, 0.6) 0.55
	// and 0.59; [0.9, 1] 0.99 and 1. Bins 2, 4, 6, 7 and 8 are empty and left out.
	want := []pulse.CalibrationBin{
		{Lower: 0, Upper: 0.1, Count: 1, MeanPredicted: 0.05, FractionPositive: 0},
		{Lower: 0.1, Upper: 0.2, Count: 2, MeanPredicted: 0.125, FractionPositive: 1},
		{Lower: 0.3, Upper: 0.4, Count: 1, MeanPredicted: 0.3, FractionPositive: 1},
		{Lower: 0.5, Upper: 0.6, Count: 2, MeanPredicted: 0.57, FractionPositive: 0.5},
		{Lower: 0.9, Upper: 1, Count: 2, MeanPredicted: 0.995, FractionPositive: 0.5},
	}
	got := Evaluate(y, p, 0.5).Calibration
	if len(got) != len(want) {
		t.Fatalf("got %d bins %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Lower != w.Lower || g.Upper != w.Upper || g.Count != w.Count ||
			!near(g.MeanPredicted, w.MeanPredicted, 1e-15) || g.FractionPositive != w.FractionPositive {
			t.Errorf("bin %d: got %+v, want %+v", i, g, w)
		}
	}

	// Out of range and NaN probabilities land in the end bins instead of panicking.
	got = Evaluate([]int{1, 0, 1}, []float64{-0.5, 1.5, math.NaN()}, 0.5).Calibration
	if len(got) != 2 || got[0].Lower != 0 || got[0].Count != 2 || got[1].Upper != 1 || got[1].Count != 1 {
		t.Errorf("out of range: got %+v, want 2 rows in bin [0, 0.1) and 1 in [0.9, 1]", got)
	}
	if got := Evaluate(nil, nil, 0.5).Calibration; got != nil {
		t.Errorf("no rows: got %+v, want no bins", got)
	}
}
