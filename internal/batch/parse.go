package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/parquet-go/parquet-go"
)

// kind is how a column is read.
type kind uint8

const (
	kindPass kind = iota // not an input of the model
	kindNumeric
	kindBinary
	kindCategorical
)

// layout is what the header says: the columns and which input of the model each one feeds.
type layout struct {
	names  []string // trimmed header names
	header []byte   // the header line: the fields as given, quoted only when needed
	input  []int    // per column: the model input it feeds, or -1
	kinds  []kind   // per column
	inputs []pulse.Column
}

// newLayout reads the header record (its line ending included) and matches it to the model's
// inputs.
func newLayout(rec []byte, m *ml.Model, delim byte) (*layout, error) {
	rec = bytes.TrimPrefix(rec, []byte("\ufeff"))
	rec = trimEOL(rec)
	if len(rec) == 0 {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "the header line is empty: want the column names")
	}
	fields, reason := splitRecord(rec, delim)
	if reason != "" {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "header: %s", reason)
	}
	l := &layout{inputs: m.Inputs()}
	seen := make(map[string]bool, len(fields))
	for i, f := range fields {
		if i > 0 {
			l.header = append(l.header, delim)
		}
		l.header = appendField(l.header, f, delim)
		name := strings.TrimSpace(string(f))
		switch {
		case name == "":
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "header", "header: column %d has an empty name", i+1)
		case seen[name]:
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, name, "header: column name %q appears twice", name)
		case name == ColumnProbability || name == ColumnLabel || name == ColumnModelVersion:
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, name, "header: the input has a column %q, a name the output adds", name)
		}
		seen[name] = true
		l.names = append(l.names, name)
	}
	l.input = make([]int, len(l.names))
	l.kinds = make([]kind, len(l.names))
	for j := range l.input {
		l.input[j] = -1
	}
	for i, in := range l.inputs {
		j := slices.Index(l.names, in.Name)
		if j < 0 {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, in.Name, "the input has no column %q, an input of the model (header: %s)", in.Name, strings.Join(l.names, ", "))
		}
		l.input[j] = i
		switch in.Kind {
		case pulse.Numeric:
			l.kinds[j] = kindNumeric
		case pulse.Binary:
			l.kinds[j] = kindBinary
		case pulse.Categorical:
			l.kinds[j] = kindCategorical
		default:
			return nil, pulse.Errorf(pulse.EINTERNAL, "input %q has unknown kind %q", in.Name, in.Kind)
		}
	}
	return l, nil
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// splitRecord splits one record (without its line ending) into its fields under RFC 4180.
// It returns a reason when the record is malformed.
func splitRecord(rec []byte, delim byte) (fields [][]byte, reason string) {
	var arena []byte
	for i := 0; ; {
		f, next, a, r := nextField(rec, i, delim, arena)
		if r != "" {
			return fields, r
		}
		arena = a
		fields = append(fields, f)
		if next >= len(rec) {
			return fields, ""
		}
		i = next + 1
	}
}

// nextField reads the field of rec starting at i. It returns the field's text (unquoted; when
// it had "" escapes or "\r\n", copied to the end of arena, which it returns), the index of the
// delimiter that ends it (len(rec) for the last field) and a reason when the field is
// malformed. As encoding/csv with TrimLeadingSpace, spaces before an opening quote are skipped,
// and "\r\n" inside a quoted field becomes "\n".
func nextField(rec []byte, i int, delim byte, arena []byte) (text []byte, next int, _ []byte, reason string) {
	j := i
	for j < len(rec) && (rec[j] == ' ' || rec[j] == '\t') {
		j++
	}
	if j >= len(rec) || rec[j] != '"' {
		k := i
		for k < len(rec) && rec[k] != delim {
			if rec[k] == '"' {
				return nil, 0, arena, `bare " in a non-quoted field`
			}
			k++
		}
		return rec[i:k], k, arena, ""
	}
	// A quoted field: "" is a quote; the field ends at a quote followed by the delimiter or
	// the end of the record.
	start, k := j+1, j+1
	escaped := false
	from := len(arena)
	for {
		q := bytes.IndexByte(rec[k:], '"')
		if q < 0 {
			return nil, 0, arena, "a quoted field is not closed"
		}
		seg := rec[k : k+q]
		k += q + 1
		if k < len(rec) && rec[k] == '"' {
			arena = append(arena, seg...)
			arena = append(arena, '"')
			escaped = true
			k++
			continue
		}
		if k < len(rec) && rec[k] != delim {
			return nil, 0, arena, `extraneous or missing " in a quoted field`
		}
		if escaped {
			arena = append(arena, seg...)
			text = arena[from:]
		} else {
			text = rec[start : k-1]
		}
		break
	}
	if bytes.Contains(text, []byte("\r\n")) {
		if !escaped {
			arena = append(arena, text...)
			text = arena[from:]
		}
		w := 0
		for r := 0; r < len(text); r++ {
			if text[r] == '\r' && r+1 < len(text) && text[r+1] == '\n' {
				continue
			}
			text[w] = text[r]
			w++
		}
		text = text[:w]
		arena = arena[:from+w]
	}
	return text, k, arena, ""
}

