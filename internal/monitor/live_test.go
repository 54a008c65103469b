package monitor

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

func newLive(t testing.TB, cfg LiveConfig) *LiveWindow {
	t.Helper()
	w, err := NewLiveWindow(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// addOutcomes adds probabilities p with labels y, predicted at threshold, predicted at t0 and
// observed a minute later.
func addOutcomes(t testing.TB, w *LiveWindow, y []int, p []float64, threshold float64) {
	t.Helper()
	for i := range y {
		pred := 0
		if p[i] >= threshold {
			pred = 1
		}
		o := Outcome{Probability: p[i], Predicted: pred, Label: y[i], PredictedAt: t0, ObservedAt: t0.Add(time.Minute)}
		if err := w.Add(o); err != nil {
			t.Fatal(err)
		}
	}
}

// sameAsEval checks that live metrics equal ml.Evaluate's on the same outcomes.
func sameAsEval(t *testing.T, name string, got LiveMetrics, want pulse.EvalMetrics) {
	t.Helper()
	near := func(metric string, g *Estimate, w float64) {
		t.Helper()
		if g == nil || math.Abs(g.Value-w) > 1e-12 {
			t.Errorf("%s: %s: got %+v, want %v", name, metric, g, w)
		}
	}
	if got.N != want.N || got.Positives != want.Positives {
		t.Errorf("%s: got n %d with %d positives, want %d with %d", name, got.N, got.Positives, want.N, want.Positives)
	}
	near("accuracy", got.Accuracy, want.Accuracy)
	near("roc_auc", got.ROCAUC, want.ROCAUC)
	near("sensitivity", got.Sensitivity, want.Sensitivity)
	near("specificity", got.Specificity, want.Specificity)
	if got.Brier == nil || math.Abs(*got.Brier-want.Brier) > 1e-12 {
		t.Errorf("%s: brier: got %v, want %v", name, got.Brier, want.Brier)
	}
	if got.Confusion != want.Confusion {
		t.Errorf("%s: confusion: got %+v, want %+v", name, got.Confusion, want.Confusion)
	}
	if len(got.Calibration) != len(want.Calibration) {
		t.Fatalf("%s: calibration: got %d bins, want %d", name, len(got.Calibration), len(want.Calibration))
	}
	for i, g := range got.Calibration {
		w := want.Calibration[i]
		if g.Lower != w.Lower || g.Upper != w.Upper || g.Count != w.Count ||
			math.Abs(g.MeanPredicted-w.MeanPredicted) > 1e-12 || math.Abs(g.FractionPositive-w.FractionPositive) > 1e-12 {
			t.Errorf("%s: calibration bin %d: got %+v, want %+v", name, i, g, w)
		}
	}
}

func TestLiveMatchesEvaluate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tt := range []struct {
		name      string
		n, steps  int
		threshold float64
	}{
		{"ties", 2000, 20, 0.5},
		{"continuous", 3000, 1 << 30, 0.35},
		{"exact ends", 50, 1, 0.5}, // probabilities 0 and 1 only
	} {
		y := make([]int, tt.n)
		p := make([]float64, tt.n)
		for i := range y {
			y[i] = rng.IntN(2)
			p[i] = math.Min(float64(rng.IntN(tt.steps+1)+y[i]*tt.steps/4)/float64(tt.steps), 1)
		}
		w := newLive(t, LiveConfig{Size: tt.n})
		addOutcomes(t, w, y, p, tt.threshold)
		sameAsEval(t, tt.name, w.Report(t0), ml.Evaluate(y, p, tt.threshold))
	}
}

// TestLiveMatchesHoldout: the holdout rows of the Cleveland model, fed as outcomes, give the
// holdout metrics that training reported.
func TestLiveMatchesHoldout(t *testing.T) {
	tab := cleveland(t)
	res := trainCleveland(t, tab)
	rows, y, err := ml.HoldoutSplit(tab, "num > 0", res.Holdout, 0)
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := res.Model.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float64, len(rows))
	for i, r := range rows {
		p[i] = all[r]
	}
	w := newLive(t, LiveConfig{})
	addOutcomes(t, w, y, p, res.Model.Threshold())
	got := w.Report(t0)
	sameAsEval(t, "holdout", got, *res.Metrics.Holdout)
	if got.N != 61 {
		t.Errorf("got %d holdout outcomes, want 61", got.N)
	}
	c := got.Confusion
	if want := wilson(c.TP+c.TN, got.N); *got.Accuracy != *want {
		t.Errorf("accuracy: got %+v, want the Wilson interval %+v", got.Accuracy, want)
	}
	t.Logf("holdout: accuracy %s, roc_auc %s", show(got.Accuracy), show(got.ROCAUC))
}

func TestLiveEvictionByCount(t *testing.T) {
	w := newLive(t, LiveConfig{Size: 3})
	// Two wrong predictions, then three right ones: only the last three count.
	y := []int{1, 0, 1, 0, 1}
	p := []float64{0.1, 0.9, 0.8, 0.3, 0.7}
	addOutcomes(t, w, y, p, 0.5)
	r := w.Report(t0)
	want := pulse.Confusion{TP: 2, TN: 1}
	if r.N != 3 || r.Confusion != want || r.Accuracy.Value != 1 {
		t.Errorf("got n %d, confusion %+v, accuracy %v; want 3, %+v, 1", r.N, r.Confusion, r.Accuracy.Value, want)
	}
	sameAsEval(t, "last 3", r, ml.Evaluate(y[2:], p[2:], 0.5))
}

