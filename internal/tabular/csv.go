// Package tabular reads delimited text (CSV) into typed columns and infers the schema of the
// result: which columns are numeric, binary or categorical, their categories and how many
// cells are missing.
package tabular

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Header modes of Options.Header.
const (
	HeaderAuto  = "auto"  // detect the header (see ReadCSV); the default
	HeaderTrue  = "true"  // the first row is a header
	HeaderFalse = "false" // there is no header; Options.Columns names the columns
)

// Options say how to read a file. The zero value reads a comma-separated file, detects its
// header and infers every column's kind.
type Options struct {
	// Header is HeaderAuto ("auto", the default when ""), HeaderTrue or HeaderFalse.
	Header string
	// Columns are the declared column names. They are required when the file has no header;
	// when it has one they must equal it (after trimming spaces).
	Columns []string
	// Kinds declares the kind of some columns; the others are inferred. A name that is not a
	// column is an error.
	Kinds map[string]pulse.Kind
	// MissingMarkers are the cell values that mean "missing", compared after trimming spaces.
	// Nil or empty means pulse.DefaultMissingMarkers. An empty cell is always missing.
	MissingMarkers []string
	// Delimiter separates the cells; 0 means ','.
	Delimiter rune
	// MaxRows limits the number of data rows: a file with more is an ETOOLARGE error. 0 means
	// no limit.
	MaxRows int
}

// Table is a parsed file: its schema and its cells by column.
type Table struct {
	// Schema lists the columns in file order with their kinds, sorted canonical categories
	// (binary and categorical columns) and missing counts, and the missing markers used.
	Schema pulse.Schema
	// Format says whether a header was read and which delimiter separates the cells.
	Format pulse.CSVFormat
	// Rows is the number of data rows.
	Rows int
	// Num holds each numeric column's values, NaN where missing; nil for other columns.
	Num [][]float64
	// Cat holds each binary or categorical column's values in canonical form
	// (pulse.CanonicalCategory), "" where missing; nil for numeric columns.
	Cat [][]string
}

// ReadCSV reads a delimited file into a Table. Cells and header names are trimmed of spaces;
// quoted cells may hold delimiters and line breaks.
//
// With Header "auto" the first row is a header when one of its cells is neither a number nor
// missing while every other non-missing value of that column is a number, or when every cell of
// the first row is a non-numeric, non-missing text equal to the declared Columns. A file whose
// columns all hold text therefore needs Header "true" or declared Columns.
//
// An undeclared column is numeric when every non-missing cell is a number, except that a
// column whose values are exactly 0 and 1 is binary; a column with text is binary when it has
// exactly two distinct values and categorical otherwise; a column with no value at all is
// numeric. A numeric column (declared or inferred) with NaN or infinite values is an error.
// Categories are sorted in byte order (slices.Sort), so "10" comes before "9" and
// binary {"0", "1"} and {"no", "yes"} have "1" and "yes" second.
//
// Errors are *pulse.Error values: EUNPROCESSABLE for bad content (with Row, a 1-based data row
// not counting the header, and Field, a column name, where they apply), EINVALID for bad
// options and ETOOLARGE when the file has more than MaxRows data rows. Reading errors of r are
// returned wrapped.
func ReadCSV(r io.Reader, opts Options) (*Table, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}

	cr := csv.NewReader(r)
	cr.Comma = o.delim
	cr.FieldsPerRecord = -1
	// With a white-space delimiter, trimming leading space would swallow empty cells.
	cr.TrimLeadingSpace = !unicode.IsSpace(o.delim)

	var recs [][]string
	var parseErr *csv.ParseError
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.As(err, &parseErr) {
				break
			}
			return nil, fmt.Errorf("read csv: %w", err)
		}
		if len(recs) == 0 && len(rec) > 0 {
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		recs = append(recs, rec)
		if o.maxRows > 0 && len(recs) > o.maxRows+1 {
			break // enough to know the limit is exceeded, header or not
		}
	}

	header := o.header == HeaderTrue || (o.header == HeaderAuto && len(recs) == 0)
	if o.header == HeaderAuto && len(recs) > 0 {
		header = o.looksLikeHeader(recs)
	}
	if parseErr != nil {
		return nil, csvError(parseErr, len(recs), header)
	}
	if len(recs) == 0 {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "empty file: no header and no data rows")
	}

	var names []string
	data := recs
	if header {
		names = recs[0]
		data = recs[1:]
		if len(o.columns) > 0 {
			if err := matchHeader(names, o.columns); err != nil {
				return nil, err
			}
		}
	} else {
		if len(o.columns) == 0 {
			msg := "the file has no header: declare the column names"
			if o.header == HeaderAuto {
				msg = "no header detected (the first row is not text above numbers): declare the column names or set header to true"
			}
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "columns", "%s", msg)
		}
		names = o.columns
	}
	if err := checkNames(names); err != nil {
		return nil, err
	}
	if o.maxRows > 0 && len(data) > o.maxRows {
		return nil, pulse.Errorf(pulse.ETOOLARGE, "the file has more than %d data rows", o.maxRows)
	}
	if len(data) == 0 {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "no data rows: the file has only a header")
	}
	for i, rec := range data {
		if len(rec) != len(names) {
			return nil, &pulse.Error{
				Code:    pulse.EUNPROCESSABLE,
				Row:     i + 1,
				Message: fmt.Sprintf("row %d: got %d fields, want %d", i+1, len(rec), len(names)),
			}
		}
	}
	for name, kind := range o.kinds {
		if !slices.Contains(names, name) {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, name, "kinds: there is no column named %q", name)
		}
		if !kind.Valid() {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, name,
				"kinds: column %q: got kind %q, want numeric, binary or categorical", name, kind)
		}
	}

	t := &Table{
		Schema: pulse.Schema{
			Columns:        make([]pulse.Column, len(names)),
			MissingMarkers: o.markers,
		},
		Format: pulse.CSVFormat{Header: header, Delimiter: string(o.delim)},
		Rows:   len(data),
		Num:    make([][]float64, len(names)),
		Cat:    make([][]string, len(names)),
	}
	scratch := make([]float64, len(data))
	for j, name := range names {
		col, num, cat, err := o.column(data, j, name, scratch)
		if err != nil {
			return nil, err
		}
		t.Schema.Columns[j] = col
		t.Num[j] = num
		t.Cat[j] = cat
	}
	return t, nil
}