// needsQuotes reports whether a field must be quoted to read back as the same text: when it
// holds the delimiter, a quote or a line break.
func needsQuotes(f []byte, delim byte) bool {
	for _, c := range f {
		if c == delim || c == '"' || c == '\r' || c == '\n' {
			return true
		}
	}
	return false
}

// appendField appends a field, quoted when needed.
func appendField(out, f []byte, delim byte) []byte {
	if !needsQuotes(f, delim) {
		return append(out, f...)
	}
	out = append(out, '"')
	for {
		q := bytes.IndexByte(f, '"')
		if q < 0 {
			break
		}
		out = append(out, f[:q+1]...)
		out = append(out, '"')
		f = f[q+1:]
	}
	out = append(out, f...)
	return append(out, '"')
}

// recordEnd returns the index of the "\n" that ends the record starting at i (the first one
// after an even number of quotes), or len(data).
func recordEnd(data []byte, i int) int {
	inQuotes := false
	for ; i < len(data); i++ {
		switch data[i] {
		case '"':
			inQuotes = !inQuotes
		case '\n':
			if !inQuotes {
				return i
			}
		}
	}
	return len(data)
}

// unsafeString returns b as a string without copying; the string must not outlive b's
// content, so it is only used for lookups and parsing.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// trimSpace trims white space as strings.TrimSpace does, without allocating.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && asciiSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && asciiSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && (b[0] >= utf8.RuneSelf || b[len(b)-1] >= utf8.RuneSelf) {
		s := strings.TrimSpace(unsafeString(b))
		if len(s) == 0 {
			return b[:0]
		}
		off := int(uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		return b[off : off+len(s)]
	}
	return b
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// pow10 are the powers of ten that float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
	1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat reads a number exactly as strconv.ParseFloat(s, 64) does: plain decimals take
// scanDecimal's fast path, anything else goes to strconv.
func parseFloat(b []byte) (float64, error) {
	if f, end, ok := scanDecimal(b, 0); ok && end == len(b) {
		return f, nil
	}
	return strconv.ParseFloat(unsafeString(b), 64)
}

// scanDecimal reads the longest run of the form [+-]digits[.digits] at data[i:] and returns
// its value and end. ok is false when the run is not a number the fast path reads exactly: no
// digit, more than 19 characters, or digits that make more than 2^53. Otherwise both the
// mantissa and the power of ten (at most 10^18) are exact float64s, so one IEEE division gives
// the correctly rounded result, the same bits as strconv.ParseFloat's for data[i:end].
func scanDecimal(data []byte, i int) (f float64, end int, ok bool) {
	n, j, neg := len(data), i, false
	if j < n && (data[j] == '-' || data[j] == '+') {
		neg = data[j] == '-'
		j++
	}
	start, dot := j, -1
	var mant uint64
	for ; j < n; j++ {
		if d := data[j] - '0'; d <= 9 {
			mant = mant*10 + uint64(d)
		} else if data[j] == '.' && dot < 0 {
			dot = j
		} else {
			break
		}
	}
	digits, frac := j-start, 0
	if dot >= 0 {
		digits--
		frac = j - dot - 1
	}
	if digits == 0 || j-i > 19 || mant > 1<<53 {
		return 0, j, false
	}
	f = float64(mant)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, j, true
}

// catEntry is a raw category text seen in a column, with its canonical form and whether the
// model knows it.
type catEntry struct {
	raw   string
	canon string
	known bool
	term  float64 // a logistic regression's term for the category (0 when unknown)
}

// catCache maps the raw texts of one categorical or binary column to their canonical form, so
// that each distinct text is canonicalised once. Texts of up to 8 bytes are found through a
// direct-mapped table keyed by their bytes as an integer; the others by a linear scan of the
// first few texts, then a map. It stops growing at catCacheMax texts; past that, texts are
// canonicalised each time.
type catCache struct {
	col     *pulse.Column
	lin     *ml.LinearInput // a logistic regression's terms for the input, or nil
	slots   [64]catSlot
	entries []catEntry
	index   map[string]int
}

