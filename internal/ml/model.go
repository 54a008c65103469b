package ml

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/ml/gbdt"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// Model is a trained model: how to encode its raw inputs and the fitted algorithm. It is
// immutable and safe for concurrent use. Models come from Train or Decode.
type Model struct {
	algorithm string
	target    string
	threshold float64
	inputs    []input
	columns   []pulse.Column // Inputs()
	width     int
	// raw says how inputs are encoded. Off (logreg): numeric values imputed with the median
	// and standardised, missing categories imputed with the mode. On (gbdt, ftrl): numeric
	// values as they are and NaN for every missing value, left to the algorithm.
	raw bool
	// Exactly one payload is set, that of algorithm.
	logReg *logReg
	gbdt   *gbdtModel
	ftrl   *ftrlModel
}

// gbdtModel is a fitted gradient-boosted ensemble over the encoded inputs.
type gbdtModel struct {
	ens    *gbdt.Ensemble
	params gbdtParams
}

// ftrlModel is an FTRL-Proximal learner over the encoded inputs. The model never updates it:
// Learner hands out copies.
type ftrlModel struct {
	learner *ftrl.Learner
	params  ftrlParams
}

// input is one raw input feature and its preprocessing, fitted on the training rows.
type input struct {
	name    string
	kind    pulse.Kind
	code    kindCode // kind, for a fast switch
	missing int      // missing cells in the training rows

	// numeric: impute with median, then (x-mean)/scale (not with raw encoding)
	median, mean, scale float64

	// binary (Categories[1] -> 1) and categorical (one-hot): the categories and the index of
	// the one that replaces a missing value (-1 with raw encoding)
	categories []string
	mode       int
	lookup     map[string]int // for many categories; nil means a linear scan
}

// kindCode is a pulse.Kind as a small integer.
type kindCode uint8

const (
	numericCode kindCode = iota
	binaryCode
	categoricalCode
)

// lookupMin is the number of categories from which a map is faster than a linear scan.
const lookupMin = 16

// index returns the position of category s, or -1.
func (in *input) index(s string) int {
	if in.lookup != nil {
		if i, ok := in.lookup[s]; ok {
			return i
		}
		return -1
	}
	for i, c := range in.categories {
		// Categories are non-empty; the first byte rejects most of them without a call.
		if len(c) == len(s) && c[0] == s[0] && c == s {
			return i
		}
	}
	return -1
}

// width is the number of encoded values of the input.
func (in *input) width() int {
	if in.kind == pulse.Categorical {
		return len(in.categories)
	}
	return 1
}

// logReg is a fitted logistic regression over the encoded inputs.
type logReg struct {
	coef      []float64
	intercept float64
	// slope and bias fold each numeric input's standardisation into its coefficient
	// (coef/scale, and -coef*mean/scale summed into bias) so that scoring multiplies and adds
	// but never divides; derived by prepare, not stored.
	slope      []float64
	bias       float64
	params     logRegParams
	converged  bool
	iterations int
	gradNorm   float64 // of the minimum-norm subgradient with an L1 penalty
}

// prepare derives the scoring terms of a logistic regression from its coefficients and the
// inputs' standardisation. It runs once, when the model is made (Train or Decode).
func (m *Model) prepare() {
	lr := m.logReg
	if lr == nil {
		return
	}
	lr.slope = make([]float64, len(m.inputs))
	lr.bias = lr.intercept
	k := 0
	for i := range m.inputs {
		in := &m.inputs[i]
		if in.code == numericCode {
			lr.slope[i] = lr.coef[k] / in.scale
			lr.bias -= lr.slope[i] * in.mean
		}
		k += in.width()
	}
}

// init derives the encoded width, the category lookups and the columns from m.inputs.
func (m *Model) init() {
	m.width = 0
	m.columns = make([]pulse.Column, len(m.inputs))
	for i := range m.inputs {
		in := &m.inputs[i]
		m.columns[i] = pulse.Column{Name: in.name, Kind: in.kind, Missing: in.missing}
		if in.kind != pulse.Numeric {
			m.columns[i].Categories = slices.Clip(in.categories)
		}
		switch in.kind {
		case pulse.Numeric:
			in.code = numericCode
		case pulse.Binary:
			in.code = binaryCode
		default:
			in.code = categoricalCode
		}
		m.width += in.width()
		if len(in.categories) >= lookupMin {
			in.lookup = make(map[string]int, len(in.categories))
			for j, c := range in.categories {
				in.lookup[c] = j
			}
		}
	}
}

