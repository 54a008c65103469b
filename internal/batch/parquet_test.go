package batch

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// parquetFile is an output read back: its column names and types and its rows.
type parquetFile struct {
	names []string
	types []string
	rows  []parquet.Row
}

func readParquetFile(t testing.TB, b []byte) parquetFile {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the output is not Parquet: %v", err)
	}
	var pf parquetFile
	for _, fl := range f.Schema().Fields() {
		pf.names = append(pf.names, fl.Name())
		typ := fl.Type().String()
		if fl.Optional() {
			typ = "optional " + typ
		}
		pf.types = append(pf.types, typ)
	}
	r := parquet.NewReader(f)
	buf := make([]parquet.Row, 100)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			pf.rows = append(pf.rows, row.Clone())
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return pf
}

func readParquet(t testing.TB, b []byte) []parquet.Row { return readParquetFile(t, b).rows }

// TestScoreParquet writes the Cleveland file as Parquet and reads it back: the columns in input
// order with their types, nulls where cells are missing, the texts of string columns and the
// probabilities equal bit for bit to the CSV output's.
func TestScoreParquet(t *testing.T) {
	m := trained(t, "logreg")
	input := synthetic(t, 100<<10, 4, true)
	csvOut, csvSum := score(t, input, Options{Model: m, Version: 2})
	want := readCSV(t, csvOut)
	for _, chunk := range []int{100, 0} {
		out, sum := score(t, input, Options{Model: m, Version: 2, Format: Parquet, ChunkBytes: chunk, Workers: 3})
		if sum.Scored != csvSum.Scored || sum.Rows != csvSum.Rows || sum.Format != Parquet || sum.BytesOut != int64(len(out)) {
			t.Fatalf("summary: got %+v, want the CSV run's counts %+v", sum, csvSum)
		}
		pf := readParquetFile(t, out)
		wantNames := "age sex cp trestbps chol fbs restecg thalach exang oldpeak slope ca thal num note probability label model_version"
		if got := strings.Join(pf.names, " "); got != wantNames {
			t.Fatalf("columns: got %s, want %s", got, wantNames)
		}
		wantTypes := map[string]string{"age": "optional DOUBLE", "sex": "optional STRING", "cp": "optional STRING", "ca": "optional DOUBLE",
			"num": "optional STRING", "note": "optional STRING", "probability": "DOUBLE", "label": "INT(32,true)", "model_version": "INT(64,true)"}
		for i, name := range pf.names {
			if w, ok := wantTypes[name]; ok && pf.types[i] != w {
				t.Errorf("column %s: got type %s, want %s", name, pf.types[i], w)
			}
		}
		if len(pf.rows) != len(want)-1 {
			t.Fatalf("got %d rows, want %d", len(pf.rows), len(want)-1)
		}
		nulls := 0
		for i, row := range pf.rows {
			rec := want[i+1]
			for j, v := range row {
				if v.Column() != j {
					t.Fatalf("row %d value %d: column %d", i, j, v.Column())
				}
				cell := ""
				if j < len(rec) {
					cell = strings.TrimSpace(rec[j])
				}
				switch {
				case j == 15: // probability
					if got := strconv.FormatFloat(v.Double(), 'g', -1, 64); got != rec[j] {
						t.Fatalf("row %d: probability: got %s, want %s", i+1, got, rec[j])
					}
				case j == 16:
					if strconv.Itoa(int(v.Int32())) != rec[j] {
						t.Fatalf("row %d: label: got %d, want %s", i+1, v.Int32(), rec[j])
					}
				case j == 17:
					if v.Int64() != 2 {
						t.Fatalf("row %d: version: got %d, want 2", i+1, v.Int64())
					}
				case cell == "" || cell == "?" || cell == "NA":
					if !v.IsNull() {
						t.Fatalf("row %d column %s: got %v, want null", i+1, pf.names[j], v)
					}
					nulls++
				case pf.types[j] == "optional DOUBLE":
					f, _ := strconv.ParseFloat(cell, 64)
					if v.IsNull() || math.Float64bits(v.Double()) != math.Float64bits(f) {
						t.Fatalf("row %d column %s: got %v, want %v", i+1, pf.names[j], v, f)
					}
				default:
					if v.IsNull() || string(v.ByteArray()) != cell {
						t.Fatalf("row %d column %s: got %q, want %q", i+1, pf.names[j], v.ByteArray(), cell)
					}
				}
			}
		}
		if nulls == 0 {
			t.Error("no null read back: the test data has missing cells")
		}
	}
}

// TestParquetRowGroupsBounded: each chunk is a row group, so a long output is cut into row
// groups of at most a chunk's rows, in order.
func TestParquetRowGroupsBounded(t *testing.T) {
	m := trained(t, "logreg")
	input := synthetic(t, 150_000*62, 5, false)
	csvOut, _ := score(t, input, Options{Model: m})
	want := readCSV(t, csvOut)[1:]
	out, sum := score(t, input, Options{Model: m, Format: Parquet, ChunkBytes: 1 << 20})
	f, err := parquet.OpenFile(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	groups := f.RowGroups()
	if len(groups) < 8 {
		t.Fatalf("got %d row groups for %d rows in 1 MiB chunks, want at least 8", len(groups), sum.Scored)
	}
	const maxRows = (1 << 20) / 30 // rows are longer than 30 bytes
	total := int64(0)
	for _, g := range groups {
		if g.NumRows() > maxRows {
			t.Errorf("row group of %d rows, want at most %d", g.NumRows(), maxRows)
		}
		total += g.NumRows()
	}
	if total != sum.Scored || total != int64(len(want)) {
		t.Fatalf("got %d rows in the row groups, want %d", total, sum.Scored)
	}
	rows := readParquet(t, out)
	for i, row := range rows {
		if got := strconv.FormatFloat(row[14].Double(), 'g', -1, 64); got != want[i][14] {
			t.Fatalf("row %d: probability %s, want %s (the CSV output's, in order)", i+1, got, want[i][14])
		}
	}
}
