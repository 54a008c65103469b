package ml

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/ml/gbdt"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Algorithms.
const (
	AlgorithmLogReg = "logreg" // logistic regression with an L2, L1 or elastic-net penalty
	AlgorithmGBDT   = "gbdt"   // histogram gradient-boosted decision trees (package gbdt)
	AlgorithmFTRL   = "ftrl"   // online logistic regression by FTRL-Proximal (package ftrl)
)

// Defaults of the parameters common to every algorithm.
const (
	DefaultThreshold = 0.5
)

// params are the parameters of one training, after defaults: those common to every algorithm
// and those of the one algorithm.
type params struct {
	algorithm string
	// threshold is the decision threshold; with targetSensitivity > 0 Train replaces it by the
	// one it chooses from the out-of-fold predictions.
	threshold         float64
	targetSensitivity float64 // 0 when not asked for
	// the algorithm's own parameters; only the one of algorithm is set
	logReg logRegParams
	gbdt   gbdtParams
	ftrl   ftrlParams
}

// commonParams are the parameters every algorithm takes.
var commonParams = []string{"threshold", "target_sensitivity"}

// paramError is the error of a parameter that has the wrong type or value.
func paramError(k string, v any, want string) error {
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params."+k, "params.%s: got %s, want %s", k, show(v), want)
}

// parseParams reads Spec.Params for the algorithm. Numbers may be any Go integer or float type
// or a json.Number, so that parameters decoded from JSON are accepted as they are. Keys are
// read in sorted order so that the first bad one is reported deterministically.
func parseParams(algorithm string, raw map[string]any) (params, error) {
	p := params{algorithm: algorithm, threshold: DefaultThreshold}
	var known []string
	switch algorithm {
	case AlgorithmLogReg:
		p.logReg = defaultLogRegParams()
		known = logRegParamNames
	case AlgorithmGBDT:
		p.gbdt = defaultGBDTParams()
		known = p.gbdt.names()
	case AlgorithmFTRL:
		p.ftrl = defaultFTRLParams()
		known = p.ftrl.names()
	default:
		return p, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "algorithm", "algorithm: got %q, want logreg, gbdt or ftrl", algorithm)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := raw[k]
		var err error
		switch k {
		case "threshold":
			f, ok := toFloat(v)
			if !ok || !(f > 0 && f < 1) {
				return p, paramError(k, v, "a number between 0 and 1 (exclusive)")
			}
			p.threshold = f
		case "target_sensitivity":
			f, ok := toFloat(v)
			if !ok || !(f > 0 && f < 1) {
				return p, paramError(k, v, "a number between 0 and 1 (exclusive)")
			}
			p.targetSensitivity = f
		default:
			if !slices.Contains(known, k) {
				return p, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params."+k,
					"params.%s: unknown parameter of %s; want one of %s", k, algorithm, strings.Join(append(slices.Clone(known), commonParams...), ", "))
			}
			switch algorithm {
			case AlgorithmLogReg:
				err = p.logReg.set(k, v)
			case AlgorithmGBDT:
				err = setField(p.gbdt.fields(), k, v)
			case AlgorithmFTRL:
				err = setField(p.ftrl.fields(), k, v)
			}
		}
		if err != nil {
			return p, err
		}
	}
	var err error
	switch algorithm {
	case AlgorithmLogReg:
		err = p.logReg.check(raw)
	case AlgorithmGBDT:
		err = p.gbdt.p.Validate()
	case AlgorithmFTRL:
		err = p.ftrl.p.Validate()
	}
	return p, err
}

// effective returns the parameters as a map, ready to record and to pass back to Train.
func (p params) effective() map[string]any {
	var m map[string]any
	switch p.algorithm {
	case AlgorithmLogReg:
		m = p.logReg.effective()
	case AlgorithmGBDT:
		m = effectiveFields(p.gbdt.fields())
	case AlgorithmFTRL:
		m = effectiveFields(p.ftrl.fields())
	default:
		m = map[string]any{}
	}
	m["threshold"] = p.threshold
	if p.targetSensitivity > 0 {
		m["target_sensitivity"] = p.targetSensitivity
	}
	return m
}

// Penalties of logreg.
const (
	PenaltyL2         = "l2"
	PenaltyL1         = "l1"
	PenaltyElasticNet = "elasticnet"
)