// options are Options after defaults and validation.
type options struct {
	header  string
	columns []string
	kinds   map[string]pulse.Kind
	markers []string
	delim   rune
	maxRows int
}

func (opts Options) normalize() (options, error) {
	o := options{header: opts.Header, kinds: opts.Kinds, delim: opts.Delimiter, maxRows: opts.MaxRows}
	switch o.header {
	case "":
		o.header = HeaderAuto
	case HeaderAuto, HeaderTrue, HeaderFalse:
	default:
		return o, pulse.FieldErrorf(pulse.EINVALID, "header", "header: got %q, want auto, true or false", opts.Header)
	}
	if o.delim == 0 {
		o.delim = ','
	}
	if !utf8.ValidRune(o.delim) || o.delim == utf8.RuneError || o.delim == '"' || o.delim == '\r' || o.delim == '\n' {
		return o, pulse.FieldErrorf(pulse.EINVALID, "delimiter", "delimiter: got %q, want a character other than a quote or line break", o.delim)
	}
	if o.maxRows < 0 {
		return o, pulse.FieldErrorf(pulse.EINVALID, "max_rows", "max_rows: got %d, want 0 (no limit) or more", o.maxRows)
	}
	for _, c := range opts.Columns {
		o.columns = append(o.columns, strings.TrimSpace(c))
	}
	markers := opts.MissingMarkers
	if len(markers) == 0 {
		markers = pulse.DefaultMissingMarkers
	}
	o.markers = []string{""}
	for _, m := range markers {
		if m = strings.TrimSpace(m); !slices.Contains(o.markers, m) {
			o.markers = append(o.markers, m)
		}
	}
	return o, nil
}

func (o *options) isMissing(cell string) bool {
	for _, m := range o.markers {
		if cell == m {
			return true
		}
	}
	return false
}

// isNumber reports whether s is written as a number, finite or not.
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

// looksLikeHeader applies the header detection rules documented on ReadCSV.
func (o *options) looksLikeHeader(recs [][]string) bool {
	first := recs[0]
	if len(o.columns) == len(first) {
		equal := true
		for i, c := range first {
			if c != o.columns[i] || isNumber(c) || o.isMissing(c) {
				equal = false
				break
			}
		}
		if equal {
			return true
		}
	}
	for j, c := range first {
		if isNumber(c) || o.isMissing(c) {
			continue
		}
		numbersBelow := true
		for _, rec := range recs[1:] {
			if j < len(rec) && !o.isMissing(rec[j]) && !isNumber(rec[j]) {
				numbersBelow = false
				break
			}
		}
		if numbersBelow {
			return true
		}
	}
	return false
}

