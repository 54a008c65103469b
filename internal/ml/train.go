// Package ml trains and runs Pulse's models: preprocessing fitted on the training rows,
// L2-regularised logistic regression, evaluation metrics, stratified splits and
// cross-validation, and the model artifact, a JSON document holding everything needed to
// predict (models are data, never code).
package ml

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// Split defaults and sentinels.
const (
	DefaultHoldout = 0.2 // Spec.Holdout when 0
	NoHoldout      = -1  // Spec.Holdout that trains on every row and reports no holdout metrics
	DefaultCVFolds = 10  // Spec.CVFolds when 0
	NoCV           = -1  // Spec.CVFolds that skips cross-validation
	// MaxWidth bounds the number of encoded features (numeric and binary inputs count 1, a
	// categorical input one per category), which keeps the Newton solve small.
	MaxWidth = 512
)

// Spec says what to train.
type Spec struct {
	// Target defines the label 1: `<column> <op> <number>` with op one of > >= < <= == !=
	// (such as "num > 0"), `<column> == "<category>"` (or !=), or just `<column>` for a binary
	// column (its second category is 1) or a numeric column of 0 and 1.
	Target string
	// Algorithm is "logreg".
	Algorithm string
	// Params of logreg: "C" (inverse L2 strength as in scikit-learn, default 1), "max_iter"
	// (default 100), "tol" (gradient norm to stop at, default 1e-8), "class_weight"
	// ("balanced" or "none", the default) and "threshold" (decision threshold, default 0.5).
	Params map[string]any
	// Features are the input columns, in order; by default every column but the target's.
	Features []string
	// Seed drives the splits; every value, 0 included, is a valid seed.
	Seed uint64
	// Holdout is the stratified fraction of rows held out to evaluate the final model, in
	// (0, 0.9); 0 means DefaultHoldout and NoHoldout means none. Each class needs at least 2
	// rows in each part.
	Holdout float64
	// CVFolds is the number of stratified folds of the cross-validation on the training
	// split, at least 2; 0 means DefaultCVFolds and NoCV means none.
	CVFolds int
}

// Result is a trained model and its offline evaluation.
type Result struct {
	// Model is fitted, preprocessing included, on the training split.
	Model *Model
	// Metrics holds the holdout metrics of Model (nil with NoHoldout) and the cross-validation
	// on the training split (nil with NoCV).
	Metrics      pulse.Metrics
	TrainingRows int
	HoldoutRows  int
	// Params are the effective parameters after defaults; passing them back in Spec.Params
	// trains the same model.
	Params map[string]any
	// Holdout and CVFolds are the effective split settings (0 when not done).
	Holdout float64
	CVFolds int
}

// pcgStream is the second PCG seed word, fixed so that Spec.Seed alone sets the stream.
const pcgStream = 0x5075_6c73_6521 // "Pulse!"