// logRegParams are the parameters of logreg after defaults.
type logRegParams struct {
	c           float64
	penalty     string  // PenaltyL2, PenaltyL1 or PenaltyElasticNet
	l1Ratio     float64 // the L1 share of the penalty: 0 for l2, 1 for l1
	maxIter     int
	tol         float64
	classWeight string // "none" or "balanced"
}

var logRegParamNames = []string{"C", "penalty", "l1_ratio", "max_iter", "tol", "class_weight"}

// maxIterLimit bounds max_iter.
const maxIterLimit = 10000

func defaultLogRegParams() logRegParams {
	return logRegParams{c: 1, penalty: PenaltyL2, maxIter: 100, tol: 1e-8, classWeight: "none"}
}

// set reads one parameter of logreg.
func (p *logRegParams) set(k string, v any) error {
	switch k {
	case "C":
		f, ok := toFloat(v)
		if !ok || !(f > 0) || math.IsInf(f, 0) {
			return paramError(k, v, "a positive number")
		}
		p.c = f
	case "penalty":
		s, ok := v.(string)
		if !ok || (s != PenaltyL2 && s != PenaltyL1 && s != PenaltyElasticNet) {
			return paramError(k, v, `"l2", "l1" or "elasticnet"`)
		}
		p.penalty = s
	case "l1_ratio":
		f, ok := toFloat(v)
		if !ok || !(f >= 0 && f <= 1) {
			return paramError(k, v, "a number from 0 to 1")
		}
		p.l1Ratio = f
	case "max_iter":
		n, ok := toInt(v, 1, maxIterLimit)
		if !ok {
			return paramError(k, v, fmt.Sprintf("a whole number from 1 to %d", maxIterLimit))
		}
		p.maxIter = n
	case "tol":
		f, ok := toFloat(v)
		if !ok || !(f > 0) || math.IsInf(f, 0) {
			return paramError(k, v, "a positive number")
		}
		p.tol = f
	case "class_weight":
		s, ok := v.(string)
		if v != nil && (!ok || (s != "balanced" && s != "none")) {
			return paramError(k, v, `"balanced" or "none"`)
		}
		if ok {
			p.classWeight = s
		}
	}
	return nil
}

// check relates penalty and l1_ratio once both are read: l1_ratio is required with
// elasticnet, and with l1 or l2 it may only repeat what the penalty means (1 or 0).
func (p *logRegParams) check(raw map[string]any) error {
	v, given := raw["l1_ratio"]
	switch p.penalty {
	case PenaltyElasticNet:
		if !given {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params.l1_ratio",
				"params.l1_ratio: penalty elasticnet needs l1_ratio, a number from 0 to 1 (the L1 share of the penalty)")
		}
	case PenaltyL1, PenaltyL2:
		want := 0.0
		if p.penalty == PenaltyL1 {
			want = 1
		}
		if given && p.l1Ratio != want {
			return paramError("l1_ratio", v, fmt.Sprintf("%v or nothing with penalty %s (l1_ratio applies to elasticnet)", want, p.penalty))
		}
		p.l1Ratio = want
	}
	return nil
}

// effective returns the parameters of logreg as a map; l1_ratio only with elasticnet.
func (p logRegParams) effective() map[string]any {
	m := map[string]any{
		"C":            p.c,
		"penalty":      p.penalty,
		"max_iter":     p.maxIter,
		"tol":          p.tol,
		"class_weight": p.classWeight,
	}
	if p.penalty == PenaltyElasticNet {
		m["l1_ratio"] = p.l1Ratio
	}
	return m
}

// gbdtParams are the parameters of gbdt after defaults. Params.Seed is Spec.Seed, not a
// parameter.
type gbdtParams struct {
	p           gbdt.Params
	classWeight string
}

func defaultGBDTParams() gbdtParams {
	return gbdtParams{p: gbdt.DefaultParams(), classWeight: "none"}
}

