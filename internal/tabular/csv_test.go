package tabular

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func heartFile(name string) string {
	return filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", name)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadCSVCleveland(t *testing.T) {
	b := readFile(t, heartFile("processed.cleveland.data"))
	tab, err := ReadCSV(bytes.NewReader(b), Options{
		Kinds: map[string]pulse.Kind{"cp": pulse.Categorical, "thal": pulse.Categorical},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Rows != 303 {
		t.Errorf("rows: got %d, want 303", tab.Rows)
	}
	if !tab.Format.Header || tab.Format.Delimiter != "," {
		t.Errorf("format: got %+v, want header and ','", tab.Format)
	}
	want := []struct {
		name    string
		kind    pulse.Kind
		cats    []string
		missing int
	}{
		{"age", pulse.Numeric, nil, 0},
		{"sex", pulse.Binary, []string{"0", "1"}, 0},
		{"cp", pulse.Categorical, []string{"1", "2", "3", "4"}, 0},
		{"trestbps", pulse.Numeric, nil, 0},
		{"chol", pulse.Numeric, nil, 0},
		{"fbs", pulse.Binary, []string{"0", "1"}, 0},
		{"restecg", pulse.Numeric, nil, 0},
		{"thalach", pulse.Numeric, nil, 0},
		{"exang", pulse.Binary, []string{"0", "1"}, 0},
		{"oldpeak", pulse.Numeric, nil, 0},
		{"slope", pulse.Numeric, nil, 0},
		{"ca", pulse.Numeric, nil, 4},
		{"thal", pulse.Categorical, []string{"3", "6", "7"}, 2},
		{"num", pulse.Numeric, nil, 0},
	}
	if len(tab.Schema.Columns) != len(want) {
		t.Fatalf("columns: got %d, want %d", len(tab.Schema.Columns), len(want))
	}
	for i, w := range want {
		c := tab.Schema.Columns[i]
		if c.Name != w.name || c.Kind != w.kind || !slices.Equal(c.Categories, w.cats) || c.Missing != w.missing {
			t.Errorf("column %d: got %+v, want %+v", i, c, w)
		}
	}
	if got := tab.Num[0][0]; got != 63 {
		t.Errorf("age of row 1: got %v, want 63", got)
	}
	if got := tab.Num[9][0]; got != 2.3 {
		t.Errorf("oldpeak of row 1: got %v, want 2.3", got)
	}
	if got := tab.Cat[1][0]; got != "1" {
		t.Errorf("sex of row 1: got %q, want \"1\"", got)
	}
	if tab.Num[1] != nil || tab.Cat[0] != nil {
		t.Errorf("sex has Num or age has Cat: %v %v", tab.Num[1] != nil, tab.Cat[0] != nil)
	}
	nan := 0
	for _, v := range tab.Num[11] {
		if math.IsNaN(v) {
			nan++
		}
	}
	if nan != 4 {
		t.Errorf("NaN in ca: got %d, want 4", nan)
	}
	if !slices.Equal(tab.Schema.MissingMarkers, []string{"", "?", "NA"}) {
		t.Errorf("missing markers: got %q", tab.Schema.MissingMarkers)
	}
}

func TestReadCSVHungarian(t *testing.T) {
	b := readFile(t, heartFile("processed.hungarian.data"))
	tab, err := ReadCSV(bytes.NewReader(b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Rows != 294 {
		t.Errorf("rows: got %d, want 294", tab.Rows)
	}
	// Hungarian writes numbers as "28" and "1.5".
	if got := tab.Num[0][0]; got != 28 {
		t.Errorf("age of row 1: got %v, want 28", got)
	}
	if got := tab.Schema.Columns[tab.Schema.Index("slope")].Missing; got < 100 {
		t.Errorf("slope: got %d missing, want many", got)
	}
	if !slices.Contains(tab.Num[tab.Schema.Index("oldpeak")], 1.5) {
		t.Errorf("oldpeak: no value 1.5")
	}
	if got := tab.Schema.Columns[tab.Schema.Index("num")]; got.Kind != pulse.Binary || !slices.Equal(got.Categories, []string{"0", "1"}) {
		t.Errorf("num: got %+v, want binary 0/1", got)
	}
}

func TestReadCSVValues(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		opts  Options
		kinds []pulse.Kind
		cats  [][]string
		miss  []int
		num   [][]float64
		cat   [][]string
		head  bool
	}{
		{
			name:  "inference",
			in:    "a,b,c,d,e,f\n1,yes,x,1,0,\n0,no,y,2,0,\n1,yes,z,2,0,\n",
			kinds: []pulse.Kind{pulse.Binary, pulse.Binary, pulse.Categorical, pulse.Numeric, pulse.Numeric, pulse.Numeric},
			cats:  [][]string{{"0", "1"}, {"no", "yes"}, {"x", "y", "z"}, nil, nil, nil},
			miss:  []int{0, 0, 0, 0, 0, 3},
			head:  true,
		},
		{
			name: "quotes, spaces and missing markers",
			in:   "name, score\n\"Smith, J\", 1.5\n  Doe , ?\n\"x\"\"y\",NA\n",
			cat:  [][]string{{"Smith, J", "Doe", "x\"y"}, nil},
			num:  [][]float64{nil, {1.5, math.NaN(), math.NaN()}},
			miss: []int{0, 2},
			head: true,
		},
		{
			name: "canonical categories",
			in:   "k,v,w\n1.0,a,.7\n1,b,1\n2e0,c,2\n10,d,3\n",
			opts: Options{Kinds: map[string]pulse.Kind{"k": pulse.Categorical}},
			cats: [][]string{{"1", "10", "2"}, {"a", "b", "c", "d"}, nil},
			cat:  [][]string{{"1", "1", "2", "10"}, {"a", "b", "c", "d"}, nil},
			num:  [][]float64{nil, nil, {0.7, 1, 2, 3}},
			head: true,
		},
		{
			name: "declared columns, no header",
			in:   "1,2\n3,4\n",
			opts: Options{Columns: []string{"x", " y "}},
			num:  [][]float64{{1, 3}, {2, 4}},
			head: false,
		},
		{
			name: "declared columns equal to an all-text first row",
			in:   "x,y\na,b\nc,d\na,e\n",
			opts: Options{Columns: []string{"x", "y"}},
			cat:  [][]string{{"a", "c", "a"}, {"b", "d", "e"}},
			head: true,
		},
		{
			name: "header false keeps a text first row as data",
			in:   "x,y\na,b\n",
			opts: Options{Header: HeaderFalse, Columns: []string{"p", "q"}},
			cat:  [][]string{{"x", "a"}, {"y", "b"}},
			head: false,
		},
		{
			name: "tab delimiter with empty cells",
			in:   "a\tb\tc\n1\t\t3\n4\t5\t6\n",
			opts: Options{Delimiter: '\t'},
			num:  [][]float64{{1, 4}, {math.NaN(), 5}, {3, 6}},
			miss: []int{0, 1, 0},
			head: true,
		},
		{
			name: "custom missing marker and byte order mark",
			in:   "\ufeffa,b\n-,1\n2,-\n3,\n",
			opts: Options{MissingMarkers: []string{"-"}},
			num:  [][]float64{{math.NaN(), 2, 3}, {1, math.NaN(), math.NaN()}},
			miss: []int{1, 2},
			head: true,
		},
		{
			name: "declared numeric column with a 0/1 set",
			in:   "a\n0\n1\n",
			opts: Options{Kinds: map[string]pulse.Kind{"a": pulse.Numeric}},
			num:  [][]float64{{0, 1}},
			head: true,
		},
		{
			name:  "declared binary with one value",
			in:    "a\n1\n1\n",
			opts:  Options{Kinds: map[string]pulse.Kind{"a": pulse.Binary}},
			kinds: []pulse.Kind{pulse.Binary},
			cats:  [][]string{{"1"}},
			head:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := ReadCSV(strings.NewReader(tt.in), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tab.Format.Header != tt.head {
				t.Errorf("header: got %v, want %v", tab.Format.Header, tt.head)
			}
			for j, c := range tab.Schema.Columns {
				if tt.kinds != nil && c.Kind != tt.kinds[j] {
					t.Errorf("column %q kind: got %q, want %q", c.Name, c.Kind, tt.kinds[j])
				}
				if tt.cats != nil && !slices.Equal(c.Categories, tt.cats[j]) {
					t.Errorf("column %q categories: got %q, want %q", c.Name, c.Categories, tt.cats[j])
				}
				if tt.miss != nil && c.Missing != tt.miss[j] {
					t.Errorf("column %q missing: got %d, want %d", c.Name, c.Missing, tt.miss[j])
				}
				if tt.num != nil && tt.num[j] != nil && !sameFloats(tab.Num[j], tt.num[j]) {
					t.Errorf("column %q values: got %v, want %v", c.Name, tab.Num[j], tt.num[j])
				}
				if tt.cat != nil && tt.cat[j] != nil && !slices.Equal(tab.Cat[j], tt.cat[j]) {
					t.Errorf("column %q values: got %q, want %q", c.Name, tab.Cat[j], tt.cat[j])
				}
			}
		})
	}
}

func sameFloats(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) })
}

