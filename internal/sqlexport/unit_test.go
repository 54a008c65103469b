package sqlexport

import (
	"errors"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/mltest"
	"github.com/cloudmedical/pulse/internal/pulse"
)

func TestParseDialect(t *testing.T) {
	tests := []struct {
		in   string
		want Dialect
		ok   bool
	}{
		{"postgres", Postgres, true},
		{"PostgreSQL", Postgres, true},
		{" sqlite ", SQLite, true},
		{"duckdb", DuckDB, true},
		{"mysql", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := ParseDialect(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseDialect(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("ParseDialect(%q): code %q, want %q", tt.in, pulse.ErrorCode(err), pulse.EINVALID)
		}
	}
}

func TestNum(t *testing.T) {
	tests := []struct {
		d    Dialect
		f    float64
		want string
	}{
		{SQLite, 55, "55.0"},
		{SQLite, 0.1, "0.1"},
		{SQLite, -1.5, "(-1.5)"},
		{SQLite, 1e-300, "1e-300"},
		{SQLite, 0.30000000000000004, "0.30000000000000004"},
		{Postgres, 2, "2::float8"},
		{Postgres, -2e+21, "(-2e+21::float8)"},
		{DuckDB, 0.5, "0.5::DOUBLE"},
	}
	for _, tt := range tests {
		if got := num(tt.d, tt.f); got != tt.want {
			t.Errorf("num(%s, %v) = %q, want %q", tt.d, tt.f, got, tt.want)
		}
	}
}

func TestQuoting(t *testing.T) {
	if got, want := quote(`a"b`), `"a""b"`; got != want {
		t.Errorf("quote: got %s, want %s", got, want)
	}
	if got, want := qualified("s.t"), `"s"."t"`; got != want {
		t.Errorf("qualified: got %s, want %s", got, want)
	}
	if got, want := str("it's"), `'it''s'`; got != want {
		t.Errorf("str: got %s, want %s", got, want)
	}
}

func TestRejects(t *testing.T) {
	logreg := mltest.TrainAll(t, mltest.Cleveland(t))["logreg"]
	tests := []struct {
		name        string
		m           *ml.Model
		d           Dialect
		table, view string
		code        string
	}{
		{"nil model", nil, SQLite, "t", "v", pulse.EINVALID},
		{"bad dialect", logreg, "oracle", "t", "v", pulse.EINVALID},
		{"no table", logreg, SQLite, "", "v", pulse.EINVALID},
		{"no view", logreg, SQLite, "t", "", pulse.EINVALID},
	}
	for _, tt := range tests {
		s, err := View(tt.m, tt.d, tt.table, tt.view)
		var pe *pulse.Error
		if !errors.As(err, &pe) || pe.Code != tt.code || s != "" {
			t.Errorf("%s: got %q, %v; want no SQL and a %s error", tt.name, s, err, tt.code)
		}
	}
}

func TestViewShape(t *testing.T) {
	m := mltest.TrainAll(t, mltest.Cleveland(t))["logreg"]
	s, err := View(m, Postgres, "clinic.patients", "clinic.scored")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`CREATE VIEW "clinic"."scored" AS`, `FROM "clinic"."patients" AS t`, "AS probability", "AS label", `"thal" = '7'`} {
		if !strings.Contains(s, want) {
			t.Errorf("the view lacks %q:\n%s", want, s)
		}
	}
}

func BenchmarkExpressionGBDT(b *testing.B) {
	m := mltest.TrainAll(b, mltest.Cleveland(b))["gbdt"]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Expression(m, Postgres); err != nil {
			b.Fatal(err)
		}
	}
}