// fields lists the parameters of gbdt by their JSON names (those gbdt.Params.Validate
// reports), and class_weight.
func (p *gbdtParams) fields() []field {
	g := &p.p
	return []field{
		{name: "learning_rate", f: &g.LearningRate},
		{name: "num_trees", i: &g.NumTrees},
		{name: "max_leaves", i: &g.MaxLeaves},
		{name: "max_depth", i: &g.MaxDepth},
		{name: "min_samples_leaf", i: &g.MinSamplesLeaf},
		{name: "min_hessian_leaf", f: &g.MinHessianLeaf},
		{name: "l2", f: &g.L2},
		{name: "max_bins", i: &g.MaxBins},
		{name: "subsample", f: &g.Subsample},
		{name: "feature_fraction", f: &g.FeatureFraction},
		{name: "early_stopping", b: &g.EarlyStopping},
		{name: "validation_fraction", f: &g.ValidationFraction},
		{name: "patience", i: &g.Patience},
		{name: "tol", f: &g.Tol},
		{name: "class_weight", s: &p.classWeight, choices: []string{"none", "balanced"}},
	}
}

func (p *gbdtParams) names() []string { return fieldNames(p.fields()) }

// ftrlParams are the parameters of ftrl after defaults. Params.NoScale is derived from the
// inputs (binary and categorical columns are not scaled), not a parameter.
type ftrlParams struct {
	p           ftrl.Params
	passes      int // shuffled passes over the training rows
	classWeight string
}

// maxPasses bounds ftrl's passes.
const maxPasses = 1000

func defaultFTRLParams() ftrlParams {
	return ftrlParams{p: ftrl.DefaultParams(), passes: 10, classWeight: "none"}
}

// fields lists the parameters of ftrl by their JSON names, and passes and class_weight.
func (p *ftrlParams) fields() []field {
	f := &p.p
	return []field{
		{name: "alpha", f: &f.Alpha},
		{name: "beta", f: &f.Beta},
		{name: "l1", f: &f.L1},
		{name: "l2", f: &f.L2},
		{name: "scale", b: &f.Scale},
		{name: "passes", i: &p.passes, min: 1, max: maxPasses},
		{name: "class_weight", s: &p.classWeight, choices: []string{"none", "balanced"}},
	}
}

func (p *ftrlParams) names() []string { return fieldNames(p.fields()) }

// field is one parameter held in a struct: exactly one of f, i, b and s is set. An int
// parameter is checked against [min, max] when max > 0 (otherwise the package's Validate
// checks its range); a string one against choices.
type field struct {
	name     string
	f        *float64
	i        *int
	min, max int
	b        *bool
	s        *string
	choices  []string
}

// setField sets the field named k to v, checking its type.
func setField(fields []field, k string, v any) error {
	for _, fd := range fields {
		if fd.name != k {
			continue
		}
		switch {
		case fd.f != nil:
			f, ok := toFloat(v)
			if !ok || math.IsInf(f, 0) {
				return paramError(k, v, "a number")
			}
			*fd.f = f
		case fd.i != nil:
			lo, hi := math.MinInt32, math.MaxInt32
			want := "a whole number"
			if fd.max > 0 {
				lo, hi = fd.min, fd.max
				want = fmt.Sprintf("a whole number from %d to %d", lo, hi)
			}
			n, ok := toInt(v, lo, hi)
			if !ok {
				return paramError(k, v, want)
			}
			*fd.i = n
		case fd.b != nil:
			b, ok := v.(bool)
			if !ok {
				return paramError(k, v, "true or false")
			}
			*fd.b = b
		case fd.s != nil:
			s, ok := v.(string)
			if !ok || !slices.Contains(fd.choices, s) {
				return paramError(k, v, `"`+strings.Join(fd.choices, `" or "`)+`"`)
			}
			*fd.s = s
		}
		return nil
	}
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params."+k, "params.%s: unknown parameter", k)
}

// effectiveFields returns the fields' values by name.
func effectiveFields(fields []field) map[string]any {
	m := make(map[string]any, len(fields)+2)
	for _, fd := range fields {
		switch {
		case fd.f != nil:
			m[fd.name] = *fd.f
		case fd.i != nil:
			m[fd.name] = *fd.i
		case fd.b != nil:
			m[fd.name] = *fd.b
		case fd.s != nil:
			m[fd.name] = *fd.s
		}
	}
	return m
}

func fieldNames(fields []field) []string {
	names := make([]string, len(fields))
	for i, fd := range fields {
		names[i] = fd.name
	}
	return names
}

// toInt reads a whole number from lo to hi.
func toInt(v any, lo, hi int) (int, bool) {
	f, ok := toFloat(v)
	if !ok || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, false
	}
	return int(f), true
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n)
	case float32:
		return float64(n), !math.IsNaN(float64(n))
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

// show renders a parameter value for an error message.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	s := string(b)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.TrimSpace(s)
}
