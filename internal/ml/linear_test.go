package ml

import (
	"math"
	"slices"
	"testing"
)

// linearPredict scores values with l as a scorer that resolves cells to terms would.
func linearPredict(m *Model, l *Linear, values []Value) float64 {
	s := l.Bias
	for i, in := range m.Inputs() {
		li, v := &l.Inputs[i], values[i]
		var term float64
		switch {
		case in.Categories == nil && v.Present:
			x := v.Num
			if math.IsNaN(x) || math.IsInf(x, 0) {
				x = li.Median
			}
			term = float64(li.Slope * x)
		case !v.Present:
			term = li.Missing
		default:
			if j, ok := slices.BinarySearch(in.Categories, v.Str); ok {
				term = li.Terms[j]
			}
		}
		s += term
	}
	return Sigmoid(s)
}

// TestLinearIsPredict: the terms give Predict's probability bit for bit, on every Cleveland row
// and on rows with each input missing, not finite or an unseen category, for logistic
// regressions with and without zero coefficients; other algorithms have no terms.
func TestLinearIsPredict(t *testing.T) {
	tab := cleveland(t)
	for _, spec := range []Spec{
		{Target: "num > 0", Algorithm: AlgorithmLogReg, CVFolds: NoCV},
		{Target: "num > 0", Algorithm: AlgorithmLogReg, CVFolds: NoCV, Params: map[string]any{"penalty": "l1", "C": 0.05}},
		{Target: "num > 1", Algorithm: AlgorithmLogReg, CVFolds: NoCV, Params: map[string]any{"class_weight": "balanced"}},
	} {
		m := train(t, tab, spec).Model
		l, ok := m.Linear()
		if !ok || len(l.Inputs) != len(m.Inputs()) {
			t.Fatalf("%v: Linear() = %v, %v", spec.Params, l, ok)
		}
		check := func(what string, values []Value) {
			t.Helper()
			want, _ := m.Predict(values, nil)
			if got := linearPredict(m, l, values); math.Float64bits(got) != math.Float64bits(want) {
				t.Errorf("%v, %s: got %v, want Predict's %v", spec.Params, what, got, want)
			}
		}
		zeros := 0
		for _, li := range l.Inputs {
			for _, c := range li.Terms {
				if c == 0 {
					zeros++
				}
			}
		}
		if spec.Params["penalty"] == "l1" && zeros == 0 {
			t.Errorf("the l1 model has no zero terms: the test does not cover them")
		}
		for r := range tab.Rows {
			values := rowValues(t, m, r)
			check("row", values)
			for i, in := range m.Inputs() {
				changed := slices.Clone(values)
				changed[i] = Value{}
				check(in.Name+" missing", changed)
				changed = slices.Clone(values)
				if in.Categories == nil {
					changed[i] = Value{Num: math.Inf(1), Present: true}
					check(in.Name+" infinite", changed)
					changed[i] = Value{Num: math.NaN(), Present: true}
				} else {
					changed[i] = Value{Str: "never seen", Present: true}
				}
				check(in.Name+" not finite or unknown", changed)
			}
		}
	}
	gb := train(t, tab, Spec{Target: "num > 0", Algorithm: AlgorithmGBDT, CVFolds: NoCV}).Model
	if l, ok := gb.Linear(); ok || l != nil {
		t.Errorf("gbdt: Linear() = %v, %v, want nil, false", l, ok)
	}
}
