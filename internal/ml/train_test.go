package ml

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

func clevelandPath() string {
	return filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")
}

var clevelandKinds = map[string]pulse.Kind{
	"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
}

func readTable(t testing.TB, path string, opts tabular.Options) *tabular.Table {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := tabular.ReadCSV(bytes.NewReader(b), opts)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// cleveland reads the Cleveland file with cp, restecg, slope and thal categorical (sex, fbs
// and exang are inferred binary).
func cleveland(t testing.TB) *tabular.Table {
	return readTable(t, clevelandPath(), tabular.Options{Kinds: clevelandKinds})
}

func train(t testing.TB, tab *tabular.Table, spec Spec) *Result {
	t.Helper()
	res, err := Train(context.Background(), tab, spec)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTrainClevelandCV(t *testing.T) {
	tab := cleveland(t)
	if got := tab.Schema.Columns[tab.Schema.Index("sex")].Kind; got != pulse.Binary {
		t.Fatalf("sex: got kind %q, want binary", got)
	}
	// The CV AUC depends on which rows the seed holds out: over seeds it spreads about
	// 0.89-0.93 around 0.91, exactly as scikit-learn does on the same folds (seed 0 gives
	// 0.8955 in both). The mean over ten seeds is the reproducible statement.
	var sum float64
	const seeds = 10
	for seed := range uint64(seeds) {
		res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Seed: seed})
		cv := res.Metrics.CV
		if cv == nil || cv.Folds != 10 || len(cv.PerFold) != 10 {
			t.Fatalf("seed %d: got CV %+v, want 10 folds", seed, cv)
		}
		if res.TrainingRows != 242 || res.HoldoutRows != 61 {
			t.Errorf("seed %d: got %d training and %d holdout rows, want 242 and 61", seed, res.TrainingRows, res.HoldoutRows)
		}
		if cv.ROCAUC < 0.88 {
			t.Errorf("seed %d: CV ROC AUC %.4f, want >= 0.88", seed, cv.ROCAUC)
		}
		if cv.Accuracy < 0.78 {
			t.Errorf("seed %d: CV accuracy %.4f, want >= 0.78", seed, cv.Accuracy)
		}
		if d := res.Model.Describe(); d["converged"] != true {
			t.Errorf("seed %d: not converged: %v", seed, d)
		}
		sum += cv.ROCAUC
	}
	if mean := sum / seeds; mean < 0.90 {
		t.Errorf("mean CV ROC AUC over %d seeds: got %.4f, want >= 0.90", seeds, mean)
	}
}

func TestTrainSplits(t *testing.T) {
	tab := cleveland(t)
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Seed: 7})
	h := res.Metrics.Holdout
	// 164 negatives and 139 positives: round(0.2*164) = 33 and round(0.2*139) = 28 held out.
	if h == nil || h.N != 61 || h.Positives != 28 {
		t.Fatalf("holdout: got %+v, want 61 rows of which 28 positive", h)
	}
	n, pos := 0, 0
	for i, f := range res.Metrics.CV.PerFold {
		if f.N < 24 || f.N > 25 || f.Positives < 11 || f.Positives > 12 {
			t.Errorf("fold %d: %d rows, %d positive; want 24-25 rows, 11-12 positive", i+1, f.N, f.Positives)
		}
		n += f.N
		pos += f.Positives
	}
	if n != 242 || pos != 111 {
		t.Errorf("folds cover %d rows (%d positive), want 242 (111)", n, pos)
	}
	if res.Holdout != 0.2 || res.CVFolds != 10 {
		t.Errorf("effective split: got %v and %d, want 0.2 and 10", res.Holdout, res.CVFolds)
	}

	res = train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Holdout: NoHoldout, CVFolds: 5})
	if res.Metrics.Holdout != nil || res.TrainingRows != 303 || res.HoldoutRows != 0 || res.Metrics.CV.Folds != 5 {
		t.Errorf("no holdout, 5 folds: got holdout %v, %d/%d rows, %d folds", res.Metrics.Holdout, res.TrainingRows, res.HoldoutRows, res.Metrics.CV.Folds)
	}
	res = train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Holdout: 0.5, CVFolds: NoCV})
	if res.Metrics.CV != nil || res.HoldoutRows != 152 || res.CVFolds != 0 {
		t.Errorf("holdout 0.5, no CV: got CV %v, %d holdout rows, want none and 152", res.Metrics.CV, res.HoldoutRows)
	}
}