// catSlot is a slot of catCache's direct-mapped table.
type catSlot struct {
	key   uint64
	n     int32   // the text's length
	entry int32   // index in entries + 1; 0 for an empty slot
	known bool    // the entry's
	term  float64 // the entry's
}

const (
	catScanMax  = 16
	catCacheMax = 4096
)

// keyMasks[n] keeps the n low bytes of a uint64.
var keyMasks = [9]uint64{0, 0xff, 0xffff, 0xffffff, 0xffffffff, 0xffffffffff, 0xffffffffffff, 0xffffffffffffff, ^uint64(0)}

// shortKey returns a text of up to 8 bytes as an integer. It reads 8 bytes from b's start,
// which needs cap(b) >= 8 (b is a slice of a chunk, so there almost always is room).
func shortKey(b []byte) (uint64, bool) {
	if len(b) > 8 || cap(b) < 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:8]) & keyMasks[len(b)], true
}

func (c *catCache) lookup(b []byte) *catEntry {
	key, ok := shortKey(b)
	if !ok {
		e, _ := c.find(b)
		return e
	}
	s := &c.slots[(key*0x9e3779b97f4a7c15)>>58]
	if s.key == key && int(s.n) == len(b) && s.entry > 0 {
		return &c.entries[s.entry-1]
	}
	e, i := c.find(b)
	if i >= 0 {
		*s = catSlot{key: key, n: int32(len(b)), entry: int32(i + 1), known: e.known, term: e.term}
	}
	return e
}

// knownTerm returns the term of b when b is a known category found in the direct-mapped
// table: a text seen before as it is (trimmed, not a missing marker). false sends b the long
// way.
func (c *catCache) knownTerm(b []byte) (float64, bool) {
	key, ok := shortKey(b)
	if !ok {
		return 0, false
	}
	s := &c.slots[(key*0x9e3779b97f4a7c15)>>58]
	if s.key == key && int(s.n) == len(b) && s.entry > 0 && s.known {
		return s.term, true
	}
	return 0, false
}

// find is lookup past the direct-mapped table. It returns the entry and its index, -1 when it
// is not kept.
func (c *catCache) find(b []byte) (*catEntry, int) {
	if c.index == nil {
		for i := range c.entries {
			if c.entries[i].raw == unsafeString(b) {
				return &c.entries[i], i
			}
		}
	} else if i, ok := c.index[unsafeString(b)]; ok {
		return &c.entries[i], i
	}
	raw := string(b)
	e := catEntry{raw: raw, canon: pulse.CanonicalCategory(raw)}
	if i, found := slices.BinarySearch(c.col.Categories, e.canon); found {
		// The model's own string: Predict's comparison with it then starts equal pointers.
		e.canon, e.known = c.col.Categories[i], true
		if c.lin != nil {
			e.term = c.lin.Terms[i]
		}
	}
	if len(c.entries) >= catCacheMax {
		return &e, -1
	}
	c.entries = append(c.entries, e)
	i := len(c.entries) - 1
	if len(c.entries) > catScanMax {
		if c.index == nil {
			c.index = make(map[string]int, 2*catScanMax)
			for j, e := range c.entries {
				c.index[e.raw] = j
			}
		}
		c.index[raw] = i
	}
	return &c.entries[i], i
}

// colSpec is how a worker reads a column.
type colSpec struct {
	kind  kind
	input int       // the model input it feeds, or -1
	cache *catCache // binary and categorical inputs
}

// badRow is a row left out of the output.
type badRow struct {
	row    int64 // within the chunk, 1-based
	column string
	reason string
	raw    []byte
}

// worker parses and scores chunks. Each goroutine has its own.
type worker struct {
	o       *options
	l       *layout
	m       *ml.Model
	delim   byte
	parquet bool
	pw      *parquet.Writer // Parquet: row groups are begun from it
	ncols   int
	thr     float64
	version []byte // ",7\n" with the delimiter

	cols        []colSpec
	markerStart [256]bool // first bytes of the missing markers
	// plainNumbers: the delimiter is none of the characters of a number, so numeric cells
	// may be read while the record is split, and the output's numbers need no quotes.
	plainNumbers bool
	values       []ml.Value
	scratch      []float64
	// lin, for a logistic regression, has the terms the row's cells resolve to (terms, per
	// input); the score is their sum, without encoding the row (see ml.Linear).
	lin     *ml.Linear
	terms   []float64
	cats    []catCache // per input
	texts   [][]byte   // per column: the field's text (quoted records, Parquet)
	unknown []int      // inputs with an unknown category in the current row

	// the current row's first problem
	errCol    int
	errReason string
}

