package ml

import (
	"cmp"
	"math"
	"slices"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// probClip bounds probabilities in the log loss, as scikit-learn does.
const probClip = 1e-15

// Evaluate scores predicted probabilities of class 1 against labels. A label other than 0
// counts as 1, and a row is predicted 1 when its probability is at least threshold. y and p
// should have the same length; the rows past the shorter one are ignored.
//
// ROC AUC is rank based with ties averaged (as scikit-learn's roc_auc_score); it is 0 when the
// labels hold a single class, where it is undefined. Precision, recall (= sensitivity), F1 and
// specificity are 0 where they are undefined. Log loss clips probabilities to
// [1e-15, 1-1e-15]. With no rows every metric is 0.
//
// Calibration is the reliability curve of scikit-learn's calibration_curve(n_bins=10,
// strategy="uniform"): bin i (0-9) holds the rows with i/10 <= p < (i+1)/10, the last bin
// also p = 1 (and p above 1; p below 0 or NaN go to bin 0); empty bins are left out.
func Evaluate(y []int, p []float64, threshold float64) pulse.EvalMetrics {
	n := min(len(y), len(p))
	m := pulse.EvalMetrics{N: n, Threshold: threshold}
	if n == 0 {
		return m
	}
	var logLoss, brier float64
	for i := range n {
		pi := p[i]
		pos := y[i] != 0
		q := min(max(pi, probClip), 1-probClip)
		if pos {
			m.Positives++
			logLoss -= math.Log(q)
			brier += (1 - pi) * (1 - pi)
		} else {
			logLoss -= math.Log(1 - q)
			brier += pi * pi
		}
		switch predicted := pi >= threshold; {
		case predicted && pos:
			m.Confusion.TP++
		case predicted:
			m.Confusion.FP++
		case pos:
			m.Confusion.FN++
		default:
			m.Confusion.TN++
		}
	}
	c := m.Confusion
	m.Accuracy = float64(c.TP+c.TN) / float64(n)
	m.LogLoss = logLoss / float64(n)
	m.Brier = brier / float64(n)
	m.Precision = ratio(c.TP, c.TP+c.FP)
	m.Recall = ratio(c.TP, c.TP+c.FN)
	m.F1 = ratio(2*c.TP, 2*c.TP+c.FP+c.FN)
	m.Sensitivity = m.Recall
	m.Specificity = ratio(c.TN, c.TN+c.FP)
	m.ROCAUC = rocAUC(y[:n], p[:n], m.Positives)
	m.Calibration = calibration(y[:n], p[:n])
	return m
}

// calibrationBins is the number of equal-width bins of the reliability curve.
const calibrationBins = 10

// calibration returns the non-empty bins of the reliability curve of p against y.
func calibration(y []int, p []float64) []pulse.CalibrationBin {
	var count [calibrationBins]int
	var sumP, sumY [calibrationBins]float64
	for i, pi := range p {
		b := 0
		for k := calibrationBins - 1; k > 0; k-- {
			if pi >= float64(k)/calibrationBins {
				b = k
				break
			}
		}
		count[b]++
		sumP[b] += pi
		if y[i] != 0 {
			sumY[b]++
		}
	}
	var bins []pulse.CalibrationBin
	for b, c := range count {
		if c == 0 {
			continue
		}
		bins = append(bins, pulse.CalibrationBin{
			Lower:            float64(b) / calibrationBins,
			Upper:            float64(b+1) / calibrationBins,
			Count:            c,
			MeanPredicted:    sumP[b] / float64(c),
			FractionPositive: sumY[b] / float64(c),
		})
	}
	return bins
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// rocAUC is the Mann-Whitney statistic: the mean rank of the positives among all rows, tied
// probabilities sharing their average rank.
func rocAUC(y []int, p []float64, positives int) float64 {
	n := len(y)
	negatives := n - positives
	if positives == 0 || negatives == 0 {
		return 0
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(p[a], p[b]) })
	var rankSum float64
	for i := 0; i < n; {
		j := i + 1
		for j < n && cmp.Compare(p[order[j]], p[order[i]]) == 0 {
			j++
		}
		rank := float64(i+j+1) / 2 // average of the 1-based ranks i+1 .. j
		for _, k := range order[i:j] {
			if y[k] != 0 {
				rankSum += rank
			}
		}
		i = j
	}
	np, nn := float64(positives), float64(negatives)
	return (rankSum - np*(np+1)/2) / (np * nn)
}

// summarizeCV averages the metrics of the folds, with sample standard deviations (ddof 1).
func summarizeCV(folds []pulse.EvalMetrics) *pulse.CVMetrics {
	cv := &pulse.CVMetrics{Folds: len(folds), PerFold: folds}
	fields := []struct {
		mean, sd *float64
		get      func(pulse.EvalMetrics) float64
	}{
		{&cv.Accuracy, &cv.SD.Accuracy, func(m pulse.EvalMetrics) float64 { return m.Accuracy }},
		{&cv.ROCAUC, &cv.SD.ROCAUC, func(m pulse.EvalMetrics) float64 { return m.ROCAUC }},
		{&cv.LogLoss, &cv.SD.LogLoss, func(m pulse.EvalMetrics) float64 { return m.LogLoss }},
		{&cv.Brier, &cv.SD.Brier, func(m pulse.EvalMetrics) float64 { return m.Brier }},
		{&cv.Precision, &cv.SD.Precision, func(m pulse.EvalMetrics) float64 { return m.Precision }},
		{&cv.Recall, &cv.SD.Recall, func(m pulse.EvalMetrics) float64 { return m.Recall }},
		{&cv.F1, &cv.SD.F1, func(m pulse.EvalMetrics) float64 { return m.F1 }},
		{&cv.Sensitivity, &cv.SD.Sensitivity, func(m pulse.EvalMetrics) float64 { return m.Sensitivity }},
		{&cv.Specificity, &cv.SD.Specificity, func(m pulse.EvalMetrics) float64 { return m.Specificity }},
	}
	k := float64(len(folds))
	for _, f := range fields {
		var sum float64
		for _, m := range folds {
			sum += f.get(m)
		}
		mean := sum / k
		var ss float64
		for _, m := range folds {
			d := f.get(m) - mean
			ss += d * d
		}
		*f.mean = mean
		if len(folds) > 1 {
			*f.sd = math.Sqrt(ss / (k - 1))
		}
	}
	return cv
}