// Algorithm returns the model's algorithm, such as "logreg".
func (m *Model) Algorithm() string { return m.algorithm }

// Target returns the target expression the model was trained for, such as "num > 0".
func (m *Model) Target() string { return m.target }

// Threshold returns the probability at or above which the predicted label is 1.
func (m *Model) Threshold() float64 { return m.threshold }

// Width returns the number of encoded values: the minimum length of Predict's scratch.
func (m *Model) Width() int { return m.width }

// Inputs returns the raw input features in the order Predict takes them, with their kinds,
// the categories seen in training (sorted) and the number of missing training values. The
// slice is the model's own, returned without copying: callers must not modify it.
func (m *Model) Inputs() []pulse.Column { return m.columns }

// Value is one raw input value. For numeric inputs Num is used; for binary and categorical
// inputs Str holds the canonical category (pulse.CanonicalCategory). Present false means
// missing: logreg imputes it as in training, gbdt and ftrl handle it natively.
type Value struct {
	Num     float64
	Str     string
	Present bool
}

// Predict returns the probability of class 1 for one row. values are in Inputs() order. A
// numeric value that is not finite counts as missing. unknown is the number of binary or
// categorical values not seen in training, which are encoded as all zeros. If
// len(values) != len(Inputs()), p is NaN.
//
// scratch is working space for the encoded row: gbdt and ftrl need Width() values, logreg
// scores without it (nil is fine). With scratch of at least Width() values Predict allocates
// nothing; a shorter one makes gbdt and ftrl allocate their own.
func (m *Model) Predict(values []Value, scratch []float64) (p float64, unknown int) {
	if len(values) != len(m.inputs) {
		return math.NaN(), 0
	}
	if m.logReg != nil {
		z, unknown := m.score(values)
		return sigmoid(z), unknown
	}
	x := scratch
	if len(x) < m.width {
		x = make([]float64, m.width)
	}
	x = x[:m.width]
	unknown = m.encode(values, x)
	switch {
	case m.gbdt != nil:
		return m.gbdt.ens.Predict(x), unknown
	case m.ftrl != nil:
		return m.ftrl.learner.Predict(x), unknown
	}
	return math.NaN(), unknown
}

// Encode writes the encoded row of values (in Inputs() order) into x, the vector the
// algorithm learns from and scores: for ftrl, what Learner().Update takes, so that a stream
// of raw values can keep training. It returns the number of binary or categorical values not
// seen in training (encoded as zeros). It allocates nothing; len(values) must be
// len(Inputs()) and len(x) at least Width(), else it returns an EINVALID error.
func (m *Model) Encode(values []Value, x []float64) (unknown int, err error) {
	if len(values) != len(m.inputs) || len(x) < m.width {
		return 0, pulse.Errorf(pulse.EINVALID, "encode: got %d values and room for %d, want %d and %d",
			len(values), len(x), len(m.inputs), m.width)
	}
	return m.encode(values, x[:m.width]), nil
}

// Learner returns a copy of the FTRL learner of an ftrl model, ready to keep learning from
// rows encoded by Encode, and nil for other algorithms. WithLearner turns it back into a model.
func (m *Model) Learner() *ftrl.Learner {
	if m.ftrl == nil {
		return nil
	}
	return m.ftrl.learner.Clone()
}

// WithLearner returns a copy of the ftrl model m with a copy of l as its learner (say, after
// it learnt from more rows), sharing the inputs and threshold. l must have m's width and
// scale the same features.
func (m *Model) WithLearner(l *ftrl.Learner) (*Model, error) {
	if m.ftrl == nil {
		return nil, pulse.Errorf(pulse.EINVALID, "with learner: the model is %s, not ftrl", m.algorithm)
	}
	if l == nil || l.Dim() != m.width || !slices.Equal(l.Params().NoScale, m.noScale()) {
		return nil, pulse.Errorf(pulse.EINVALID, "with learner: the learner does not take this model's %d encoded inputs", m.width)
	}
	c := *m
	c.ftrl = &ftrlModel{learner: l.Clone(), params: m.ftrl.params}
	c.ftrl.params.p = l.Params()
	c.ftrl.params.p.NoScale = nil
	return &c, nil
}