func newWorker(o *options, l *layout, pw *parquet.Writer) *worker {
	wk := &worker{
		o: o, l: l, m: o.Model, delim: o.Delimiter, pw: pw, parquet: pw != nil, ncols: len(l.names),
		thr:     o.Model.Threshold(),
		values:  make([]ml.Value, len(l.inputs)),
		scratch: make([]float64, o.Model.Width()),
		cats:    make([]catCache, len(l.inputs)),
		texts:   make([][]byte, len(l.names)),
	}
	if lin, ok := o.Model.Linear(); ok {
		wk.lin, wk.terms = lin, make([]float64, len(l.inputs))
	}
	for i := range wk.cats {
		wk.cats[i].col = &l.inputs[i]
		if wk.lin != nil {
			wk.cats[i].lin = &wk.lin.Inputs[i]
		}
	}
	wk.cols = make([]colSpec, len(l.names))
	for j := range wk.cols {
		wk.cols[j] = colSpec{kind: l.kinds[j], input: l.input[j]}
		if in := l.input[j]; in >= 0 {
			wk.cols[j].cache = &wk.cats[in]
		}
	}
	for _, m := range o.markers {
		if m != "" {
			wk.markerStart[m[0]] = true
		}
	}
	wk.plainNumbers = !strings.ContainsRune("0123456789+-.e", rune(o.Delimiter))
	wk.version = append([]byte{o.Delimiter}, strconv.Itoa(o.Version)...)
	wk.version = append(wk.version, '\n')
	return wk
}

// process parses and scores c.data into c's results. In fail mode (no BadRows) it stops at
// the first bad row, the last of c.bad.
func (wk *worker) process(c *chunk) {
	c.reset(len(wk.l.inputs))
	if want := len(c.data) + len(c.data)/2 + 4096; !wk.parquet && cap(c.out) < want {
		c.out = make([]byte, 0, want)
	}
	if wk.parquet {
		if c.rg == nil {
			c.rg = wk.pw.BeginRowGroup()
			c.pvals = make([]parquet.Value, 0, parquetBatch*(wk.ncols+3))
		}
		defer wk.flushParquet(c, true)
	}
	if bytes.IndexByte(c.data, '"') < 0 && !wk.parquet {
		wk.processPlain(c)
		return
	}
	data := c.data
	for i := 0; i < len(data); {
		if data[i] == '\n' {
			i++
			continue
		}
		if data[i] == '\r' && (i+1 == len(data) || data[i+1] == '\n') {
			i++
			continue
		}
		end := recordEnd(data, i)
		rec := trimEOL(data[i:end])
		next := end + 1
		c.rows++
		if !wk.record(c, rec) {
			return
		}
		i = next
	}
}

// processPlain is process for CSV output of a chunk without quotes: records are lines, fields
// are split at each delimiter and handled as they are found, and a scored line is copied as it
// is, with the three output columns appended.
func (wk *worker) processPlain(c *chunk) {
	data := c.data
	delim, ncols, cols := wk.delim, wk.ncols, wk.cols
	n := len(data)
	for i := 0; i < n; {
		start := i
		if data[i] == '\n' {
			i++
			continue
		}
		if data[i] == '\r' && (i+1 == n || data[i+1] == '\n') {
			i++
			continue
		}
		c.rows++
		wk.errCol, wk.errReason = -1, ""
		wk.unknown = wk.unknown[:0]
		col := 0
		for {
			fs := i
			if col < ncols && cols[col].kind == kindNumeric && wk.plainNumbers && (i == n || !wk.markerStart[data[i]]) {
				// Most numeric cells are plain decimals: read while found (unless the cell
				// may be a missing marker).
				if f, end, ok := scanDecimal(data, i); ok && (end == n || data[end] == delim || data[end] == '\n') {
					wk.number(cols[col].input, f)
					i = end
					col++
					if i >= n || data[i] == '\n' {
						break
					}
					i++
					continue
				}
			}
			for i < n && data[i] != delim && data[i] != '\n' {
				i++
			}
			if col < ncols && cols[col].kind != kindPass {
				// A logistic regression needs only the term of a category seen before.
				known := false
				if wk.lin != nil && cols[col].kind != kindNumeric {
					var t float64
					if t, known = cols[col].cache.knownTerm(data[fs:i]); known {
						wk.terms[cols[col].input] = t
					}
				}
				if !known {
					wk.field(col, data[fs:i])
				}
			}
			col++
			if i >= n || data[i] == '\n' {
				break
			}
			i++
		}
		rec := trimEOL(data[start:i])
		if i < n {
			i++
		}
		if col != ncols { // before any cell's problem: the cells are not where the header says
			wk.errCol, wk.errReason = -1, fmt.Sprintf("got %d fields, want %d", col, ncols)
		}
		if wk.errReason != "" {
			if !wk.bad(c, rec) {
				return
			}
			continue
		}
		p := wk.score(c)
		c.out = append(c.out, rec...)
		c.out = wk.appendScore(c.out, p)
	}
}

