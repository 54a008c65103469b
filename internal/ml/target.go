package ml

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// target is a parsed Spec.Target.
type target struct {
	text string  // the expression, trimmed
	col  int     // the column's index
	name string  // the column's name
	op   string  // "" for a bare column, else one of > >= < <= == !=
	num  float64 // the number compared with (ordering operators, numeric columns)
	cat  string  // the canonical category compared with (== and != on a non-numeric column)
}

func targetError(format string, args ...any) error {
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "target", "target: "+format, args...)
}

// parseTarget parses `<column>`, `<column> <op> <number>` or `<column> <op> "<category>"`.
func parseTarget(expr string, s pulse.Schema) (target, error) {
	e := strings.TrimSpace(expr)
	tg := target{text: e}
	if e == "" {
		return tg, targetError(`empty; want a column, or a comparison such as "num > 0"`)
	}
	rhs := ""
	if i := strings.IndexAny(e, "<>=!"); i < 0 {
		tg.name = e
	} else {
		tg.name = strings.TrimSpace(e[:i])
		rest := e[i:]
		for _, op := range []string{">=", "<=", "==", "!=", ">", "<"} {
			if strings.HasPrefix(rest, op) {
				tg.op = op
				break
			}
		}
		if tg.op == "" {
			return tg, targetError("%q: unknown operator; want one of > >= < <= == !=", expr)
		}
		rhs = strings.TrimSpace(rest[len(tg.op):])
		if tg.name == "" || rhs == "" {
			return tg, targetError("%q: want <column> %s <value>", expr, tg.op)
		}
	}
	tg.col = s.Index(tg.name)
	if tg.col < 0 {
		return tg, targetError("there is no column %q", tg.name)
	}
	kind := s.Columns[tg.col].Kind

	switch {
	case tg.op == "":
		if kind == pulse.Categorical {
			return tg, targetError(`column %q is categorical; write a comparison such as %s == "<category>"`, tg.name, tg.name)
		}
		return tg, nil
	case strings.HasPrefix(rhs, `"`):
		cat, err := strconv.Unquote(rhs)
		if err != nil {
			return tg, targetError("%q: bad quoted category %s", expr, rhs)
		}
		if kind == pulse.Numeric {
			return tg, targetError("column %q is numeric; compare it with a number, not the text %s", tg.name, rhs)
		}
		if tg.op != "==" && tg.op != "!=" {
			return tg, targetError("%q: a category is compared with == or !=, not %s", expr, tg.op)
		}
		tg.cat = pulse.CanonicalCategory(cat)
		return tg, nil
	default:
		f, err := strconv.ParseFloat(rhs, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return tg, targetError("%q: got %s, want a finite number or a quoted category", expr, rhs)
		}
		tg.num = f
		tg.cat = pulse.CanonicalCategory(rhs)
		return tg, nil
	}
}

// labels returns the 0/1 label of every row, and checks that both classes occur.
func (tg target) labels(t *tabular.Table) ([]int, error) {
	col := t.Schema.Columns[tg.col]
	y := make([]int, t.Rows)
	var positives int
	for r := range t.Rows {
		v, err := tg.label(t, col, r)
		if err != nil {
			return nil, err
		}
		y[r] = v
		positives += v
	}
	if positives == 0 || positives == t.Rows {
		return nil, targetError("every row has label %d; the target must yield both classes", y[0])
	}
	return y, nil
}

func (tg target) label(t *tabular.Table, col pulse.Column, r int) (int, error) {
	rowErr := func(format string, args ...any) error {
		return &pulse.Error{
			Code:    pulse.EUNPROCESSABLE,
			Row:     r + 1,
			Field:   col.Name,
			Message: fmt.Sprintf("row %d, column %q: ", r+1, col.Name) + fmt.Sprintf(format, args...),
		}
	}
	var f float64
	if col.Kind == pulse.Numeric {
		f = t.Num[tg.col][r]
		if math.IsNaN(f) {
			return 0, rowErr("the target is missing")
		}
		if tg.op == "" {
			if f != 0 && f != 1 {
				return 0, rowErr("got %v, want 0 or 1 for a target without a comparison", f)
			}
			return int(f), nil
		}
	} else {
		s := t.Cat[tg.col][r]
		switch {
		case s == "":
			return 0, rowErr("the target is missing")
		case tg.op == "":
			return b2i(len(col.Categories) == 2 && s == col.Categories[1]), nil
		case tg.op == "==":
			return b2i(s == tg.cat), nil
		case tg.op == "!=":
			return b2i(s != tg.cat), nil
		}
		var err error
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			return 0, rowErr("got %q, want a number to compare with %s", s, tg.op)
		}
	}
	var ok bool
	switch tg.op {
	case ">":
		ok = f > tg.num
	case ">=":
		ok = f >= tg.num
	case "<":
		ok = f < tg.num
	case "<=":
		ok = f <= tg.num
	case "==":
		ok = f == tg.num
	case "!=":
		ok = f != tg.num
	}
	return b2i(ok), nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Target is a parsed target expression, able to turn an observed outcome into the 0/1 label
