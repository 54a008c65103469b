package monitor

import (
	"math"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Live window defaults and limits.
const (
	DefaultLiveSize = 10000 // LiveConfig.Size when 0
	maxLiveSize     = 10_000_000
)

// LiveConfig sets a LiveWindow's extent.
type LiveConfig struct {
	// Size is the count window: the report covers at most the last Size outcomes added. 0
	// means DefaultLiveSize. The window keeps each outcome (32 bytes), so Size bounds memory.
	Size int
	// Period is the time window: the report covers the outcomes observed less than Period
	// before the time of the report (by Outcome.ObservedAt). 0 means no time limit.
	Period time.Duration
}

func (c LiveConfig) withDefaults() (LiveConfig, error) {
	if c.Size == 0 {
		c.Size = DefaultLiveSize
	}
	switch {
	case c.Size < 1 || c.Size > maxLiveSize:
		return c, pulse.FieldErrorf(pulse.EINVALID, "size", "live window: size: got %d, want 1 to %d", c.Size, maxLiveSize)
	case c.Period < 0:
		return c, pulse.FieldErrorf(pulse.EINVALID, "period", "live window: period: got %v, want 0 (none) or more", c.Period)
	}
	return c, nil
}

// Outcome is one prediction joined to its ground truth.
type Outcome struct {
	// Probability is the predicted probability of class 1, in [0, 1].
	Probability float64
	// Predicted is the predicted label (0 or 1) at the version's threshold, Label the true
	// one (0 or 1).
	Predicted int
	Label     int
	// PredictedAt is when the prediction was made, ObservedAt when its label was observed;
	// both are required. Their difference is the label delay (0 if negative).
	PredictedAt time.Time
	ObservedAt  time.Time
}

// outcome is an Outcome as the window keeps it.
type outcome struct {
	key      uint64 // math.Float64bits of the probability, ordered as the probability
	observed int64  // Unix nanoseconds
	delay    int64  // nanoseconds, at least 0
	label    bool
	correct  bool
}

// LiveWindow holds the recent labelled outcomes of one model version and computes its live
// metrics over a sliding window by count and by time. Add is O(1) and allocates nothing
// once the window is full; Report is O(n) (a radix sort for the AUC, a selection for the
// delay percentiles) and reuses its working space. A LiveWindow is not safe for concurrent use: callers serialise Add and
// Report.
type LiveWindow struct {
	size   int
	period time.Duration
	ring   []outcome // grows to size, then the oldest is overwritten
	next   int       // where the next outcome goes once the ring is full

	// working space of Report
	pos, neg, delays, tmp []uint64
}

// NewLiveWindow returns an empty window.
func NewLiveWindow(cfg LiveConfig) (*LiveWindow, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &LiveWindow{size: cfg.Size, period: cfg.Period}, nil
}

// Add adds an outcome, pushing the oldest out once the window holds Size. Errors are EINVALID
// *pulse.Error values naming the field; the window is then unchanged.
func (w *LiveWindow) Add(o Outcome) error {
	switch {
	case !(o.Probability >= 0 && o.Probability <= 1):
		return pulse.FieldErrorf(pulse.EINVALID, "probability", "outcome: probability: got %v, want a number in [0, 1]", o.Probability)
	case o.Predicted != 0 && o.Predicted != 1:
		return pulse.FieldErrorf(pulse.EINVALID, "predicted", "outcome: predicted: got %d, want 0 or 1", o.Predicted)
	case o.Label != 0 && o.Label != 1:
		return pulse.FieldErrorf(pulse.EINVALID, "label", "outcome: label: got %d, want 0 or 1", o.Label)
	case o.PredictedAt.IsZero():
		return pulse.FieldErrorf(pulse.EINVALID, "predicted_at", "outcome: predicted_at: required")
	case o.ObservedAt.IsZero():
		return pulse.FieldErrorf(pulse.EINVALID, "observed_at", "outcome: observed_at: required")
	}
	p := o.Probability
	if p == 0 {
		p = 0 // -0 has the sign bit set; +0 orders first
	}
	r := outcome{
		key:      math.Float64bits(p),
		observed: o.ObservedAt.UnixNano(),
		delay:    max(int64(o.ObservedAt.Sub(o.PredictedAt)), 0),
		label:    o.Label == 1,
		correct:  o.Label == o.Predicted,
	}
	if len(w.ring) < w.size {
		w.ring = append(w.ring, r)
		return nil
	}
	w.ring[w.next] = r
	w.next = (w.next + 1) % w.size
	return nil
}

// LiveMetrics are a version's metrics over the outcomes of a window, with the same
// definitions as the holdout's pulse.EvalMetrics (ml.Evaluate) so that the two compare. A
// metric that is undefined is null: every one with no outcomes, the ROC AUC with a single
// class, sensitivity without positives, specificity without negatives.
type LiveMetrics struct {
	// N is the number of outcomes, Positives those labelled 1.
	N         int `json:"n"`
	Positives int `json:"positives"`
	// Accuracy is the share of correct predicted labels, with its 95% Wilson interval.
	Accuracy *Estimate `json:"accuracy"`
	// ROCAUC is the Mann-Whitney AUC (ties count one half), with a 95% interval from
	// DeLong's variance.
	ROCAUC *Estimate `json:"roc_auc"`
	// Brier is the mean squared difference of probability and label.
	Brier *float64 `json:"brier"`
	// Sensitivity (true-positive rate) and Specificity (true-negative rate) of the predicted
	// labels, with 95% Wilson intervals.
	Sensitivity *Estimate       `json:"sensitivity"`
	Specificity *Estimate       `json:"specificity"`
	Confusion   pulse.Confusion `json:"confusion"`
	// Calibration is the reliability curve in the holdout's 10 bins; empty bins are left out.
	Calibration []pulse.CalibrationBin `json:"calibration,omitempty"`
	// LabelDelay summarises how long labels took to arrive (null with no outcomes).
	LabelDelay *Delay `json:"label_delay"`
}

// Delay summarises label delays, in seconds. P50 and P95 are nearest-rank percentiles: the
// ⌈q·n⌉-th smallest delay.
type Delay struct {
	Mean float64 `json:"mean_seconds"`
	P50  float64 `json:"p50_seconds"`
	P95  float64 `json:"p95_seconds"`
}

// Metric returns the estimate of a metric by its name in JSON (accuracy, roc_auc,
// sensitivity or specificity), nil when it is undefined or the name is not one of these.
func (m *LiveMetrics) Metric(name string) *Estimate {
	if m == nil {
		return nil
	}
	switch name {
	case "accuracy":
		return m.Accuracy
	case "roc_auc":
		return m.ROCAUC
	case "sensitivity":
		return m.Sensitivity
	case "specificity":
		return m.Specificity
	}
	return nil
}

// Report computes the metrics of the outcomes in the window at now: the last Size added, of
// which, with a Period, those observed after now - Period (now is then required).
func (w *LiveWindow) Report(now time.Time) LiveMetrics {
	n := len(w.ring)
	if cap(w.tmp) < n {
		w.pos = make([]uint64, 0, n)
		w.neg = make([]uint64, 0, n)
		w.delays = make([]uint64, 0, n)
		w.tmp = make([]uint64, n)
	}
	pos, neg, delays := w.pos[:0], w.neg[:0], w.delays[:0]
	cutoff := int64(math.MinInt64)
	if w.period > 0 {
		cutoff = now.Add(-w.period).UnixNano()
	}
	var c pulse.Confusion
	var brier, delaySum float64
	var calCount [len(scoreEdges) + 1]int
	var calP, calY [len(scoreEdges) + 1]float64
	for i := range w.ring {
		o := &w.ring[i]
		if o.observed <= cutoff {
			continue
		}
		p := math.Float64frombits(o.key)
		b := scoreBin(p)
		calCount[b]++
		calP[b] += p
		if o.label {
			pos = append(pos, o.key)
			brier += (1 - p) * (1 - p)
			calY[b]++
			if o.correct {
				c.TP++
			} else {
				c.FN++
			}
		} else {
			neg = append(neg, o.key)
			brier += p * p
			if o.correct {
				c.TN++
			} else {
				c.FP++
			}
		}
		delays = append(delays, uint64(o.delay))
		delaySum += float64(o.delay)
	}
	m := LiveMetrics{N: len(pos) + len(neg), Positives: len(pos), Confusion: c}
	if m.N == 0 {
		return m
	}
	nf := float64(m.N)
	m.Accuracy = wilson(c.TP+c.TN, m.N)
	m.Sensitivity = wilson(c.TP, c.TP+c.FN)
	m.Specificity = wilson(c.TN, c.TN+c.FP)
	m.Brier = finite(brier / nf)
	radixSort(pos, w.tmp)
	radixSort(neg, w.tmp)
	m.ROCAUC = aucDeLong(pos, neg)
	for b, k := range calCount {
		if k == 0 {
			continue
		}
		m.Calibration = append(m.Calibration, pulse.CalibrationBin{
			Lower:            float64(b) / 10,
			Upper:            float64(b+1) / 10,
			Count:            k,
			MeanPredicted:    calP[b] / float64(k),
			FractionPositive: calY[b] / float64(k),
		})
	}
	k50, k95 := nearestRank(0.5, m.N), nearestRank(0.95, m.N)
	p95 := selectKth(delays, k95) // then delays[:k95] holds the smaller ones
	m.LabelDelay = &Delay{
		Mean: delaySum / nf / 1e9,
		P50:  float64(selectKth(delays[:k95+1], k50)) / 1e9,
		P95:  float64(p95) / 1e9,
	}
	return m
}

// nearestRank returns the 0-based index of the ⌈q·n⌉-th smallest of n values.
func nearestRank(q float64, n int) int {
	k := int(math.Ceil(q * float64(n)))
	return min(max(k, 1), n) - 1
}
