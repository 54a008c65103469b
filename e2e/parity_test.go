package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	_ "modernc.org/sqlite"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// parityTolerance is the largest difference allowed between two ways of scoring a row.
const parityTolerance = 1e-6

// clevelandRows reads the Cleveland file: its column names and its rows as text, "?" kept.
func clevelandRows(t *testing.T) (names []string, rows [][]string) {
	t.Helper()
	f, err := os.Open(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range recs[0] {
		names = append(names, strings.TrimSpace(n))
	}
	return names, recs[1:]
}

// rowJSON is a row as the JSON object a client sends: numbers as they are written, missing
// values left out.
func rowJSON(names, row []string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for j, v := range row {
		if v == "?" || names[j] == "num" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", names[j], v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// TestScoringParity: one model version gives the same probability for every Cleveland row
// (303, six with missing values) whichever way it is scored: REST, `pulse score`, the Kafka
// score.requests path, the edge package on the signed bundle, the bundle's ONNX file in ONNX
// Runtime, and the exported SQL in SQLite and in PostgreSQL. For logreg and gbdt.
func TestScoringParity(t *testing.T) {
	cwd, _ := os.Getwd()
	dataDir := t.TempDir()
	s := startServer(t, dataDir, cwd)
	broker := brokersRE.FindStringSubmatch(s.Logs())[1]
	names, rows := clevelandRows(t)
	data, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/v1/datasets?name=cleveland", "text/csv", data); r.status != 201 {
		t.Fatalf("register: got %d %s", r.status, r.body)
	}
	pgURL := postgresURL(t)
	for _, alg := range []string{"logreg", "gbdt"} {
		t.Run(alg, func(t *testing.T) {
			model := "parity-" + alg
			r := s.postJSON("/v1/models/"+model+"/train?wait=true", fmt.Sprintf(`{"dataset":"cleveland","target":"num > 0","algorithm":%q,"seed":7}`, alg))
			if r.status != 201 {
				t.Fatalf("train: got %d %s", r.status, r.body)
			}
			rest := restProbabilities(t, s, model, names, rows)
			paths := map[string][]float64{
				"pulse score": cliProbabilities(t, s, model, len(rows)),
				"kafka":       kafkaProbabilities(t, broker, model, names, rows),
			}
			bundle := s.get("/v1/models/" + model + "/versions/1/bundle")
			if bundle.status != 200 {
				t.Fatalf("bundle: got %d %s", bundle.status, bundle.body)
			}
			keys, err := edge.ParseJWKSet(s.get("/v1/signing-keys").body)
			if err != nil {
				t.Fatal(err)
			}
			em, err := edge.Open(bundle.body, keys...)
			if err != nil {
				t.Fatalf("edge: %v", err)
			}
			for _, row := range rows {
				p, err := em.Predict(rowJSON(names, row))
				if err != nil {
					t.Fatalf("edge predict: %v", err)
				}
				paths["edge"] = append(paths["edge"], p.Probability)
			}
			paths["onnx runtime"] = onnxProbabilities(t, em, names, rows)
			sqlite, pg := sqlProbabilities(t, s, model, em, names, rows, pgURL)
			paths["sql sqlite"], paths["sql postgres"] = sqlite, pg

			for path, got := range paths {
				if len(got) != len(rest) {
					t.Errorf("%s: got %d probabilities, want %d", path, len(got), len(rest))
					continue
				}
				worst, at := 0.0, 0
				for i := range got {
					if d := math.Abs(got[i] - rest[i]); d > worst || math.IsNaN(d) {
						worst, at = d, i
					}
				}
				t.Logf("%s %-13s largest |difference| from REST: %.3g (row %d)", alg, path, worst, at+1)
				if !(worst <= parityTolerance) {
					t.Errorf("%s: row %d: got %.17g, REST %.17g (difference %.3g, want <= %g)", path, at+1, got[at], rest[at], worst, parityTolerance)
				}
			}
		})
	}
}

func restProbabilities(t *testing.T, s *server, model string, names []string, rows [][]string) []float64 {
	t.Helper()
	var body bytes.Buffer
	body.WriteString(`{"instances":[`)
	for i, row := range rows {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(rowJSON(names, row))
	}
	body.WriteString(`]}`)
	r := s.postJSON("/v1/models/"+model+"/predict?version=1", body.String())
	if r.status != 200 {
		t.Fatalf("predict: got %d %s", r.status, r.body)
	}
	var resp struct {
		Predictions []struct {
			Prediction struct{ Probability float64 }
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(resp.Predictions))
	for i, p := range resp.Predictions {
		out[i] = p.Prediction.Probability
	}
	return out
}

func cliProbabilities(t *testing.T, s *server, model string, n int) []float64 {
	t.Helper()
	out := filepath.Join(t.TempDir(), "scored.csv")
	cmd := exec.Command(pulseBin, "score", "--server", s.base, "--model", model, "--version", "1",
		"--input", filepath.Join(sharedData, "processed.cleveland.data"), "--output", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pulse score: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for j, name := range recs[0] {
		if name == "probability" {
			col = j
		}
	}
	if col < 0 || len(recs) != n+1 {
		t.Fatalf("pulse score output: header %q and %d rows, want a probability column and %d rows", recs[0], len(recs)-1, n)
	}
	probs := make([]float64, n)
	for i, rec := range recs[1:] {
		if probs[i], err = strconv.ParseFloat(rec[col], 64); err != nil {
			t.Fatal(err)
		}
	}
	return probs
}

// kafkaProbabilities sends each row as a score.requested event (its index as correlation id)
// and reads the score.completed results.
func kafkaProbabilities(t *testing.T, broker, model string, names []string, rows [][]string) []float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("pulse.score.results"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	corr := fmt.Sprintf("parity-%s-%d-", model, time.Now().UnixNano())
	for i, row := range rows {
		ev := fmt.Sprintf(`{"specversion":"1.0","id":"%s%d","source":"/e2e/parity","type":"com.cloudmedical.pulse.score.requested","datacontenttype":"application/json","data":{"model":%q,"version":1,"correlation_id":"%s%d","inputs":%s}}`,
			corr, i, model, corr, i, rowJSON(names, row))
		cl.Produce(ctx, &kgo.Record{Topic: "pulse.score.requests", Key: []byte(strconv.Itoa(i)), Value: []byte(ev)}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	probs := make([]float64, len(rows))
	seen := map[int]bool{} // delivery is at least once: a result may come twice
	for len(seen) < len(rows) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafka: %d of %d results after 2 minutes", len(seen), len(rows))
		}
		fs.EachRecord(func(r *kgo.Record) {
			var ev struct {
				Data struct {
					CorrelationID string `json:"correlation_id"`
					Prediction    *struct{ Probability float64 }
					Error         any `json:"error"`
				} `json:"data"`
			}
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("score result: %v: %s", err, r.Value)
			}
			i, ok := strings.CutPrefix(ev.Data.CorrelationID, corr)
			if !ok {
				return
			}
			n, _ := strconv.Atoi(i)
			if ev.Data.Prediction == nil {
				t.Fatalf("score result for row %d: no prediction: %s", n+1, r.Value)
			}
			probs[n] = ev.Data.Prediction.Probability
			seen[n] = true
		})
	}
	return probs
}

// onnxProbabilities runs the bundle's ONNX file in ONNX Runtime (Python, from PyPI).
func onnxProbabilities(t *testing.T, em *edge.Model, names []string, rows [][]string) []float64 {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), em.ONNX(), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := em.Inputs()
	feeds := map[string][]any{}
	kinds := map[string]string{}
	for _, in := range inputs {
		kinds[in.Name] = string(in.Kind)
		j := indexOf(names, in.Name)
		for _, row := range rows {
			v := row[j]
			switch {
			case in.Kind == pulse.Numeric && v == "?":
				feeds[in.Name] = append(feeds[in.Name], "NaN")
			case in.Kind == pulse.Numeric:
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				feeds[in.Name] = append(feeds[in.Name], f)
			case v == "?":
				feeds[in.Name] = append(feeds[in.Name], "")
			default:
				feeds[in.Name] = append(feeds[in.Name], pulse.CanonicalCategory(v))
			}
		}
	}
	spec, _ := json.Marshal(map[string]any{"model": filepath.Join(dir, "model.onnx"), "kinds": kinds, "feeds": feeds})
	script := `
import json, sys
import numpy as np, onnxruntime as ort
spec = json.load(sys.stdin)
sess = ort.InferenceSession(spec["model"], providers=["CPUExecutionProvider"])
feeds = {}
for name, values in spec["feeds"].items():
    if spec["kinds"][name] == "numeric":
        feeds[name] = np.array([[float(v)] for v in values], dtype=np.float64)
    else:
        feeds[name] = np.array([[v] for v in values], dtype=object)
prob, label = sess.run(["probability", "label"], feeds)
print(json.dumps([repr(float(p)) for p in prob[:, 0]]))
`
	cmd := exec.Command("python3", "-c", script)
	cmd.Stdin = bytes.NewReader(spec)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("onnxruntime (python3 with tests/python/requirements.txt installed): %v\n%s", err, stderr.String())
	}
	var texts []string
	if err := json.Unmarshal(out, &texts); err != nil {
		t.Fatalf("onnxruntime output: %v: %s", err, out)
	}
	probs := make([]float64, len(texts))
	for i, s := range texts {
		if probs[i], err = strconv.ParseFloat(s, 64); err != nil {
			t.Fatal(err)
		}
	}
	return probs
}

func indexOf(names []string, name string) int {
	for j, n := range names {
		if n == name {
			return j
		}
	}
	return -1
}

// sqlProbabilities loads the rows into a table in SQLite and in PostgreSQL and scores them
// with the view `pulse export --format sql` writes for each.
func sqlProbabilities(t *testing.T, s *server, model string, em *edge.Model, names []string, rows [][]string, pgURL string) (sqlite, pg []float64) {
	t.Helper()
	ctx := context.Background()
	inputs := em.Inputs()
	export := func(dialect string) string {
		cmd := exec.Command(pulseBin, "export", "--format", "sql", "--dialect", dialect, "--server", s.base,
			"--model", model, "--version", "1", "--table", "patients", "--view", "patients_scored")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("pulse export --dialect %s: %v", dialect, err)
		}
		return string(out)
	}
	values := func(row []string) []any {
		args := make([]any, len(inputs))
		for k, in := range inputs {
			v := row[indexOf(names, in.Name)]
			switch {
			case v == "?":
				args[k] = nil
			case in.Kind == pulse.Numeric:
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				args[k] = f
			default:
				args[k] = pulse.CanonicalCategory(v)
			}
		}
		return args
	}
	// ddl returns the table of the inputs (numbers as numType, categories as text) and the
	// insert of one row: its id, then the inputs in order; mark(k) is the k-th placeholder.
	ddl := func(numType string, mark func(k int) string) (create, insert string) {
		defs, cols, marks := []string{"id INTEGER PRIMARY KEY"}, []string{"id"}, []string{mark(1)}
		for k, in := range inputs {
			typ := "TEXT"
			if in.Kind == pulse.Numeric {
				typ = numType
			}
			defs = append(defs, fmt.Sprintf("%q %s", in.Name, typ))
			cols = append(cols, fmt.Sprintf("%q", in.Name))
			marks = append(marks, mark(k+2))
		}
		return "CREATE TABLE patients (" + strings.Join(defs, ", ") + ")",
			"INSERT INTO patients (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	}

	// SQLite (modernc.org/sqlite, the driver Pulse's own metadata uses).
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "parity.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	create, insert := ddl("REAL", func(int) string { return "?" })
	if _, err := db.Exec(create); err != nil {
		t.Fatal(err)
	}
	for i, row := range rows {
		if _, err := db.Exec(insert, append([]any{i}, values(row)...)...); err != nil {
			t.Fatalf("sqlite insert: %v", err)
		}
	}
	if _, err := db.Exec(export("sqlite")); err != nil {
		t.Fatalf("sqlite view: %v", err)
	}
	res, err := db.Query("SELECT probability FROM patients_scored ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for res.Next() {
		var p float64
		if err := res.Scan(&p); err != nil {
			t.Fatal(err)
		}
		sqlite = append(sqlite, p)
	}
	res.Close()

	// PostgreSQL (the server the test command starts), in a schema of its own.
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := strings.ReplaceAll(model, "-", "_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema+"; SET search_path TO "+schema); err != nil {
		t.Fatal(err)
	}
	create, insert = ddl("DOUBLE PRECISION", func(k int) string { return "$" + strconv.Itoa(k) })
	if _, err := conn.Exec(ctx, create); err != nil {
		t.Fatal(err)
	}
	for i, row := range rows {
		if _, err := conn.Exec(ctx, insert, append([]any{i}, values(row)...)...); err != nil {
			t.Fatalf("postgres insert: %v", err)
		}
	}
	if _, err := conn.Exec(ctx, export("postgres")); err != nil {
		t.Fatalf("postgres view: %v", err)
	}
	pgRows, err := conn.Query(ctx, "SELECT probability FROM patients_scored ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for pgRows.Next() {
		var p float64
		if err := pgRows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		pg = append(pg, p)
	}
	pgRows.Close()
	return sqlite, pg
}