func TestTrainDeterministic(t *testing.T) {
	tab := cleveland(t)
	spec := Spec{Target: "num > 0", Algorithm: "logreg", Seed: 42}
	a, err := Encode(train(t, tab, spec).Model)
	if err != nil {
		t.Fatal(err)
	}
	r2 := train(t, tab, spec)
	b, err := Encode(r2.Model)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two trainings with the same seed gave different artifacts")
	}
	// The effective params, passed back, give the same model again.
	spec.Params = r2.Params
	c, _ := Encode(train(t, tab, spec).Model)
	if !bytes.Equal(a, c) {
		t.Error("training with the effective params gave a different artifact")
	}
	spec.Seed = 43
	d, _ := Encode(train(t, tab, spec).Model)
	if bytes.Equal(a, d) {
		t.Error("seeds 42 and 43 gave the same artifact; the seed does not drive the split")
	}
}

func TestTrainParams(t *testing.T) {
	tab := cleveland(t)
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Params: map[string]any{
		"C": 0.5, "max_iter": float64(50), "tol": 1e-6, "class_weight": "balanced", "threshold": 0.3,
	}})
	want := map[string]any{"C": 0.5, "penalty": "l2", "max_iter": 50, "tol": 1e-6, "class_weight": "balanced", "threshold": 0.3}
	if !reflect.DeepEqual(res.Params, want) {
		t.Errorf("params: got %v, want %v", res.Params, want)
	}
	if res.Model.Threshold() != 0.3 || res.Metrics.Holdout.Threshold != 0.3 || res.Metrics.CV.PerFold[0].Threshold != 0.3 {
		t.Errorf("threshold: got model %v, holdout %v", res.Model.Threshold(), res.Metrics.Holdout.Threshold)
	}
	res = train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg"})
	want = map[string]any{"C": 1.0, "penalty": "l2", "max_iter": 100, "tol": 1e-8, "class_weight": "none", "threshold": 0.5}
	if !reflect.DeepEqual(res.Params, want) {
		t.Errorf("default params: got %v, want %v", res.Params, want)
	}
}

