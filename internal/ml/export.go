package ml

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Read-only views of a fitted model, for exporters that reproduce its scoring elsewhere (such
// as SQL). Every slice returned is a copy.

// InputPreprocessing is how one raw input is encoded before the algorithm sees it.
type InputPreprocessing struct {
	Name string
	Kind pulse.Kind
	// Numeric inputs of logreg: a missing value is replaced by Median, then the value is
	// standardised as (x-Mean)/Scale. Zero for raw encodings (gbdt, ftrl).
	Median, Mean, Scale float64
	// Binary and categorical inputs: the categories seen in training (canonical form, sorted).
	// A binary input encodes Categories[1] as 1 and anything else as 0; a categorical input
	// is one-hot over Categories.
	Categories []string
	// Mode is the index in Categories of the category that replaces a missing value (logreg),
	// -1 when missing values are left to the algorithm.
	Mode int
}

// Preprocessing returns the encoding of every input, in Inputs() order, and whether the
// encoding is raw (gbdt, ftrl: numeric values as they are, missing values as NaN in every
// encoded column of the input) rather than imputed and standardised (logreg).
func (m *Model) Preprocessing() (inputs []InputPreprocessing, raw bool) {
	inputs = make([]InputPreprocessing, len(m.inputs))
	for i, in := range m.inputs {
		inputs[i] = InputPreprocessing{
			Name: in.name, Kind: in.kind,
			Median: in.median, Mean: in.mean, Scale: in.scale,
			Categories: slices.Clone(in.categories), Mode: in.mode,
		}
	}
	return inputs, m.raw
}

// LogRegCoefficients returns the coefficients of a logreg model over the encoded inputs (one
// per numeric or binary input, one per category of a categorical input, in Inputs() order)
// and its intercept; ok is false for other algorithms. The score is
// intercept + sum(coef[k] * x[k]) over the encoded row x, and the probability its sigmoid.
func (m *Model) LogRegCoefficients() (coef []float64, intercept float64, ok bool) {
	if m.logReg == nil {
		return nil, 0, false
	}
	return slices.Clone(m.logReg.coef), m.logReg.intercept, true
}

// Tree is one regression tree of a gbdt model. Internal node i splits on encoded feature
// Feature[i]: a value <= Threshold[i] (which may be +Inf) goes to Left[i], a greater one to
// Right[i], a missing one (NaN) to Left[i] when DefaultLeft[i], else Right[i]. A child c >= 0
// is internal node c, c < 0 is leaf -c-1 with value LeafValue[-c-1]. A tree without internal
// nodes is the single leaf 0. The root is node 0.
type Tree struct {
	Feature     []int32
	Threshold   []float64
	Left, Right []int32
	DefaultLeft []bool
	LeafValue   []float64
}

// GBDTTrees returns the trees of a gbdt model and its base score: the log-odds is the base
// score plus the leaf value each tree selects, added in tree order, and the probability its
// sigmoid. ok is false for other algorithms.
func (m *Model) GBDTTrees() (trees []Tree, baseScore float64, ok bool, err error) {
	if m.gbdt == nil {
		return nil, 0, false, nil
	}
	b, err := m.gbdt.ens.MarshalJSON()
	if err != nil {
		return nil, 0, true, fmt.Errorf("gbdt trees: %w", err)
	}
	var doc struct {
		BaseScore float64 `json:"base_score"`
		Trees     []struct {
			Feature     []int32           `json:"feature"`
			Threshold   []json.RawMessage `json:"threshold"`
			Left        []int32           `json:"left"`
			Right       []int32           `json:"right"`
			DefaultLeft []bool            `json:"default_left"`
			LeafValue   []float64         `json:"leaf_value"`
		} `json:"trees"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, 0, true, fmt.Errorf("gbdt trees: %w", err)
	}
	trees = make([]Tree, len(doc.Trees))
	for t, tr := range doc.Trees {
		ths := make([]float64, len(tr.Threshold))
		for i, r := range tr.Threshold {
			if string(r) == `"+Inf"` {
				ths[i] = math.Inf(1)
			} else if err := json.Unmarshal(r, &ths[i]); err != nil {
				return nil, 0, true, fmt.Errorf("gbdt trees: tree %d, threshold %d: %w", t, i, err)
			}
		}
		trees[t] = Tree{
			Feature: tr.Feature, Threshold: ths, Left: tr.Left, Right: tr.Right,
			DefaultLeft: tr.DefaultLeft, LeafValue: tr.LeafValue,
		}
	}
	return trees, doc.BaseScore, true, nil
}

// FTRLState is what an ftrl model scores with: per encoded input its weight, whether it is
// standardised and with which running mean and standard deviation, and the bias. The margin
// is the sum, in encoded order, of weight * value over the present inputs (a standardised
// value is (x-Mean)/SD clipped to [-ftrl.Clip, ftrl.Clip]), plus the bias, clipped to
// [-35, 35]; the probability is its sigmoid.
type FTRLState struct {
	Weights  []float64
	Bias     float64
	Scaled   []bool
	Mean, SD []float64
}

// FTRL returns the scoring state of an ftrl model; ok is false for other algorithms.
func (m *Model) FTRL() (s FTRLState, ok bool) {
	if m.ftrl == nil {
		return FTRLState{}, false
	}
	l := m.ftrl.learner
	s.Weights, s.Bias = l.Weights()
	s.Mean, s.SD = l.Scaling()
	p := l.Params()
	s.Scaled = make([]bool, len(s.Weights))
	if p.Scale {
		for i := range s.Scaled {
			s.Scaled[i] = true
		}
		for _, i := range p.NoScale {
			if i >= 0 && i < len(s.Scaled) {
				s.Scaled[i] = false
			}
		}
	}
	return s, true
}