func TestLiveEvictionByTime(t *testing.T) {
	w := newLive(t, LiveConfig{Period: time.Hour})
	now := t0.Add(24 * time.Hour)
	for _, tt := range []struct {
		observed time.Duration // before now
		label    int
	}{
		{2 * time.Hour, 0}, {time.Hour, 0}, {30 * time.Minute, 1}, {0, 1}, {90 * time.Minute, 0},
	} {
		o := Outcome{Probability: 0.9, Predicted: 1, Label: tt.label, PredictedAt: t0, ObservedAt: now.Add(-tt.observed)}
		if err := w.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	// Observed less than an hour before now: the ones at -30m and 0, both positive (and the
	// one at exactly -1h is out), even though an older one came last.
	r := w.Report(now)
	if r.N != 2 || r.Positives != 2 || r.Accuracy.Value != 1 {
		t.Errorf("got n %d, %d positives, accuracy %v; want 2, 2, 1", r.N, r.Positives, r.Accuracy.Value)
	}
	if r := w.Report(now.Add(2 * time.Hour)); r.N != 0 || r.Accuracy != nil {
		t.Errorf("two hours later: got n %d, accuracy %v; want 0 and null", r.N, r.Accuracy)
	}
}

func TestLiveLabelDelay(t *testing.T) {
	w := newLive(t, LiveConfig{})
	rng := rand.New(rand.NewPCG(8, 9))
	for _, i := range rng.Perm(100) {
		o := Outcome{Probability: 0.5, Predicted: 1, Label: 1, PredictedAt: t0, ObservedAt: t0.Add(time.Duration(i+1) * time.Second)}
		if err := w.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	// A label observed before its prediction (clock skew) counts as no delay.
	if err := w.Add(Outcome{Probability: 0.5, Predicted: 1, Label: 1, PredictedAt: t0, ObservedAt: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	d := w.Report(t0).LabelDelay
	// Delays 0, 1, 2, ..., 100 s: mean 50.5·100/101 = 50, 51st smallest 50, 96th 95.
	want := Delay{Mean: 50, P50: 50, P95: 95}
	if d == nil || math.Abs(d.Mean-want.Mean) > 1e-9 || d.P50 != want.P50 || d.P95 != want.P95 {
		t.Errorf("got label delay %+v, want %+v", d, want)
	}
}

func TestLiveUndefinedIsNull(t *testing.T) {
	tests := []struct {
		name string
		y    []int
		want []string // JSON fragments
	}{
		{"empty", nil, []string{`"n":0`, `"accuracy":null`, `"roc_auc":null`, `"brier":null`, `"sensitivity":null`, `"specificity":null`, `"label_delay":null`}},
		{"one class", []int{1, 1, 1}, []string{`"n":3`, `"roc_auc":null`, `"specificity":null`, `"sensitivity":{"value":`}},
	}
	for _, tt := range tests {
		w := newLive(t, LiveConfig{})
		addOutcomes(t, w, tt.y, repeat([]float64{0.7}, len(tt.y)), 0.5)
		b, err := json.Marshal(w.Report(t0))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, f := range tt.want {
			if !strings.Contains(string(b), f) {
				t.Errorf("%s: JSON %s lacks %s", tt.name, b, f)
			}
		}
	}
}

func TestLiveAddErrors(t *testing.T) {
	ok := Outcome{Probability: 0.5, Predicted: 1, Label: 1, PredictedAt: t0, ObservedAt: t0}
	tests := []struct {
		field  string
		change func(*Outcome)
	}{
		{"probability", func(o *Outcome) { o.Probability = math.NaN() }},
		{"probability", func(o *Outcome) { o.Probability = -0.1 }},
		{"predicted", func(o *Outcome) { o.Predicted = 2 }},
		{"label", func(o *Outcome) { o.Label = -1 }},
		{"predicted_at", func(o *Outcome) { o.PredictedAt = time.Time{} }},
		{"observed_at", func(o *Outcome) { o.ObservedAt = time.Time{} }},
	}
	w := newLive(t, LiveConfig{})
	for _, tt := range tests {
		o := ok
		tt.change(&o)
		err := w.Add(o)
		var pe *pulse.Error
		if !errorAs(err, &pe) || pe.Code != pulse.EINVALID || pe.Field != tt.field {
			t.Errorf("%s: got %v, want an EINVALID error about %s", tt.field, err, tt.field)
		}
	}
	if r := w.Report(t0); r.N != 0 {
		t.Errorf("after errors: got n %d, want 0", r.N)
	}
	for _, cfg := range []LiveConfig{{Size: -1}, {Size: maxLiveSize + 1}, {Period: -time.Minute}} {
		if _, err := NewLiveWindow(cfg); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("config %+v: got %v, want EINVALID", cfg, err)
		}
	}
}

func TestLiveMetricByName(t *testing.T) {
	m := &LiveMetrics{Accuracy: &Estimate{Value: 1}, ROCAUC: &Estimate{Value: 2}, Sensitivity: &Estimate{Value: 3}, Specificity: &Estimate{Value: 4}}
	for name, want := range map[string]*Estimate{"accuracy": m.Accuracy, "roc_auc": m.ROCAUC, "sensitivity": m.Sensitivity, "specificity": m.Specificity, "f1": nil} {
		if got := m.Metric(name); !reflect.DeepEqual(got, want) {
			t.Errorf("Metric(%q): got %v, want %v", name, got, want)
		}
	}
	var none *LiveMetrics
	if none.Metric("accuracy") != nil {
		t.Errorf("nil metrics: got an estimate")
	}
}