func TestTrainTargets(t *testing.T) {
	tab := cleveland(t)
	num := tab.Num[tab.Schema.Index("num")]
	thal := tab.Cat[tab.Schema.Index("thal")]
	cp := tab.Cat[tab.Schema.Index("cp")]
	sex := tab.Cat[tab.Schema.Index("sex")]
	count := func(f func(r int) bool) int {
		n := 0
		for r := range tab.Rows {
			if f(r) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		target string
		want   int
	}{
		{"num > 0", count(func(r int) bool { return num[r] > 0 })},
		{" num>=2 ", count(func(r int) bool { return num[r] >= 2 })},
		{"num < 1", count(func(r int) bool { return num[r] < 1 })},
		{"num <= 1", count(func(r int) bool { return num[r] <= 1 })},
		{"num == 0", count(func(r int) bool { return num[r] == 0 })},
		{"num != 0", count(func(r int) bool { return num[r] != 0 })},
		{"sex", count(func(r int) bool { return sex[r] == "1" })},
		{`sex == "0"`, count(func(r int) bool { return sex[r] == "0" })},
		{`cp == "4"`, count(func(r int) bool { return cp[r] == "4" })},
		{"cp == 4.0", count(func(r int) bool { return cp[r] == "4" })},
		{"cp <= 2", count(func(r int) bool { return cp[r] == "1" || cp[r] == "2" })},
	}
	for _, tt := range tests {
		tg, err := parseTarget(tt.target, tab.Schema)
		if err != nil {
			t.Errorf("%q: %v", tt.target, err)
			continue
		}
		y, err := tg.labels(tab)
		if err != nil {
			t.Errorf("%q: %v", tt.target, err)
			continue
		}
		got := 0
		for _, v := range y {
			got += v
		}
		if got != tt.want || tt.want == 0 {
			t.Errorf("%q: got %d positives, want %d", tt.target, got, tt.want)
		}
	}
	// thal has missing values: a target on it names the first missing row.
	missing := 0
	for r, v := range thal {
		if v == "" {
			missing = r + 1
			break
		}
	}
	_, err := Train(context.Background(), tab, Spec{Target: `thal == "7"`, Algorithm: "logreg"})
	checkError(t, err, pulse.EUNPROCESSABLE, "thal", missing, "the target is missing")
}

func checkError(t *testing.T, err error, code, field string, row int, has string) {
	t.Helper()
	var pe *pulse.Error
	if !errors.As(err, &pe) {
		t.Fatalf("got %T %v, want *pulse.Error", err, err)
	}
	if pe.Code != code || pe.Field != field || pe.Row != row || !strings.Contains(pe.Message, has) {
		t.Errorf("got code %q field %q row %d %q; want %q %q %d containing %q", pe.Code, pe.Field, pe.Row, pe.Message, code, field, row, has)
	}
}

func TestTrainErrors(t *testing.T) {
	tab := cleveland(t)
	small := readTable(t, clevelandPath(), tabular.Options{Kinds: clevelandKinds, MaxRows: 0})
	small.Rows = 30
	for j := range small.Num {
		if small.Num[j] != nil {
			small.Num[j] = small.Num[j][:30]
		} else {
			small.Cat[j] = small.Cat[j][:30]
		}
	}
	ok := Spec{Target: "num > 0", Algorithm: "logreg"}
	with := func(f func(*Spec)) Spec { s := ok; f(&s); return s }
	tests := []struct {
		name  string
		tab   *tabular.Table
		spec  Spec
		code  string
		field string
		has   string
	}{
		{"unknown algorithm", tab, with(func(s *Spec) { s.Algorithm = "svm" }), pulse.EUNPROCESSABLE, "algorithm", `got "svm"`},
		{"unknown param", tab, with(func(s *Spec) { s.Params = map[string]any{"gamma": 1} }), pulse.EUNPROCESSABLE, "params.gamma", "unknown parameter of logreg"},
		{"C of the wrong type", tab, with(func(s *Spec) { s.Params = map[string]any{"C": "big"} }), pulse.EUNPROCESSABLE, "params.C", `got "big", want a positive number`},
		{"negative C", tab, with(func(s *Spec) { s.Params = map[string]any{"C": -1} }), pulse.EUNPROCESSABLE, "params.C", "got -1"},
		{"fractional max_iter", tab, with(func(s *Spec) { s.Params = map[string]any{"max_iter": 2.5} }), pulse.EUNPROCESSABLE, "params.max_iter", "whole number"},
		{"bad class_weight", tab, with(func(s *Spec) { s.Params = map[string]any{"class_weight": "auto"} }), pulse.EUNPROCESSABLE, "params.class_weight", "balanced"},
		{"threshold of 1", tab, with(func(s *Spec) { s.Params = map[string]any{"threshold": 1} }), pulse.EUNPROCESSABLE, "params.threshold", "between 0 and 1"},
		{"empty target", tab, with(func(s *Spec) { s.Target = " " }), pulse.EUNPROCESSABLE, "target", "empty"},
		{"unknown target column", tab, with(func(s *Spec) { s.Target = "disease > 0" }), pulse.EUNPROCESSABLE, "target", `no column "disease"`},
		{"bad operator", tab, with(func(s *Spec) { s.Target = "num => 0" }), pulse.EUNPROCESSABLE, "target", "unknown operator"},
		{"not a number", tab, with(func(s *Spec) { s.Target = "num > zero" }), pulse.EUNPROCESSABLE, "target", "want a finite number"},
		{"text against a numeric column", tab, with(func(s *Spec) { s.Target = `num == "1"` }), pulse.EUNPROCESSABLE, "target", "is numeric"},
		{"bare categorical column", tab, with(func(s *Spec) { s.Target = "cp" }), pulse.EUNPROCESSABLE, "target", "is categorical"},
		{"one class", tab, with(func(s *Spec) { s.Target = "num >= 0" }), pulse.EUNPROCESSABLE, "target", "both classes"},
		{"unknown feature", tab, with(func(s *Spec) { s.Features = []string{"age", "bmi"} }), pulse.EUNPROCESSABLE, "features", `no column "bmi"`},
		{"target as feature", tab, with(func(s *Spec) { s.Features = []string{"age", "num"} }), pulse.EUNPROCESSABLE, "features", "target's column"},
		{"repeated feature", tab, with(func(s *Spec) { s.Features = []string{"age", "age"} }), pulse.EUNPROCESSABLE, "features", "twice"},
		{"holdout too large", tab, with(func(s *Spec) { s.Holdout = 0.95 }), pulse.EUNPROCESSABLE, "holdout", "got 0.95"},
		{"one fold", tab, with(func(s *Spec) { s.CVFolds = 1 }), pulse.EUNPROCESSABLE, "cv_folds", "got 1"},
		{"too few rows for the folds", small, with(func(s *Spec) { s.CVFolds = 20 }), pulse.EUNPROCESSABLE, "cv_folds", "each fold needs"},
		{"too few rows for the holdout", small, with(func(s *Spec) { s.Holdout = 0.05 }), pulse.EUNPROCESSABLE, "holdout", "at least 2"},
		{"no table", nil, ok, pulse.EUNPROCESSABLE, "", "no rows"},
		{"inconsistent table", &tabular.Table{Schema: tab.Schema, Rows: 5, Num: tab.Num, Cat: tab.Cat}, ok, pulse.EINVALID, "", "has 303 values, want 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Train(context.Background(), tt.tab, tt.spec)
			if err == nil {
				t.Fatalf("got a model (%v), want an error", res.Model.Describe()["iterations"])
			}
			checkError(t, err, tt.code, tt.field, 0, tt.has)
		})
	}
}

