package ml

import (
	"math/rand/v2"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// HoldoutSplit returns the rows of t that Train holds out for this target, holdout fraction
// and seed (the same stratified split, drawn from the same stream), with their labels. It lets
// another model be evaluated on exactly the rows a version never saw.
func HoldoutSplit(t *tabular.Table, target string, holdout float64, seed uint64) (rows, y []int, err error) {
	if err := checkTable(t); err != nil {
		return nil, nil, err
	}
	tg, err := parseTarget(target, t.Schema)
	if err != nil {
		return nil, nil, err
	}
	frac, _, err := splitSettings(holdout, NoCV)
	if err != nil {
		return nil, nil, err
	}
	if frac == 0 {
		return nil, nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "holdout", "the version was trained without a holdout")
	}
	labels, err := tg.labels(t)
	if err != nil {
		return nil, nil, err
	}
	_, test, err := stratifiedSplit(labels, frac, rand.New(rand.NewPCG(seed, pcgStream)))
	if err != nil {
		return nil, nil, err
	}
	y = make([]int, len(test))
	for i, r := range test {
		y[i] = labels[r]
	}
	return test, y, nil
}

// EvaluateRows scores the given rows of t and evaluates them against labels y at the model's
// threshold.
func (m *Model) EvaluateRows(t *tabular.Table, rows, y []int) (pulse.EvalMetrics, error) {
	p, _, err := m.PredictTable(t)
	if err != nil {
		return pulse.EvalMetrics{}, err
	}
	sel := make([]float64, len(rows))
	for i, r := range rows {
		sel[i] = p[r]
	}
	return Evaluate(y, sel, m.threshold), nil
}