// csvError turns a syntax error of encoding/csv into a domain error naming the data row.
func csvError(pe *csv.ParseError, read int, header bool) error {
	if header && read == 0 {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "header (line %d, column %d): %v", pe.Line, pe.Column, pe.Err)
	}
	row := read + 1
	if header {
		row--
	}
	return &pulse.Error{
		Code:    pulse.EUNPROCESSABLE,
		Row:     row,
		Message: fmt.Sprintf("row %d (line %d, column %d): %v", row, pe.Line, pe.Column, pe.Err),
	}
}

func matchHeader(header, declared []string) error {
	if len(header) != len(declared) {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "columns",
			"the header has %d columns, %d are declared", len(header), len(declared))
	}
	for i := range header {
		if header[i] != declared[i] {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "columns",
				"header column %d is %q, declared %q", i+1, header[i], declared[i])
		}
	}
	return nil
}

func checkNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if n == "" {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "columns", "column %d has an empty name", i+1)
		}
		if seen[n] {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, n, "column name %q appears twice", n)
		}
		seen[n] = true
	}
	return nil
}

// column types column j of data. scratch (len(data)) holds parsed numbers meanwhile.
func (o *options) column(data [][]string, j int, name string, scratch []float64) (pulse.Column, []float64, []string, error) {
	col := pulse.Column{Name: name}
	declared, isDeclared := o.kinds[name]

	// Scan: parse numbers, count missing cells, find the first cell that is not a (finite) number.
	badNumber, nonFinite := -1, -1
	only01, seen0, seen1, values := true, false, false, 0
	for i, rec := range data {
		cell := rec[j]
		if o.isMissing(cell) {
			col.Missing++
			scratch[i] = math.NaN()
			continue
		}
		values++
		f, err := strconv.ParseFloat(cell, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			if badNumber < 0 {
				badNumber = i
			}
		case math.IsNaN(f) || math.IsInf(f, 0):
			if nonFinite < 0 {
				nonFinite = i
			}
		}
		switch f {
		case 0:
			seen0 = true
		case 1:
			seen1 = true
		default:
			only01 = false
		}
		scratch[i] = f
	}

	kind := declared
	if !isDeclared {
		switch {
		case values == 0:
			kind = pulse.Numeric
		case badNumber >= 0:
			kind = pulse.Categorical // binary if exactly two distinct values, decided below
		case only01 && seen0 && seen1:
			kind = pulse.Binary
		default:
			kind = pulse.Numeric
		}
	}
	col.Kind = kind

	if kind == pulse.Numeric {
		bad, want := badNumber, "a number"
		if bad < 0 || (nonFinite >= 0 && nonFinite < bad) {
			bad, want = nonFinite, "a finite number"
		}
		if bad >= 0 {
			return col, nil, nil, &pulse.Error{
				Code:    pulse.EUNPROCESSABLE,
				Row:     bad + 1,
				Field:   name,
				Message: fmt.Sprintf("row %d, column %q: got %q, want %s", bad+1, name, data[bad][j], want),
			}
		}
		return col, slices.Clone(scratch), nil, nil
	}

	// Binary or categorical: canonical categories, shared between equal cells.
	cat := make([]string, len(data))
	canon := make(map[string]string)
	var cats []string
	for i, rec := range data {
		if o.isMissing(rec[j]) {
			continue
		}
		c, ok := canon[rec[j]]
		if !ok {
			c = pulse.CanonicalCategory(rec[j])
			canon[rec[j]] = c
			if !slices.Contains(cats, c) {
				cats = append(cats, c)
			}
		}
		cat[i] = c
	}
	slices.Sort(cats)
	if !isDeclared && kind == pulse.Categorical && len(cats) == 2 {
		kind = pulse.Binary
	}
	if kind == pulse.Binary && len(cats) > 2 {
		shown := cats[:min(len(cats), 5)]
		return col, nil, nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, name,
			"column %q: declared binary but has %d distinct values (%s)", name, len(cats), quoteList(shown, len(cats)))
	}
	col.Kind = kind
	col.Categories = cats
	return col, nil, cat, nil
}

func quoteList(shown []string, total int) string {
	q := make([]string, len(shown))
	for i, s := range shown {
		q[i] = strconv.Quote(s)
	}
	s := strings.Join(q, ", ")
	if total > len(shown) {
		s += ", ..."
	}
	return s
}
