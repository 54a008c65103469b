package ml

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// AlgorithmLogReg is L2-regularised logistic regression.
const AlgorithmLogReg = "logreg"

// Model is a trained model: how to encode its raw inputs and the fitted algorithm. It is
// immutable and safe for concurrent use. Models come from Train or Decode.
type Model struct {
	algorithm string
	target    string
	threshold float64
	inputs    []input
	columns   []pulse.Column // Inputs()
	width     int
	logReg    *logReg
}

// input is one raw input feature and its preprocessing, fitted on the training rows.
type input struct {
	name    string
	kind    pulse.Kind
	code    kindCode // kind, for a fast switch
	missing int      // missing cells in the training rows

	// numeric: impute with median, then (x-mean)/scale
	median, mean, scale float64

	// binary (Categories[1] -> 1) and categorical (one-hot): the categories and the index of
	// the one that replaces a missing value
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
	coef        []float64
	intercept   float64
	c           float64
	classWeight string
	maxIter     int
	tol         float64
	converged   bool
	iterations  int
	gradNorm    float64
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
// missing: it is imputed as in training.
type Value struct {
	Num     float64
	Str     string
	Present bool
}

// Predict returns the probability of class 1 for one row. values are in Inputs() order. A
// numeric value that is not finite counts as missing. unknown is the number of binary or
// categorical values not seen in training, which are encoded as all zeros. If
// len(values) != len(Inputs()), p is NaN. Predict allocates nothing.
//
// scratch is working space of at least Width() values for algorithms that need an encoded row;
// logreg scores without it, so nil is fine.
func (m *Model) Predict(values []Value, scratch []float64) (p float64, unknown int) {
	if len(values) != len(m.inputs) {
		return math.NaN(), 0
	}
	z, unknown := m.score(values)
	return sigmoid(z), unknown
}

// score returns the logistic regression's score of one row without encoding it: the same
// terms, in the same order, as linear over the encoded row minus its zero terms, so that it
// is bit-identical to sigmoid(linear(coef, intercept, encode(values))).
func (m *Model) score(values []Value) (z float64, unknown int) {
	coef := m.logReg.coef
	var s float64
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
			s += coef[k] * ((f - in.mean) / in.scale)
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
	return s + m.logReg.intercept, unknown
}

// encode writes the encoded values of one row into x (len m.width), the design matrix of the
// fit, and returns how many categories were unknown.
func (m *Model) encode(values []Value, x []float64) (unknown int) {
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
	p = make([]float64, t.Rows)
	for r := range t.Rows {
		for i, in := range m.inputs {
			if values[i], err = tableValue(t, cols[i], r, in.kind); err != nil {
				return nil, 0, err
			}
		}
		var u int
		p[r], u = m.Predict(values, nil)
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

// Describe returns a human-readable summary, ready for JSON: the coefficient of every encoded
// feature, also in the original units of numeric inputs (coef/scale, with the intercept
// adjusted to match), whether the fit converged and in how many iterations, and the
// parameters.
func (m *Model) Describe() map[string]any {
	lr := m.logReg
	coefs := make([]map[string]any, 0, m.width)
	intercept := lr.intercept
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
	return map[string]any{
		"algorithm":                m.algorithm,
		"target":                   m.target,
		"threshold":                m.threshold,
		"inputs":                   len(m.inputs),
		"width":                    m.width,
		"intercept":                lr.intercept,
		"intercept_original_units": intercept,
		"coefficients":             coefs,
		"converged":                lr.converged,
		"iterations":               lr.iterations,
		"gradient_norm":            lr.gradNorm,
		"params": map[string]any{
			"C": lr.c, "class_weight": lr.classWeight, "max_iter": lr.maxIter, "tol": lr.tol,
			"threshold": m.threshold,
		},
	}
}