func TestReadCSVNames(t *testing.T) {
	tab, err := ReadCSV(strings.NewReader(" a , b\n1,2\n"), Options{Columns: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{tab.Schema.Columns[0].Name, tab.Schema.Columns[1].Name}; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("names: got %q, want [a b]", got)
	}
}

func TestReadCSVErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		opts  Options
		code  string
		row   int
		field string
		msg   string // exact message when set, else a substring in contains
		has   string
	}{
		{
			name: "not a number in a declared numeric column",
			in:   "age,sex\n63,1\nabc,0\n",
			opts: Options{Kinds: map[string]pulse.Kind{"age": pulse.Numeric}},
			code: pulse.EUNPROCESSABLE, row: 2, field: "age",
			msg: `row 2, column "age": got "abc", want a number`,
		},
		{
			name: "NaN text in a numeric column",
			in:   "a\n1\nNaN\n",
			code: pulse.EUNPROCESSABLE, row: 2, field: "a",
			msg: `row 2, column "a": got "NaN", want a finite number`,
		},
		{
			name: "Inf text in a declared numeric column",
			in:   "a,b\n1,x\n2,y\n-Inf,z\n",
			opts: Options{Kinds: map[string]pulse.Kind{"a": pulse.Numeric}},
			code: pulse.EUNPROCESSABLE, row: 3, field: "a",
			msg: `row 3, column "a": got "-Inf", want a finite number`,
		},
		{
			name: "number out of range",
			in:   "a\n1\n1e400\n",
			code: pulse.EUNPROCESSABLE, row: 2, field: "a", has: "want a finite number",
		},
		{
			name: "wrong number of fields",
			in:   "a,b\n1,2\n3\n",
			code: pulse.EUNPROCESSABLE, row: 2,
			msg: "row 2: got 1 fields, want 2",
		},
		{
			name: "too many fields without a header",
			in:   "1,2\n3,4,5\n",
			opts: Options{Columns: []string{"a", "b"}},
			code: pulse.EUNPROCESSABLE, row: 2,
			msg: "row 2: got 3 fields, want 2",
		},
		{name: "empty file", in: "", code: pulse.EUNPROCESSABLE, has: "empty file"},
		{name: "only blank lines", in: "\n\n", code: pulse.EUNPROCESSABLE, has: "empty file"},
		{name: "header only", in: "a,b\n", code: pulse.EUNPROCESSABLE, has: "no data rows"},
		{name: "duplicate column", in: "a,a\n1,2\n", code: pulse.EUNPROCESSABLE, field: "a", has: "appears twice"},
		{name: "empty column name", in: "a,,c\n1,2,3\n", opts: Options{Header: HeaderTrue}, code: pulse.EUNPROCESSABLE, field: "columns", has: "column 2 has an empty name"},
		{
			name: "unknown declared kind column",
			in:   "a\n1\n", opts: Options{Kinds: map[string]pulse.Kind{"b": pulse.Numeric}},
			code: pulse.EUNPROCESSABLE, field: "b", has: "no column named",
		},
		{
			name: "invalid kind",
			in:   "a\n1\n", opts: Options{Kinds: map[string]pulse.Kind{"a": "ordinal"}},
			code: pulse.EUNPROCESSABLE, field: "a", has: "want numeric, binary or categorical",
		},
		{
			name: "declared binary with three values",
			in:   "a\nx\ny\nz\n", opts: Options{Header: HeaderTrue, Kinds: map[string]pulse.Kind{"a": pulse.Binary}},
			code: pulse.EUNPROCESSABLE, field: "a",
			msg: `column "a": declared binary but has 3 distinct values ("x", "y", "z")`,
		},
		{
			name: "header differs from declared columns",
			in:   "a,b\n1,2\n", opts: Options{Columns: []string{"a", "c"}},
			code: pulse.EUNPROCESSABLE, field: "columns",
			msg: `header column 2 is "b", declared "c"`,
		},
		{
			name: "no header detected and no columns",
			in:   "1,2\n3,4\n",
			code: pulse.EUNPROCESSABLE, field: "columns", has: "no header detected",
		},
		{
			name: "header false without columns",
			in:   "a,b\n3,4\n", opts: Options{Header: HeaderFalse},
			code: pulse.EUNPROCESSABLE, field: "columns", has: "declare the column names",
		},
		{
			name: "more rows than allowed",
			in:   "a\n1\n2\n3\n", opts: Options{MaxRows: 2},
			code: pulse.ETOOLARGE, has: "more than 2 data rows",
		},
		{
			name: "bare quote",
			in:   "a,b\n1,2\n3,x\"y\n",
			code: pulse.EUNPROCESSABLE, row: 2, has: "row 2 (line 3",
		},
		{name: "bad header option", in: "a\n1\n", opts: Options{Header: "yes"}, code: pulse.EINVALID, field: "header"},
		{name: "bad delimiter", in: "a\n1\n", opts: Options{Delimiter: '"'}, code: pulse.EINVALID, field: "delimiter"},
		{name: "negative max rows", in: "a\n1\n", opts: Options{MaxRows: -1}, code: pulse.EINVALID, field: "max_rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := ReadCSV(strings.NewReader(tt.in), tt.opts)
			if err == nil {
				t.Fatalf("got a table of %d rows, want an error", tab.Rows)
			}
			var pe *pulse.Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %T %v, want *pulse.Error", err, err)
			}
			if pe.Code != tt.code || pe.Row != tt.row || pe.Field != tt.field {
				t.Errorf("got code %q row %d field %q, want %q %d %q (%s)", pe.Code, pe.Row, pe.Field, tt.code, tt.row, tt.field, pe.Message)
			}
			if tt.msg != "" && pe.Message != tt.msg {
				t.Errorf("message: got %q, want %q", pe.Message, tt.msg)
			}
			if !strings.Contains(pe.Message, tt.has) {
				t.Errorf("message: got %q, want it to contain %q", pe.Message, tt.has)
			}
		})
	}
}