// record handles one record of a chunk that has quotes (or of Parquet output): fields are
// split under RFC 4180 first, then handled. It returns false to stop the chunk (fail mode).
func (wk *worker) record(c *chunk, rec []byte) bool {
	wk.errCol = -1
	wk.errReason = ""
	wk.unknown = wk.unknown[:0]
	col := 0
	for i := 0; ; {
		f, next, arena, reason := nextField(rec, i, wk.delim, c.text)
		if reason != "" {
			wk.errCol, wk.errReason = -1, reason
			col = wk.ncols // the record's syntax is the problem, not its length
			break
		}
		c.text = arena
		if col < wk.ncols {
			wk.texts[col] = f
			wk.field(col, f)
		}
		col++
		if next >= len(rec) {
			break
		}
		i = next + 1
	}
	if col != wk.ncols {
		wk.errCol, wk.errReason = -1, fmt.Sprintf("got %d fields, want %d", col, wk.ncols)
	}
	if wk.errReason != "" {
		return wk.bad(c, rec)
	}
	p := wk.score(c)
	if wk.parquet {
		wk.appendParquet(c, p)
		return true
	}
	for j, f := range wk.texts[:wk.ncols] {
		if j > 0 {
			c.out = append(c.out, wk.delim)
		}
		c.out = appendField(c.out, f, wk.delim)
	}
	c.out = wk.appendScore(c.out, p)
	c.text = c.text[:0] // the texts are written: reuse the space
	return true
}

// field reads column col's text into the model's values. A problem is kept in errCol and
// errReason (the first of the row).
func (wk *worker) field(col int, b []byte) {
	cs := &wk.cols[col]
	if cs.kind == kindPass {
		return
	}
	if n := len(b); n > 0 && (b[0] <= ' ' || b[n-1] <= ' ' || b[0] >= utf8.RuneSelf || b[n-1] >= utf8.RuneSelf) {
		b = trimSpace(b)
	}
	// Only the field of the input's kind is set: Num for numeric inputs, Str for the others.
	v := &wk.values[cs.input]
	if len(b) == 0 || wk.markerStart[b[0]] && wk.isMissing(b) {
		v.Present = false
		if wk.lin != nil {
			wk.terms[cs.input] = wk.lin.Inputs[cs.input].Missing
		}
		return
	}
	if cs.kind == kindNumeric {
		f, err := parseFloat(b)
		if err != nil || f-f != 0 { // f-f is NaN for NaN and ±Inf
			wk.numberError(col, b, err)
			return
		}
		wk.number(cs.input, f)
		return
	}
	e := cs.cache.lookup(b)
	if !e.known {
		if cs.kind == kindBinary {
			wk.setErr(col, fmt.Sprintf("got %q, want one of %q", clip(b), cs.cache.col.Categories))
			return
		}
		wk.unknown = append(wk.unknown, cs.input)
	}
	v.Str, v.Present = e.canon, true
	if wk.lin != nil {
		wk.terms[cs.input] = e.term
	}
}

// number sets a numeric input to the finite number f.
func (wk *worker) number(input int, f float64) {
	v := &wk.values[input]
	v.Num, v.Present = f, true
	if wk.lin != nil {
		wk.terms[input] = float64(wk.lin.Inputs[input].Slope * f) // rounded, as Predict does
	}
}

// numberError records a numeric cell that is not a finite number.
func (wk *worker) numberError(col int, b []byte, err error) {
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		wk.setErr(col, fmt.Sprintf("got %q, want a number", clip(b)))
		return
	}
	wk.setErr(col, fmt.Sprintf("got %q, want a finite number", clip(b)))
}

// clip shortens a cell quoted in a message.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

