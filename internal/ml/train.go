// Package ml trains and runs Pulse's models: preprocessing fitted on the training rows,
// three algorithms (logistic regression with an L2, L1 or elastic-net penalty; gradient-boosted
// trees from package gbdt; FTRL-Proximal online logistic regression from package ftrl),
// evaluation metrics, stratified splits, cross-validation, decision thresholds chosen for a
// target sensitivity, hyperparameter search, and the model artifact, a JSON document holding
// everything needed to predict (models are data, never code).
package ml

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/ml/gbdt"
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
	// Algorithm is "logreg" (logistic regression), "gbdt" (gradient-boosted trees) or "ftrl"
	// (online logistic regression, trained here in batch).
	Algorithm string
	// Params are the algorithm's parameters by name; absent ones take their defaults, and an
	// unknown name is an error.
	//
	// Every algorithm takes "threshold" (the decision threshold, default 0.5: a probability at
	// or above it is label 1) or "target_sensitivity" (a number in (0, 1)): the threshold is
	// then the highest one whose sensitivity on the out-of-fold predictions of the
	// cross-validation on the training split is at least the target, so it needs CV. With
	// target_sensitivity a "threshold" given too is replaced by the chosen one (Result.Params
	// records both, so that passing them back trains the same model). Every algorithm takes
	// "class_weight": "none" (the default) or "balanced", which weights each row by
	// n / (2 * n_class) as scikit-learn does.
	//
	// logreg minimises C * sum_i w_i * logloss_i + (1-l1_ratio)/2 * ||w||^2 +
	// l1_ratio * ||w||_1 as scikit-learn's LogisticRegression, the intercept unpenalised:
	// "C" (default 1), "penalty" ("l2", the default, "l1" or "elasticnet"), "l1_ratio"
	// (required with elasticnet, from 0 to 1; l1 means 1 and l2 means 0), "max_iter" (default
	// 100) and "tol" (the norm of the (sub)gradient to stop at, default 1e-8). Its inputs are
	// imputed (median, mode), numeric ones standardised, categorical ones one-hot encoded.
	//
	// gbdt takes the JSON names of gbdt.Params (learning_rate, num_trees, max_leaves,
	// max_depth, min_samples_leaf, min_hessian_leaf, l2, max_bins, subsample,
	// feature_fraction, early_stopping, validation_fraction, patience, tol), defaults from
	// gbdt.DefaultParams; its seed is Seed. Numeric inputs go in as they are, missing values
	// as NaN (the trees learn where they go), categorical ones one-hot (NaN in all their
	// columns when missing).
	//
	// ftrl takes the JSON names of ftrl.Params (alpha, beta, l1, l2, scale), defaults from
	// ftrl.DefaultParams, and "passes" (default 10, at most 1000): the learner sees the
	// training rows one at a time through Update, in that many passes, each in a new order
	// shuffled from Seed. Inputs are encoded as for gbdt; the learner standardises numeric
	// values online and leaves binary and one-hot values unscaled.
	Params map[string]any
	// Features are the input columns, in order; by default every column but the target's.
	Features []string
	// Seed drives the splits, the search and any randomness of the algorithm; every value, 0
	// included, is a valid seed.
	Seed uint64
	// Holdout is the stratified fraction of rows held out to evaluate the final model, in
	// (0, 0.9); 0 means DefaultHoldout and NoHoldout means none. Each class needs at least 2
	// rows in each part.
	Holdout float64
	// CVFolds is the number of stratified folds of the cross-validation on the training
	// split, at least 2; 0 means DefaultCVFolds and NoCV means none.
	CVFolds int
	// Search, when set, chooses some of the parameters by cross-validation inside the training
	// split (see SearchSpec); the best are then used like Params.
	Search *SearchSpec
}

// Result is a trained model and its offline evaluation.
type Result struct {
	// Model is fitted, preprocessing included, on the training split.
	Model *Model
	// Metrics holds the holdout metrics of Model (nil with NoHoldout) and the cross-validation
	// on the training split (nil with NoCV), both at the model's threshold. After a search the
	// CV is of the best parameters on the same rows that chose them, so it is optimistic.
	Metrics      pulse.Metrics
	TrainingRows int
	HoldoutRows  int
	// Params are the effective parameters after defaults, the search and the choice of the
	// threshold; passing them back in Spec.Params (without Search) trains the same model.
	Params map[string]any
	// Holdout and CVFolds are the effective split settings (0 when not done).
	Holdout float64
	CVFolds int
	// Search records the hyperparameter search, nil when none ran.
	Search *pulse.Search
}

// Second PCG seed words, fixed so that Spec.Seed alone sets each stream, and different so
// that a search or an algorithm's randomness never shifts the splits.
const (
	pcgStream        = 0x5075_6c73_6521 // "Pulse!": holdout split, then CV folds
	searchFoldStream = 0x5365_6172_6368 // "Search": the folds of the search
	sampleStream     = 0x5361_6d70_6c65 // "Sample": the candidates of a random search
)

