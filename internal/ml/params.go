package ml

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// logRegParams are the parameters of logreg after defaults.
type logRegParams struct {
	c           float64
	maxIter     int
	tol         float64
	classWeight string // "none" or "balanced"
	threshold   float64
}

// maxIterLimit bounds max_iter.
const maxIterLimit = 10000

// parseLogRegParams reads Spec.Params for logreg. Numbers may be any Go integer or float type
// or a json.Number, so that parameters decoded from JSON are accepted as they are.
func parseLogRegParams(params map[string]any) (logRegParams, error) {
	p := logRegParams{c: 1, maxIter: 100, tol: 1e-8, classWeight: "none", threshold: 0.5}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the first bad key deterministically
	for _, k := range keys {
		v := params[k]
		bad := func(want string) error {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params."+k, "params.%s: got %s, want %s", k, show(v), want)
		}
		switch k {
		case "C":
			f, ok := toFloat(v)
			if !ok || !(f > 0) || math.IsInf(f, 0) {
				return p, bad("a positive number")
			}
			p.c = f
		case "max_iter":
			f, ok := toFloat(v)
			if !ok || f != math.Trunc(f) || f < 1 || f > maxIterLimit {
				return p, bad(fmt.Sprintf("a whole number from 1 to %d", maxIterLimit))
			}
			p.maxIter = int(f)
		case "tol":
			f, ok := toFloat(v)
			if !ok || !(f > 0) || math.IsInf(f, 0) {
				return p, bad("a positive number")
			}
			p.tol = f
		case "class_weight":
			s, ok := v.(string)
			if v != nil && (!ok || (s != "balanced" && s != "none")) {
				return p, bad(`"balanced" or "none"`)
			}
			if ok {
				p.classWeight = s
			}
		case "threshold":
			f, ok := toFloat(v)
			if !ok || !(f > 0 && f < 1) {
				return p, bad("a number between 0 and 1 (exclusive)")
			}
			p.threshold = f
		default:
			return p, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params."+k,
				"params.%s: unknown parameter of logreg; want C, max_iter, tol, class_weight or threshold", k)
		}
	}
	return p, nil
}

// effective returns the parameters as a map, ready to record and to pass back to Train.
func (p logRegParams) effective() map[string]any {
	return map[string]any{
		"C":            p.c,
		"max_iter":     p.maxIter,
		"tol":          p.tol,
		"class_weight": p.classWeight,
		"threshold":    p.threshold,
	}
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
