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
