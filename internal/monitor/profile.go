package monitor

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// ProfileFormat is the version of the Profile document that this package writes and reads.
const ProfileFormat = 1

// DefaultBins is the number of quantile bins of a numeric input's profile.
const DefaultBins = 10

// maxBins bounds the bins of a numeric input (and so the edges a profile may hold).
const maxBins = 100

// Profile is the training distribution of a model's inputs and of its score, the reference
// that recent traffic is compared with (see DriftWindow). It is a small JSON document (a few
// kilobytes for the heart-disease model) stored with each version.
type Profile struct {
	// Format is ProfileFormat.
	Format int `json:"format"`
	// Rows is the number of rows profiled.
	Rows int `json:"rows"`
	// Features are the model's inputs, in the order of ml.Model.Inputs.
	Features []FeatureProfile `json:"features"`
	// Score is the distribution of the predicted probability in the 10 fixed bins
	// [0, 0.1), ..., [0.9, 1] (Edges 0.1 ... 0.9), the bins of the calibration curve.
	Score FeatureProfile `json:"score"`
}

// FeatureProfile is the training distribution of one input, as proportions of its present
// (non-missing) values over bins, and its missing rate.
type FeatureProfile struct {
	Name string     `json:"name"`
	Kind pulse.Kind `json:"kind"`
	// Edges, for a numeric input, are the interior bin edges, strictly increasing: bin 0 is
	// (-Inf, Edges[0]), bin i is [Edges[i-1], Edges[i]), the last is [Edges[last], +Inf).
	// They are training quantiles (at 1/bins, 2/bins, ...) without repeats and without the
	// smallest value, so that no bin is empty in training. JSON cannot hold the infinite
	// ends, so they are implied.
	Edges []float64 `json:"edges,omitempty"`
	// Categories, for a binary or categorical input, are the model's training categories
	// (canonical, sorted); one more bin, the last, holds the values of any other category.
	Categories []string `json:"categories,omitempty"`
	// Proportions are the shares of the present training values per bin: len(Edges)+1 of
	// them for a numeric input, len(Categories)+1 for the others. They sum to 1.
	Proportions []float64 `json:"proportions"`
	// MissingRate is the share of training rows where the input is missing.
	MissingRate float64 `json:"missing_rate"`
}

// bins returns the number of bins of the present values.
func (f *FeatureProfile) bins() int {
	if f.Kind == pulse.Numeric {
		return len(f.Edges) + 1
	}
	return len(f.Categories) + 1
}

// BuildProfile profiles every row of t (the data set the model was trained from) for model
// m: each input's value is read from the column of the same name, as ml.Model.PredictTable
// reads it, and the score is m's probability of class 1. Numeric inputs get DefaultBins
// quantile bins.
func BuildProfile(m *ml.Model, t *tabular.Table) (*Profile, error) {
	if m == nil || t == nil {
		return nil, pulse.Errorf(pulse.EINVALID, "build profile: a model and a table are required")
	}
	scores, _, err := m.PredictTable(t)
	if err != nil {
		return nil, fmt.Errorf("build profile: %w", err)
	}
	inputs := m.Inputs()
	cols := make([][]ml.Value, len(inputs))
	for i, in := range inputs {
		j := t.Schema.Index(in.Name)
		if j < 0 { // PredictTable has checked; kept for safety
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, in.Name, "the data has no column %q, an input of the model", in.Name)
		}
		cols[i] = make([]ml.Value, t.Rows)
		for r := range t.Rows {
			if cols[i][r], err = tableValue(t, j, r, in.Kind); err != nil {
				return nil, fmt.Errorf("build profile: %w", err)
			}
		}
	}
	return profile(inputs, cols, scores, DefaultBins)
}

// ProfileFromRows profiles rows of raw input values (each in the order of inputs, as
// ml.Model.Predict takes them) and their scores. inputs are the model's inputs
// (ml.Model.Inputs): binary and categorical ones must list their categories. bins is the
// number of quantile bins of numeric inputs, 0 meaning DefaultBins.
func ProfileFromRows(inputs []pulse.Column, rows [][]ml.Value, scores []float64, bins int) (*Profile, error) {
	if len(rows) != len(scores) {
		return nil, pulse.Errorf(pulse.EINVALID, "profile: got %d rows and %d scores, want as many", len(rows), len(scores))
	}
	cols := make([][]ml.Value, len(inputs))
	for i := range cols {
		cols[i] = make([]ml.Value, len(rows))
	}
	for r, row := range rows {
		if len(row) != len(inputs) {
			return nil, pulse.Errorf(pulse.EINVALID, "profile: row %d has %d values, want %d", r+1, len(row), len(inputs))
		}
		for i, v := range row {
			cols[i][r] = v
		}
	}
	return profile(inputs, cols, scores, bins)
}