// Train fits a model to t as spec says. The same table and spec give the same model, bit for
// bit. Errors are *pulse.Error values naming the faulty field of spec ("target", "algorithm",
// "params.<key>", "features", "holdout", "cv_folds") or the row and column of bad data, or a
// wrapped ctx error.
func Train(ctx context.Context, t *tabular.Table, spec Spec) (*Result, error) {
	if err := checkTable(t); err != nil {
		return nil, err
	}
	tg, err := parseTarget(spec.Target, t.Schema)
	if err != nil {
		return nil, err
	}
	if spec.Algorithm != AlgorithmLogReg {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "algorithm", "algorithm: got %q, want logreg", spec.Algorithm)
	}
	params, err := parseLogRegParams(spec.Params)
	if err != nil {
		return nil, err
	}
	features, err := featureColumns(t.Schema, spec.Features, tg.col)
	if err != nil {
		return nil, err
	}
	holdout, folds, err := splitSettings(spec.Holdout, spec.CVFolds)
	if err != nil {
		return nil, err
	}
	y, err := tg.labels(t)
	if err != nil {
		return nil, err
	}

	rng := rand.New(rand.NewPCG(spec.Seed, pcgStream))
	train, test, err := stratifiedSplit(y, holdout, rng)
	if err != nil {
		return nil, err
	}
	res := &Result{
		TrainingRows: len(train),
		HoldoutRows:  len(test),
		Params:       params.effective(),
		Holdout:      holdout,
		CVFolds:      folds,
	}

	if folds > 0 {
		fold, err := stratifiedFolds(y, train, folds, rng)
		if err != nil {
			return nil, err
		}
		per := make([]pulse.EvalMetrics, folds)
		for f := range folds {
			var fitRows, evalRows []int
			for i, r := range train {
				if fold[i] == f {
					evalRows = append(evalRows, r)
				} else {
					fitRows = append(fitRows, r)
				}
			}
			m, err := fitModel(ctx, t, features, y, fitRows, params, tg.text)
			if err != nil {
				return nil, fmt.Errorf("cross-validation fold %d: %w", f+1, err)
			}
			per[f] = m.evaluateRows(t, features, y, evalRows)
		}
		res.Metrics.CV = summarizeCV(per)
	}

	m, err := fitModel(ctx, t, features, y, train, params, tg.text)
	if err != nil {
		return nil, err
	}
	res.Model = m
	if len(test) > 0 {
		ev := m.evaluateRows(t, features, y, test)
		res.Metrics.Holdout = &ev
	}
	return res, nil
}

// checkTable rejects a table whose shape is inconsistent, so that nothing indexes out of range.
func checkTable(t *tabular.Table) error {
	if t == nil || len(t.Schema.Columns) == 0 || t.Rows <= 0 {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "the data has no rows or no columns")
	}
	cols := t.Schema.Columns
	if len(t.Num) != len(cols) || len(t.Cat) != len(cols) {
		return pulse.Errorf(pulse.EINVALID, "table: %d columns but %d numeric and %d categorical slices", len(cols), len(t.Num), len(t.Cat))
	}
	for j, c := range cols {
		n := len(t.Cat[j])
		if c.Kind == pulse.Numeric {
			n = len(t.Num[j])
		}
		if n != t.Rows {
			return pulse.Errorf(pulse.EINVALID, "table: column %q has %d values, want %d", c.Name, n, t.Rows)
		}
		if !c.Kind.Valid() {
			return pulse.Errorf(pulse.EINVALID, "table: column %q has kind %q", c.Name, c.Kind)
		}
		if c.Kind == pulse.Binary && len(c.Categories) > 2 {
			return pulse.Errorf(pulse.EINVALID, "table: binary column %q has %d categories", c.Name, len(c.Categories))
		}
		if !strictlySorted(c.Categories) || slices.Contains(c.Categories, "") {
			return pulse.Errorf(pulse.EINVALID, "table: column %q: categories are not sorted, unique and non-empty", c.Name)
		}
	}
	return nil
}

// featureColumns resolves the feature names to column indexes.
func featureColumns(s pulse.Schema, names []string, targetCol int) ([]int, error) {
	if len(names) == 0 {
		var cols []int
		for j := range s.Columns {
			if j != targetCol {
				cols = append(cols, j)
			}
		}
		if len(cols) == 0 {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "features", "features: the data has no column besides the target's")
		}
		return cols, nil
	}
	cols := make([]int, len(names))
	for i, n := range names {
		j := s.Index(n)
		switch {
		case j < 0:
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "features", "features: there is no column %q", n)
		case j == targetCol:
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "features", "features: %q is the target's column", n)
		case slices.Contains(cols[:i], j):
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "features", "features: %q appears twice", n)
		}
		cols[i] = j
	}
	return cols, nil
}