func TestTrainBareNumericTarget(t *testing.T) {
	_, err := Train(context.Background(), cleveland(t), Spec{Target: "num", Algorithm: "logreg"})
	checkError(t, err, pulse.EUNPROCESSABLE, "num", 2, `row 2, column "num": got 2, want 0 or 1`)
}

func TestTrainCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Train(ctx, cleveland(t), Spec{Target: "num > 0", Algorithm: "logreg"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestTrainFeaturesAndInputs(t *testing.T) {
	tab := cleveland(t)
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Features: []string{"thal", "age", "sex"}})
	in := res.Model.Inputs()
	if len(in) != 3 || in[0].Name != "thal" || in[1].Name != "age" || in[2].Name != "sex" {
		t.Fatalf("inputs: got %+v, want thal, age, sex", in)
	}
	if in[0].Kind != pulse.Categorical || !reflect.DeepEqual(in[0].Categories, []string{"3", "6", "7"}) ||
		in[1].Kind != pulse.Numeric || in[1].Categories != nil ||
		in[2].Kind != pulse.Binary || !reflect.DeepEqual(in[2].Categories, []string{"0", "1"}) {
		t.Errorf("inputs: got %+v", in)
	}
	if res.Model.Width() != 5 {
		t.Errorf("width: got %d, want 5", res.Model.Width())
	}
	if res.Model.Algorithm() != "logreg" || res.Model.Target() != "num > 0" {
		t.Errorf("got algorithm %q target %q", res.Model.Algorithm(), res.Model.Target())
	}
	// Missing counts are of the training rows: thal has 2 missing cells in the file.
	if in[0].Missing > 2 || in[1].Missing != 0 {
		t.Errorf("missing: got thal %d, age %d", in[0].Missing, in[1].Missing)
	}
}

