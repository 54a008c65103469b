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
)

func ptr[T any](v T) *T { return &v }

func mustPolicy(t testing.TB, doc string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// metrics returns live metrics over n labels with the given accuracy and ROC AUC estimates.
func metrics(n int, acc, auc *Estimate) *LiveMetrics {
	return &LiveMetrics{N: n, Positives: n / 2, Accuracy: acc, ROCAUC: auc}
}

func est(v, lo, hi float64) *Estimate { return &Estimate{Value: v, Lower: lo, Upper: hi} }

func TestEvaluate(t *testing.T) {
	policy := mustPolicy(t, examplePolicy)
	now := t0
	good := metrics(500, est(0.85, 0.82, 0.88), est(0.9, 0.87, 0.93))
	bad := metrics(500, est(0.6, 0.56, 0.64), est(0.7, 0.65, 0.75))
	drift := &DriftReport{N: 1000, MaxPSI: ptr(0.4), Worst: "thalach", ScorePSI: ptr(0.1)}
	calm := &DriftReport{N: 1000, MaxPSI: ptr(0.05), Worst: "age", ScorePSI: ptr(0.01)}
	base := State{Now: now, Champion: 3, Live: good, Drift: calm, PreviousGood: 2}
	type want struct {
		action  Action
		version int
		guard   string // substring; "" means none
		reason  string // substring
		numbers map[string]float64
	}
	tests := []struct {
		name   string
		change func(*State)
		want   map[Action]want
	}{
		{
			name:   "healthy",
			change: func(*State) {},
			want: map[Action]want{
				ActionRollback: {action: ActionNone, reason: "accuracy 0.8500 (95% CI 0.8200-0.8800) over 500 labels, not below 0.7", numbers: map[string]float64{"accuracy_upper": 0.88, "labels": 500}},
				ActionRetrain:  {action: ActionNone, reason: "no trigger", numbers: map[string]float64{"max_psi": 0.05, "roc_auc": 0.9}},
				ActionPromote:  {action: ActionNone, guard: "no challenger"},
			},
		},
		{
			name:   "no feedback",
			change: func(s *State) { s.Live = nil; s.Drift = nil },
			want: map[Action]want{
				ActionRollback: {action: ActionNone, guard: "too few labels: 0 < 200"},
				ActionRetrain:  {action: ActionNone, guard: "too few records: 0 < 500; too few labels: 0 < 200"},
			},
		},
		{
			name:   "too few labels",
			change: func(s *State) { s.Live = metrics(37, est(0.3, 0.2, 0.4), nil) },
			want:   map[Action]want{ActionRollback: {action: ActionNone, guard: "too few labels: 37 < 200", numbers: map[string]float64{"labels": 37, "min_labels": 200}}},
		},
		{
			name:   "below but not significant",
			change: func(s *State) { s.Live = metrics(250, est(0.68, 0.62, 0.74), est(0.85, 0.8, 0.9)) },
			want:   map[Action]want{ActionRollback: {action: ActionNone, guard: "not significant: accuracy 0.6800 is below 0.7 but its 95% upper bound 0.7400 is not"}},
		},
		{
			name:   "rollback",
			change: func(s *State) { s.Live = bad },
			want: map[Action]want{
				ActionRollback: {action: ActionRollback, version: 2, reason: "below 0.7 with 95% confidence: roll back to version 2", numbers: map[string]float64{"accuracy": 0.6, "accuracy_upper": 0.64, "previous_good": 2}},
				ActionRetrain:  {action: ActionRetrain, version: 3, reason: "live roc_auc 0.7000 (95% CI 0.6500-0.7500) over 500 labels, below 0.8"},
			},
		},
		{
			name:   "no previous good version",
			change: func(s *State) { s.Live = bad; s.PreviousGood = 0 },
			want:   map[Action]want{ActionRollback: {action: ActionNone, guard: "no previous good version"}},
		},
		{
			name:   "rollback cooldown",
			change: func(s *State) { s.Live = bad; s.LastRollback = now.Add(-20 * time.Minute) },
			want: map[Action]want{ActionRollback: {action: ActionNone, guard: "cooldown: last rollback 20m0s ago, cooldown 1h0m0s",
				numbers: map[string]float64{"since_last_seconds": 1200, "cooldown_seconds": 3600}}},
		},
		{
			name:   "rollback after cooldown",
			change: func(s *State) { s.Live = bad; s.LastRollback = now.Add(-time.Hour) },
			want:   map[Action]want{ActionRollback: {action: ActionRollback, version: 2}},
		},
		{
			name:   "drift",
			change: func(s *State) { s.Drift = drift },
			want: map[Action]want{
				ActionRollback: {action: ActionNone},
				ActionRetrain:  {action: ActionRetrain, version: 3, reason: `input drift: PSI of "thalach" 0.4000 over 1000 records > 0.25`, numbers: map[string]float64{"max_psi": 0.4, "max_psi_above": 0.25, "records": 1000}},
			},
		},
		{
			name:   "drift on too few records",
			change: func(s *State) { s.Drift = &DriftReport{N: 120, MaxPSI: ptr(2.0), Worst: "age"} },
			want:   map[Action]want{ActionRetrain: {action: ActionNone, guard: "too few records: 120 < 500"}},
		},
		{
			name:   "retraining already",
			change: func(s *State) { s.Drift = drift; s.Retraining = true },
			want:   map[Action]want{ActionRetrain: {action: ActionNone, guard: "a retraining job is already running"}},
		},
		{
			name:   "retrain cooldown",
			change: func(s *State) { s.Drift = drift; s.LastRetrain = now.Add(-59 * time.Minute) },
			want:   map[Action]want{ActionRetrain: {action: ActionNone, guard: "cooldown: last retraining 59m0s ago"}},
		},
		{
			name: "challenger too few labels",
			change: func(s *State) {
				s.Challenger = &Shadow{Version: 4, Live: metrics(150, nil, est(0.99, 0.97, 1)), Champion: metrics(150, nil, est(0.8, 0.7, 0.9))}
			},
			want: map[Action]want{ActionPromote: {action: ActionNone, guard: "too few labels: 150 < 200"}},
		},
		{
			name: "challenger gain too small",
			change: func(s *State) {
				s.Challenger = &Shadow{Version: 4, Live: metrics(5000, nil, est(0.915, 0.905, 0.925)), Champion: metrics(5000, nil, est(0.9, 0.89, 0.91))}
			},
			want: map[Action]want{ActionPromote: {action: ActionNone, reason: "gain 0.0150 (95% lower bound 0.0009), not above 0.02"}},
		},
		{
			name: "challenger gain not significant",
			change: func(s *State) {
				s.Challenger = &Shadow{Version: 4, Live: metrics(3000, nil, est(0.95, 0.93, 0.97)), Champion: metrics(3000, nil, est(0.91, 0.89, 0.93))}
			},
			want: map[Action]want{ActionPromote: {action: ActionNone, guard: "not significant: gain 0.0400 is above 0.02 but its 95% lower bound 0.0117 is not"}},
		},
		{
			name: "promote",
			change: func(s *State) {
				s.Challenger = &Shadow{Version: 4, Live: metrics(1000, nil, est(0.95, 0.93, 0.97)), Champion: metrics(1000, nil, est(0.9, 0.88, 0.92))}
			},
			want: map[Action]want{ActionPromote: {action: ActionPromote, version: 4, numbers: map[string]float64{"challenger": 4, "challenger_roc_auc": 0.95, "champion_roc_auc": 0.9}}},
		},
		{
			name: "promote supersedes rollback",
			change: func(s *State) {
				s.Live = bad
				s.Challenger = &Shadow{Version: 4, Live: metrics(1000, nil, est(0.95, 0.93, 0.97)), Champion: metrics(1000, nil, est(0.7, 0.66, 0.74))}
			},
			want: map[Action]want{
				ActionRollback: {action: ActionNone, guard: "superseded by the promotion of version 4"},
				ActionPromote:  {action: ActionPromote, version: 4},
			},
		},
		{
			name: "promote cooldown",
			change: func(s *State) {
				s.Challenger = &Shadow{Version: 4, Live: metrics(1000, nil, est(0.95, 0.93, 0.97)), Champion: metrics(1000, nil, est(0.9, 0.88, 0.92))}
				s.LastPromote = now.Add(-time.Minute)
			},
			want: map[Action]want{ActionPromote: {action: ActionNone, guard: "cooldown: last promotion 1m0s ago"}},
		},
	}
	for _, tt := range tests {
		s := base
		tt.change(&s)
		ds, err := Evaluate(policy, s)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(ds) != 3 || ds[0].Rule != ActionRollback || ds[1].Rule != ActionRetrain || ds[2].Rule != ActionPromote {
			t.Fatalf("%s: got decisions %+v, want rollback, retrain, promote", tt.name, ds)
		}
		for _, d := range ds {
			w, ok := tt.want[d.Rule]
			if !ok {
				continue
			}
			if d.Action != w.action || d.Version != w.version {
				t.Errorf("%s: %s: got action %s on version %d, want %s on %d (guard %q, reason %q)", tt.name, d.Rule, d.Action, d.Version, w.action, w.version, d.Guard, d.Reason)
			}
			if (w.guard == "") != (d.Guard == "") || !strings.Contains(d.Guard, w.guard) {
				t.Errorf("%s: %s: got guard %q, want %q", tt.name, d.Rule, d.Guard, w.guard)
			}
			if !strings.Contains(d.Reason, w.reason) {
				t.Errorf("%s: %s: got reason %q, want it to contain %q", tt.name, d.Rule, d.Reason, w.reason)
			}
			for k, v := range w.numbers {
				if got, ok := d.Numbers[k]; !ok || math.Abs(got-v) > 1e-12 {
					t.Errorf("%s: %s: number %s: got %v (%v), want %v", tt.name, d.Rule, k, got, ok, v)
				}
			}
			if !d.At.Equal(now) {
				t.Errorf("%s: %s: got time %v, want %v", tt.name, d.Rule, d.At, now)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("%s: %s: JSON: %v", tt.name, d.Rule, err)
			}
		}
		// Pure: the same input gives the same decisions, and the policy is not changed.
		again, _ := Evaluate(policy, s)
		if !reflect.DeepEqual(ds, again) {
			t.Errorf("%s: a second evaluation differs", tt.name)
		}
	}
	if !reflect.DeepEqual(policy, mustPolicy(t, examplePolicy)) {
		t.Errorf("Evaluate changed the policy")
	}
}

func TestEvaluatePolicyErrors(t *testing.T) {
	if _, err := Evaluate(nil, State{}); err == nil {
		t.Errorf("nil policy: got no error")
	}
	if _, err := Evaluate(&Policy{Rollback: &RollbackRule{Below: 2}}, State{}); err == nil || !strings.Contains(err.Error(), "rollback.below") {
		t.Errorf("invalid policy: got %v, want an error about rollback.below", err)
	}
	// Defaults apply to a policy built in Go; the caller's copy is left as it was.
	p := &Policy{Rollback: &RollbackRule{Below: 0.7}}
	ds, err := Evaluate(p, State{Now: t0})
	if err != nil || len(ds) != 1 || ds[0].Guard != "too few labels: 0 < 200" {
		t.Errorf("Go policy: got %+v, %v", ds, err)
	}
	if p.Rollback.MinLabels != 0 || p.Format != 0 {
		t.Errorf("Evaluate changed the caller's policy: %+v", p.Rollback)
	}
}

// holdoutStream draws outcomes of the Cleveland model's holdout rows with replacement, so
// that the stream's accuracy and AUC are the holdout's.
type holdoutStream struct {
	p         []float64
	y         []int
	threshold float64
	rng       *rand.Rand
	at        time.Time
}

func newHoldoutStream(t testing.TB, seed uint64) (*holdoutStream, float64) {
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
	s := &holdoutStream{y: y, threshold: res.Model.Threshold(), rng: rand.New(rand.NewPCG(seed, 11)), at: t0}
	for _, r := range rows {
		s.p = append(s.p, all[r])
	}
	return s, res.Metrics.Holdout.Accuracy
}

// next returns an outcome of a random holdout row; shifted, its label is a fair coin (the
// label relation changed: the model is right half the time and its AUC is 0.5).
func (s *holdoutStream) next(shifted bool) Outcome {
	i := s.rng.IntN(len(s.p))
	label := s.y[i]
	if shifted {
		label = s.rng.IntN(2)
	}
	pred := 0
	if s.p[i] >= s.threshold {
		pred = 1
	}
	s.at = s.at.Add(time.Second)
	return Outcome{Probability: s.p[i], Predicted: pred, Label: label, PredictedAt: s.at.Add(-time.Hour), ObservedAt: s.at}
}

// TestRollbackStableAndShifted: with a 500-label window, a stable stream of 50,000 outcomes
// at the holdout's accuracy never triggers a rollback, even with the threshold only 0.03
// (about 2.4 standard errors) under it, where a rule on the point estimate alone would fire; when the label relation
// changes (accuracy 0.5), the rollback at 0.7 fires after about the number of labels at
// which the window's Wilson upper bound falls under 0.7.
func TestRollbackStableAndShifted(t *testing.T) {
	const window = 500
	stream, p0 := newHoldoutStream(t, 1)
	if p0 < 0.8 {
		t.Fatalf("holdout accuracy %.3f, want at least 0.8 for this test", p0)
	}
	tight := p0 - 0.03
	policies := map[string]*Policy{
		"0.7":   mustPolicy(t, `{"rollback": {"metric": "accuracy", "below": 0.7, "min_labels": 200}}`),
		"tight": {Rollback: &RollbackRule{Below: tight, MinLabels: 200}},
	}
	w := newLive(t, LiveConfig{Size: window})
	naive := 0
	for i := range 50000 {
		if err := w.Add(stream.next(false)); err != nil {
			t.Fatal(err)
		}
		m := w.Report(stream.at)
		s := State{Now: stream.at, Champion: 2, Live: &m, PreviousGood: 1}
		for name, p := range policies {
			ds, err := Evaluate(p, s)
			if err != nil {
				t.Fatal(err)
			}
			if ds[0].Action != ActionNone {
				t.Fatalf("stable stream, policy %s: rollback after %d outcomes: %s", name, i+1, ds[0].Reason)
			}
		}
		if m.N >= 200 && m.Accuracy.Value < tight {
			naive++
		}
	}
	if naive == 0 {
		t.Errorf("the point estimate never fell under %.3f: the test does not show the interval's worth", tight)
	}
	t.Logf("stable stream at holdout accuracy %.3f: no rollback in 50000 outcomes; a point-estimate rule at %.3f would have fired %d times", p0, tight, naive)

	// The shift. Expected: after s shifted labels the window's accuracy is about
	// (p0 (W - s) + 0.5 s) / W; the rule fires once the Wilson upper bound is below 0.7,
	// i.e. about when that accuracy reaches 0.7 - 1.96 sqrt(0.7·0.3/W).
	cross := 0.7 - z95*math.Sqrt(0.7*0.3/window)
	expected := window * (p0 - cross) / (p0 - 0.5)
	fired := -1
	for i := range 2 * window {
		if err := w.Add(stream.next(true)); err != nil {
			t.Fatal(err)
		}
		m := w.Report(stream.at)
		ds, err := Evaluate(policies["0.7"], State{Now: stream.at, Champion: 2, Live: &m, PreviousGood: 1})
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].Action == ActionRollback {
			fired = i + 1
			if ds[0].Version != 1 || ds[0].Numbers["accuracy_upper"] >= 0.7 {
				t.Errorf("rollback: got version %d with upper bound %v, want version 1 under 0.7", ds[0].Version, ds[0].Numbers["accuracy_upper"])
			}
			break
		}
	}
	if fired < 0 || math.Abs(float64(fired)-expected) > 0.25*expected {
		t.Errorf("shifted stream: rollback after %d labels, want about %.0f (within 25%%)", fired, expected)
	}
	t.Logf("shifted stream (accuracy %.3f -> 0.5): rollback at 0.7 after %d labels, expected about %.0f", p0, fired, expected)
}