func splitSettings(holdout float64, folds int) (float64, int, error) {
	switch {
	case holdout == 0:
		holdout = DefaultHoldout
	case holdout == NoHoldout:
		holdout = 0
	case !(holdout > 0 && holdout < 0.9):
		return 0, 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "holdout", "holdout: got %v, want a fraction in (0, 0.9), 0 for the default %v or %d for none", holdout, DefaultHoldout, NoHoldout)
	}
	switch {
	case folds == 0:
		folds = DefaultCVFolds
	case folds == NoCV:
		folds = 0
	case folds < 2:
		return 0, 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "cv_folds", "cv_folds: got %d, want 2 or more, 0 for the default %d or %d for none", folds, DefaultCVFolds, NoCV)
	}
	return holdout, folds, nil
}

// stratifiedSplit holds out round(frac*n_c) shuffled rows of each class c. Both parts are
// returned in row order.
func stratifiedSplit(y []int, frac float64, rng *rand.Rand) (train, test []int, err error) {
	for c := range 2 {
		var rows []int
		for i, v := range y {
			if v == c {
				rows = append(rows, i)
			}
		}
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		n := int(math.Round(frac * float64(len(rows))))
		if frac > 0 && n < 2 {
			return nil, nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "holdout",
				"holdout %v leaves %d rows of class %d in the holdout split; each class needs at least 2 rows in each part", frac, n, c)
		}
		if len(rows)-n < 2 {
			return nil, nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "holdout",
				"holdout %v leaves %d rows of class %d in the training split; each class needs at least 2", frac, len(rows)-n, c)
		}
		test = append(test, rows[:n]...)
		train = append(train, rows[n:]...)
	}
	slices.Sort(train)
	slices.Sort(test)
	return train, test, nil
}

// stratifiedFolds assigns each of rows (by position) to one of k folds: each class's rows are
// shuffled and dealt round-robin, continuing from class 0 to class 1 so that the fold sizes
// differ by at most one.
func stratifiedFolds(y, rows []int, k int, rng *rand.Rand) ([]int, error) {
	fold := make([]int, len(rows))
	next := 0
	for c := range 2 {
		var pos []int
		for i, r := range rows {
			if y[r] == c {
				pos = append(pos, i)
			}
		}
		if len(pos) < k {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "cv_folds",
				"cv_folds %d: class %d has only %d training rows; each fold needs one of each class", k, c, len(pos))
		}
		rng.Shuffle(len(pos), func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
		for _, i := range pos {
			fold[i] = next % k
			next++
		}
	}
	return fold, nil
}

// fitModel fits the preprocessing and a logistic regression on the given rows.
func fitModel(ctx context.Context, t *tabular.Table, features, y, rows []int, p logRegParams, target string) (*Model, error) {
	m := &Model{algorithm: AlgorithmLogReg, target: target, threshold: p.threshold}
	m.inputs = make([]input, len(features))
	for i, j := range features {
		in, err := fitInput(t, j, rows)
		if err != nil {
			return nil, err
		}
		m.inputs[i] = in
	}
	m.init()
	if m.width > MaxWidth {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "features",
			"features: %d encoded values (a categorical column counts one per category), want at most %d", m.width, MaxWidth)
	}

	x := make([]float64, len(rows)*m.width)
	m.encodeRows(t, features, rows, x)
	yy := make([]float64, len(rows))
	var positives int
	for i, r := range rows {
		yy[i] = float64(y[r])
		positives += y[r]
	}
	sw := make([]float64, len(rows))
	for i := range sw {
		sw[i] = 1
		if p.classWeight == "balanced" {
			// scikit-learn: n_samples / (n_classes * count of the row's class)
			count := positives
			if yy[i] == 0 {
				count = len(rows) - positives
			}
			sw[i] = float64(len(rows)) / (2 * float64(count))
		}
	}
	fit, err := fitLogReg(ctx, x, m.width, yy, sw, p.c, p.tol, p.maxIter)
	if err != nil {
		return nil, err
	}
	m.logReg = &logReg{
		coef: fit.coef, intercept: fit.intercept,
		c: p.c, classWeight: p.classWeight, maxIter: p.maxIter, tol: p.tol,
		converged: fit.converged, iterations: fit.iterations, gradNorm: fit.gradNorm,
	}
	return m, nil
}

