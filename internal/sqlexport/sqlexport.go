// Package sqlexport writes a trained model as SQL, so that a database scores a whole table in
// place: one expression that computes the same probability of class 1 as ml.Model.Predict,
// preprocessing included, for PostgreSQL, SQLite and DuckDB.
//
// Input contract. The table has one column per model input, named as the input (quoted, so
// the case must match).
//   - A numeric input is a numeric column (integer, real, double precision, numeric). NULL is
//     a missing value; NaN is not treated as missing (use NULL).
//   - A binary or categorical input is either a text column holding the canonical category
//     (pulse.CanonicalCategory: "1", not "1.0"; text trimmed of spaces) or, for categories
//     that are numbers, a numeric column: every category is compared as a string literal,
//     which the database converts to the column's type (in SQLite through the column's type
//     affinity, so such a column needs a declared numeric type). NULL is a missing value; a
//     category not seen in training contributes nothing, as in Predict.
//
// All three algorithms are supported: logreg, gbdt and ftrl (its weights and scaling frozen
// as in the model version). The SQL follows Predict term by term (the same constants, added
// in the same order), so results agree to rounding of exp (well below 1e-12); the log-odds is
// clamped to [-700, 700] before exp so that no database overflows, which changes a
// probability by less than 1e-300 (ftrl clamps it to [-35, 35] itself, and so does the SQL).
package sqlexport

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Dialect is a SQL dialect.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
	DuckDB   Dialect = "duckdb"
)

// ParseDialect returns the dialect named s ("postgres", "sqlite" or "duckdb").
func ParseDialect(s string) (Dialect, error) {
	switch d := Dialect(strings.ToLower(strings.TrimSpace(s))); d {
	case Postgres, SQLite, DuckDB:
		return d, nil
	case "postgresql":
		return Postgres, nil
	}
	return "", pulse.FieldErrorf(pulse.EINVALID, "dialect", "dialect: got %q, want postgres, sqlite or duckdb", s)
}

// Expression returns a SQL expression of the probability of class 1 that m predicts for a
// row whose columns are the model's inputs (see the package documentation for the contract).
func Expression(m *ml.Model, d Dialect) (string, error) {
	if m == nil {
		return "", pulse.Errorf(pulse.EINVALID, "sql export: no model")
	}
	if _, err := ParseDialect(string(d)); err != nil {
		return "", err
	}
	g := generator{d: d}
	var z string
	var err error
	bound := "700"
	switch m.Algorithm() {
	case "logreg":
		z, err = g.logReg(m)
	case "gbdt":
		z, err = g.gbdt(m)
	case "ftrl":
		z, err = g.ftrl(m)
		bound = "35" // as the ftrl package does
	default:
		return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: algorithm %q is not supported, want logreg, gbdt or ftrl", m.Algorithm())
	}
	if err != nil {
		return "", err
	}
	return "(1.0 / (1.0 + exp(-(" + g.clip(z, bound) + "))))", nil
}

