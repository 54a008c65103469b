package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// docs are JSON texts, valid or not, nested less than MaxDepth: Valid must say what
// json.Valid says of each.
var docs = []string{
	`0`, `-0`, `1.5e-3`, `-12E+2`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `NaN`,
	`"a"`, `"\u00e9\n\"\\\/"`, `"\x"`, `"\u00g0"`, "\"\x01\"", `"unterminated`, `"é"`, "\"\xff\"",
	`true`, `false`, `null`, `tru`, `nul`, `nulll`, `True`,
	`{}`, `[]`, ` { } `, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `[1,2,]`, `[,]`, `[1 2]`,
	`{"a":[1,{"b":"}"}],"c":"\u00e9\\"}`, `{"x":1,"x":{"y":null}}`, `[1, "a" ,{}]`, "\t[\n1\r]\n",
	`{"a":{"b":{"c":[[[]]]}}}`, `{"a":{"b":{"c":[[[]]]}}`, `{"a":}`, `{"a"`, `[`, `{`, ``, ` `, `1 2`, `{} {}`,
}

func TestValid(t *testing.T) {
	for _, d := range docs {
		if got, want := Valid([]byte(d)), json.Valid([]byte(d)); got != want {
			t.Errorf("Valid(%q): got %v, want %v", d, got, want)
		}
	}
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	if Valid([]byte(deep)) {
		t.Errorf("Valid: got true for %d levels, want false (deeper than MaxDepth)", MaxDepth+1)
	}
	if at := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth); !Valid([]byte(at)) {
		t.Errorf("Valid: got false for %d levels, want true", MaxDepth)
	}
}

// TestValidValue checks the end index of each valid value inside a longer text.
func TestValidValue(t *testing.T) {
	for _, d := range docs {
		if !json.Valid([]byte(d)) {
			continue
		}
		v := strings.TrimSpace(d)
		b := []byte(`[` + v + `,0]`)
		if got := ValidValue(b, 1); got != 1+len(v) {
			t.Errorf("ValidValue(%s, 1): got %d, want %d", b, got, 1+len(v))
		}
		if got := SkipValue(b, 1); got != 1+len(v) {
			t.Errorf("SkipValue(%s, 1): got %d, want %d", b, got, 1+len(v))
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, d := range docs {
		f.Add([]byte(d))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := Valid(b), json.Valid(b)
		if got && !want {
			t.Fatalf("Valid(%q): got true, json.Valid says false", b)
		}
		if !got && want && strings.Count(string(b), "[")+strings.Count(string(b), "{") <= MaxDepth {
			t.Fatalf("Valid(%q): got false, json.Valid says true", b)
		}
	})
}

// BenchmarkValid checks a score request event of about 450 bytes.
func BenchmarkValid(b *testing.B) {
	doc := []byte(`{"specversion":"1.0","id":"0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a10","source":"/bedside/7","type":"com.cloudmedical.pulse.score.requested","data":{"model":"heart-disease","correlation_id":"c-17","inputs":{"age":63.0,"sex":1.0,"cp":1.0,"trestbps":145.0,"chol":233.0,"fbs":1.0,"restecg":2.0,"thalach":150.0,"exang":0.0,"oldpeak":2.3,"slope":3.0,"ca":0.0,"thal":6.0}}}`)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if !Valid(doc) {
			b.Fatal("not valid")
		}
	}
}

// TestDepth: nesting counts objects and arrays, not brackets inside strings.
func TestDepth(t *testing.T) {
	for _, tc := range []struct {
		json string
		want int
	}{{`1`, 0}, {`{}`, 1}, {`[{"a":[1,{"b":"]]]{{"}]}]`, 4}, {`{"a":"\"["}`, 1}, {`[[],[[]]]`, 3}} {
		if got := Depth([]byte(tc.json)); got != tc.want {
			t.Errorf("Depth(%s): got %d, want %d", tc.json, got, tc.want)
		}
	}
}