// noScale returns the positions of the encoded binary and categorical values: those ftrl
// does not standardise.
func (m *Model) noScale() []int {
	var idx []int
	k := 0
	for i := range m.inputs {
		in := &m.inputs[i]
		w := in.width()
		if in.kind != pulse.Numeric {
			for j := range w {
				idx = append(idx, k+j)
			}
		}
		k += w
	}
	return idx
}

// score returns the logistic regression's score of one row without encoding it: the linear
// function of linear over the encoded row, with each input's standardisation folded into its
// slope and the bias (equal to it within rounding). Each product is rounded before it is
// added, never fused with the sum, so that ml.Linear's terms give the same bits.
func (m *Model) score(values []Value) (z float64, unknown int) {
	lr := m.logReg
	coef := lr.coef
	s := lr.bias
	k := 0
	for i := range m.inputs {
		in := &m.inputs[i]
		v := &values[i]
		switch in.code {
		case numericCode:
			f := v.Num
			if !v.Present || math.IsNaN(f) || math.IsInf(f, 0) {
				f = in.median
			}
			s += float64(lr.slope[i] * f) // the product rounded, never fused with the sum (ml.Linear adds it as a term)
			k++
		case binaryCode:
			j := in.mode
			if v.Present {
				if j = in.index(v.Str); j < 0 {
					unknown++
				}
			}
			if j == 1 {
				s += coef[k]
			}
			k++
		default: // categorical
			j := in.mode
			if v.Present {
				if j = in.index(v.Str); j < 0 {
					unknown++
				}
			}
			if j >= 0 {
				s += coef[k+j]
			}
			k += len(in.categories)
		}
	}
	return s, unknown
}

// encode writes the encoded values of one row into x (len m.width), the design matrix of the
// fit, and returns how many categories were unknown.
func (m *Model) encode(values []Value, x []float64) (unknown int) {
	if m.raw {
		return m.encodeRaw(values, x)
	}
	k := 0
	for i := range m.inputs {
		in := &m.inputs[i]
		v := &values[i]
		switch in.code {
		case numericCode:
			f := v.Num
			if !v.Present || math.IsNaN(f) || math.IsInf(f, 0) {
				f = in.median
			}
			x[k] = (f - in.mean) / in.scale
			k++
		case binaryCode:
			j := in.mode
			if v.Present {
				if j = in.index(v.Str); j < 0 {
					unknown++
				}
			}
			x[k] = 0
			if j == 1 {
				x[k] = 1
			}
			k++
		default: // categorical
			n := len(in.categories)
			clear(x[k : k+n])
			j := in.mode
			if v.Present {
				if j = in.index(v.Str); j < 0 {
					unknown++
				}
			}
			if j >= 0 {
				x[k+j] = 1
			}
			k += n
		}
	}
	return unknown
}

// encodeRaw is encode for gbdt and ftrl: numeric values as they are, NaN for a missing value
// (in every column of a categorical input), zeros for an unknown category.
func (m *Model) encodeRaw(values []Value, x []float64) (unknown int) {
	nan := math.NaN()
	k := 0
	for i := range m.inputs {
		in := &m.inputs[i]
		v := &values[i]
		switch in.code {
		case numericCode:
			f := v.Num
			if !v.Present || math.IsInf(f, 0) {
				f = nan
			}
			x[k] = f
			k++
		case binaryCode:
			x[k] = nan
			if v.Present {
				j := in.index(v.Str)
				if j < 0 {
					unknown++
				}
				x[k] = 0
				if j == 1 {
					x[k] = 1
				}
			}
			k++
		default: // categorical
			n := len(in.categories)
			row := x[k : k+n]
			if !v.Present {
				for j := range row {
					row[j] = nan
				}
			} else {
				clear(row)
				if j := in.index(v.Str); j >= 0 {
					row[j] = 1
				} else {
					unknown++
				}
			}
			k += n
		}
	}
	return unknown
}

