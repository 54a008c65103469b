// Package features reads a model's raw inputs from a JSON object under the documented rules of a
// predict request (docs/API.md, "Scoring rules"): what REST, asynchronous and edge scoring, and
// streams of JSON records such as ingest events, all go through to reach a model.
package features

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Reserved are the response's own fields: an input object may not contain them.
var Reserved = []string{"prediction", "model", "prediction_id", "scored_at", "warnings"}

// Parse fills values (in the order of inputs, a model's Inputs()) from a JSON object's fields.
// prefix is put before field names in errors and warnings (such as "instances[3].").
//
// The rules, documented in docs/API.md:
//   - a missing field, or null, is a missing value, imputed as in training;
//   - numeric inputs take a JSON number (a string, boolean, object or array is refused);
//   - categorical inputs take a string or a number, compared in canonical form ("1", 1 and 1.0
//     are the same category); a category not seen in training is encoded as "unknown" (all
//     one-hot columns zero) and reported in "warnings", or refused in strict mode;
//   - binary inputs take one of their two categories, or true/false when those are 1/0 (a
//     boolean also matches a category that is the word "true" or "false");
//   - fields the model does not use are echoed back and ignored, or refused in strict mode;
//   - the response's own fields (prediction, model, prediction_id, scored_at, warnings) are
//     refused as inputs.
func Parse(inputs []pulse.Column, fields map[string]json.RawMessage, values []ml.Value, prefix string, strict bool) (warnings []string, err error) {
	for _, name := range Reserved {
		if _, ok := fields[name]; ok {
			return nil, reservedError(prefix, name)
		}
	}
	used := 0
	for i := range inputs {
		raw, ok := fields[inputs[i].Name]
		values[i] = ml.Value{}
		if !ok || isNull(raw) {
			continue
		}
		used++
		if warnings, err = read(&inputs[i], nil, raw, &values[i], prefix, strict, warnings); err != nil {
			return nil, err
		}
	}
	if strict && len(fields) > used {
		var unknown []string
		for name := range fields {
			if !slices.ContainsFunc(inputs, func(c pulse.Column) bool { return c.Name == name }) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			return nil, unknownError(prefix, unknown)
		}
	}
	return warnings, nil
}

func reservedError(prefix, name string) error {
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, prefix+name, "field %q is reserved for the response", prefix+name)
}

// unknownError refuses the first of the unknown field names, in sorted order (strict mode).
func unknownError(prefix string, unknown []string) error {
	slices.Sort(unknown)
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, prefix+unknown[0], "field %q is not an input of this model (strict mode)", prefix+unknown[0])
}

// read reads raw, a present value that is not null, as the input col into v and returns
// warnings with the warning it gives, if any. cats, when not nil, finds col's categories
// without allocating.
func read(col *pulse.Column, cats *categories, raw json.RawMessage, v *ml.Value, prefix string, strict bool, warnings []string) ([]string, error) {
	switch col.Kind {
	case pulse.Numeric:
		if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			field := prefix + col.Name
			return warnings, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %s, want a number", field, describe(raw))
		}
		f, err := parseFloat(raw)
		if err != nil {
			field := prefix + col.Name
			return warnings, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %s, want a number in float64 range", field, raw)
		}
		*v = ml.Value{Num: f, Present: true}
	case pulse.Categorical, pulse.Binary:
		if s, ok := cats.find(raw); ok {
			*v = ml.Value{Str: s, Present: true}
			return warnings, nil
		}
		field := prefix + col.Name
		s, err := category(raw, *col)
		if err != nil {
			return warnings, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %s, %v", field, describe(raw), err)
		}
		if _, found := slices.BinarySearch(col.Categories, s); !found {
			if col.Kind == pulse.Binary {
				return warnings, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %q, want one of %q", field, s, col.Categories)
			}
			if strict {
				return warnings, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: category %q was not seen in training, want one of %q", field, s, col.Categories)
			}
			warnings = append(warnings, fmt.Sprintf("field %q: category %q was not seen in training; encoded as unknown", field, s))
		}
		*v = ml.Value{Str: s, Present: true}
	default:
		return warnings, pulse.Errorf(pulse.EINTERNAL, "input %q has unknown kind %q", col.Name, col.Kind)
	}
	return warnings, nil
}

// parseFloat returns the value of the JSON number raw as strconv.ParseFloat does. Plain
// decimals of up to 15 digits, which records are mostly made of, take a fast path of exact
// arithmetic: the digits are an integer below 2^53 and the power of ten one up to 10^22,
// both exact in a float64, so their quotient is the correctly rounded value, as strconv's own
// fast path computes it.
func parseFloat(raw []byte) (float64, error) {
	i, neg := 0, false
	if len(raw) > 0 && raw[0] == '-' {
		i, neg = 1, true
	}
	var mant uint64
	digits, frac := 0, -1 // frac: the digits after the point, -1 before a point
	for ; i < len(raw); i++ {
		c := raw[i]
		switch {
		case '0' <= c && c <= '9':
			mant = mant*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		default:
			digits = 16 // an exponent, or anything else: the general path
		}
		if digits > 15 {
			return strconv.ParseFloat(string(raw), 64)
		}
	}
	if digits == 0 || frac == 0 {
		return strconv.ParseFloat(string(raw), 64) // not a number: strconv's error
	}
	f := float64(mant)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, nil
}

// pow10 are the powers of ten that a float64 holds exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// category returns the canonical category of a JSON string, number or boolean.
func category(raw json.RawMessage, col pulse.Column) (string, error) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("want a string or a number")
		}
		return pulse.CanonicalCategory(s), nil
	case 't', 'f':
		if col.Kind == pulse.Binary && slices.Equal(col.Categories, []string{"0", "1"}) {
			if raw[0] == 't' {
				return "1", nil
			}
			return "0", nil
		}
		// Categories read from a column of the words true and false match the booleans.
		if _, found := slices.BinarySearch(col.Categories, string(raw)); found {
			return string(raw), nil
		}
		return "", fmt.Errorf("want one of %q", col.Categories)
	case '{', '[':
		return "", fmt.Errorf("want a string or a number")
	default:
		return pulse.CanonicalCategory(string(raw)), nil
	}
}

func describe(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string " + string(raw)
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return string(raw)
}