func (wk *worker) isMissing(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	for _, m := range wk.o.markers {
		if string(b) == m {
			return true
		}
	}
	return false
}

func (wk *worker) setErr(col int, reason string) {
	if wk.errReason == "" {
		wk.errCol, wk.errReason = col, reason
	}
}

// bad records the current row as bad. It returns false in fail mode: the chunk stops.
func (wk *worker) bad(c *chunk, rec []byte) bool {
	column := ""
	if wk.errCol >= 0 {
		column = wk.l.names[wk.errCol]
	}
	c.bad = append(c.bad, badRow{row: c.rows, column: column, reason: wk.errReason, raw: rec})
	wk.errReason = ""
	return wk.o.BadRows != nil
}

// score scores the current row and counts it.
func (wk *worker) score(c *chunk) float64 {
	var p float64
	if wk.lin != nil {
		s := wk.lin.Bias
		for _, t := range wk.terms {
			s += t
		}
		p = ml.Sigmoid(s)
	} else {
		p, _ = wk.m.Predict(wk.values, wk.scratch)
	}
	c.scored++
	if p >= wk.thr {
		c.positive++
	}
	for _, in := range wk.unknown {
		c.unknown[in]++
	}
	return p
}

// appendScore appends the three output columns and the line ending.
func (wk *worker) appendScore(out []byte, p float64) []byte {
	if !wk.plainNumbers {
		return wk.appendScoreQuoted(out, p)
	}
	out = append(out, wk.delim)
	out = appendProbability(out, p)
	out = append(out, wk.delim)
	if p >= wk.thr {
		out = append(out, '1')
	} else {
		out = append(out, '0')
	}
	return append(out, wk.version...)
}

// appendScoreQuoted is appendScore for a delimiter that can be part of a number: each output
// field is quoted when it holds the delimiter.
func (wk *worker) appendScoreQuoted(out []byte, p float64) []byte {
	var buf [32]byte
	out = append(out, wk.delim)
	out = appendField(out, appendProbability(buf[:0], p), wk.delim)
	label := byte('0')
	if p >= wk.thr {
		label = '1'
	}
	out = append(out, wk.delim)
	out = appendField(out, []byte{label}, wk.delim)
	out = append(out, wk.delim)
	out = appendField(out, strconv.AppendInt(buf[:0], int64(wk.o.Version), 10), wk.delim)
	return append(out, '\n')
}

// appendParquet appends the current row as Parquet values.
func (wk *worker) appendParquet(c *chunk, p float64) {
	for j := 0; j < wk.ncols; j++ {
		var v parquet.Value
		if wk.l.kinds[j] == kindNumeric {
			if x := wk.values[wk.l.input[j]]; x.Present {
				v = parquet.DoubleValue(x.Num).Level(0, 1, j)
			} else {
				v = parquet.NullValue().Level(0, 0, j)
			}
		} else if t := trimSpace(wk.texts[j]); wk.isMissing(t) {
			v = parquet.NullValue().Level(0, 0, j)
		} else {
			v = parquet.ByteArrayValue(t).Level(0, 1, j)
		}
		c.pvals = append(c.pvals, v)
	}
	label := int32(0)
	if p >= wk.thr {
		label = 1
	}
	c.pvals = append(c.pvals,
		parquet.DoubleValue(p).Level(0, 0, wk.ncols),
		parquet.Int32Value(label).Level(0, 0, wk.ncols+1),
		parquet.Int64Value(int64(wk.o.Version)).Level(0, 0, wk.ncols+2))
	c.prowEnds = append(c.prowEnds, len(c.pvals))
	if len(c.prowEnds) == parquetBatch {
		wk.flushParquet(c, false)
	}
}

// parquetBatch is the number of rows made into Parquet values before they go to the row group.
const parquetBatch = 1024

// flushParquet writes the batch of rows to the chunk's row group and, at the end of the chunk,
// encodes its last pages.
func (wk *worker) flushParquet(c *chunk, end bool) {
	if c.err != nil {
		return
	}
	if len(c.prowEnds) > 0 {
		if _, err := c.rg.WriteRows(c.parquetRows()); err != nil {
			c.err = fmt.Errorf("batch: write parquet: %w", err)
			return
		}
		clear(c.pvals)
		c.pvals = c.pvals[:0]
		c.prowEnds = c.prowEnds[:0]
	}
	if end {
		if err := c.rg.Flush(); err != nil {
			c.err = fmt.Errorf("batch: write parquet: %w", err)
		}
	}
}
