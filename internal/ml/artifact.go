package ml

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Artifact format identifiers.
const (
	ArtifactFormat        = "pulse.model"
	ArtifactSchemaVersion = 1
)

// artifact is the JSON layout of a model. Every algorithm has its own payload field beside
// the shared inputs (logreg now; gbdt and ftrl later), so that new algorithms extend the format
// without changing what exists.
type artifact struct {
	Format        string          `json:"format"`
	SchemaVersion int             `json:"schema_version"`
	Algorithm     string          `json:"algorithm"`
	Target        string          `json:"target"`
	Threshold     float64         `json:"threshold"`
	Inputs        []artifactInput `json:"inputs"`
	LogReg        *artifactLogReg `json:"logreg,omitempty"`
}

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
	if m == nil || m.logReg == nil {
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
		if in.kind == pulse.Numeric {
			ai.Median, ai.Mean, ai.Scale = ptr(in.median), ptr(in.mean), ptr(in.scale)
		} else {
			ai.Categories = in.categories
			ai.Mode = ptr(in.categories[in.mode])
		}
		a.Inputs[i] = ai
	}
	lr := m.logReg
	a.LogReg = &artifactLogReg{
		Intercept: ptr(lr.intercept), Coef: lr.coef,
		C: lr.c, ClassWeight: lr.classWeight, MaxIter: lr.maxIter, Tol: lr.tol,
		Converged: lr.converged, Iterations: lr.iterations, GradientNorm: lr.gradNorm,
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
// equal it. Decode checks the format, the schema version, the algorithm and that every value
// is present, finite and of the right count, so that a truncated or corrupt artifact is an
// error (EUNPROCESSABLE), never a model.
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
	if head.Algorithm != AlgorithmLogReg {
		return nil, decodeError("algorithm %q is unknown; this build reads %s", head.Algorithm, AlgorithmLogReg)
	}

	var a artifact
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil { // b is one valid JSON value: Unmarshal checked
		return nil, decodeError("%v", err)
	}

	m := &Model{algorithm: a.Algorithm, target: a.Target, threshold: a.Threshold}
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
		in, err := decodeInput(ai)
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

	lr := a.LogReg
	switch {
	case lr == nil:
		return nil, decodeError("the logreg payload is missing")
	case lr.Intercept == nil || !finite(*lr.Intercept):
		return nil, decodeError("logreg intercept is missing or not finite")
	case len(lr.Coef) != m.width:
		return nil, decodeError("logreg has %d coefficients, want %d for the inputs", len(lr.Coef), m.width)
	case !(lr.C > 0) || !finite(lr.C) || !(lr.Tol > 0) || !finite(lr.Tol) || lr.MaxIter < 1 || lr.Iterations < 0 || !finite(lr.GradientNorm):
		return nil, decodeError("logreg parameters are out of range")
	case lr.ClassWeight != "none" && lr.ClassWeight != "balanced":
		return nil, decodeError("logreg class_weight %q is unknown", lr.ClassWeight)
	}
	for j, c := range lr.Coef {
		if !finite(c) {
			return nil, decodeError("logreg coefficient %d is not finite", j+1)
		}
	}
	m.logReg = &logReg{
		coef: lr.Coef, intercept: *lr.Intercept,
		c: lr.C, classWeight: lr.ClassWeight, maxIter: lr.MaxIter, tol: lr.Tol,
		converged: lr.Converged, iterations: lr.Iterations, gradNorm: lr.GradientNorm,
	}
	return m, nil
}

func decodeInput(ai artifactInput) (input, error) {
	in := input{name: ai.Name, kind: ai.Kind, missing: ai.Missing}
	if in.name == "" {
		return in, errors.New("empty name")
	}
	if ai.Missing < 0 {
		return in, fmt.Errorf("missing count %d is negative", ai.Missing)
	}
	switch ai.Kind {
	case pulse.Numeric:
		if ai.Median == nil || ai.Mean == nil || ai.Scale == nil {
			return in, errors.New("a numeric input needs median, mean and scale")
		}
		if ai.Categories != nil || ai.Mode != nil {
			return in, errors.New("a numeric input has no categories or mode")
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
		if ai.Mode == nil {
			return in, errors.New("mode is missing")
		}
		in.categories = ai.Categories
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
