// Command pulse is the Pulse side of bench/quality (run it through bench/quality/run.py): it
// reads the folds that both sides share, trains Pulse's algorithms on each training fold and
// writes the test-fold predictions, the training times, and the prequential predictions of a
// single FTRL pass, for run.py to score with the same metric code as scikit-learn.
package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/cloudmedical/pulse/internal/example"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/tabular"
)

var datasets = map[string]string{
	"cleveland": "processed.cleveland.data",
	"hungarian": "processed.hungarian.data",
}

// algorithms are Pulse's learners as a data scientist would call them: defaults, except that
// ftrl is trained as a stream of a few shuffled passes over the training fold.
var algorithms = []struct {
	name   string
	algo   string
	params map[string]any
}{
	{"pulse logreg", ml.AlgorithmLogReg, nil},
	{"pulse gbdt", ml.AlgorithmGBDT, nil},
	{"pulse ftrl (stream)", ml.AlgorithmFTRL, map[string]any{"passes": 5}},
}

type foldKey struct {
	dataset      string
	repeat, fold int
}

func main() {
	foldsPath := flag.String("folds", "", "folds.csv written by run.py (dataset,repeat,fold,row)")
	dataDir := flag.String("data", "", "directory of the heart-disease files")
	outDir := flag.String("out", "", "where to write pulse_predictions.csv, pulse_timings.csv, pulse_prequential.csv")
	flag.Parse()
	if *foldsPath == "" || *dataDir == "" || *outDir == "" {
		log.Fatal("-folds, -data and -out are required")
	}
	folds, err := readFolds(*foldsPath)
	if err != nil {
		log.Fatal(err)
	}
	pred, timing, stream := create(*outDir, "pulse_predictions.csv"), create(*outDir, "pulse_timings.csv"), create(*outDir, "pulse_prequential.csv")
	pred.Write([]string{"dataset", "repeat", "fold", "model", "row", "p"})
	timing.Write([]string{"dataset", "repeat", "fold", "model", "train_s"})
	stream.Write([]string{"dataset", "repeat", "fold", "step", "y", "p"})

	keys := make([]foldKey, 0, len(folds))
	for k := range folds {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.dataset != b.dataset {
			return a.dataset < b.dataset
		}
		if a.repeat != b.repeat {
			return a.repeat < b.repeat
		}
		return a.fold < b.fold
	})
	tables := map[string]*tabular.Table{}
	for name, file := range datasets {
		f, err := os.Open(filepath.Join(*dataDir, file))
		if err != nil {
			log.Fatal(err)
		}
		t, err := tabular.ReadCSV(f, tabular.Options{Header: "auto", Columns: example.Columns, Kinds: example.Kinds})
		f.Close()
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		tables[name] = t
	}
	ctx := context.Background()
	for _, k := range keys {
		t := tables[k.dataset]
		test := folds[k]
		inTest := make([]bool, t.Rows)
		for _, r := range test {
			inTest[r] = true
		}
		var train []int
		for r := 0; r < t.Rows; r++ {
			if !inTest[r] {
				train = append(train, r)
			}
		}
		trainT, testT := subset(t, train), subset(t, test)
		for _, a := range algorithms {
			start := time.Now()
			res, err := ml.Train(ctx, trainT, ml.Spec{
				Target: example.Target, Algorithm: a.algo, Params: a.params,
				Seed: uint64(k.repeat), Holdout: ml.NoHoldout, CVFolds: ml.NoCV,
			})
			took := time.Since(start)
			if err != nil {
				log.Fatalf("%v %s: %v", k, a.name, err)
			}
			p, _, err := res.Model.PredictTable(testT)
			if err != nil {
				log.Fatalf("%v %s: %v", k, a.name, err)
			}
			for i, r := range test {
				pred.Write([]string{k.dataset, itoa(k.repeat), itoa(k.fold), a.name, itoa(r), ftoa(p[i])})
			}
			timing.Write([]string{k.dataset, itoa(k.repeat), itoa(k.fold), a.name, ftoa(took.Seconds())})
			if a.algo == ml.AlgorithmFTRL {
				if err := prequential(stream, k, res.Model, trainT); err != nil {
					log.Fatalf("%v prequential: %v", k, err)
				}
			}
		}
	}
	for _, w := range []*csvFile{pred, timing, stream} {
		w.Close()
	}
}