// the model learns: what a stream of labelled records needs to keep training an ftrl model.
type Target struct {
	text string
	op   string  // "" for a bare column, else one of > >= < <= == !=
	num  float64 // the number compared with, when rhs is a number
	cat  string  // the canonical category compared with
	// quoted is true when rhs is a quoted category.
	quoted bool
}

// ParseTarget parses a model's target expression (Model.Target): `<column>`,
// `<column> <op> <number>` or `<column> <op> "<category>"`. It checks the syntax only: the
// column is not looked up.
func ParseTarget(expr string) (Target, error) {
	tg, err := parseTarget(expr, pulse.Schema{Columns: []pulse.Column{{Name: targetColumn(expr), Kind: pulse.Binary}}})
	if err != nil {
		return Target{}, err
	}
	quoted := false
	if tg.op != "" {
		i := strings.Index(tg.text, tg.op) // the first operator character: names hold none
		quoted = strings.HasPrefix(strings.TrimSpace(tg.text[i+len(tg.op):]), `"`)
	}
	return Target{text: tg.text, op: tg.op, num: tg.num, cat: tg.cat, quoted: quoted}, nil
}

// TargetColumn returns the column a target expression reads ("num" for "num > 0").
func TargetColumn(expr string) string { return targetColumn(expr) }

// targetColumn returns the column name of a target expression.
func targetColumn(expr string) string {
	e := strings.TrimSpace(expr)
	if i := strings.IndexAny(e, "<>=!"); i >= 0 {
		return strings.TrimSpace(e[:i])
	}
	return e
}

// String returns the expression.
func (t Target) String() string { return t.text }

// Label returns the 0/1 label of an observed outcome v: a float64 (or int), a string or a
// bool, as decoded from JSON. With a bare column the outcome must be 0/1, true/false or
// "0"/"1"; with a comparison, numbers (and numeric strings) are compared with the number,
// and categories (strings, numbers in canonical form, booleans as "true"/"false") with the
// quoted category. nil is an error: the outcome is missing.
func (t Target) Label(v any) (int, error) {
	switch x := v.(type) {
	case nil:
		return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "label", "label: missing, want the outcome for target %q", t.text)
	case int:
		return t.labelNum(float64(x))
	case int64:
		return t.labelNum(float64(x))
	case float64:
		return t.labelNum(x)
	case bool:
		if t.quoted {
			return t.labelCat(strconv.FormatBool(x))
		}
		return t.labelNum(float64(b2i(x)))
	case string:
		if t.quoted {
			return t.labelCat(pulse.CanonicalCategory(x))
		}
		switch x {
		case "true":
			return t.labelNum(1)
		case "false":
			return t.labelNum(0)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "label", "label: got %q, want a number for target %q", x, t.text)
		}
		return t.labelNum(f)
	default:
		return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "label", "label: got a %T, want a number, string or boolean", v)
	}
}

func (t Target) labelCat(s string) (int, error) {
	if t.op == "!=" {
		return b2i(s != t.cat), nil
	}
	return b2i(s == t.cat), nil
}

func (t Target) labelNum(f float64) (int, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "label", "label: got %v, want a finite number", f)
	}
	if t.quoted {
		return t.labelCat(pulse.CanonicalCategory(strconv.FormatFloat(f, 'g', -1, 64)))
	}
	var ok bool
	switch t.op {
	case "":
		if f != 0 && f != 1 {
			return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "label", "label: got %v, want 0 or 1 for target %q", f, t.text)
		}
		return int(f), nil
	case ">":
		ok = f > t.num
	case ">=":
		ok = f >= t.num
	case "<":
		ok = f < t.num
	case "<=":
		ok = f <= t.num
	case "==":
		ok = f == t.num
	case "!=":
		ok = f != t.num
	}
	return b2i(ok), nil
}

// LabelOf returns the 0/1 label of an observed outcome under the model's target (see
// Target.Label).
func (m *Model) LabelOf(v any) (int, error) {
	t, err := ParseTarget(m.target)
	if err != nil {
		return 0, err
	}
	return t.Label(v)
}