// PredictTable returns the probability of class 1 of every row of t, whose columns are
// matched to the model's inputs by name. A numeric column feeds a binary or categorical input
// through its canonical text; a binary or categorical column feeds a numeric input when its
// categories are numbers. unknown counts the values of categories not seen in training.
func (m *Model) PredictTable(t *tabular.Table) (p []float64, unknown int, err error) {
	if err := checkTable(t); err != nil {
		return nil, 0, err
	}
	cols := make([]int, len(m.inputs))
	for i, in := range m.inputs {
		if cols[i] = t.Schema.Index(in.name); cols[i] < 0 {
			return nil, 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, in.name, "the data has no column %q, an input of the model", in.name)
		}
	}
	values := make([]Value, len(m.inputs))
	scratch := make([]float64, m.width)
	p = make([]float64, t.Rows)
	for r := range t.Rows {
		for i, in := range m.inputs {
			if values[i], err = tableValue(t, cols[i], r, in.kind); err != nil {
				return nil, 0, err
			}
		}
		var u int
		p[r], u = m.Predict(values, scratch)
		unknown += u
	}
	return p, unknown, nil
}

// tableValue returns row r of column j of t as a Value for an input of the given kind.
func tableValue(t *tabular.Table, j, r int, kind pulse.Kind) (Value, error) {
	col := t.Schema.Columns[j]
	if col.Kind == pulse.Numeric {
		f := t.Num[j][r]
		if math.IsNaN(f) {
			return Value{}, nil
		}
		if kind == pulse.Numeric {
			return Value{Num: f, Present: true}, nil
		}
		return Value{Str: strconv.FormatFloat(f, 'g', -1, 64), Present: true}, nil
	}
	s := t.Cat[j][r]
	if s == "" {
		return Value{}, nil
	}
	if kind != pulse.Numeric {
		return Value{Str: s, Present: true}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return Value{}, &pulse.Error{
			Code:    pulse.EUNPROCESSABLE,
			Row:     r + 1,
			Field:   col.Name,
			Message: fmt.Sprintf("row %d, column %q: got %q, want a number", r+1, col.Name, s),
		}
	}
	return Value{Num: f, Present: true}, nil
}

// Describe returns a human-readable summary, ready for JSON (a number that is not finite
// would be null): the algorithm, target, threshold and parameters, and what the algorithm
// offers. For logreg: the coefficient of every encoded feature, also in the original units of
// numeric inputs (coef/scale, with the intercept adjusted to match), how many are not zero,
// and whether the fit converged, in how many iterations and to which gradient norm. For gbdt:
// the trees, the base score and the importance of every feature and input. For ftrl: the
// examples learnt and every weight, also in original units. Every call returns a new map.
func (m *Model) Describe() map[string]any {
	d := map[string]any{
		"algorithm": m.algorithm,
		"target":    m.target,
		"threshold": m.threshold,
		"inputs":    len(m.inputs),
		"width":     m.width,
	}
	switch {
	case m.logReg != nil:
		m.describeLogReg(d)
	case m.gbdt != nil:
		m.describeGBDT(d)
	case m.ftrl != nil:
		m.describeFTRL(d)
	}
	jsonSafe(d)
	return d
}

// jsonSafe replaces every number of v that JSON cannot hold (NaN, ±Inf) by nil, walking
// Describe's maps and slices, and returns v.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float64:
		if !finite(x) {
			return nil
		}
	case map[string]any:
		for k, e := range x {
			x[k] = jsonSafe(e)
		}
	case []map[string]any:
		for _, e := range x {
			jsonSafe(e)
		}
	}
	return v
}

// encodedFeature names one encoded value: "age", "sex=1", "cp=4".
type encodedFeature struct {
	name, input, category string
	numeric               bool
}

// encodedFeatures lists the encoded values in order.
func (m *Model) encodedFeatures() []encodedFeature {
	fs := make([]encodedFeature, 0, m.width)
	for _, in := range m.inputs {
		switch in.kind {
		case pulse.Numeric:
			fs = append(fs, encodedFeature{name: in.name, input: in.name, numeric: true})
		case pulse.Binary:
			one := ""
			if len(in.categories) > 1 {
				one = in.categories[1]
			}
			fs = append(fs, encodedFeature{name: in.name + "=" + one, input: in.name, category: one})
		default:
			for _, c := range in.categories {
				fs = append(fs, encodedFeature{name: in.name + "=" + c, input: in.name, category: c})
			}
		}
	}
	return fs
}