// prequential runs one shuffled pass of a fresh FTRL learner (same encoding and parameters as
// the trained model) over the training fold, recording each prediction made before learning.
func prequential(w *csvFile, k foldKey, m *ml.Model, t *tabular.Table) error {
	trained := m.Learner()
	l, err := ftrl.New(trained.Dim(), trained.Params())
	if err != nil {
		return err
	}
	labels, err := labels(t)
	if err != nil {
		return err
	}
	order := rand.New(rand.NewPCG(uint64(k.repeat), uint64(k.fold))).Perm(t.Rows)
	inputs := m.Inputs()
	cols := make([]int, len(inputs))
	for i, in := range inputs {
		cols[i] = t.Schema.Index(in.Name)
	}
	values := make([]ml.Value, len(inputs))
	x := make([]float64, trained.Dim())
	for step, r := range order {
		for i, j := range cols {
			values[i] = ml.Value{}
			if t.Num[j] != nil {
				if v := t.Num[j][r]; !math.IsNaN(v) {
					values[i] = ml.Value{Num: v, Present: true}
				}
			} else if s := t.Cat[j][r]; s != "" {
				values[i] = ml.Value{Str: s, Present: true}
			}
		}
		if _, err := m.Encode(values, x); err != nil {
			return err
		}
		p := l.Update(x, float64(labels[r]))
		w.Write([]string{k.dataset, itoa(k.repeat), itoa(k.fold), itoa(step), itoa(labels[r]), ftoa(p)})
	}
	return nil
}

// labels evaluates num > 0.
func labels(t *tabular.Table) ([]int, error) {
	j := t.Schema.Index("num")
	if j < 0 || t.Num[j] == nil {
		return nil, fmt.Errorf("no numeric column num")
	}
	y := make([]int, t.Rows)
	for r, v := range t.Num[j] {
		if v > 0 {
			y[r] = 1
		}
	}
	return y, nil
}

// subset returns the rows of t as a new table with the same schema.
func subset(t *tabular.Table, rows []int) *tabular.Table {
	s := &tabular.Table{Schema: t.Schema, Format: t.Format, Rows: len(rows),
		Num: make([][]float64, len(t.Num)), Cat: make([][]string, len(t.Cat))}
	for j := range t.Schema.Columns {
		if t.Num[j] != nil {
			s.Num[j] = make([]float64, len(rows))
			for i, r := range rows {
				s.Num[j][i] = t.Num[j][r]
			}
		}
		if t.Cat[j] != nil {
			s.Cat[j] = make([]string, len(rows))
			for i, r := range rows {
				s.Cat[j][i] = t.Cat[j][r]
			}
		}
	}
	return s
}

func readFolds(path string) (map[foldKey][]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	if _, err := r.Read(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	folds := map[foldKey][]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		repeat, err1 := strconv.Atoi(rec[1])
		fold, err2 := strconv.Atoi(rec[2])
		row, err3 := strconv.Atoi(rec[3])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s: bad record %q", path, rec)
		}
		k := foldKey{rec[0], repeat, fold}
		folds[k] = append(folds[k], row)
	}
	for k := range folds {
		sort.Ints(folds[k])
	}
	return folds, nil
}

type csvFile struct {
	f *os.File
	*csv.Writer
}

func create(dir, name string) *csvFile {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		log.Fatal(err)
	}
	return &csvFile{f, csv.NewWriter(f)}
}

func (c *csvFile) Close() {
	c.Flush()
	if err := c.Error(); err != nil {
		log.Fatal(err)
	}
	if err := c.f.Close(); err != nil {
		log.Fatal(err)
	}
}

func itoa(i int) string     { return strconv.Itoa(i) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
