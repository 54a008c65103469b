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
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, prefix+name, "field %q is reserved for the response", prefix+name)
		}
	}
	used := 0
	for i, col := range inputs {
		raw, ok := fields[col.Name]
		values[i] = ml.Value{}
		if !ok || isNull(raw) {
			continue
		}
		used++
		field := prefix + col.Name
		switch col.Kind {
		case pulse.Numeric:
			if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
				return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %s, want a number", field, describe(raw))
			}
			f, err := strconv.ParseFloat(string(raw), 64)
			if err != nil {
				return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %s, want a number in float64 range", field, raw)
			}
			values[i] = ml.Value{Num: f, Present: true}
		case pulse.Categorical, pulse.Binary:
			s, err := category(raw, col)
			if err != nil {
				return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %s, %v", field, describe(raw), err)
			}
			if _, found := slices.BinarySearch(col.Categories, s); !found {
				if col.Kind == pulse.Binary {
					return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: got %q, want one of %q", field, s, col.Categories)
				}
				if strict {
					return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %q: category %q was not seen in training, want one of %q", field, s, col.Categories)
				}
				warnings = append(warnings, fmt.Sprintf("field %q: category %q was not seen in training; encoded as unknown", field, s))
			}
			values[i] = ml.Value{Str: s, Present: true}
		default:
			return nil, pulse.Errorf(pulse.EINTERNAL, "input %q has unknown kind %q", col.Name, col.Kind)
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
			slices.Sort(unknown)
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, prefix+unknown[0], "field %q is not an input of this model (strict mode)", prefix+unknown[0])
		}
	}
	return warnings, nil
}

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