// View returns a CREATE VIEW statement of view over table: every column of table plus
// "probability" (see Expression) and "label" (1 when the probability is at least the model's
// threshold, else 0). table and view may be qualified by a schema ("s.t"); each part is quoted.
func View(m *ml.Model, d Dialect, table, view string) (string, error) {
	if table == "" || view == "" {
		return "", pulse.Errorf(pulse.EINVALID, "sql export: got table %q and view %q, want both names", table, view)
	}
	expr, err := Expression(m, d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- Pulse model: %s, target %q, threshold %s\n", m.Algorithm(), m.Target(), strconv.FormatFloat(m.Threshold(), 'g', -1, 64))
	fmt.Fprintf(&b, "CREATE VIEW %s AS\nSELECT s.*, CASE WHEN s.probability >= %s THEN 1 ELSE 0 END AS label\nFROM (\n  SELECT t.*, %s AS probability\n  FROM %s AS t\n) AS s;\n",
		qualified(view), num(d, m.Threshold()), expr, qualified(table))
	return b.String(), nil
}

// generator writes the SQL of one model in one dialect.
type generator struct {
	d Dialect
}

// logReg returns the log-odds of a logreg model: Predict's score with the same constants,
// added in the same order (the bias with the standardisation folded in, then one term per
// input).
func (g generator) logReg(m *ml.Model) (string, error) {
	inputs, _ := m.Preprocessing()
	coef, intercept, ok := m.LogRegCoefficients()
	if !ok {
		return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: the model has no logreg coefficients")
	}
	// Fold the standardisation exactly as the model does (ml.Model.prepare).
	slope := make([]float64, len(inputs))
	bias := intercept
	k := 0
	for i, in := range inputs {
		if in.Kind == pulse.Numeric {
			slope[i] = coef[k] / in.Scale
			bias -= slope[i] * in.Mean
		}
		k += width(in)
	}
	if k != len(coef) {
		return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: got %d coefficients, want %d", len(coef), k)
	}
	var b strings.Builder
	b.WriteString(g.num(bias))
	k = 0
	for i, in := range inputs {
		col := quote(in.Name)
		b.WriteString("\n  + ")
		switch in.Kind {
		case pulse.Numeric:
			fmt.Fprintf(&b, "%s * COALESCE(%s, %s)", g.num(slope[i]), g.real(col), g.num(in.Median))
		case pulse.Binary:
			missing := 0.0
			if in.Mode == 1 {
				missing = coef[k]
			}
			one := ""
			if len(in.Categories) > 1 {
				one = in.Categories[1]
			}
			if one == "" { // no category encodes as 1
				fmt.Fprintf(&b, "%s", g.num(0))
			} else {
				fmt.Fprintf(&b, "(CASE WHEN %s IS NULL THEN %s WHEN %s = %s THEN %s ELSE %s END)",
					col, g.num(missing), col, str(one), g.num(coef[k]), g.num(0))
			}
		default:
			missing := 0.0
			if in.Mode >= 0 && in.Mode < len(in.Categories) {
				missing = coef[k+in.Mode]
			}
			fmt.Fprintf(&b, "(CASE WHEN %s IS NULL THEN %s", col, g.num(missing))
			for j, c := range in.Categories {
				fmt.Fprintf(&b, " WHEN %s = %s THEN %s", col, str(c), g.num(coef[k+j]))
			}
			fmt.Fprintf(&b, " ELSE %s END)", g.num(0))
		}
		k += width(in)
	}
	return b.String(), nil
}

// feature is one encoded value of a raw encoding: a numeric input, or the indicator of one
// category of a binary or categorical input.
type feature struct {
	col      string // quoted column
	numeric  bool
	category string // compared with the column: the encoded value is 1 when equal
}

// gbdt returns the log-odds of a gbdt model: the base score plus one CASE per tree, in tree
// order.
func (g generator) gbdt(m *ml.Model) (string, error) {
	inputs, _ := m.Preprocessing()
	trees, base, ok, err := m.GBDTTrees()
	if err != nil {
		return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: %v", err)
	}
	if !ok {
		return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: the model has no gbdt trees")
	}
	fs := features(inputs)
	var b strings.Builder
	b.WriteString(g.num(base))
	for t, tr := range trees {
		b.WriteString("\n  + ")
		if err := g.node(&b, fs, &tr, 0, 0); err != nil {
			return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: tree %d: %v", t, err)
		}
	}
	return b.String(), nil
}

// features lists the encoded values of a raw encoding.
func features(inputs []ml.InputPreprocessing) []feature {
	var fs []feature
	for _, in := range inputs {
		col := quote(in.Name)
		switch in.Kind {
		case pulse.Numeric:
			fs = append(fs, feature{col: col, numeric: true})
		case pulse.Binary:
			one := ""
			if len(in.Categories) > 1 {
				one = in.Categories[1]
			}
			fs = append(fs, feature{col: col, category: one})
		default:
			for _, c := range in.Categories {
				fs = append(fs, feature{col: col, category: c})
			}
		}
	}
	return fs
}

// ftrl returns the margin of an ftrl model: as ftrl.Learner.Predict, the terms of the present
// inputs with a non-zero weight in encoded order, then the bias.
func (g generator) ftrl(m *ml.Model) (string, error) {
	inputs, _ := m.Preprocessing()
	st, ok := m.FTRL()
	if !ok {
		return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: the model has no ftrl weights")
	}
	fs := features(inputs)
	if len(fs) != len(st.Weights) || len(st.Scaled) != len(fs) || len(st.Mean) != len(fs) || len(st.SD) != len(fs) {
		return "", pulse.Errorf(pulse.EUNPROCESSABLE, "sql export: got %d ftrl weights, want %d", len(st.Weights), len(fs))
	}
	var b strings.Builder
	b.WriteString(g.num(0))
	for i, f := range fs {
		w := st.Weights[i]
		if w == 0 { // adds nothing
			continue
		}
		if !f.numeric && !st.Scaled[i] { // an indicator: w when equal, else 0 (NULL included)
			if f.category != "" {
				fmt.Fprintf(&b, "\n  + (CASE WHEN %s = %s THEN %s ELSE %s END)", f.col, str(f.category), g.num(w), g.num(0))
			}
			continue
		}
		// The encoded value, NULL when missing.
		v := g.real(f.col)
		switch {
		case f.numeric:
		case f.category == "":
			v = fmt.Sprintf("(CASE WHEN %s IS NULL THEN NULL ELSE %s END)", f.col, g.num(0))
		default:
			v = fmt.Sprintf("(CASE WHEN %s = %s THEN %s WHEN %s IS NULL THEN NULL ELSE %s END)", f.col, str(f.category), g.num(1), f.col, g.num(0))
		}
		if st.Scaled[i] {
			v = g.clip("("+v+" - "+g.num(st.Mean[i])+") / "+g.num(st.SD[i]), strconv.Itoa(ftrlClip))
		}
		fmt.Fprintf(&b, "\n  + (CASE WHEN %s IS NULL THEN %s ELSE %s * %s END)", f.col, g.num(0), g.num(w), v)
	}
	b.WriteString("\n  + " + g.num(st.Bias))
	return b.String(), nil
}

// ftrlClip is ftrl.Clip, the bound of a standardised value.
const ftrlClip = ftrl.Clip

// clip bounds a non-NULL expression to [-bound, bound].
func (g generator) clip(expr, bound string) string {
	if g.d == SQLite {
		return "max(min(" + expr + ", " + bound + "), -" + bound + ")"
	}
	return "GREATEST(LEAST(" + expr + ", " + bound + "), -" + bound + ")"
}

// node writes the value of the subtree at child reference c of tr (c >= 0 an internal node,
// c < 0 leaf -c-1).
func (g generator) node(b *strings.Builder, fs []feature, tr *ml.Tree, c int32, depth int) error {
	if c < 0 {
		l := int(-c - 1)
		if l >= len(tr.LeafValue) {
			return fmt.Errorf("leaf %d out of range", l)
		}
		b.WriteString(g.num(tr.LeafValue[l]))
		return nil
	}
	if len(tr.Feature) == 0 && c == 0 { // a single leaf
		if len(tr.LeafValue) != 1 {
			return fmt.Errorf("got %d leaves and no split, want 1", len(tr.LeafValue))
		}
		b.WriteString(g.num(tr.LeafValue[0]))
		return nil
	}
	i := int(c)
	if i >= len(tr.Feature) || depth > len(tr.Feature) {
		return fmt.Errorf("node %d out of range", i)
	}
	fi := int(tr.Feature[i])
	if fi < 0 || fi >= len(fs) {
		return fmt.Errorf("node %d: feature %d out of range", i, fi)
	}
	f, th := fs[fi], tr.Threshold[i]
	missing, left, right := tr.Right[i], tr.Left[i], tr.Right[i]
	if tr.DefaultLeft[i] {
		missing = tr.Left[i]
	}
	// The CASE arms: NULL goes to missing; then either a condition sends a row to left and
	// the rest to right, or every present value goes one way.
	var cond string
	all := int32(0) // child taking every present value, when cond is empty
	switch {
	case f.numeric && math.IsInf(th, 1):
		all = left
	case f.numeric:
		cond = g.real(f.col) + " <= " + g.num(th)
	case f.category == "": // always 0
		all = pick(0 <= th, left, right)
	case 1 <= th: // 0 and 1 both go left
		all = left
	case 0 <= th: // 1 goes right
		cond = f.col + " <> " + str(f.category)
	default:
		all = right
	}
	// Each child is written once: a missing value (NULL) fails every condition, so it goes
	// right unless the condition lets it through.
	if cond == "" {
		if all == missing {
			return g.node(b, fs, tr, all, depth+1)
		}
		cond = f.col + " IS NULL"
		left, right = missing, all
	} else if missing == left {
		cond = f.col + " IS NULL OR " + cond
	}
	fmt.Fprintf(b, "(CASE WHEN %s THEN ", cond)
	if err := g.node(b, fs, tr, left, depth+1); err != nil {
		return err
	}
	b.WriteString(" ELSE ")
	if err := g.node(b, fs, tr, right, depth+1); err != nil {
		return err
	}
	b.WriteString(" END)")
	return nil
}

func pick(c bool, a, b int32) int32 {
	if c {
		return a
	}
	return b
}

// width is the number of encoded values of an input.
func width(in ml.InputPreprocessing) int {
	if in.Kind == pulse.Categorical {
		return len(in.Categories)
	}
	return 1
}

// num writes a float64 as a literal of type double precision that reads back exactly.
func (g generator) num(f float64) string { return num(g.d, f) }

func num(d Dialect, f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	switch d {
	case Postgres:
		s += "::float8"
	case DuckDB:
		s += "::DOUBLE"
	default: // SQLite: a literal with '.' or an exponent is REAL
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
	}
	if f < 0 || (f == 0 && math.Signbit(f)) {
		s = "(" + s + ")"
	}
	return s
}

// real converts a quoted numeric column to double precision.
func (g generator) real(col string) string {
	switch g.d {
	case Postgres:
		return col + "::float8"
	case DuckDB:
		return col + "::DOUBLE"
	}
	return "CAST(" + col + " AS REAL)"
}

// quote quotes an identifier.
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// qualified quotes each dot-separated part of a name.
func qualified(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = quote(p)
	}
	return strings.Join(parts, ".")
}

// str quotes a string literal.
func str(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