// profile builds the profile of the columns of values and the scores.
func profile(inputs []pulse.Column, cols [][]ml.Value, scores []float64, bins int) (*Profile, error) {
	if bins == 0 {
		bins = DefaultBins
	}
	if bins < 2 || bins > maxBins {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "bins", "profile: bins: got %d, want 2 to %d", bins, maxBins)
	}
	n := len(scores)
	if n == 0 {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "profile: no rows")
	}
	if len(inputs) == 0 {
		return nil, pulse.Errorf(pulse.EINVALID, "profile: the model has no inputs")
	}
	p := &Profile{Format: ProfileFormat, Rows: n, Features: make([]FeatureProfile, len(inputs))}
	for i, in := range inputs {
		f, err := featureProfile(in, cols[i], bins)
		if err != nil {
			return nil, err
		}
		p.Features[i] = f
	}
	p.Score = FeatureProfile{Name: "score", Kind: pulse.Numeric, Edges: slices.Clone(scoreEdges[:]), Proportions: make([]float64, len(scoreEdges)+1)}
	for r, s := range scores {
		if !(s >= 0 && s <= 1) {
			return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "profile: row %d: score %v, want a probability in [0, 1]", r+1, s)
		}
		p.Score.Proportions[bin(scoreEdges[:], s)]++
	}
	for b := range p.Score.Proportions {
		p.Score.Proportions[b] /= float64(n)
	}
	return p, nil
}

// featureProfile profiles one input's values.
func featureProfile(in pulse.Column, vals []ml.Value, bins int) (FeatureProfile, error) {
	f := FeatureProfile{Name: in.Name, Kind: in.Kind}
	missing := 0
	switch in.Kind {
	case pulse.Numeric:
		present := make([]float64, 0, len(vals))
		for _, v := range vals {
			if v.Present && !math.IsNaN(v.Num) && !math.IsInf(v.Num, 0) {
				present = append(present, v.Num)
			} else {
				missing++
			}
		}
		if len(present) == 0 {
			return f, pulse.FieldErrorf(pulse.EUNPROCESSABLE, in.Name, "profile: input %q has no values", in.Name)
		}
		slices.Sort(present)
		f.Edges = quantileEdges(present, bins)
		f.Proportions = make([]float64, len(f.Edges)+1)
		for _, x := range present {
			f.Proportions[bin(f.Edges, x)]++
		}
		for b := range f.Proportions {
			f.Proportions[b] /= float64(len(present))
		}
	case pulse.Binary, pulse.Categorical:
		if len(in.Categories) == 0 {
			return f, pulse.FieldErrorf(pulse.EINVALID, in.Name, "profile: input %q lists no categories", in.Name)
		}
		f.Categories = slices.Clone(in.Categories)
		f.Proportions = make([]float64, len(f.Categories)+1)
		c := newCategoryIndex(f.Categories)
		present := 0
		for _, v := range vals {
			if !v.Present {
				missing++
				continue
			}
			present++
			f.Proportions[c.index(v.Str)]++
		}
		if present == 0 {
			return f, pulse.FieldErrorf(pulse.EUNPROCESSABLE, in.Name, "profile: input %q has no values", in.Name)
		}
		for b := range f.Proportions {
			f.Proportions[b] /= float64(present)
		}
	default:
		return f, pulse.FieldErrorf(pulse.EINVALID, in.Name, "profile: input %q: kind %q, want numeric, binary or categorical", in.Name, in.Kind)
	}
	f.MissingRate = float64(missing) / float64(len(vals))
	return f, nil
}

// quantileEdges returns the interior edges of bins quantile bins of the sorted values x: the
// values x[floor(i·n/bins)] for i = 1 .. bins-1, without repeats and without x[0] (an edge
// there would leave bin 0 empty).
func quantileEdges(x []float64, bins int) []float64 {
	n := len(x)
	var edges []float64
	for i := 1; i < bins; i++ {
		e := x[i*n/bins]
		if e > x[0] && (len(edges) == 0 || e > edges[len(edges)-1]) {
			edges = append(edges, e)
		}
	}
	return edges
}