// Train fits a model to t as spec says. The same table and spec give the same model, bit for
// bit. Errors are *pulse.Error values naming the faulty field of spec ("target", "algorithm",
// "params.<key>", "features", "holdout", "cv_folds", "search.<key>") or the row and column of
// bad data, or a wrapped ctx error.
func Train(ctx context.Context, t *tabular.Table, spec Spec) (*Result, error) {
	if err := checkTable(t); err != nil {
		return nil, err
	}
	tg, err := parseTarget(spec.Target, t.Schema)
	if err != nil {
		return nil, err
	}
	var p params
	var plan *searchPlan
	if spec.Search == nil {
		p, err = parseParams(spec.Algorithm, spec.Params)
	} else if _, err = parseParams(spec.Algorithm, nil); err == nil { // the algorithm is known
		plan, err = planSearch(spec.Search, spec.Algorithm, spec.Params, spec.Seed)
		if err == nil {
			p = plan.candidates[0]
		}
	}
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
	if p.targetSensitivity > 0 && folds == 0 {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params.target_sensitivity",
			"params.target_sensitivity: the threshold is chosen on the out-of-fold predictions of cross-validation, but cv_folds is %d (none); give a threshold instead or enable CV", NoCV)
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
	j := &job{t: t, features: features, y: y, target: tg.text, seed: spec.Seed}
	res := &Result{
		TrainingRows: len(train),
		HoldoutRows:  len(test),
		Holdout:      holdout,
		CVFolds:      folds,
	}

	if plan != nil {
		best, record, err := j.search(ctx, train, plan)
		if err != nil {
			return nil, err
		}
		p, res.Search = best, record
	}

	if folds > 0 {
		fold, err := stratifiedFolds(y, train, folds, rng, "cv_folds")
		if err != nil {
			return nil, err
		}
		oof, err := j.crossValidate(ctx, train, fold, folds, p)
		if err != nil {
			return nil, err
		}
		if p.targetSensitivity > 0 {
			p.threshold = thresholdForSensitivity(y, train, oof, p.targetSensitivity)
		}
		res.Metrics.CV = summarizeCV(foldMetrics(y, train, fold, folds, oof, p.threshold))
	}
	res.Params = p.effective()

	m, err := j.fit(ctx, train, p)
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

// job is what every fit of one training shares: the data, the label of every row and the seed.
type job struct {
	t        *tabular.Table
	features []int
	y        []int
	target   string
	seed     uint64
}

// crossValidate fits one model per fold on the other folds' rows and returns the out-of-fold
// probability of every row of rows (by position). fold[i] is the fold of rows[i].
func (j *job) crossValidate(ctx context.Context, rows, fold []int, k int, p params) ([]float64, error) {
	oof := make([]float64, len(rows))
	var fitRows, evalRows, evalPos []int
	for f := range k {
		fitRows, evalRows, evalPos = fitRows[:0], evalRows[:0], evalPos[:0]
		for i, r := range rows {
			if fold[i] == f {
				evalRows = append(evalRows, r)
				evalPos = append(evalPos, i)
			} else {
				fitRows = append(fitRows, r)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cross-validation: %w", err)
		}
		m, err := j.fit(ctx, fitRows, p)
		if err != nil {
			return nil, fmt.Errorf("cross-validation fold %d: %w", f+1, err)
		}
		pf := m.predictRows(j.t, j.features, evalRows)
		for i, pos := range evalPos {
			oof[pos] = pf[i]
		}
	}
	return oof, nil
}

// foldMetrics evaluates the out-of-fold probabilities of each fold at the threshold.
func foldMetrics(y, rows, fold []int, k int, oof []float64, threshold float64) []pulse.EvalMetrics {
	per := make([]pulse.EvalMetrics, k)
	var labels []int
	var p []float64
	for f := range k {
		labels, p = labels[:0], p[:0]
		for i, r := range rows {
			if fold[i] == f {
				labels = append(labels, y[r])
				p = append(p, oof[i])
			}
		}
		per[f] = Evaluate(labels, p, threshold)
	}
	return per
}

// thresholdForSensitivity returns the highest threshold at which the sensitivity of the
// probabilities p of rows (by position) is at least target: the k-th highest probability of a
// positive row, for the smallest k with k/positives >= target. It is kept inside (0, 1), as a
// model's threshold must be.
func thresholdForSensitivity(y, rows []int, p []float64, target float64) float64 {
	var pos []float64
	for i, r := range rows {
		if y[r] != 0 {
			pos = append(pos, p[i])
		}
	}
	if len(pos) == 0 {
		return DefaultThreshold // unreachable: the training split holds both classes
	}
	slices.SortFunc(pos, func(a, b float64) int { return cmp.Compare(b, a) })
	k := 1
	for float64(k)/float64(len(pos)) < target && k < len(pos) {
		k++
	}
	return min(max(pos[k-1], math.SmallestNonzeroFloat64), math.Nextafter(1, 0))
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
// field names the setting the folds come from, for errors.
func stratifiedFolds(y, rows []int, k int, rng *rand.Rand, field string) ([]int, error) {
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
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field,
				"%s %d: class %d has only %d training rows; each fold needs one of each class", field, k, c, len(pos))
		}
		rng.Shuffle(len(pos), func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
		for _, i := range pos {
			fold[i] = next % k
			next++
		}
	}
	return fold, nil
}

// fit fits the preprocessing and the algorithm on the given rows.
func (j *job) fit(ctx context.Context, rows []int, p params) (*Model, error) {
	m := &Model{algorithm: p.algorithm, target: j.target, threshold: p.threshold, raw: p.algorithm != AlgorithmLogReg}
	m.inputs = make([]input, len(j.features))
	for i, c := range j.features {
		in, err := fitInput(j.t, c, rows)
		if err != nil {
			return nil, err
		}
		if m.raw { // no imputation or scaling
			in.median, in.mean, in.scale, in.mode = 0, 0, 0, -1
		}
		m.inputs[i] = in
	}
	m.init()
	if m.width > MaxWidth {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "features",
			"features: %d encoded values (a categorical column counts one per category), want at most %d", m.width, MaxWidth)
	}

	x := make([]float64, len(rows)*m.width)
	m.encodeRows(j.t, j.features, rows, x)
	yy := make([]float64, len(rows))
	for i, r := range rows {
		yy[i] = float64(j.y[r])
	}
	switch p.algorithm {
	case AlgorithmLogReg:
		sw := sampleWeights(yy, p.logReg.classWeight)
		fit, err := fitLogRegParams(ctx, x, m.width, yy, sw, p.logReg)
		if err != nil {
			return nil, err
		}
		m.logReg = &logReg{
			coef: fit.coef, intercept: fit.intercept, params: p.logReg,
			converged: fit.converged, iterations: fit.iterations, gradNorm: fit.gradNorm,
		}
		m.prepare()
	case AlgorithmGBDT:
		var sw []float64
		if p.gbdt.classWeight == "balanced" {
			sw = sampleWeights(yy, "balanced")
		}
		gp := p.gbdt.p
		gp.Seed = j.seed
		ens, err := gbdt.Fit(ctx, x, len(rows), m.width, yy, sw, gp)
		if err != nil {
			return nil, fmt.Errorf("gbdt: %w", err)
		}
		m.gbdt = &gbdtModel{ens: ens, params: p.gbdt}
	case AlgorithmFTRL:
		l, err := fitFTRL(ctx, x, m.width, yy, p.ftrl, m.noScale(), j.seed)
		if err != nil {
			return nil, err
		}
		m.ftrl = &ftrlModel{learner: l, params: p.ftrl}
	}
	return m, nil
}