func TestPredict(t *testing.T) {
	tab := cleveland(t)
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Features: []string{"age", "sex", "cp"}})
	m := res.Model
	scratch := make([]float64, m.Width())
	d := m.Describe()
	coefs := d["coefficients"].([]map[string]any)
	b := d["intercept"].(float64)
	coef := func(name string) float64 {
		for _, c := range coefs {
			if c["feature"] == name {
				return c["coef"].(float64)
			}
		}
		t.Fatalf("no coefficient %q", name)
		return 0
	}
	age := coefs[0]
	mean, scale, median := age["mean"].(float64), age["scale"].(float64), age["median"].(float64)
	tests := []struct {
		name    string
		values  []Value
		z       float64
		unknown int
	}{
		{"all present", []Value{{Num: 60, Present: true}, {Str: "1", Present: true}, {Str: "4", Present: true}},
			b + coef("age")*(60-mean)/scale + coef("sex=1") + coef("cp=4"), 0},
		{"sex 0", []Value{{Num: 60, Present: true}, {Str: "0", Present: true}, {Str: "2", Present: true}},
			b + coef("age")*(60-mean)/scale + coef("cp=2"), 0},
		{"unknown category is all zeros", []Value{{Num: 60, Present: true}, {Str: "1", Present: true}, {Str: "9", Present: true}},
			b + coef("age")*(60-mean)/scale + coef("sex=1"), 1},
		{"unknown binary value", []Value{{Num: 60, Present: true}, {Str: "M", Present: true}, {Str: "1", Present: true}},
			b + coef("age")*(60-mean)/scale + coef("cp=1"), 1},
		// The mode of sex is 1 and of cp is 4 in the training rows.
		{"missing values are imputed", []Value{{}, {}, {}},
			b + coef("age")*(median-mean)/scale + coef("sex=1") + coef("cp=4"), 0},
		{"NaN counts as missing", []Value{{Num: math.NaN(), Present: true}, {Str: "1", Present: true}, {Str: "4", Present: true}},
			b + coef("age")*(median-mean)/scale + coef("sex=1") + coef("cp=4"), 0},
	}
	for _, tt := range tests {
		p, unknown := m.Predict(tt.values, scratch)
		want := 1 / (1 + math.Exp(-tt.z))
		if !near(p, want, 1e-12) || unknown != tt.unknown {
			t.Errorf("%s: got p %v unknown %d, want %v and %d", tt.name, p, unknown, want, tt.unknown)
		}
		if p2, _ := m.Predict(tt.values, nil); p2 != p {
			t.Errorf("%s: with a nil scratch got %v, want %v", tt.name, p2, p)
		}
	}
	if p, _ := m.Predict(make([]Value, 2), scratch); !math.IsNaN(p) {
		t.Errorf("too few values: got %v, want NaN", p)
	}
}

func TestPredictTableMatchesTraining(t *testing.T) {
	tab := cleveland(t)
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Holdout: 0.3, CVFolds: NoCV})
	p, unknown, err := res.Model.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 303 || unknown != 0 {
		t.Fatalf("got %d probabilities and %d unknown, want 303 and 0", len(p), unknown)
	}
	tg, _ := parseTarget("num > 0", tab.Schema)
	y, _ := tg.labels(tab)
	all := Evaluate(y, p, 0.5)
	if all.ROCAUC < 0.85 {
		t.Errorf("AUC over every row: got %.4f, want >= 0.85", all.ROCAUC)
	}

	// A file read without declared kinds has cp, restecg, slope and thal numeric: their numbers
	// feed the categorical inputs through their canonical text, with the same probabilities.
	plain := readTable(t, clevelandPath(), tabular.Options{})
	p2, unknown, err := res.Model.PredictTable(plain)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if p[i] != p2[i] {
			t.Fatalf("row %d: got %v from numeric columns, want %v", i+1, p2[i], p[i])
		}
	}
	if unknown != 0 {
		t.Errorf("unknown: got %d, want 0", unknown)
	}

	// The holdout metrics of Train equal those recomputed from PredictTable's probabilities of
	// the held-out rows, bit for bit: training and prediction encode and score alike.
	rows := heldOut(t, tab, y, res)
	hp := make([]float64, len(rows))
	hy := make([]int, len(rows))
	for i, r := range rows {
		hp[i], hy[i] = p[r], y[r]
	}
	if got := Evaluate(hy, hp, 0.5); !reflect.DeepEqual(got, *res.Metrics.Holdout) {
		t.Errorf("holdout metrics: recomputed %+v, Train reported %+v", got, *res.Metrics.Holdout)
	}
}

// heldOut returns the holdout rows of a training with seed 0, by redoing its split.
func heldOut(t *testing.T, tab *tabular.Table, y []int, res *Result) []int {
	t.Helper()
	_, test, err := stratifiedSplit(y, res.Holdout, rand.New(rand.NewPCG(0, pcgStream)))
	if err != nil || len(test) != res.HoldoutRows {
		t.Fatalf("split: %d rows, %v; want %d", len(test), err, res.HoldoutRows)
	}
	return test
}

