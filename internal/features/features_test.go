package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
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
		// Both ways: Parse with a map of the fields, and a Parser with the object.
		for _, way := range []string{"map", "parser"} {
			t.Run(tc.name+"/"+way, func(t *testing.T) {
				values := make([]ml.Value, len(testInputs))
				for i := range values { // leftovers of a previous instance must not survive
					values[i] = ml.Value{Num: 99, Str: "stale", Present: true}
				}
				warnings, err := parseWay(t, way, tc.body, values, tc.prefix, tc.strict)
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
}

// parseWay parses body with Parse ("map") or with a Parser ("parser").
func parseWay(t *testing.T, way, body string, values []ml.Value, prefix string, strict bool) ([]string, error) {
	t.Helper()
	if way == "parser" {
		var o Object
		p := NewParser(testInputs)
		if !o.Split(p, []byte(body)) {
			t.Fatalf("Split(%s): got false, want true", body)
		}
		return p.Parse(&o, values, prefix, strict)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &fields); err != nil {
		t.Fatal(err)
	}
	return Parse(testInputs, fields, values, prefix, strict)
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

// TestParserMatchesParse runs objects one after the other through one Object, as a stream
// does, and checks that the Parser reads each as Parse reads its map of fields: the same
// values, warnings and errors, and Has agrees with the map.
func TestParserMatchesParse(t *testing.T) {
	bodies := []string{
		`{"age":63,"cp":2,"sex":1}`,
		`{"sex":1,"age":63,"cp":2}`,
		`{"age":63,"cp":2,"sex":1}`,
		`{ "age" : 50 , "cp" : 3 }`,
		`{"age":"x","age":50}`,
		`{"age":50,"age":"x"}`,
		`{}`,
		`{"device":1,"age":50}`,
		`{"age":50,"model":null}`,
		`{"warnings":[],"age":50}`,
		`{"age":50,"request_id":"r"}`,
		`{"colour":"red","cp":"2","smoker":"yes","insured":true}`,
		`{"colour":"r\u0065d"}`,
		`{"colour":" red ","cp":" 2 "}`,
		`{"colour":"é"}`,
		`{"cp":1.0e0,"sex":-0}`,
		`{"cp":-0}`,
		`{"cp":-1}`,
		`{"cp":1e400}`,
		`{"age":1e400}`,
		`{"é":1,"age":2}`,
		`{"instances":[{"age":1}]}`,
		`{"instances":1,"age":2}`,
		`{"cp":2,"age":63,"sex":1,"smoker":"no","colour":"blue","insured":false,"extra":null}`,
	}
	// Names written with escapes, or not valid UTF-8: Split refuses the object.
	refused := []string{`{"a\u0067e":50}`, `{"\u00e9":1}`, "{\"\xff\":1}", `{"age":1,"c\"p":2}`}
	names := []string{"age", "cp", "device", "model", "warnings", "request_id", "instances", "é", "extra", "nope"}
	modelInput := append(slices.Clone(testInputs), pulse.Column{Name: "model", Kind: pulse.Numeric})
	for _, inputs := range [][]pulse.Column{testInputs, modelInput} {
		p := NewParser(inputs)
		var o Object
		for _, strict := range []bool{false, true} {
			for _, prefix := range []string{"", "instances[1]."} {
				for _, body := range append(slices.Clone(bodies), refused...) {
					var fields map[string]json.RawMessage
					if err := json.Unmarshal([]byte(body), &fields); err != nil {
						t.Fatalf("%s: %v", body, err)
					}
					ok := o.Split(p, []byte(body))
					if want := !slices.Contains(refused, body); ok != want {
						t.Errorf("Split(%s): got %v, want %v", body, ok, want)
					}
					if !ok {
						continue
					}
					for _, name := range names {
						if _, want := fields[name]; o.Has(name) != want {
							t.Errorf("%s: Has(%q): got %v, want %v", body, name, !want, want)
						}
					}
					want := make([]ml.Value, len(inputs))
					got := make([]ml.Value, len(inputs))
					wantWarn, wantErr := Parse(inputs, fields, want, prefix, strict)
					gotWarn, gotErr := p.Parse(&o, got, prefix, strict)
					if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || pulse.ErrorCode(gotErr) != pulse.ErrorCode(wantErr) {
						t.Errorf("%s (strict %v, prefix %q): got error %v, want %v", body, strict, prefix, gotErr, wantErr)
						continue
					}
					var gpe, wpe *pulse.Error
					if errors.As(gotErr, &gpe) && errors.As(wantErr, &wpe) && gpe.Field != wpe.Field {
						t.Errorf("%s: got field %q, want %q", body, gpe.Field, wpe.Field)
					}
					if wantErr == nil && (!reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotWarn, wantWarn)) {
						t.Errorf("%s (strict %v): got %+v %q, want %+v %q", body, strict, got, gotWarn, want, wantWarn)
					}
				}
			}
		}
	}
}

// TestParserWrongObject refuses an object split with another parser.
func TestParserWrongObject(t *testing.T) {
	var o Object
	a, b := NewParser(testInputs), NewParser(testInputs)
	if !o.Split(a, []byte(`{"age":1}`)) {
		t.Fatal("Split: got false")
	}
	if _, err := b.Parse(&o, make([]ml.Value, len(testInputs)), "", false); pulse.ErrorCode(err) != pulse.EINTERNAL {
		t.Errorf("got %v, want an internal error", err)
	}
}

// clevelandBody is the first row of the Cleveland data as a predict body.
const clevelandBody = `{"age":63.0,"sex":1.0,"cp":1.0,"trestbps":145.0,"chol":233.0,"fbs":1.0,"restecg":2.0,"thalach":150.0,"exang":0.0,"oldpeak":2.3,"slope":3.0,"ca":0.0,"thal":6.0}`

// clevelandInputs are inputs like those of a model trained on the Cleveland data.
var clevelandInputs = []pulse.Column{
	{Name: "age", Kind: pulse.Numeric},
	{Name: "sex", Kind: pulse.Binary, Categories: []string{"0", "1"}},
	{Name: "cp", Kind: pulse.Categorical, Categories: []string{"1", "2", "3", "4"}},
	{Name: "trestbps", Kind: pulse.Numeric},
	{Name: "chol", Kind: pulse.Numeric},
	{Name: "fbs", Kind: pulse.Binary, Categories: []string{"0", "1"}},
	{Name: "restecg", Kind: pulse.Categorical, Categories: []string{"0", "1", "2"}},
	{Name: "thalach", Kind: pulse.Numeric},
	{Name: "exang", Kind: pulse.Binary, Categories: []string{"0", "1"}},
	{Name: "oldpeak", Kind: pulse.Numeric},
	{Name: "slope", Kind: pulse.Categorical, Categories: []string{"1", "2", "3"}},
	{Name: "ca", Kind: pulse.Categorical, Categories: []string{"0", "1", "2", "3"}},
	{Name: "thal", Kind: pulse.Categorical, Categories: []string{"3", "6", "7"}},
}

// BenchmarkParse reads a Cleveland row: with a map of its fields (split by encoding/json
// beforehand, not measured) and with a Parser (splitting included).
func BenchmarkParse(b *testing.B) {
	body := []byte(clevelandBody)
	values := make([]ml.Value, len(clevelandInputs))
	b.Run("map", func(b *testing.B) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(clevelandInputs, fields, values, "", false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parser", func(b *testing.B) {
		p := NewParser(clevelandInputs)
		var o Object
		b.ReportAllocs()
		for b.Loop() {
			if !o.Split(p, body) {
				b.Fatal("Split: got false")
			}
			if _, err := p.Parse(&o, values, "", false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestParseFloat checks the fast path of numbers against strconv.ParseFloat: the same bits,
// and an error for the same texts.
func TestParseFloat(t *testing.T) {
	texts := []string{"0", "-0", "1", "63.0", "2.3", "-1.5", "0.1", "0.3", "123456789012345", "1234567890123456",
		"0.000000000000001", "99999999999999.9", "9007199254740993", "1e3", "1E-2", "-2.5e+10", "1e400", "-1e400",
		"4.9e-324", "1.7976931348623157e308", "00.5", ".5", "5.", "-", "", "+1", "1_0", "0x10", "inf", "NaN", "1.2.3"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		digits := 1 + r.IntN(17)
		var b strings.Builder
		if r.IntN(2) == 0 {
			b.WriteByte('-')
		}
		point := r.IntN(digits + 1)
		for i := range digits {
			if i == point && i > 0 {
				b.WriteByte('.')
			}
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		texts = append(texts, b.String())
	}
	for _, s := range texts {
		got, gotErr := parseFloat([]byte(s))
		want, wantErr := strconv.ParseFloat(s, 64)
		if (gotErr != nil) != (wantErr != nil) || math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("parseFloat(%q): got %v (%b), %v; want %v (%b), %v", s, got, math.Float64bits(got), gotErr, want, math.Float64bits(want), wantErr)
		}
	}
}
