package e2e

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestScore trains on Cleveland through a real server, then scores the file locally with
// `pulse score --server --model`: every probability must equal REST predict's for the same
// row (within 1e-12), through files, stdin/stdout and Parquet; bad rows fail the run or go to
// --bad-rows.
func TestScore(t *testing.T) {
	cwd, _ := os.Getwd()
	s := startServer(t, t.TempDir(), cwd)
	t.Setenv("PULSE_SERVER", s.base)
	data := filepath.Join(sharedData, "processed.cleveland.data")
	dir := t.TempDir()

	run := func(args ...string) string {
		t.Helper()
		out, err := runPulse(t, cwd, args...)
		if err != nil {
			t.Fatalf("pulse %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("datasets", "add", data, "--name", "cleveland", "--kinds", "cp:categorical,restecg:categorical,slope:categorical,thal:categorical,sex:binary,fbs:binary,exang:binary")
	run("train", "--model", "heart", "--dataset", "cleveland", "--target", "num > 0", "--seed", "7")

	// REST: the 303 rows as one batch of instances, "?" left out (missing).
	raw, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.TrimLeadingSpace = true
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var instances []map[string]any
	for _, rec := range recs[1:] {
		inst := map[string]any{}
		for j, name := range recs[0] {
			if name == "num" || rec[j] == "?" {
				continue
			}
			f, err := strconv.ParseFloat(rec[j], 64)
			if err != nil {
				t.Fatal(err)
			}
			inst[name] = f
		}
		instances = append(instances, inst)
	}
	body, _ := json.Marshal(map[string]any{"instances": instances})
	resp := s.postJSON("/v1/models/heart/predict", string(body))
	if resp.status != 200 {
		t.Fatalf("predict: %d %s", resp.status, resp.body)
	}
	var rest struct {
		Predictions []struct {
			Prediction struct {
				Probability float64 `json:"probability"`
				Label       int     `json:"label"`
			} `json:"prediction"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(resp.body, &rest); err != nil || len(rest.Predictions) != 303 {
		t.Fatalf("predict: %v, %d predictions", err, len(rest.Predictions))
	}
	check := func(what string, probs []float64, labels []int, versions []int64) {
		t.Helper()
		if len(probs) != 303 {
			t.Fatalf("%s: got %d rows, want 303", what, len(probs))
		}
		for i, p := range probs {
			want := rest.Predictions[i].Prediction
			if math.Abs(p-want.Probability) > 1e-12 || labels[i] != want.Label || versions[i] != 1 {
				t.Fatalf("%s row %d: got p=%v label=%d version=%d, want p=%v label=%d version 1 (REST)", what, i+1, p, labels[i], versions[i], want.Probability, want.Label)
			}
		}
	}
	fromCSV := func(b []byte) ([]float64, []int, []int64) {
		t.Helper()
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("output is not CSV: %v", err)
		}
		var probs []float64
		var labels []int
		var versions []int64
		for _, rec := range recs[1:] {
			p, _ := strconv.ParseFloat(rec[14], 64)
			l, _ := strconv.Atoi(rec[15])
			v, _ := strconv.ParseInt(rec[16], 10, 64)
			probs, labels, versions = append(probs, p), append(labels, l), append(versions, v)
		}
		return probs, labels, versions
	}

	// A file to a file, by --server and --model (the champion).
	outCSV := filepath.Join(dir, "scored.csv")
	summary := run("score", "--model", "heart", "--input", data, "--output", outCSV)
	var sum struct {
		Rows, Scored, Bad int64
		Version           int
	}
	if err := json.Unmarshal([]byte(summary), &sum); err != nil || sum.Rows != 303 || sum.Scored != 303 || sum.Version != 1 {
		t.Fatalf("summary: %v %s", err, summary)
	}
	fileOut, err := os.ReadFile(outCSV)
	if err != nil {
		t.Fatal(err)
	}
	p, l, v := fromCSV(fileOut)
	check("csv file", p, l, v)

	// stdin to stdout, by --version: the same bytes.
	cmd := exec.Command(pulseBin, "score", "--model", "heart", "--version", "1", "--input", "-")
	cmd.Stdin = bytes.NewReader(raw)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("score from stdin: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(stdout.Bytes(), fileOut) {
		t.Errorf("stdout differs from the file output")
	}
	mustContain(t, stderr.String(), `"scored": 303`)

	// Parquet.
	outPQ := filepath.Join(dir, "scored.parquet")
	run("score", "--model", "heart", "--alias", "champion", "--input", data, "--output", outPQ)
	type pqRow struct {
		Age          *float64 `parquet:"age,optional"`
		CP           *string  `parquet:"cp,optional"`
		Probability  float64  `parquet:"probability"`
		Label        int32    `parquet:"label"`
		ModelVersion int64    `parquet:"model_version"`
	}
	rows, err := parquet.ReadFile[pqRow](outPQ)
	if err != nil {
		t.Fatal(err)
	}
	p, l, v = nil, nil, nil
	for _, r := range rows {
		p, l, v = append(p, r.Probability), append(l, int(r.Label)), append(v, r.ModelVersion)
	}
	check("parquet", p, l, v)
	if rows[0].Age == nil || *rows[0].Age != 63 || rows[0].CP == nil || *rows[0].CP != "1.0" {
		t.Errorf("parquet row 1: got age %v cp %v, want 63 and \"1.0\"", rows[0].Age, rows[0].CP)
	}

	// A bad row fails the run with its row and column; with --bad-rows it is set aside.
	badInput := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(badInput, bytes.Replace(raw, []byte("\n67.0,1.0,4.0,160.0"), []byte("\n67.0,1.0,4.0,high"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runPulse(t, cwd, "score", "--model", "heart", "--input", badInput, "--output", filepath.Join(dir, "never.csv"))
	if err == nil {
		t.Fatalf("a bad row: got success\n%s", out)
	}
	mustContain(t, out, `pulse: score: row 2, column "trestbps": got "high", want a number`)
	if _, err := os.Stat(filepath.Join(dir, "never.csv")); !os.IsNotExist(err) {
		t.Errorf("a failed run left its output: %v", err)
	}
	badRows := filepath.Join(dir, "bad-rows.csv")
	summary = run("score", "--model", "heart", "--input", badInput, "--output", filepath.Join(dir, "skipped.csv"), "--bad-rows", badRows)
	mustContain(t, summary, `"bad": 1`)
	b, err := os.ReadFile(badRows)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(b), "2,trestbps,\"got \"\"high\"\", want a number\",\"67.0,1.0,4.0,high,")
}