// TestScoreMatchesEncoding checks that Predict, which scores without encoding and with each
// numeric input's standardisation folded into its coefficient, gives the logistic function of
// the encoded row that the fit uses, to rounding (the folding reorders one subtraction and one
// division, so the last bits may differ).
func TestScoreMatchesEncoding(t *testing.T) {
	tab := cleveland(t)
	m := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV}).Model
	features := make([]int, len(m.inputs))
	rows := make([]int, tab.Rows)
	for i, in := range m.inputs {
		features[i] = tab.Schema.Index(in.name)
	}
	for r := range rows {
		rows[r] = r
	}
	x := make([]float64, tab.Rows*m.Width())
	m.encodeRows(tab, features, rows, x)
	p, _, err := m.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		want := sigmoid(linear(m.logReg.coef, m.logReg.intercept, x[r*m.width:(r+1)*m.width]))
		if math.Abs(p[r]-want) > 1e-14 {
			t.Fatalf("row %d: Predict gives %v, the encoded row %v", r+1, p[r], want)
		}
	}
}

func TestThresholdForSensitivity(t *testing.T) {
	// Positives (rows 0-3) have 0.9, 0.2, 0.6 and 0.4: sorted 0.9, 0.6, 0.4, 0.2.
	y := []int{1, 1, 1, 1, 0, 0}
	rows := []int{0, 1, 2, 3, 4, 5}
	p := []float64{0.9, 0.2, 0.6, 0.4, 0.5, 0.1}
	tests := []struct {
		target, want float64
	}{
		{0.1, 0.9}, {0.25, 0.9}, {0.26, 0.6}, {0.5, 0.6}, {0.75, 0.4}, {0.76, 0.2}, {0.99, 0.2},
	}
	for _, tt := range tests {
		got := thresholdForSensitivity(y, rows, p, tt.target)
		if got != tt.want {
			t.Errorf("target %v: got %v, want %v", tt.target, got, tt.want)
		}
		// It is the highest threshold that reaches the target.
		if m := Evaluate(y, p, got); m.Sensitivity < tt.target {
			t.Errorf("target %v: sensitivity at %v is %v", tt.target, got, m.Sensitivity)
		}
		if m := Evaluate(y, p, math.Nextafter(got, 1)); m.Sensitivity >= tt.target {
			t.Errorf("target %v: a higher threshold also reaches it (%v)", tt.target, m.Sensitivity)
		}
	}
	// rows index y, p is by position in rows.
	if got := thresholdForSensitivity(y, []int{4, 2, 0}, []float64{0.99, 0.3, 0.7}, 0.5); got != 0.7 {
		t.Errorf("subset of rows: got %v, want 0.7", got)
	}
	// The threshold stays inside (0, 1).
	if got := thresholdForSensitivity([]int{1, 0}, []int{0, 1}, []float64{1, 0}, 0.5); !(got < 1) || got != math.Nextafter(1, 0) {
		t.Errorf("probability 1: got %v, want the largest float below 1", got)
	}
	if got := thresholdForSensitivity([]int{1, 0}, []int{0, 1}, []float64{0, 0}, 0.5); !(got > 0) {
		t.Errorf("probability 0: got %v, want a positive threshold", got)
	}
}

func TestTrainTargetSensitivity(t *testing.T) {
	tab := cleveland(t)
	for _, target := range []float64{0.8, 0.95} {
		spec := Spec{Target: "num > 0", Algorithm: "logreg", Seed: 3, Params: map[string]any{"target_sensitivity": target}}
		res := train(t, tab, spec)
		thr := res.Model.Threshold()
		if res.Params["threshold"] != thr || res.Params["target_sensitivity"] != target {
			t.Errorf("target %v: effective params %v, model threshold %v", target, res.Params, thr)
		}
		// Over all out-of-fold predictions the sensitivity reaches the target.
		var tp, fn int
		for _, f := range res.Metrics.CV.PerFold {
			if f.Threshold != thr {
				t.Errorf("target %v: fold at threshold %v, want %v", target, f.Threshold, thr)
			}
			tp += f.Confusion.TP
			fn += f.Confusion.FN
		}
		if got := float64(tp) / float64(tp+fn); got < target {
			t.Errorf("target %v: out-of-fold sensitivity %v", target, got)
		}
		if res.Metrics.Holdout.Threshold != thr || res.Metrics.Holdout.Sensitivity != res.Metrics.Holdout.Recall {
			t.Errorf("target %v: holdout %+v", target, res.Metrics.Holdout)
		}
		if target == 0.95 && !(thr < 0.5) {
			t.Errorf("target 0.95: threshold %v, want below the default 0.5", thr)
		}
		// The effective params, passed back, give the same model.
		a, _ := Encode(res.Model)
		spec.Params = res.Params
		b, _ := Encode(train(t, tab, spec).Model)
		if !bytes.Equal(a, b) {
			t.Errorf("target %v: training with the effective params gave a different artifact", target)
		}
	}
	_, err := Train(context.Background(), tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV,
		Params: map[string]any{"target_sensitivity": 0.9}})
	checkError(t, err, pulse.EUNPROCESSABLE, "params.target_sensitivity", 0, "cross-validation")
}