// ftrlStream is the second PCG seed word of ftrl's shuffles.
const ftrlStream = 0x4674_726c_5061 // "FtrlPa"

// fitFTRL trains an FTRL learner on the rows of x (d values each) in p.passes passes, each
// over the rows in a new order shuffled from seed, one example at a time through Update.
func fitFTRL(ctx context.Context, x []float64, d int, y []float64, p ftrlParams, noScale []int, seed uint64) (*ftrl.Learner, error) {
	fp := p.p
	fp.NoScale = noScale
	l, err := ftrl.New(d, fp)
	if err != nil {
		return nil, fmt.Errorf("ftrl: %w", err)
	}
	var sw []float64
	if p.classWeight == "balanced" {
		sw = sampleWeights(y, "balanced")
	}
	order := make([]int, len(y))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(seed, ftrlStream))
	for range p.passes {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ftrl: %w", err)
		}
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, i := range order {
			xi := x[i*d : (i+1)*d]
			if sw != nil {
				l.UpdateWeighted(xi, y[i], sw[i])
			} else {
				l.Update(xi, y[i])
			}
		}
	}
	return l, nil
}

// sampleWeights returns the weight of every row: 1, or with class_weight "balanced"
// scikit-learn's n_samples / (n_classes * count of the row's class).
func sampleWeights(y []float64, classWeight string) []float64 {
	var positives int
	for _, v := range y {
		if v != 0 {
			positives++
		}
	}
	sw := make([]float64, len(y))
	for i, v := range y {
		sw[i] = 1
		if classWeight == "balanced" {
			count := positives
			if v == 0 {
				count = len(y) - positives
			}
			sw[i] = float64(len(y)) / (2 * float64(count))
		}
	}
	return sw
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

// predictRows returns the probabilities of the given rows of t, as Predict gives them.
func (m *Model) predictRows(t *tabular.Table, features, rows []int) []float64 {
	values := make([]Value, len(features))
	scratch := make([]float64, m.width)
	p := make([]float64, len(rows))
	for i, r := range rows {
		for k, j := range features {
			values[k], _ = tableValue(t, j, r, t.Schema.Columns[j].Kind)
		}
		p[i], _ = m.Predict(values, scratch)
	}
	return p
}

// evaluateRows predicts the given rows, as Predict does, and evaluates them against their
// labels at the model's threshold.
func (m *Model) evaluateRows(t *tabular.Table, features, y, rows []int) pulse.EvalMetrics {
	labels := make([]int, len(rows))
	for i, r := range rows {
		labels[i] = y[r]
	}
	return Evaluate(labels, m.predictRows(t, features, rows), m.threshold)
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
