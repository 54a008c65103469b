package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/batch"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/mltest"
	"github.com/parquet-go/parquet-go"
)

// scoreFixture trains logreg on Cleveland and writes its artifact; it returns the artifact's
// path and the Cleveland file's.
func scoreFixture(t *testing.T) (artifact, data string) {
	t.Helper()
	data = mltest.ClevelandPath()
	tab := mltest.Cleveland(t)
	res, err := ml.Train(context.Background(), tab, ml.Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: ml.NoCV})
	if err != nil {
		t.Fatal(err)
	}
	art, err := ml.Encode(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	artifact = filepath.Join(t.TempDir(), "heart.json")
	if err := os.WriteFile(artifact, art, 0o600); err != nil {
		t.Fatal(err)
	}
	return artifact, data
}

func decodeSummary(t *testing.T, b []byte) batch.Summary {
	t.Helper()
	var s batch.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary is not JSON: %v: %s", err, b)
	}
	return s
}

// TestScoreCommandFiles scores the Cleveland file into a CSV file and a Parquet file (chosen by
// the extension), with the summary on stdout and in --summary's file.
func TestScoreCommandFiles(t *testing.T) {
	artifact, data := scoreFixture(t)
	dir := t.TempDir()
	out, sumPath := filepath.Join(dir, "scored.csv"), filepath.Join(dir, "summary.json")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"score", "--artifact", artifact, "--input", data, "--output", out, "--version", "4", "--summary", sumPath}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("score: %v\n%s", err, stderr.String())
	}
	sum := decodeSummary(t, stdout.Bytes())
	if sum.Rows != 303 || sum.Scored != 303 || sum.Version != 4 || sum.Model != "heart" || sum.Format != batch.CSV {
		t.Errorf("summary: got %+v, want 303 rows of heart version 4 as csv", sum)
	}
	if fromFile, err := os.ReadFile(sumPath); err != nil || decodeSummary(t, fromFile).Rows != 303 {
		t.Errorf("--summary file: %v %s", err, fromFile)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) != 304 || recs[1][16] != "4" || recs[0][14] != "probability" {
		t.Fatalf("output: %v, %d records, first %q", err, len(recs), recs[:min(2, len(recs))])
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: got %q, want nothing (not a terminal)", stderr.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("got %d files in the output folder, want scored.csv and summary.json only", len(entries))
	}

	pq := filepath.Join(dir, "scored.parquet")
	stdout.Reset()
	if err := run(context.Background(), []string{"score", "--artifact", artifact, "--input", data, "--output", pq}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("score parquet: %v\n%s", err, stderr.String())
	}
	if s := decodeSummary(t, stdout.Bytes()); s.Format != batch.Parquet || s.Scored != 303 {
		t.Errorf("parquet summary: got %+v", s)
	}
	f, err := os.Open(pq)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil || pf.NumRows() != 303 {
		t.Fatalf("parquet: %v, %d rows", err, pf.NumRows())
	}
}

// TestScoreCommandDevice writes to a device (/dev/null) directly: no temporary file beside it.
func TestScoreCommandDevice(t *testing.T) {
	artifact, data := scoreFixture(t)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"score", "--artifact", artifact, "--input", data, "--output", os.DevNull}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("score: %v\n%s", err, stderr.String())
	}
	if s := decodeSummary(t, stdout.Bytes()); s.Scored != 303 {
		t.Errorf("summary: got %+v", s)
	}
	if st, err := os.Stat(os.DevNull); err != nil || st.Mode().IsRegular() {
		t.Fatalf("%s: %v, mode %v: want it still a device", os.DevNull, err, st.Mode())
	}
}

// TestScoreCommandStdio reads stdin and writes stdout; the summary then goes to stderr.
func TestScoreCommandStdio(t *testing.T) {
	artifact, data := scoreFixture(t)
	in, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"score", "--artifact", artifact, "--input", "-"}, bytes.NewReader(in), &stdout, &stderr); err != nil {
		t.Fatalf("score: %v\n%s", err, stderr.String())
	}
	if n := bytes.Count(stdout.Bytes(), []byte("\n")); n != 304 {
		t.Errorf("stdout: got %d lines, want 304", n)
	}
	if s := decodeSummary(t, stderr.Bytes()); s.Rows != 303 {
		t.Errorf("summary on stderr: got %+v", s)
	}
}

// TestScoreCommandBadRows: a bad row fails the run, naming row and column, and leaves no
// output file; with --bad-rows the run goes on and the row is in that file.
func TestScoreCommandBadRows(t *testing.T) {
	artifact, data := scoreFixture(t)
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "in.csv")
	bad := bytes.Replace(b, []byte("\n67.0,"), []byte("\nabc,"), 1) // row 2
	if err := os.WriteFile(input, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"score", "--artifact", artifact, "--input", input, "--output", out}, nil, &stdout, &stderr)
	if err == nil || err.Error() != `score: row 2, column "age": got "abc", want a number` {
		t.Fatalf("got %v, want the row, column and reason", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("got %d files, want in.csv alone (no output, no temporary file)", len(entries))
	}
	badPath := filepath.Join(dir, "bad.csv")
	err = run(context.Background(), []string{"score", "--artifact", artifact, "--input", input, "--output", out, "--bad-rows", badPath}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if s := decodeSummary(t, stdout.Bytes()); s.Rows != 303 || s.Bad != 1 || s.Scored != 302 {
		t.Errorf("summary: got %+v", s)
	}
	rows, _ := os.ReadFile(badPath)
	if !strings.HasPrefix(string(rows), "row,column,reason,record\n2,age,\"got \"\"abc\"\", want a number\",\"abc,") {
		t.Errorf("bad rows file: got %q", rows)
	}
}

// TestScoreCommandUsageErrors: wrong flags are refused before anything is read.
func TestScoreCommandUsageErrors(t *testing.T) {
	artifact, data := scoreFixture(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"score", "--artifact", artifact}, "--input FILE (or - for stdin) is required"},
		{[]string{"score", "--input", data}, "give --model (and --server) or --artifact"},
		{[]string{"score", "--artifact", artifact, "--input", data, "--format", "xml"}, `--format "xml": want csv or parquet`},
		{[]string{"score", "--model", "m", "--version", "2", "--alias", "a", "--input", data}, "give --version or --alias, not both"},
		{[]string{"score", "--artifact", artifact, "--input", data, "extra"}, `unexpected argument "extra"`},
		{[]string{"score", "--artifact", artifact, "--input", data, "--delimiter", ";;"}, "want one character"},
		{[]string{"score", "--artifact", filepath.Join(t.TempDir(), "none.json"), "--input", data}, "no such file"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, nil, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

// TestScoreProgressBar draws a progress line with percent, rows, speed and ETA.
func TestScoreProgressBar(t *testing.T) {
	var buf bytes.Buffer
	b := &progressBar{w: &buf}
	b.draw(batch.Progress{Rows: 1000, Bad: 2, BytesRead: 250e6, TotalBytes: 1e9, Elapsed: time.Second})
	got := buf.String()
	for _, want := range []string{"250.0 MB / 1.00 GB  25% [#####...............]", "1000 rows (2 bad)", "1000 rows/s", "250 MB/s", "ETA 3s"} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q, want it to contain %q", got, want)
		}
	}
}
