package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// testInputs cover every kind: numeric, categorical with numeric and text categories, binary
// 0/1 and binary text.
var testInputs = []pulse.Column{
	{Name: "age", Kind: pulse.Numeric},
	{Name: "cp", Kind: pulse.Categorical, Categories: []string{"1", "2", "3"}},
	{Name: "sex", Kind: pulse.Binary, Categories: []string{"0", "1"}},
	{Name: "smoker", Kind: pulse.Binary, Categories: []string{"no", "yes"}},
	{Name: "colour", Kind: pulse.Categorical, Categories: []string{"blue", "green", "red"}},
	{Name: "insured", Kind: pulse.Binary, Categories: []string{"false", "true"}},
}

func TestParse(t *testing.T) {
	num := func(f float64) ml.Value { return ml.Value{Num: f, Present: true} }
	cat := func(s string) ml.Value { return ml.Value{Str: s, Present: true} }
	unseen := func(field, cat string) string {
		return fmt.Sprintf("field %q: category %q was not seen in training; encoded as unknown", field, cat)
	}
	for _, tc := range []struct {
		name   string
		body   string
		prefix string
		strict bool
		// On success: the present values by name and the warnings.
		want     map[string]ml.Value
		warnings []string
		// On error: the field named and a text the message must contain.
		field, msg string
	}{
		{name: "every kind", body: `{"age":63.5,"cp":2,"sex":1,"smoker":"yes","colour":"red"}`,
			want: map[string]ml.Value{"age": num(63.5), "cp": cat("2"), "sex": cat("1"), "smoker": cat("yes"), "colour": cat("red")}},
		{name: "empty object", body: `{}`, want: map[string]ml.Value{}},
		{name: "null is missing", body: `{"age":null,"cp":null,"sex":null,"smoker":null,"colour":null}`,
			want: map[string]ml.Value{}},
		{name: "null is missing in strict mode", body: `{"age":null,"cp":2}`, strict: true,
			want: map[string]ml.Value{"cp": cat("2")}},
		{name: "numbers", body: `{"age":-1.5e1}`, want: map[string]ml.Value{"age": num(-15)}},
		{name: "zero", body: `{"age":0}`, want: map[string]ml.Value{"age": num(0)}},

		{name: "numeric string", body: `{"age":"63"}`, field: "age", msg: `field "age": got a string "63", want a number`},
		{name: "numeric boolean", body: `{"age":true}`, field: "age", msg: `got a boolean, want a number`},
		{name: "numeric object", body: `{"age":{"v":1}}`, field: "age", msg: "got an object"},
		{name: "numeric array", body: `{"age":[63]}`, field: "age", msg: "got an array"},
		{name: "numeric out of range", body: `{"age":1e400}`, field: "age", msg: "float64 range"},
		{name: "numeric string in a batch item", body: `{"age":"sixty"}`, prefix: "instances[2].", field: "instances[2].age",
			msg: `field "instances[2].age": got a string "sixty"`},

		{name: "category as a string", body: `{"cp":"1"}`, want: map[string]ml.Value{"cp": cat("1")}},
		{name: "category as 1.0 text", body: `{"cp":"1.0"}`, want: map[string]ml.Value{"cp": cat("1")}},
		{name: "category as a number", body: `{"cp":1}`, want: map[string]ml.Value{"cp": cat("1")}},
		{name: "category as 1.0", body: `{"cp":1.0}`, want: map[string]ml.Value{"cp": cat("1")}},
		{name: "category as 1e0", body: `{"cp":1e0}`, want: map[string]ml.Value{"cp": cat("1")}},
		{name: "category with spaces", body: `{"colour":" red "}`, want: map[string]ml.Value{"colour": cat("red")}},
		{name: "unseen category is a warning", body: `{"cp":9,"colour":"mauve"}`,
			want:     map[string]ml.Value{"cp": cat("9"), "colour": cat("mauve")},
			warnings: []string{unseen("cp", "9"), unseen("colour", "mauve")}},
		{name: "unseen category in a batch item", body: `{"cp":4.0}`, prefix: "instances[0].",
			want: map[string]ml.Value{"cp": cat("4")}, warnings: []string{unseen("instances[0].cp", "4")}},
		{name: "unseen category, strict", body: `{"cp":9}`, strict: true, field: "cp", msg: `category "9" was not seen in training`},
		{name: "category boolean", body: `{"cp":true}`, field: "cp", msg: "got a boolean"},
		{name: "category object", body: `{"colour":{}}`, field: "colour", msg: "want a string or a number"},
		{name: "category array", body: `{"colour":["red"]}`, field: "colour", msg: "want a string or a number"},

		{name: "binary true", body: `{"sex":true}`, want: map[string]ml.Value{"sex": cat("1")}},
		{name: "binary false", body: `{"sex":false}`, want: map[string]ml.Value{"sex": cat("0")}},
		{name: "binary 1.0", body: `{"sex":1.0}`, want: map[string]ml.Value{"sex": cat("1")}},
		{name: "binary \"0\"", body: `{"sex":"0"}`, want: map[string]ml.Value{"sex": cat("0")}},
		{name: "binary text", body: `{"smoker":"no"}`, want: map[string]ml.Value{"smoker": cat("no")}},
		{name: "binary unknown value", body: `{"sex":7}`, field: "sex", msg: `got "7", want one of ["0" "1"]`},
		{name: "binary unknown value in a batch item", body: `{"sex":2}`, prefix: "instances[1].", field: "instances[1].sex"},
		{name: "binary text unknown value", body: `{"smoker":"maybe"}`, field: "smoker", msg: `want one of ["no" "yes"]`},
		{name: "binary boolean when categories are not 0/1", body: `{"smoker":true}`, field: "smoker", msg: "got a boolean"},
		{name: "binary boolean when categories are the words", body: `{"insured":true}`, want: map[string]ml.Value{"insured": cat("true")}},
		{name: "binary false when categories are the words", body: `{"insured":false}`, want: map[string]ml.Value{"insured": cat("false")}},
		{name: "binary words as strings", body: `{"insured":"true"}`, want: map[string]ml.Value{"insured": cat("true")}},

		{name: "unknown field ignored", body: `{"age":50,"device":"bracelet-7"}`, want: map[string]ml.Value{"age": num(50)}},
		{name: "unknown field, strict", body: `{"age":50,"device":"bracelet-7"}`, strict: true, field: "device", msg: "not an input of this model"},
		{name: "unknown field in a batch item, strict", body: `{"device":1}`, prefix: "instances[3].", strict: true, field: "instances[3].device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.body), &fields); err != nil {
				t.Fatal(err)
			}
			values := make([]ml.Value, len(testInputs))
			for i := range values { // leftovers of a previous instance must not survive
				values[i] = ml.Value{Num: 99, Str: "stale", Present: true}
			}
			warnings, err := Parse(testInputs, fields, values, tc.prefix, tc.strict)
			if tc.field != "" {
				var pe *pulse.Error
				if !errors.As(err, &pe) || pe.Code != pulse.EUNPROCESSABLE || pe.Field != tc.field {
					t.Fatalf("got %#v, want an unprocessable error naming %q", err, tc.field)
				}
				if !strings.Contains(pe.Message, tc.msg) {
					t.Errorf("message: got %q, want it to contain %q", pe.Message, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range testInputs {
				if values[i] != tc.want[c.Name] {
					t.Errorf("%s: got %+v, want %+v", c.Name, values[i], tc.want[c.Name])
				}
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings: got %q, want %q", warnings, tc.warnings)
			}
		})
	}
}

func TestParseReserved(t *testing.T) {
	for _, name := range Reserved {
		for _, prefix := range []string{"", "instances[4]."} {
			fields := map[string]json.RawMessage{"age": json.RawMessage("50"), name: json.RawMessage("null")}
			_, err := Parse(testInputs, fields, make([]ml.Value, len(testInputs)), prefix, false)
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != pulse.EUNPROCESSABLE || pe.Field != prefix+name {
				t.Errorf("reserved field %q: got %v, want unprocessable naming %q", prefix+name, err, prefix+name)
			}
		}
	}
}
