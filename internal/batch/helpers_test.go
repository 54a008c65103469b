package batch

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// clevelandPath is the shared Cleveland file, relative to this package's directory.
var clevelandPath = filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

// kinds declares the coded categories and 0/1 flags of the heart-disease data, as the showcase does.
var kinds = map[string]pulse.Kind{
	"sex": pulse.Binary, "fbs": pulse.Binary, "exang": pulse.Binary,
	"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
}

func readCleveland(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(clevelandPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	modelsOnce sync.Once
	models     map[string]*ml.Model
	modelsErr  error
)

// trained returns a model of the algorithm trained on Cleveland (num > 0), trained once per
// test binary.
func trained(t testing.TB, algorithm string) *ml.Model {
	t.Helper()
	modelsOnce.Do(func() {
		b, err := os.ReadFile(clevelandPath)
		if err != nil {
			modelsErr = err
			return
		}
		tab, err := tabular.ReadCSV(bytes.NewReader(b), tabular.Options{Header: tabular.HeaderTrue, Kinds: kinds})
		if err != nil {
			modelsErr = err
			return
		}
		models = map[string]*ml.Model{}
		for _, alg := range []string{"logreg", "gbdt", "ftrl"} {
			res, err := ml.Train(context.Background(), tab, ml.Spec{Target: "num > 0", Algorithm: alg, CVFolds: ml.NoCV, Seed: 1})
			if err != nil {
				modelsErr = fmt.Errorf("train %s: %w", alg, err)
				return
			}
			models[alg] = res.Model
		}
	})
	if modelsErr != nil {
		t.Fatal(modelsErr)
	}
	return models[algorithm]
}

// score runs Score on input and returns the output and summary, failing the test on error.
func score(t testing.TB, input []byte, opts Options) ([]byte, Summary) {
	t.Helper()
	var out bytes.Buffer
	sum, err := Score(context.Background(), bytes.NewReader(input), &out, opts)
	if err != nil {
		t.Fatalf("score: %v", err)
	}
	return out.Bytes(), sum
}

// readCSV parses CSV text with encoding/csv.
func readCSV(t testing.TB, b []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v\n%.500s", err, b)
	}
	return recs
}

// synthetic returns a heart-disease-like CSV of about size bytes: Cleveland rows resampled with
// noise on the numeric columns, in the shared file's format (header with spaces after commas).
// With messy, it also has quoted fields (some with delimiters, "" escapes and line breaks in a
// pass-through "note" column), CRLF line endings, blank lines and missing markers.
func synthetic(t testing.TB, size int, seed uint64, messy bool) []byte {
	t.Helper()
	recs := readCSV(t, readCleveland(t))
	rows := recs[1:]
	rng := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	header := "age, sex, cp, trestbps, chol, fbs, restecg, thalach, exang, oldpeak, slope, ca, thal, num"
	if messy {
		header += ", note"
	}
	b.WriteString(header)
	b.WriteString("\n")
	numeric := map[int]bool{0: true, 3: true, 4: true, 7: true, 9: true}
	notes := []string{"", "plain", `"with, comma"`, `"say ""hi"""`, "\"two\nlines\"", "\"crlf\r\ninside\"", `  "spaced"`, "NA"}
	for b.Len() < size {
		row := rows[rng.IntN(len(rows))]
		for j, cell := range row {
			if j > 0 {
				b.WriteByte(',')
			}
			if numeric[j] && rng.IntN(4) > 0 {
				f, err := strconv.ParseFloat(cell, 64)
				if err == nil {
					f += rng.NormFloat64()
					prec := 1
					if j == 9 {
						prec = 2
					}
					cell = strconv.FormatFloat(f, 'f', prec, 64)
				}
			}
			if messy && rng.IntN(50) == 0 {
				cell = "?"
			}
			if messy && rng.IntN(40) == 0 {
				cell = `"` + cell + `"`
			}
			b.WriteString(cell)
		}
		if messy {
			b.WriteByte(',')
			b.WriteString(notes[rng.IntN(len(notes))])
		}
		switch {
		case messy && rng.IntN(10) == 0:
			b.WriteString("\r\n")
		case messy && rng.IntN(30) == 0:
			b.WriteString("\n\n")
		default:
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

// predictRow scores one parsed record (by header name) with Predict, the reference: cells
// trimmed, "?"/""/"NA" missing, numbers by strconv, categories canonical.
func predictRow(t testing.TB, m *ml.Model, names []string, rec []string) float64 {
	t.Helper()
	values := make([]ml.Value, len(m.Inputs()))
	for i, in := range m.Inputs() {
		j := -1
		for k, n := range names {
			if strings.TrimSpace(n) == in.Name {
				j = k
			}
		}
		if j < 0 {
			t.Fatalf("no column %q", in.Name)
		}
		s := strings.TrimSpace(rec[j])
		if s == "" || s == "?" || s == "NA" {
			continue
		}
		if in.Kind == pulse.Numeric {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("row %v: %v", rec, err)
			}
			values[i] = ml.Value{Num: f, Present: true}
		} else {
			values[i] = ml.Value{Str: pulse.CanonicalCategory(s), Present: true}
		}
	}
	p, _ := m.Predict(values, nil)
	return p
}