// fitInput fits the preprocessing of column j on the given rows.
func fitInput(t *tabular.Table, j int, rows []int) (input, error) {
	col := t.Schema.Columns[j]
	in := input{name: col.Name, kind: col.Kind}
	noValues := func() error {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, col.Name, "feature %q has no values in the training rows", col.Name)
	}
	if col.Kind == pulse.Numeric {
		vals := make([]float64, 0, len(rows))
		for _, r := range rows {
			if v := t.Num[j][r]; !math.IsNaN(v) {
				vals = append(vals, v)
			} else {
				in.missing++
			}
		}
		if len(vals) == 0 {
			return in, noValues()
		}
		slices.Sort(vals)
		n := len(vals)
		in.median = vals[n/2]
		if n%2 == 0 {
			in.median = (vals[n/2-1] + vals[n/2]) / 2
		}
		var sum float64
		for _, r := range rows {
			sum += imputed(t.Num[j][r], in.median)
		}
		in.mean = sum / float64(len(rows))
		var ss float64
		for _, r := range rows {
			d := imputed(t.Num[j][r], in.median) - in.mean
			ss += d * d
		}
		in.scale = math.Sqrt(ss / float64(len(rows)))
		if !(in.scale > 0) {
			in.scale = 1
		}
		return in, nil
	}

	counts := make(map[string]int)
	for _, r := range rows {
		if s := t.Cat[j][r]; s != "" {
			counts[s]++
		} else {
			in.missing++
		}
	}
	if len(counts) == 0 {
		return in, noValues()
	}
	if col.Kind == pulse.Binary {
		// The data set's two categories, so that Categories[1] means 1 in every fold.
		in.categories = slices.Clone(col.Categories)
	} else {
		for c := range counts {
			in.categories = append(in.categories, c)
		}
		slices.Sort(in.categories)
	}
	if len(in.categories) == 0 {
		return in, pulse.FieldErrorf(pulse.EUNPROCESSABLE, col.Name, "feature %q: the column lists no categories", col.Name)
	}
	in.mode = -1
	for i, c := range in.categories {
		if in.mode < 0 || counts[c] > counts[in.categories[in.mode]] {
			in.mode = i // the most frequent; the first in order among equals
		}
	}
	if counts[in.categories[in.mode]] == 0 {
		return in, pulse.FieldErrorf(pulse.EUNPROCESSABLE, col.Name, "feature %q: its values are not among the column's categories", col.Name)
	}
	return in, nil
}

func imputed(v, median float64) float64 {
	if math.IsNaN(v) {
		return median
	}
	return v
}

// encodeRows encodes the given rows of t into x (len(rows) x m.width), through the same code
// as Predict.
func (m *Model) encodeRows(t *tabular.Table, features, rows []int, x []float64) {
	values := make([]Value, len(features))
	for i, r := range rows {
		for k, j := range features {
			values[k], _ = tableValue(t, j, r, t.Schema.Columns[j].Kind)
		}
		m.encode(values, x[i*m.width:(i+1)*m.width])
	}
}

// evaluateRows predicts the given rows, as Predict does, and evaluates them against their
// labels.
func (m *Model) evaluateRows(t *tabular.Table, features, y, rows []int) pulse.EvalMetrics {
	values := make([]Value, len(features))
	p := make([]float64, len(rows))
	labels := make([]int, len(rows))
	for i, r := range rows {
		for k, j := range features {
			values[k], _ = tableValue(t, j, r, t.Schema.Columns[j].Kind)
		}
		p[i], _ = m.Predict(values, nil)
		labels[i] = y[r]
	}
	return Evaluate(labels, p, m.threshold)
}

// strictlySorted reports whether s is sorted in byte order without repeats.
func strictlySorted(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}