func TestTrainPenalties(t *testing.T) {
	tab := cleveland(t)
	tests := []struct {
		params map[string]any
		want   map[string]any
	}{
		{map[string]any{"penalty": "l1", "C": 0.1},
			map[string]any{"C": 0.1, "penalty": "l1", "max_iter": 100, "tol": 1e-8, "class_weight": "none", "threshold": 0.5}},
		{map[string]any{"penalty": "l1", "l1_ratio": 1},
			map[string]any{"C": 1.0, "penalty": "l1", "max_iter": 100, "tol": 1e-8, "class_weight": "none", "threshold": 0.5}},
		{map[string]any{"penalty": "elasticnet", "l1_ratio": 0.25},
			map[string]any{"C": 1.0, "penalty": "elasticnet", "l1_ratio": 0.25, "max_iter": 100, "tol": 1e-8, "class_weight": "none", "threshold": 0.5}},
	}
	for _, tt := range tests {
		res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Params: tt.params})
		if !reflect.DeepEqual(res.Params, tt.want) {
			t.Errorf("%v: got params %v, want %v", tt.params, res.Params, tt.want)
		}
		d := res.Model.Describe()
		if !reflect.DeepEqual(d["params"], tt.want) || d["converged"] != true {
			t.Errorf("%v: describe params %v converged %v", tt.params, d["params"], d["converged"])
		}
		if res.Metrics.CV.ROCAUC < 0.85 {
			t.Errorf("%v: CV AUC %v", tt.params, res.Metrics.CV.ROCAUC)
		}
	}
	// Elastic net with l1_ratio 0 is the L2 fit, bit for bit.
	a, _ := Encode(train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV}).Model)
	en := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV, Params: map[string]any{"penalty": "elasticnet", "l1_ratio": 0}})
	b, _ := Encode(en.Model)
	a = bytes.Replace(a, []byte(`"penalty":"l2"`), []byte(`"penalty":"elasticnet","l1_ratio":0`), 1)
	if !bytes.Equal(a, b) {
		t.Errorf("elasticnet with l1_ratio 0 differs from l2:\n%s\n%s", a, b)
	}
}

func TestTrainPenaltyErrors(t *testing.T) {
	tab := cleveland(t)
	tests := []struct {
		params map[string]any
		field  string
		has    string
	}{
		{map[string]any{"penalty": "l3"}, "params.penalty", `got "l3", want "l2", "l1" or "elasticnet"`},
		{map[string]any{"penalty": 1}, "params.penalty", "got 1"},
		{map[string]any{"penalty": "elasticnet"}, "params.l1_ratio", "needs l1_ratio"},
		{map[string]any{"penalty": "elasticnet", "l1_ratio": 1.5}, "params.l1_ratio", "got 1.5, want a number from 0 to 1"},
		{map[string]any{"l1_ratio": 0.5}, "params.l1_ratio", "with penalty l2"},
		{map[string]any{"penalty": "l1", "l1_ratio": 0}, "params.l1_ratio", "with penalty l1"},
		{map[string]any{"target_sensitivity": 1}, "params.target_sensitivity", "between 0 and 1"},
		{map[string]any{"target_sensitivity": "high"}, "params.target_sensitivity", `got "high"`},
	}
	for _, tt := range tests {
		_, err := Train(context.Background(), tab, Spec{Target: "num > 0", Algorithm: "logreg", Params: tt.params})
		checkError(t, err, pulse.EUNPROCESSABLE, tt.field, 0, tt.has)
	}
}