func TestReadCSVMaxRows(t *testing.T) {
	for _, in := range []string{"a\n1\n2\n", "1\n2\n"} {
		tab, err := ReadCSV(strings.NewReader(in), Options{MaxRows: 2, Columns: []string{"a"}})
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if tab.Rows != 2 {
			t.Errorf("%q: rows: got %d, want 2", in, tab.Rows)
		}
	}
}

func TestHeaderDetection(t *testing.T) {
	tests := []struct {
		in   string
		opts Options
		want bool
	}{
		{"a,b\n1,2\n", Options{Columns: []string{"a", "b"}}, true},
		{"1,2\n1,2\n", Options{Columns: []string{"a", "b"}}, false},
		{"x,name\n1,bob\n", Options{Columns: []string{"x", "name"}}, true}, // "x" above numbers
		{"?,2\n1,2\n", Options{Columns: []string{"a", "b"}}, false},        // missing is not a name
		{"a,2\n1,2\n", Options{Columns: []string{"p", "q"}, Header: HeaderFalse}, false},
		{"bob,1\nann,2\n", Options{Columns: []string{"name", "n"}}, false},
		{"name,n\nann,?\n", Options{}, true}, // "n" above only missing values
	}
	for _, tt := range tests {
		tab, err := ReadCSV(strings.NewReader(tt.in), tt.opts)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if tab.Format.Header != tt.want {
			t.Errorf("%q: header: got %v, want %v", tt.in, tab.Format.Header, tt.want)
		}
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add("a,b\n1,2\n", false)
	f.Add("age, sex, cp\n63.0,1.0,?\n67,0,4\n", true)
	f.Add("x\n\"q\"\"\",\n", false)
	f.Add("1,2\n3\n", true)
	f.Add("a,b\nNaN,x\ninf,y\n", false)
	f.Fuzz(func(t *testing.T, in string, declare bool) {
		opts := Options{}
		if declare {
			opts.Columns = []string{"a", "b", "c"}
			opts.Kinds = map[string]pulse.Kind{"c": pulse.Categorical}
		}
		tab, err := ReadCSV(strings.NewReader(in), opts)
		if err != nil {
			return
		}
		cols := tab.Schema.Columns
		if len(cols) == 0 || len(tab.Num) != len(cols) || len(tab.Cat) != len(cols) || tab.Rows < 1 {
			t.Fatalf("shape: %d columns, %d Num, %d Cat, %d rows", len(cols), len(tab.Num), len(tab.Cat), tab.Rows)
		}
		for j, c := range cols {
			missing := 0
			switch c.Kind {
			case pulse.Numeric:
				if len(tab.Num[j]) != tab.Rows || tab.Cat[j] != nil || c.Categories != nil {
					t.Fatalf("numeric column %d: %d values, Cat %v, categories %q", j, len(tab.Num[j]), tab.Cat[j] != nil, c.Categories)
				}
				for _, v := range tab.Num[j] {
					if math.IsNaN(v) {
						missing++
					} else if math.IsInf(v, 0) {
						t.Fatalf("column %d: infinite value", j)
					}
				}
			case pulse.Binary, pulse.Categorical:
				if len(tab.Cat[j]) != tab.Rows || tab.Num[j] != nil {
					t.Fatalf("column %d: %d values, Num %v", j, len(tab.Cat[j]), tab.Num[j] != nil)
				}
				if c.Kind == pulse.Binary && len(c.Categories) > 2 {
					t.Fatalf("binary column %d: %d categories", j, len(c.Categories))
				}
				if !slices.IsSorted(c.Categories) || len(slices.Compact(slices.Clone(c.Categories))) != len(c.Categories) {
					t.Fatalf("column %d: categories not sorted and unique: %q", j, c.Categories)
				}
				for _, v := range tab.Cat[j] {
					if v == "" {
						missing++
					} else if !slices.Contains(c.Categories, v) {
						t.Fatalf("column %d: value %q not among categories %q", j, v, c.Categories)
					}
				}
			default:
				t.Fatalf("column %d: kind %q", j, c.Kind)
			}
			if missing != c.Missing {
				t.Fatalf("column %d: %d missing values, schema says %d", j, missing, c.Missing)
			}
		}
	})
}

func BenchmarkReadCSV(b *testing.B) {
	data := readFile(b, heartFile("processed.cleveland.data"))
	opts := Options{Kinds: map[string]pulse.Kind{
		"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
	}}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadCSV(bytes.NewReader(data), opts); err != nil {
			b.Fatal(err)
		}
	}
}