// describeGBDT: the trees kept, the base score, and the importance (total split gain) of
// every encoded feature and of every input (its features summed), with its share of the total.
func (m *Model) describeGBDT(d map[string]any) {
	e := m.gbdt.ens
	gain := e.Importance()
	var total float64
	for _, g := range gain {
		total += g
	}
	share := func(g float64) float64 {
		if total > 0 {
			return g / total
		}
		return 0
	}
	fs := m.encodedFeatures()
	features := make([]map[string]any, len(fs))
	byInput := make([]map[string]any, 0, len(m.inputs))
	for i, f := range fs {
		g := 0.0
		if i < len(gain) {
			g = gain[i]
		}
		features[i] = map[string]any{"feature": f.name, "input": f.input, "gain": g, "share": share(g)}
		if f.category != "" {
			features[i]["category"] = f.category
		}
		if n := len(byInput); n > 0 && byInput[n-1]["input"] == f.input {
			byInput[n-1]["gain"] = byInput[n-1]["gain"].(float64) + g
		} else {
			byInput = append(byInput, map[string]any{"input": f.input, "gain": g})
		}
	}
	for _, b := range byInput {
		b["share"] = share(b["gain"].(float64))
	}
	params := effectiveFields(m.gbdt.params.fields())
	params["threshold"] = m.threshold
	d["trees"] = e.NumTrees()
	d["best_iteration"] = e.BestIteration()
	d["base_score"] = e.BaseScore()
	d["importance"] = features
	d["importance_by_input"] = byInput
	d["params"] = params
}

// describeFTRL: the examples learnt and the weight of every encoded feature, in the scaled
// space the learner works in and in the original units (weight/sd, the bias adjusted to
// match, as logreg's coefficients; clipping of extreme values aside).
func (m *Model) describeFTRL(d map[string]any) {
	l := m.ftrl.learner
	w, bias := l.Weights()
	mean, sd := l.Scaling()
	fs := m.encodedFeatures()
	weights := make([]map[string]any, len(fs))
	intercept := bias
	nonzero := 0
	for i, f := range fs {
		wi, orig := w[i], w[i]
		e := map[string]any{"feature": f.name, "input": f.input, "weight": wi}
		if f.numeric {
			orig = wi / sd[i]
			intercept -= wi * mean[i] / sd[i]
			e["mean"], e["sd"] = mean[i], sd[i]
		} else {
			e["category"] = f.category
		}
		e["weight_original_units"] = orig
		weights[i] = e
		if wi != 0 {
			nonzero++
		}
	}
	params := effectiveFields(m.ftrl.params.fields())
	params["threshold"] = m.threshold
	d["examples"] = l.Count()
	d["bias"] = bias
	d["bias_original_units"] = intercept
	d["weights"] = weights
	d["nonzero_weights"] = nonzero
	d["params"] = params
}

func (m *Model) describeLogReg(d map[string]any) {
	lr := m.logReg
	coefs := make([]map[string]any, 0, m.width)
	intercept := lr.intercept
	nonzero := 0
	k := 0
	for _, in := range m.inputs {
		switch in.kind {
		case pulse.Numeric:
			c := lr.coef[k]
			coefs = append(coefs, map[string]any{
				"feature": in.name, "input": in.name, "coef": c, "coef_original_units": c / in.scale,
				"mean": in.mean, "scale": in.scale, "median": in.median,
			})
			intercept -= c * in.mean / in.scale
			k++
		case pulse.Binary:
			one := ""
			if len(in.categories) > 1 {
				one = in.categories[1]
			}
			c := lr.coef[k]
			coefs = append(coefs, map[string]any{
				"feature": in.name + "=" + one, "input": in.name, "category": one,
				"coef": c, "coef_original_units": c,
			})
			k++
		default:
			for _, cat := range in.categories {
				c := lr.coef[k]
				coefs = append(coefs, map[string]any{
					"feature": in.name + "=" + cat, "input": in.name, "category": cat,
					"coef": c, "coef_original_units": c,
				})
				k++
			}
		}
	}
	for _, c := range lr.coef {
		if c != 0 {
			nonzero++
		}
	}
	params := lr.params.effective()
	params["threshold"] = m.threshold
	d["intercept"] = lr.intercept
	d["intercept_original_units"] = intercept
	d["coefficients"] = coefs
	d["nonzero_coefficients"] = nonzero
	d["converged"] = lr.converged
	d["iterations"] = lr.iterations
	d["gradient_norm"] = lr.gradNorm
	d["params"] = params
}