// categoryIndex finds the bin of a category: its position in the sorted categories, or
// len(categories) (the "other" bin) for any other value.
type categoryIndex struct {
	cats   []string
	lookup map[string]int // for many categories; nil means a linear scan
}

// lookupMin is the number of categories from which a map is faster than a linear scan.
const lookupMin = 16

func newCategoryIndex(cats []string) categoryIndex {
	c := categoryIndex{cats: cats}
	if len(cats) >= lookupMin {
		c.lookup = make(map[string]int, len(cats))
		for i, s := range cats {
			c.lookup[s] = i
		}
	}
	return c
}

func (c categoryIndex) index(s string) int {
	if c.lookup != nil {
		if i, ok := c.lookup[s]; ok {
			return i
		}
		return len(c.cats)
	}
	for i, cat := range c.cats {
		if cat == s {
			return i
		}
	}
	return len(c.cats)
}

// Validate checks a profile read back from storage: the format, and bins that DriftWindow
// can use (edges finite and increasing, proportions in [0, 1], one per bin). Errors are
// EUNPROCESSABLE *pulse.Error values naming the field.
func (p *Profile) Validate() error {
	if p == nil {
		return pulse.Errorf(pulse.EINVALID, "profile: missing")
	}
	if p.Format != ProfileFormat {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "format", "profile: format: got %d, want %d", p.Format, ProfileFormat)
	}
	if len(p.Features) == 0 {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "features", "profile: features: none, want one per model input")
	}
	for i := range p.Features {
		if err := p.Features[i].validate(fmt.Sprintf("features[%d]", i)); err != nil {
			return err
		}
	}
	if p.Score.Kind != pulse.Numeric || !slices.Equal(p.Score.Edges, scoreEdges[:]) {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "score", "profile: score: want a numeric profile with edges 0.1 ... 0.9")
	}
	return p.Score.validate("score")
}

func (f *FeatureProfile) validate(field string) error {
	bad := func(format string, args ...any) error {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "profile: "+field+" ("+strconv.Quote(f.Name)+"): "+format, args...)
	}
	switch f.Kind {
	case pulse.Numeric:
		if len(f.Categories) > 0 {
			return bad("a numeric input has no categories")
		}
		if len(f.Edges) >= maxBins {
			return bad("%d edges, want fewer than %d", len(f.Edges), maxBins)
		}
		for i, e := range f.Edges {
			if math.IsNaN(e) || math.IsInf(e, 0) || (i > 0 && e <= f.Edges[i-1]) {
				return bad("edges must be finite and strictly increasing")
			}
		}
	case pulse.Binary, pulse.Categorical:
		if len(f.Categories) == 0 || len(f.Edges) > 0 {
			return bad("want categories and no edges")
		}
	default:
		return bad("kind %q, want numeric, binary or categorical", f.Kind)
	}
	if len(f.Proportions) != f.bins() {
		return bad("%d proportions, want %d", len(f.Proportions), f.bins())
	}
	for _, q := range f.Proportions {
		if !(q >= 0 && q <= 1) {
			return bad("proportion %v, want a number in [0, 1]", q)
		}
	}
	if !(f.MissingRate >= 0 && f.MissingRate <= 1) {
		return bad("missing_rate %v, want a number in [0, 1]", f.MissingRate)
	}
	return nil
}

// tableValue returns row r of column j of t as a value for an input of the given kind, as
// ml.Model.PredictTable reads it (a copy of ml's unexported tableValue).
func tableValue(t *tabular.Table, j, r int, kind pulse.Kind) (ml.Value, error) {
	col := t.Schema.Columns[j]
	if col.Kind == pulse.Numeric {
		f := t.Num[j][r]
		if math.IsNaN(f) {
			return ml.Value{}, nil
		}
		if kind == pulse.Numeric {
			return ml.Value{Num: f, Present: true}, nil
		}
		return ml.Value{Str: strconv.FormatFloat(f, 'g', -1, 64), Present: true}, nil
	}
	s := t.Cat[j][r]
	if s == "" {
		return ml.Value{}, nil
	}
	if kind != pulse.Numeric {
		return ml.Value{Str: s, Present: true}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return ml.Value{}, &pulse.Error{
			Code:    pulse.EUNPROCESSABLE,
			Row:     r + 1,
			Field:   col.Name,
			Message: fmt.Sprintf("row %d, column %q: got %q, want a number", r+1, col.Name, s),
		}
	}
	return ml.Value{Num: f, Present: true}, nil
}