// TestPromoteStableAndShifted: a challenger of the same quality, shadowing on the same
// traffic, is never promoted over 20,000 outcomes; a challenger that knows the new label
// relation is, soon after the shift, and that promotion supersedes the rollback.
func TestPromoteStableAndShifted(t *testing.T) {
	const window = 500
	stream, _ := newHoldoutStream(t, 2)
	policy := mustPolicy(t, examplePolicy)
	champ := newLive(t, LiveConfig{Size: window})
	champShadow := newLive(t, LiveConfig{Size: window})
	chall := newLive(t, LiveConfig{Size: window})
	evaluate := func() []Decision {
		m, cm, ch := champ.Report(stream.at), champShadow.Report(stream.at), chall.Report(stream.at)
		ds, err := Evaluate(policy, State{
			Now: stream.at, Champion: 2, Live: &m, PreviousGood: 1,
			Challenger: &Shadow{Version: 3, Live: &ch, Champion: &cm},
		})
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	// The challenger's outcome for the same request: another draw from the holdout with the
	// same true label (same quality, independent errors).
	challengerOf := func(o Outcome) Outcome {
		for {
			c := stream.next(false)
			if c.Label == o.Label {
				c.PredictedAt, c.ObservedAt = o.PredictedAt, o.ObservedAt
				stream.at = o.ObservedAt
				return c
			}
		}
	}
	addAll := func(o Outcome) {
		c := challengerOf(o)
		for _, e := range []error{champ.Add(o), champShadow.Add(o), chall.Add(c)} {
			if e != nil {
				t.Fatal(e)
			}
		}
	}
	for i := range 20000 {
		addAll(stream.next(false))
		for _, d := range evaluate() {
			if d.Action != ActionNone {
				t.Fatalf("stable stream: %s after %d outcomes: %s", d.Action, i+1, d.Reason)
			}
		}
	}
	fired := -1
	for i := range 2 * window {
		addAll(stream.next(true))
		ds := evaluate()
		if ds[2].Action == ActionPromote {
			fired = i + 1
			if ds[0].Action != ActionNone || (ds[0].Guard != "" && !strings.Contains(ds[0].Guard, "superseded")) {
				t.Errorf("rollback alongside the promotion: got %s, guard %q", ds[0].Action, ds[0].Guard)
			}
			break
		}
	}
	if fired < 0 || fired > window {
		t.Errorf("shifted stream: promotion after %d labels, want within %d", fired, window)
	}
	t.Logf("shifted stream: the challenger is promoted after %d labels", fired)
}
