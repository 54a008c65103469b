package ml

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/ml/gbdt"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Artifact format identifiers.
const (
	ArtifactFormat        = "pulse.model"
	ArtifactSchemaVersion = 1
)

// artifact is the JSON layout of a model. Every algorithm has its own payload field beside
// the shared inputs, so that new algorithms extend the format without changing what exists:
// "logreg" (coefficients and parameters), "gbdt" (the gbdt.Ensemble document) or "ftrl" (the
// ftrl.Learner state, from which the model can keep learning). gbdt and ftrl keep their
// training parameters in "params". Exactly one payload is present, that of "algorithm".
type artifact struct {
	Format        string          `json:"format"`
	SchemaVersion int             `json:"schema_version"`
	Algorithm     string          `json:"algorithm"`
	Target        string          `json:"target"`
	Threshold     float64         `json:"threshold"`
	Inputs        []artifactInput `json:"inputs"`
	Params        map[string]any  `json:"params,omitempty"`
	LogReg        *artifactLogReg `json:"logreg,omitempty"`
	GBDT          *gbdt.Ensemble  `json:"gbdt,omitempty"`
	FTRL          *ftrl.Learner   `json:"ftrl,omitempty"`
}

// artifactInput is one input. With logreg a numeric input has its median, mean and scale and
// a binary or categorical one its mode; with gbdt and ftrl (raw encoding) they have neither.
type artifactInput struct {
	Name       string     `json:"name"`
	Kind       pulse.Kind `json:"kind"`
	Missing    int        `json:"missing"`
	Median     *float64   `json:"median,omitempty"`
	Mean       *float64   `json:"mean,omitempty"`
	Scale      *float64   `json:"scale,omitempty"`
	Categories []string   `json:"categories,omitempty"`
	Mode       *string    `json:"mode,omitempty"`
}

type artifactLogReg struct {
	Intercept    *float64  `json:"intercept"`
	Coef         []float64 `json:"coef"`
	C            float64   `json:"C"`
	Penalty      string    `json:"penalty,omitempty"`  // absent in artifacts from before penalties: l2
	L1Ratio      *float64  `json:"l1_ratio,omitempty"` // elasticnet only
	ClassWeight  string    `json:"class_weight"`
	MaxIter      int       `json:"max_iter"`
	Tol          float64   `json:"tol"`
	Converged    bool      `json:"converged"`
	Iterations   int       `json:"iterations"`
	GradientNorm float64   `json:"gradient_norm"`
}

