package batch

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// TestScoreClevelandMatchesPredict scores the shared Cleveland file (header with spaces, "63.0"
// numbers, "?" cells) and checks every row: the input fields as given, the probability equal
// bit for bit to Model.PredictTable over the same file read by internal/tabular, the label and
// the version.
func TestScoreClevelandMatchesPredict(t *testing.T) {
	input := readCleveland(t)
	tab, err := tabular.ReadCSV(bytes.NewReader(input), tabular.Options{Header: tabular.HeaderTrue, Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	in := readCSV(t, input)
	for _, alg := range []string{"logreg", "gbdt", "ftrl"} {
		t.Run(alg, func(t *testing.T) {
			m := trained(t, alg)
			want, _, err := m.PredictTable(tab)
			if err != nil {
				t.Fatal(err)
			}
			out, sum := score(t, input, Options{Model: m, Version: 7, ModelName: "heart"})
			recs := readCSV(t, out)
			if got, want := strings.Join(recs[0], ","), strings.Join(in[0], ",")+",probability,label,model_version"; got != want {
				t.Fatalf("header: got %q, want %q", got, want)
			}
			if len(recs) != 304 {
				t.Fatalf("got %d records, want 304 (header and 303 rows)", len(recs))
			}
			positive := int64(0)
			for i, rec := range recs[1:] {
				if got, want := strings.Join(rec[:14], ","), strings.Join(in[i+1], ","); got != want {
					t.Fatalf("row %d: input fields: got %q, want %q", i+1, got, want)
				}
				p, err := strconv.ParseFloat(rec[14], 64)
				if err != nil || math.Float64bits(p) != math.Float64bits(want[i]) {
					t.Fatalf("row %d: probability: got %q, want %v", i+1, rec[14], want[i])
				}
				if rec[14] != strconv.FormatFloat(want[i], 'g', -1, 64) {
					t.Fatalf("row %d: probability text: got %q, want the shortest form %q", i+1, rec[14], strconv.FormatFloat(want[i], 'g', -1, 64))
				}
				label := "0"
				if want[i] >= m.Threshold() {
					label = "1"
					positive++
				}
				if rec[15] != label || rec[16] != "7" {
					t.Fatalf("row %d: label and version: got %q %q, want %q 7", i+1, rec[15], rec[16], label)
				}
			}
			if sum.Rows != 303 || sum.Scored != 303 || sum.Bad != 0 || sum.Positive != positive || sum.Unknown != 0 {
				t.Errorf("summary: got rows %d scored %d bad %d positive %d unknown %d, want 303 303 0 %d 0", sum.Rows, sum.Scored, sum.Bad, sum.Positive, sum.Unknown, positive)
			}
			if sum.BytesIn != int64(len(input)) || sum.BytesOut != int64(len(out)) {
				t.Errorf("summary bytes: got in %d out %d, want %d %d", sum.BytesIn, sum.BytesOut, len(input), len(out))
			}
			if sum.Model != "heart" || sum.Version != 7 || sum.Algorithm != alg || sum.Format != CSV {
				t.Errorf("summary: got %+v", sum)
			}
		})
	}
}

// TestScoreSameOutputAnyWorkersAndChunks scores messy input (quoted fields with delimiters,
// escapes and line breaks, CRLF, blank lines, missing cells) with 1 to 4 workers and chunk sizes
// from 64 bytes up: the output is always the same, in input order, and each row agrees with
// Predict.
func TestScoreSameOutputAnyWorkersAndChunks(t *testing.T) {
	m := trained(t, "logreg")
	input := synthetic(t, 200<<10, 1, true)
	want, wantSum := score(t, input, Options{Model: m, Workers: 1, ChunkBytes: 1 << 20})
	for _, workers := range []int{1, 2, 3, 4} {
		for _, chunk := range []int{64, 100, 777, 4096, 65536} {
			got, sum := score(t, input, Options{Model: m, Workers: workers, ChunkBytes: chunk})
			if !bytes.Equal(got, want) {
				t.Fatalf("workers %d, chunk %d: the output differs from 1 worker's (%d vs %d bytes)", workers, chunk, len(got), len(want))
			}
			if sum.Rows != wantSum.Rows || sum.Scored != wantSum.Scored || sum.BytesIn != int64(len(input)) {
				t.Fatalf("workers %d, chunk %d: got %d rows %d scored %d bytes, want %d %d %d", workers, chunk, sum.Rows, sum.Scored, sum.BytesIn, wantSum.Rows, wantSum.Scored, len(input))
			}
		}
	}
	// The reference: encoding/csv's records, blank lines skipped, each scored by Predict.
	in := readCSV(t, input)
	recs := readCSV(t, want)
	if len(recs) != len(in) || int64(len(in)-1) != wantSum.Rows {
		t.Fatalf("got %d output records for %d input records (summary %d rows)", len(recs), len(in), wantSum.Rows)
	}
	for i := 1; i < len(in); i++ {
		for j := range in[i] {
			if recs[i][j] != in[i][j] {
				t.Fatalf("record %d field %d: got %q, want %q", i, j, recs[i][j], in[i][j])
			}
		}
		p := predictRow(t, m, in[0], in[i])
		if recs[i][len(in[i])] != strconv.FormatFloat(p, 'g', -1, 64) {
			t.Fatalf("record %d: probability: got %s, want %v", i, recs[i][len(in[i])], p)
		}
	}
}

// TestScoreLineEndings: CRLF, no final newline and blank lines score as the plain file does.
func TestScoreLineEndings(t *testing.T) {
	m := trained(t, "logreg")
	input := readCleveland(t)
	want, _ := score(t, input, Options{Model: m})
	cases := map[string][]byte{
		"crlf":              bytes.ReplaceAll(input, []byte("\n"), []byte("\r\n")),
		"no final newline":  bytes.TrimSuffix(input, []byte("\n")),
		"crlf, no final":    bytes.TrimSuffix(bytes.ReplaceAll(input, []byte("\n"), []byte("\r\n")), []byte("\r\n")),
		"blank lines":       bytes.ReplaceAll(input, []byte("\n"), []byte("\n\n")),
		"byte order mark":   append([]byte("\ufeff"), input...),
		"quoted everywhere": quoteAll(input),
	}
	for name, in := range cases {
		for _, chunk := range []int{64, 1000, 0} {
			got, sum := score(t, in, Options{Model: m, ChunkBytes: chunk})
			if !bytes.Equal(got, want) {
				t.Errorf("%s, chunk %d: the output differs from the plain file's:\n%.300s", name, chunk, got)
			}
			if sum.Rows != 303 || sum.BytesIn != int64(len(in)) {
				t.Errorf("%s: got %d rows %d bytes, want 303 %d", name, sum.Rows, sum.BytesIn, len(in))
			}
		}
	}
}

// quoteAll quotes every field of a CSV without quotes.
func quoteAll(b []byte) []byte {
	s := string(b)
	s = strings.ReplaceAll(s, ",", `","`)
	s = strings.ReplaceAll(s, "\n", "\"\n\"")
	s = `"` + strings.TrimSuffix(s, `"`)
	return []byte(s)
}

// TestScoreHeaderOnly: a header alone (with or without its newline) gives the output header
// alone, in both formats.
func TestScoreHeaderOnly(t *testing.T) {
	m := trained(t, "logreg")
	header := "age, sex, cp, trestbps, chol, fbs, restecg, thalach, exang, oldpeak, slope, ca, thal, num"
	for _, in := range []string{header + "\n", header, header + "\r\n", header + "\n\n"} {
		out, sum := score(t, []byte(in), Options{Model: m, Version: 3})
		if want := header + ",probability,label,model_version\n"; string(out) != want {
			t.Errorf("%q: got %q, want %q", in, out, want)
		}
		if sum.Rows != 0 || sum.Scored != 0 || sum.BytesIn != int64(len(in)) {
			t.Errorf("%q: summary: got %+v", in, sum)
		}
		out, _ = score(t, []byte(in), Options{Model: m, Format: Parquet})
		rows := readParquet(t, out)
		if len(rows) != 0 {
			t.Errorf("%q: parquet: got %d rows, want 0", in, len(rows))
		}
	}
}

// TestScoreHeaderErrors: problems of the header fail before any row is read, naming the column.
func TestScoreHeaderErrors(t *testing.T) {
	m := trained(t, "logreg")
	full := "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal"
	tests := []struct {
		name, input, field, want string
	}{
		{"missing input", "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,thal\n1,2\n", "ca", `the input has no column "ca", an input of the model`},
		{"twice", full + ",age\n", "age", `column name "age" appears twice`},
		{"output name", full + ",probability\n", "probability", `the input has a column "probability", a name the output adds`},
		{"empty name", full + ",\n", "header", "column 14 has an empty name"},
		{"empty input", "", "", "the input is empty"},
		{"empty header", "\n63,1\n", "", "the header line is empty"},
		{"bad quote", full + `,"no"te` + "\n", "", `header: extraneous or missing " in a quoted field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Score(context.Background(), strings.NewReader(tt.input), &out, Options{Model: m})
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != pulse.EUNPROCESSABLE || pe.Field != tt.field || !strings.Contains(pe.Message, tt.want) {
				t.Fatalf("got %v (%#v), want an unprocessable error on %q containing %q", err, pe, tt.field, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("got output %q, want none", out.String())
			}
		})
	}
	// Options are checked too.
	if _, err := Score(context.Background(), strings.NewReader(full), io.Discard, Options{}); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("no model: got %v, want an invalid error", err)
	}
	if _, err := Score(context.Background(), strings.NewReader(full), io.Discard, Options{Model: m, Format: "xml"}); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("format xml: got %v, want an invalid error", err)
	}
}

// badInput is Cleveland's header and first rows with one bad cell or record per case.
const badHeader = "age, sex, cp, trestbps, chol, fbs, restecg, thalach, exang, oldpeak, slope, ca, thal, num\n"

const goodRow = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n"

// TestScoreBadRows: by default the first bad row fails the run with its row number, column
// and reason; with BadRows it is written there, left out of the output and counted.
func TestScoreBadRows(t *testing.T) {
	m := trained(t, "logreg")
	tests := []struct {
		name, row, column, reason string
	}{
		{"not a number", "abc,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0", "age", `got "abc", want a number`},
		{"NaN", "63,1.0,1.0,NaN,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0", "trestbps", `got "NaN", want a finite number`},
		{"out of range", "63,1.0,1.0,1e400,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0", "trestbps", `got "1e400", want a finite number`},
		{"double underscore", "63,1.0,1.0,1__45,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0", "trestbps", `got "1__45", want a number`},
		{"binary", "63,2,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0", "sex", `got "2", want one of ["0" "1"]`},
		{"too few", "63,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0", "", "got 13 fields, want 14"},
		{"too many", "63,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0,9", "", "got 15 fields, want 14"},
		{"too few and a bad cell", "x,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0", "", "got 13 fields, want 14"},
		{"quoted, too few and a bad cell", `"x",1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0`, "", "got 13 fields, want 14"},
		{"bare quote", `63,1.0,1.0,14"5.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0"`, "", `bare " in a non-quoted field`},
		{"after quote", `63,1.0,1.0,"145.0"x,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0`, "", `extraneous or missing " in a quoted field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := badHeader + goodRow + goodRow + tt.row + "\n" + goodRow
			for _, workers := range []int{1, 2} {
				_, err := Score(context.Background(), strings.NewReader(input), io.Discard, Options{Model: m, Workers: workers, ChunkBytes: 64})
				var re *RowError
				if !errors.As(err, &re) || re.Row != 3 || re.Column != tt.column || re.Reason != tt.reason {
					t.Fatalf("got %v, want row 3, column %q: %s", err, tt.column, tt.reason)
				}
				if pulse.ErrorCode(err) != pulse.EUNPROCESSABLE {
					t.Errorf("code: got %q, want unprocessable", pulse.ErrorCode(err))
				}
			}
			var out, bad bytes.Buffer
			sum, err := Score(context.Background(), strings.NewReader(input), &out, Options{Model: m, BadRows: &bad})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Rows != 4 || sum.Scored != 3 || sum.Bad != 1 {
				t.Errorf("summary: got rows %d scored %d bad %d, want 4 3 1", sum.Rows, sum.Scored, sum.Bad)
			}
			if n := len(readCSV(t, out.Bytes())); n != 4 {
				t.Errorf("output: got %d records, want the header and 3 rows", n)
			}
			recs := readCSV(t, bad.Bytes())
			want := [][]string{{"row", "column", "reason", "record"}, {"3", tt.column, tt.reason, tt.row}}
			if len(recs) != 2 || strings.Join(recs[0], "|") != strings.Join(want[0], "|") || strings.Join(recs[1], "|") != strings.Join(want[1], "|") {
				t.Errorf("bad rows: got %q, want %q", recs, want)
			}
		})
	}
}

// TestScoreBadRowNumbersAreGlobal: bad rows spread over many chunks and workers are numbered
// by their place in the whole input, in order.
func TestScoreBadRowNumbersAreGlobal(t *testing.T) {
	m := trained(t, "logreg")
	var in strings.Builder
	in.WriteString(badHeader)
	var want []string
	for i := 1; i <= 2000; i++ {
		if i%97 == 0 {
			in.WriteString("x" + goodRow[2:])
			want = append(want, strconv.Itoa(i))
			continue
		}
		in.WriteString(goodRow)
		if i%13 == 0 {
			in.WriteString("\n") // blank lines are not rows
		}
	}
	var bad bytes.Buffer
	_, sum := score(t, []byte(in.String()), Options{Model: m, Workers: 3, ChunkBytes: 200, BadRows: &bad})
	var got []string
	for _, rec := range readCSV(t, bad.Bytes())[1:] {
		got = append(got, rec[0])
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("bad rows: got %v, want %v", got, want)
	}
	if sum.Rows != 2000 || sum.Bad != int64(len(want)) || sum.Scored != 2000-int64(len(want)) {
		t.Errorf("summary: got %+v", sum)
	}
	_, err := Score(context.Background(), strings.NewReader(in.String()), io.Discard, Options{Model: m, Workers: 3, ChunkBytes: 200})
	var re *RowError
	if !errors.As(err, &re) || re.Row != 97 || re.Column != "age" {
		t.Errorf("fail mode: got %v, want row 97, column age", err)
	}
	if got, want := re.Error(), `row 97, column "age": got "x.0", want a number`; got != want {
		t.Errorf("message: got %q, want %q", got, want)
	}
}

// TestScoreUnclosedQuote: a quote left open swallows the rest of the input into one record,
// which is bad; a record longer than MaxRecordBytes fails the run.
func TestScoreUnclosedQuote(t *testing.T) {
	m := trained(t, "logreg")
	input := badHeader + goodRow + `"63.0,1.0` + "\n" + goodRow
	var bad bytes.Buffer
	_, sum := score(t, []byte(input), Options{Model: m, BadRows: &bad, ChunkBytes: 64})
	if sum.Rows != 2 || sum.Bad != 1 || !strings.Contains(bad.String(), "a quoted field is not closed") {
		t.Errorf("got %+v, bad rows %q", sum, bad.String())
	}
	_, err := Score(context.Background(), strings.NewReader(input+strings.Repeat(goodRow, 100)), io.Discard, Options{Model: m, ChunkBytes: 64, MaxRecordBytes: 1000})
	if pulse.ErrorCode(err) != pulse.EUNPROCESSABLE || !strings.Contains(err.Error(), "longer than 1000 bytes") {
		t.Errorf("got %v, want a record-too-long error", err)
	}
}

// TestScoreUnknownCategory: a category not seen in training is scored as unknown, as REST
// does, and counted.
func TestScoreUnknownCategory(t *testing.T) {
	m := trained(t, "logreg")
	row := "63.0,1.0,9,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n"
	out, sum := score(t, []byte(badHeader+row+row+goodRow), Options{Model: m})
	if sum.Unknown != 2 || sum.UnknownByInput["cp"] != 2 || len(sum.UnknownByInput) != 1 || sum.Scored != 3 {
		t.Errorf("summary: got unknown %d by input %v scored %d, want 2 {cp: 2} 3", sum.Unknown, sum.UnknownByInput, sum.Scored)
	}
	recs := readCSV(t, out)
	want := predictRow(t, m, recs[0], recs[1])
	if recs[1][14] != strconv.FormatFloat(want, 'g', -1, 64) {
		t.Errorf("probability: got %s, want %v", recs[1][14], want)
	}
}

// TestScoreMissingMarkers: the markers given replace the defaults; the empty cell is always
// missing.
func TestScoreMissingMarkers(t *testing.T) {
	m := trained(t, "logreg")
	row := "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,-,6.0,0\n"
	if _, err := Score(context.Background(), strings.NewReader(badHeader+row), io.Discard, Options{Model: m}); err == nil {
		t.Fatal(`"-" with the default markers: got no error`)
	}
	out, _ := score(t, []byte(badHeader+row), Options{Model: m, MissingMarkers: []string{" - "}})
	missing, _ := score(t, []byte(badHeader+strings.Replace(row, ",-,", ",,", 1)), Options{Model: m})
	if got, want := readCSV(t, out)[1][14], readCSV(t, missing)[1][14]; got != want {
		t.Errorf("probability with the marker: got %s, want %s (the empty cell)", got, want)
	}
}

// TestScoreNumericMissingMarkers: a marker that reads as a number ("-999", "0") makes a
// numeric cell missing, quoted or not, for every algorithm.
func TestScoreNumericMissingMarkers(t *testing.T) {
	for _, alg := range []string{"logreg", "gbdt"} {
		m := trained(t, alg)
		row := "-999,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0,6.0,0\n"
		opts := Options{Model: m, MissingMarkers: []string{"?", "-999", "0"}}
		missing, _ := score(t, []byte(badHeader+"?,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,?,6.0,0\n"), Options{Model: m})
		want := readCSV(t, missing)[1][14]
		for _, input := range []string{badHeader + row, badHeader + `"-999",1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,"0",6.0,0` + "\n"} {
			out, _ := score(t, []byte(input), opts)
			if got := readCSV(t, out)[1][14]; got != want {
				t.Errorf("%s, %q: got %s, want %s (age and ca missing)", alg, input[len(badHeader):], got, want)
			}
		}
	}
}

// TestScoreDelimiterInNumbers: a delimiter that can be part of a number ("-", ".", "e", a
// digit) still separates the cells, an empty cell included, and the output reads back with it
// (the fields that hold it are quoted).
func TestScoreDelimiterInNumbers(t *testing.T) {
	m := trained(t, "logreg")
	header := strings.Split("age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num", ",")
	row := strings.Split("63,1,4,140,260,0,2,150,0,,2,0,-3.5,1", ",")
	input := func(d byte) []byte {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Comma = rune(d)
		w.WriteAll([][]string{header, row}) // fields holding d are quoted
		return b.Bytes()
	}
	want, _ := score(t, input(';'), Options{Model: m, Delimiter: ';'})
	wantRecs := readDelimited(t, want, ';')
	for _, d := range []string{"-", ".", "e", "7", "1"} {
		got, _ := score(t, input(d[0]), Options{Model: m, Delimiter: d[0]})
		recs := readDelimited(t, got, d[0])
		if !slices.Equal(recs[0], wantRecs[0]) || !slices.Equal(recs[1], wantRecs[1]) {
			t.Errorf("delimiter %q: got %q, want %q", d, recs, wantRecs)
		}
	}
}

// readDelimited reads the output of a run with delimiter d.
func readDelimited(t *testing.T, b []byte, d byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.Comma = rune(d)
	recs, err := r.ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("delimiter %q: the output does not read back (%v): %s", d, err, b)
	}
	return recs
}

// TestScoreDelimiter: a semicolon-separated file scores as the comma-separated one, with the
// same delimiter in the output.
func TestScoreDelimiter(t *testing.T) {
	m := trained(t, "logreg")
	input := readCleveland(t)
	want, _ := score(t, input, Options{Model: m})
	got, _ := score(t, bytes.ReplaceAll(input, []byte(","), []byte(";")), Options{Model: m, Delimiter: ';'})
	if !bytes.Equal(bytes.ReplaceAll(want, []byte(","), []byte(";")), got) {
		t.Errorf("semicolons: got\n%.300s", got)
	}
	if _, err := Score(context.Background(), bytes.NewReader(input), io.Discard, Options{Model: m, Delimiter: '"'}); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("quote as delimiter: got %v, want an invalid error", err)
	}
}

// TestScoreProgressAndCancel: Progress ends with the totals; a cancelled context stops the run.
func TestScoreProgressAndCancel(t *testing.T) {
	m := trained(t, "logreg")
	input := synthetic(t, 100<<10, 2, false)
	var last Progress
	calls := 0
	_, sum := score(t, input, Options{Model: m, ChunkBytes: 4096, TotalBytes: int64(len(input)), Progress: func(p Progress) { last = p; calls++ }})
	if calls == 0 || last.Rows != sum.Rows || last.BytesRead != int64(len(input)) || last.TotalBytes != int64(len(input)) {
		t.Errorf("progress: got %d calls, last %+v, want the totals %d rows %d bytes", calls, last, sum.Rows, len(input))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Score(ctx, bytes.NewReader(input), io.Discard, Options{Model: m, ChunkBytes: 4096}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v, want context.Canceled", err)
	}
}

// failingReader returns data, then an error.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// TestScoreIOErrors: errors of the reader and the writer are returned, wrapped.
func TestScoreIOErrors(t *testing.T) {
	m := trained(t, "logreg")
	input := synthetic(t, 50<<10, 3, false)
	boom := errors.New("boom")
	_, err := Score(context.Background(), &failingReader{data: input[:30000], err: boom}, io.Discard, Options{Model: m, ChunkBytes: 4096})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "read input") {
		t.Errorf("reader: got %v, want boom wrapped", err)
	}
	_, err = Score(context.Background(), bytes.NewReader(input), &failingWriter{n: 10000}, Options{Model: m, ChunkBytes: 4096})
	if err == nil || !strings.Contains(err.Error(), "write output: disk full") {
		t.Errorf("writer: got %v, want disk full wrapped", err)
	}
}