// Encode returns the model's artifact: deterministic JSON that starts with
// {"format":"pulse.model","schema_version":1,...}. Floats are written so that Decode reads
// back the same bits, and the decoded model predicts identically.
func Encode(m *Model) ([]byte, error) {
	if m == nil || (m.logReg == nil && m.gbdt == nil && m.ftrl == nil) {
		return nil, errors.New("encode model: no fitted model")
	}
	a := artifact{
		Format:        ArtifactFormat,
		SchemaVersion: ArtifactSchemaVersion,
		Algorithm:     m.algorithm,
		Target:        m.target,
		Threshold:     m.threshold,
		Inputs:        make([]artifactInput, len(m.inputs)),
	}
	for i, in := range m.inputs {
		ai := artifactInput{Name: in.name, Kind: in.kind, Missing: in.missing}
		switch {
		case in.kind != pulse.Numeric:
			ai.Categories = in.categories
			if !m.raw {
				ai.Mode = ptr(in.categories[in.mode])
			}
		case !m.raw:
			ai.Median, ai.Mean, ai.Scale = ptr(in.median), ptr(in.mean), ptr(in.scale)
		}
		a.Inputs[i] = ai
	}
	switch {
	case m.logReg != nil:
		lr := m.logReg
		a.LogReg = &artifactLogReg{
			Intercept: ptr(lr.intercept), Coef: lr.coef,
			C: lr.params.c, Penalty: lr.params.penalty, ClassWeight: lr.params.classWeight,
			MaxIter: lr.params.maxIter, Tol: lr.params.tol,
			Converged: lr.converged, Iterations: lr.iterations, GradientNorm: lr.gradNorm,
		}
		if lr.params.penalty == PenaltyElasticNet {
			a.LogReg.L1Ratio = ptr(lr.params.l1Ratio)
		}
	case m.gbdt != nil:
		a.GBDT = m.gbdt.ens
		a.Params = effectiveFields(m.gbdt.params.fields())
	case m.ftrl != nil:
		a.FTRL = m.ftrl.learner
		a.Params = effectiveFields(m.ftrl.params.fields())
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "num > 0" readable
	if err := enc.Encode(a); err != nil {
		return nil, fmt.Errorf("encode model: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func ptr[T any](v T) *T { return &v }

func decodeError(format string, args ...any) error {
	return pulse.Errorf(pulse.EUNPROCESSABLE, "model artifact: "+format, args...)
}

// Decode reads a model artifact. When wantSHA256 (hex) is not empty, the SHA-256 of b must
// equal it. Decode checks the format, the schema version, the algorithm, that exactly its
// payload is present and valid (the gbdt and ftrl packages validate theirs) and that every
// value is present, finite and of the right count, so that a truncated or corrupt artifact is
// an error (EUNPROCESSABLE), never a model.
func Decode(b []byte, wantSHA256 string) (*Model, error) {
	if wantSHA256 != "" {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, wantSHA256) {
			return nil, decodeError("sha256 is %s, want %s: the artifact is corrupt or not the one recorded", got, wantSHA256)
		}
	}
	var head struct {
		Format        string `json:"format"`
		SchemaVersion int    `json:"schema_version"`
		Algorithm     string `json:"algorithm"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, decodeError("not valid JSON (%v)", err)
	}
	if head.Format != ArtifactFormat {
		return nil, decodeError("format is %q, want %q", head.Format, ArtifactFormat)
	}
	if head.SchemaVersion != ArtifactSchemaVersion {
		return nil, decodeError("schema_version %d is unknown; this build reads %d", head.SchemaVersion, ArtifactSchemaVersion)
	}
	switch head.Algorithm {
	case AlgorithmLogReg, AlgorithmGBDT, AlgorithmFTRL:
	default:
		return nil, decodeError("algorithm %q is unknown; this build reads logreg, gbdt and ftrl", head.Algorithm)
	}

	var a artifact
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil { // b is one valid JSON value: Unmarshal checked
		return nil, decodeError("%v", err)
	}

	m := &Model{algorithm: a.Algorithm, target: a.Target, threshold: a.Threshold, raw: a.Algorithm != AlgorithmLogReg}
	if m.target == "" {
		return nil, decodeError("target is empty")
	}
	if !(a.Threshold > 0 && a.Threshold < 1) {
		return nil, decodeError("threshold %v is not between 0 and 1", a.Threshold)
	}
	if len(a.Inputs) == 0 {
		return nil, decodeError("no inputs")
	}
	m.inputs = make([]input, len(a.Inputs))
	for i, ai := range a.Inputs {
		in, err := decodeInput(ai, m.raw)
		if err != nil {
			return nil, decodeError("input %d (%q): %v", i+1, ai.Name, err)
		}
		for _, prev := range m.inputs[:i] {
			if prev.name == in.name {
				return nil, decodeError("input %q appears twice", in.name)
			}
		}
		m.inputs[i] = in
	}
	m.init()
	if m.width > MaxWidth {
		return nil, decodeError("%d encoded values, want at most %d", m.width, MaxWidth)
	}

	payloads := 0
	for _, set := range []bool{a.LogReg != nil, a.GBDT != nil, a.FTRL != nil} {
		if set {
			payloads++
		}
	}
	if payloads > 1 {
		return nil, decodeError("%d algorithm payloads, want only the %s one", payloads, a.Algorithm)
	}
	var err error
	switch a.Algorithm {
	case AlgorithmLogReg:
		if a.Params != nil {
			return nil, decodeError("a logreg artifact keeps its parameters in the logreg payload, not params")
		}
		if m.logReg, err = decodeLogReg(a.LogReg, m.width); err == nil {
			m.prepare()
		}
	case AlgorithmGBDT:
		err = m.decodeGBDT(a.GBDT, a.Params)
	case AlgorithmFTRL:
		err = m.decodeFTRL(a.FTRL, a.Params)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func decodeLogReg(lr *artifactLogReg, width int) (*logReg, error) {
	switch {
	case lr == nil:
		return nil, decodeError("the logreg payload is missing")
	case lr.Intercept == nil || !finite(*lr.Intercept):
		return nil, decodeError("logreg intercept is missing or not finite")
	case len(lr.Coef) != width:
		return nil, decodeError("logreg has %d coefficients, want %d for the inputs", len(lr.Coef), width)
	case !(lr.C > 0) || !finite(lr.C) || !(lr.Tol > 0) || !finite(lr.Tol) || lr.MaxIter < 1 || lr.Iterations < 0 || !finite(lr.GradientNorm):
		return nil, decodeError("logreg parameters are out of range")
	case lr.ClassWeight != "none" && lr.ClassWeight != "balanced":
		return nil, decodeError("logreg class_weight %q is unknown", lr.ClassWeight)
	}
	p := logRegParams{c: lr.C, penalty: lr.Penalty, maxIter: lr.MaxIter, tol: lr.Tol, classWeight: lr.ClassWeight}
	switch lr.Penalty {
	case "", PenaltyL2:
		p.penalty = PenaltyL2
	case PenaltyL1:
		p.l1Ratio = 1
	case PenaltyElasticNet:
		if lr.L1Ratio == nil || !(*lr.L1Ratio >= 0 && *lr.L1Ratio <= 1) {
			return nil, decodeError("logreg l1_ratio is missing or not from 0 to 1")
		}
		p.l1Ratio = *lr.L1Ratio
	default:
		return nil, decodeError("logreg penalty %q is unknown", lr.Penalty)
	}
	if lr.L1Ratio != nil && p.penalty != PenaltyElasticNet {
		return nil, decodeError("logreg l1_ratio is set for penalty %s", p.penalty)
	}
	for j, c := range lr.Coef {
		if !finite(c) {
			return nil, decodeError("logreg coefficient %d is not finite", j+1)
		}
	}
	return &logReg{
		coef: lr.Coef, intercept: *lr.Intercept, params: p,
		converged: lr.Converged, iterations: lr.Iterations, gradNorm: lr.GradientNorm,
	}, nil
}

// decodeParams reads the training parameters of gbdt or ftrl as Train reads Spec.Params.
func decodeParams(algorithm string, raw map[string]any) (params, error) {
	if raw == nil {
		return params{}, decodeError("the %s parameters are missing", algorithm)
	}
	for _, k := range commonParams {
		if _, ok := raw[k]; ok {
			return params{}, decodeError("params hold %s, which belongs at the top level", k)
		}
	}
	p, err := parseParams(algorithm, raw)
	if err != nil {
		return params{}, decodeError("%v", err)
	}
	return p, nil
}

func (m *Model) decodeGBDT(e *gbdt.Ensemble, raw map[string]any) error {
	if e == nil {
		return decodeError("the gbdt payload is missing")
	}
	p, err := decodeParams(AlgorithmGBDT, raw)
	if err != nil {
		return err
	}
	if e.NumFeatures() != m.width {
		return decodeError("gbdt takes %d values, want %d for the inputs", e.NumFeatures(), m.width)
	}
	m.gbdt = &gbdtModel{ens: e, params: p.gbdt}
	return nil
}

func (m *Model) decodeFTRL(l *ftrl.Learner, raw map[string]any) error {
	if l == nil {
		return decodeError("the ftrl payload is missing")
	}
	p, err := decodeParams(AlgorithmFTRL, raw)
	if err != nil {
		return err
	}
	if l.Dim() != m.width {
		return decodeError("ftrl takes %d values, want %d for the inputs", l.Dim(), m.width)
	}
	lp := l.Params()
	if !slices.Equal(lp.NoScale, m.noScale()) {
		return decodeError("ftrl leaves %v unscaled, want the binary and categorical values %v", lp.NoScale, m.noScale())
	}
	lp.NoScale = nil
	if !reflect.DeepEqual(lp, p.ftrl.p) {
		return decodeError("the ftrl state's parameters differ from params")
	}
	m.ftrl = &ftrlModel{learner: l, params: p.ftrl}
	return nil
}

func decodeInput(ai artifactInput, raw bool) (input, error) {
	in := input{name: ai.Name, kind: ai.Kind, missing: ai.Missing, mode: -1}
	if in.name == "" {
		return in, errors.New("empty name")
	}
	if ai.Missing < 0 {
		return in, fmt.Errorf("missing count %d is negative", ai.Missing)
	}
	switch ai.Kind {
	case pulse.Numeric:
		if ai.Categories != nil || ai.Mode != nil {
			return in, errors.New("a numeric input has no categories or mode")
		}
		if raw {
			if ai.Median != nil || ai.Mean != nil || ai.Scale != nil {
				return in, errors.New("a numeric input of gbdt or ftrl has no median, mean or scale")
			}
			return in, nil
		}
		if ai.Median == nil || ai.Mean == nil || ai.Scale == nil {
			return in, errors.New("a numeric input needs median, mean and scale")
		}
		in.median, in.mean, in.scale = *ai.Median, *ai.Mean, *ai.Scale
		if !finite(in.median) || !finite(in.mean) || !finite(in.scale) || !(in.scale > 0) {
			return in, errors.New("median, mean and scale must be finite and scale positive")
		}
	case pulse.Binary, pulse.Categorical:
		if ai.Median != nil || ai.Mean != nil || ai.Scale != nil {
			return in, errors.New("a binary or categorical input has no median, mean or scale")
		}
		n := len(ai.Categories)
		if n == 0 || (ai.Kind == pulse.Binary && n > 2) {
			return in, fmt.Errorf("%d categories for a %s input", n, ai.Kind)
		}
		if !strictlySorted(ai.Categories) || ai.Categories[0] == "" {
			return in, errors.New("categories must be non-empty, unique and sorted")
		}
		in.categories = ai.Categories
		if raw {
			if ai.Mode != nil {
				return in, errors.New("an input of gbdt or ftrl has no mode")
			}
			return in, nil
		}
		if ai.Mode == nil {
			return in, errors.New("mode is missing")
		}
		if in.mode = slices.Index(in.categories, *ai.Mode); in.mode < 0 {
			return in, fmt.Errorf("mode %q is not a category", *ai.Mode)
		}
	default:
		return in, fmt.Errorf("kind %q is unknown", ai.Kind)
	}
	return in, nil
}

func finite(f float64) bool {
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}
