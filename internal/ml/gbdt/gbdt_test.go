package gbdt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

var update = flag.Bool("update", false, "rewrite testdata/cleveland_predictions.golden")

func fit(t *testing.T, X []float64, n, d int, y, w []float64, p Params) *Ensemble {
	t.Helper()
	e, err := Fit(context.Background(), X, n, d, y, w, p)
	if err != nil {
		t.Fatalf("Fit: %v", err)
	}
	return e
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*max(1, math.Abs(b)) }

// A 1-D step: x = 0..29, label 1 from x = 20 on. With one split, the threshold is the
// midpoint 19.5 and the leaf values are Newton steps from the base score log(10/20):
// p = 1/3 everywhere, so the left leaf (20 rows of label 0) has G = 20/3, H = 20·2/9 and
// value -1.5·lr; the right one (10 rows of label 1) has G = -20/3, H = 10·2/9 and value
// 3·lr. The gain is G_L²/H_L + G_R²/H_R - G²/H = 10 + 20 - 0.
func TestStepFunction(t *testing.T) {
	var X, y []float64
	for i := range 30 {
		X = append(X, float64(i))
		y = append(y, float64(i/20))
	}
	p := DefaultParams()
	p.NumTrees, p.MaxLeaves, p.MinSamplesLeaf = 1, 2, 1
	e := fit(t, X, 30, 1, y, nil, p)

	if got, want := e.BaseScore(), math.Log(0.5); !near(got, want) {
		t.Errorf("base score: got %v, want %v", got, want)
	}
	tr := e.trees[0]
	if len(tr.feature) != 1 || len(tr.leaf) != 2 {
		t.Fatalf("got %d nodes and %d leaves, want 1 and 2", len(tr.feature), len(tr.leaf))
	}
	if tr.feature[0] != 0 || tr.threshold[0] != 19.5 {
		t.Errorf("split: got feature %d threshold %v, want 0 and 19.5", tr.feature[0], tr.threshold[0])
	}
	if !tr.defaultLeft[0] {
		t.Errorf("NaN goes right, want left (20 training rows left, 10 right)")
	}
	left, right := tr.leaf[^tr.left[0]], tr.leaf[^tr.right[0]]
	if !near(left, -0.15) || !near(right, 0.3) {
		t.Errorf("leaf values: got %v and %v, want -0.15 and 0.3", left, right)
	}
	if imp := e.Importance(); len(imp) != 1 || !near(imp[0], 30) {
		t.Errorf("importance: got %v, want [30]", imp)
	}
	for _, tc := range []struct {
		x, want float64
	}{
		{19, math.Log(0.5) - 0.15},
		{19.5, math.Log(0.5) - 0.15},
		{19.6, math.Log(0.5) + 0.3},
		{-1e300, math.Log(0.5) - 0.15},
		{math.NaN(), math.Log(0.5) - 0.15},
	} {
		if got := e.Raw([]float64{tc.x}); !near(got, tc.want) {
			t.Errorf("Raw(%v): got %v, want %v", tc.x, got, tc.want)
		}
		if got, want := e.Predict([]float64{tc.x}), 1/(1+math.Exp(-tc.want)); !near(got, want) {
			t.Errorf("Predict(%v): got %v, want %v", tc.x, got, want)
		}
	}
}

// Constraints that forbid every split leave a single-leaf tree whose value is the Newton step
// of all rows, 0 at the base score.
func TestNoSplit(t *testing.T) {
	var X, y []float64
	for i := range 30 {
		X = append(X, float64(i))
		y = append(y, float64(i/20))
	}
	for _, tc := range []struct {
		name string
		set  func(*Params)
	}{
		{"min_samples_leaf", func(p *Params) { p.MinSamplesLeaf = 16 }},
		{"min_hessian_leaf", func(p *Params) { p.MinHessianLeaf = 4 }}, // H = 30·2/9 < 2·4
		{"max_depth", func(p *Params) { p.MaxDepth = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			p.NumTrees, p.MinSamplesLeaf = 1, 1
			tc.set(&p)
			e := fit(t, X, 30, 1, y, nil, p)
			tr := e.trees[0]
			switch tc.name {
			case "max_depth": // one split allowed, at depth 0; its children may not split
				if len(tr.feature) != 1 {
					t.Fatalf("got %d nodes, want 1", len(tr.feature))
				}
				if tr.threshold[0] != 19.5 {
					t.Errorf("threshold: got %v, want 19.5", tr.threshold[0])
				}
			default:
				if len(tr.feature) != 0 || len(tr.leaf) != 1 || math.Abs(tr.leaf[0]) > 1e-15 {
					t.Errorf("got %d nodes, leaves %v, want 0 nodes and one leaf ≈ 0", len(tr.feature), tr.leaf)
				}
				if got, want := e.Raw([]float64{25}), math.Log(0.5); !near(got, want) {
					t.Errorf("Raw: got %v, want %v", got, want)
				}
			}
		})
	}
}

// Leaf-wise growth splits the leaf whose split gains most: on a two-step target with
// MaxLeaves 3 both steps are found.
func TestLeafWise(t *testing.T) {
	var X, y []float64
	for i := range 90 {
		X = append(X, float64(i))
		y = append(y, float64(i/30%2)) // 0 on [0,30), 1 on [30,60), 0 on [60,90)
	}
	p := DefaultParams()
	p.NumTrees, p.MaxLeaves, p.MinSamplesLeaf = 1, 3, 5
	e := fit(t, X, 90, 1, y, nil, p)
	tr := e.trees[0]
	if len(tr.feature) != 2 {
		t.Fatalf("got %d nodes, want 2", len(tr.feature))
	}
	got := []float64{tr.threshold[0], tr.threshold[1]}
	if !(got[0] == 29.5 && got[1] == 59.5) && !(got[0] == 59.5 && got[1] == 29.5) {
		t.Errorf("thresholds: got %v, want 29.5 and 59.5", got)
	}
	lo, mid, hi := e.Raw([]float64{10}), e.Raw([]float64{45}), e.Raw([]float64{80})
	if !(mid > lo && mid > hi) {
		t.Errorf("Raw at 10, 45, 80: got %v, %v, %v; want the middle one highest", lo, mid, hi)
	}
}

// Missingness that predicts the label is learnt, in both directions.
func TestMissingValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		// label of a row with value x (NaN = missing)
		label         func(x float64) float64
		wantThreshold float64
		wantLeft      bool
	}{
		{"only missing is 1", func(x float64) float64 { return b2f(x != x) }, math.Inf(1), false},
		{"missing and high are 1", func(x float64) float64 { return b2f(x != x || x > 50) }, 50.5, false},
		{"missing and low are 1", func(x float64) float64 { return b2f(x != x || x < 50) }, 49.5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var X, y []float64
			for i := range 200 {
				x := float64(i % 100)
				if i%4 == 0 {
					x = math.NaN()
				}
				X = append(X, x)
				y = append(y, tc.label(x))
			}
			p := DefaultParams()
			p.NumTrees, p.MaxLeaves = 20, 2
			e := fit(t, X, 200, 1, y, nil, p)
			tr := e.trees[0]
			if tr.threshold[0] != tc.wantThreshold || tr.defaultLeft[0] != tc.wantLeft {
				t.Errorf("first split: got threshold %v, NaN left %v; want %v, %v",
					tr.threshold[0], tr.defaultLeft[0], tc.wantThreshold, tc.wantLeft)
			}
			for i := range 200 {
				x := X[i : i+1]
				if got, want := e.Predict(x) > 0.5, y[i] == 1; got != want {
					t.Errorf("row %d (x = %v): Predict > 0.5 is %v, want %v", i, x[0], got, want)
				}
			}
		})
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Weight 2 on a row acts like the row twice (with MinSamplesLeaf 1, counts do not matter).
func TestWeights(t *testing.T) {
	X, y := loadCleveland(t)
	n := len(y)
	w := make([]float64, n)
	var Xd, yd []float64
	for i := range n {
		w[i] = 1
		Xd = append(Xd, X[i*clevelandFeatures:(i+1)*clevelandFeatures]...)
		yd = append(yd, y[i])
		if i%3 == 0 {
			w[i] = 2
			Xd = append(Xd, X[i*clevelandFeatures:(i+1)*clevelandFeatures]...)
			yd = append(yd, y[i])
		}
	}
	p := DefaultParams()
	p.NumTrees, p.MinSamplesLeaf = 20, 1
	ew := fit(t, X, n, clevelandFeatures, y, w, p)
	ed := fit(t, Xd, len(yd), clevelandFeatures, yd, nil, p)
	for i := range n {
		x := X[i*clevelandFeatures : (i+1)*clevelandFeatures]
		if a, b := ew.Raw(x), ed.Raw(x); math.Abs(a-b) > 1e-9 {
			t.Errorf("row %d: weighted %v, duplicated %v", i, a, b)
		}
	}
}

func TestDeterminism(t *testing.T) {
	X, y := loadCleveland(t)
	p := DefaultParams()
	p.Subsample, p.FeatureFraction, p.Seed = 0.8, 0.7, 1
	marshal := func(p Params) []byte {
		b, err := json.Marshal(fit(t, X, len(y), clevelandFeatures, y, nil, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := marshal(p), marshal(p)
	if !bytes.Equal(a, b) {
		t.Errorf("two fits with seed 1 differ")
	}
	p.Seed = 2
	if c := marshal(p); bytes.Equal(a, c) {
		t.Errorf("fits with seeds 1 and 2 are identical, want different row and feature draws")
	}
}

// Histograms of large nodes are built by several goroutines; the result must not depend on
// their number.
func TestDeterminismAcrossCPUs(t *testing.T) {
	X0, y0 := loadCleveland(t)
	X, y := resample(X0, y0, clevelandFeatures, 8000, 3) // 8000×13 > parallelWork at the root
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	for _, subsample := range []float64{1, 0.9} {
		p := DefaultParams()
		p.NumTrees, p.Subsample, p.Seed = 10, subsample, 5
		var out [][]byte
		for _, procs := range []int{1, 2, 3} {
			runtime.GOMAXPROCS(procs)
			b, err := json.Marshal(fit(t, X, len(y), clevelandFeatures, y, nil, p))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		for i := 1; i < len(out); i++ {
			if !bytes.Equal(out[0], out[i]) {
				t.Errorf("subsample %v: GOMAXPROCS %d gives a different ensemble than GOMAXPROCS 1", subsample, i+1)
			}
		}
	}
}

// goldenConfigs are the columns of testdata/cleveland_predictions.golden.
var goldenConfigs = []struct {
	name string
	set  func(*Params)
}{
	{"default", func(*Params) {}},
	{"sampled_early_stopping", func(p *Params) {
		p.Subsample, p.FeatureFraction, p.Seed = 0.8, 0.7, 42
		p.EarlyStopping, p.NumTrees = true, 300
	}},
}

// Training on all of Cleveland and predicting its 303 rows gives exactly the golden
// probabilities: the check that results are identical across runs and platforms.
func TestGoldenCleveland(t *testing.T) {
	X, y := loadCleveland(t)
	n := len(y)
	got := make([][]float64, n)
	for _, cfg := range goldenConfigs {
		p := DefaultParams()
		cfg.set(&p)
		e := fit(t, X, n, clevelandFeatures, y, nil, p)
		for i := range n {
			got[i] = append(got[i], e.Predict(X[i*clevelandFeatures:(i+1)*clevelandFeatures]))
		}
	}
	path := filepath.Join("testdata", "cleveland_predictions.golden")
	if *update {
		var buf bytes.Buffer
		buf.WriteString("# row")
		for _, cfg := range goldenConfigs {
			buf.WriteString(" " + cfg.name)
		}
		buf.WriteString("\n")
		for i, ps := range got {
			buf.WriteString(strconv.Itoa(i))
			for _, v := range ps {
				buf.WriteString(" " + strconv.FormatFloat(v, 'g', -1, 64))
			}
			buf.WriteString("\n")
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open golden file (run with -update to create it): %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	rows := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 1+len(goldenConfigs) || fields[0] != strconv.Itoa(rows) {
			t.Fatalf("golden line %q: want row %d and %d values", line, rows, len(goldenConfigs))
		}
		for j, s := range fields[1:] {
			want, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("golden line %q: %v", line, err)
			}
			if math.Float64bits(got[rows][j]) != math.Float64bits(want) {
				t.Errorf("row %d, %s: got %v, want %v (bit for bit)", rows, goldenConfigs[j].name, got[rows][j], want)
			}
		}
		rows++
	}
	if rows != n {
		t.Errorf("golden file has %d rows, want %d", rows, n)
	}
}

// On the 5 stratified folds of testdata/cleveland_folds.csv, the mean held-out ROC AUC is at
// least scikit-learn's (testdata/sklearn_results.json) minus 0.01.
func TestQualityVsSklearn(t *testing.T) {
	X, y := loadCleveland(t)
	folds := loadFolds(t)
	sk := loadSklearn(t)
	if len(folds) != len(y) || len(sk.FoldAUC) != 5 {
		t.Fatalf("got %d fold assignments and %d sklearn AUCs, want %d and 5", len(folds), len(sk.FoldAUC), len(y))
	}
	var mean float64
	for k := range 5 {
		Xtr, ytr, Xte, yte := foldSplit(X, y, clevelandFeatures, folds, k)
		e := fit(t, Xtr, len(ytr), clevelandFeatures, ytr, nil, DefaultParams())
		scores := make([]float64, len(yte))
		for i := range yte {
			scores[i] = e.Predict(Xte[i*clevelandFeatures : (i+1)*clevelandFeatures])
		}
		auc := rocAUC(scores, yte)
		t.Logf("fold %d: AUC %.4f (scikit-learn %.4f)", k, auc, sk.FoldAUC[k])
		mean += auc / 5
	}
	t.Logf("mean AUC %.4f, scikit-learn %s %.4f", mean, sk.SklearnVersion, sk.MeanAUC)
	if mean < sk.MeanAUC-0.01 {
		t.Errorf("mean AUC: got %.4f, want at least scikit-learn's %.4f - 0.01", mean, sk.MeanAUC)
	}
}

func TestEarlyStopping(t *testing.T) {
	X, y := loadCleveland(t)
	p := DefaultParams()
	p.EarlyStopping, p.NumTrees, p.LearningRate = true, 2000, 0.3
	e := fit(t, X, len(y), clevelandFeatures, y, nil, p)
	loss := e.ValidationLoss()
	best := e.BestIteration()
	if len(loss) >= p.NumTrees {
		t.Fatalf("ran %d iterations, want early stopping before %d", len(loss), p.NumTrees)
	}
	if best != e.NumTrees() || best < 1 {
		t.Fatalf("best iteration %d, %d trees; want equal and at least 1", best, e.NumTrees())
	}
	if len(loss) != best+p.Patience {
		t.Errorf("ran %d iterations, want best %d + patience %d", len(loss), best, p.Patience)
	}
	for i, l := range loss {
		if l < loss[best-1]-p.Tol {
			t.Errorf("iteration %d has loss %v, below the best iteration's %v", i+1, l, loss[best-1])
		}
	}
	p.EarlyStopping = false
	p.NumTrees = 5
	if e := fit(t, X, len(y), clevelandFeatures, y, nil, p); e.ValidationLoss() != nil || e.BestIteration() != 5 {
		t.Errorf("without early stopping: got loss %v, best %d; want nil and 5", e.ValidationLoss(), e.BestIteration())
	}
}

func TestCancel(t *testing.T) {
	X, y := loadCleveland(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fit(ctx, X, len(y), clevelandFeatures, y, nil, DefaultParams()); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestRawBadLength(t *testing.T) {
	e := fit(t, []float64{0, 1, 2, 3}, 4, 1, []float64{0, 0, 1, 1}, nil, DefaultParams())
	for _, x := range [][]float64{nil, {1, 2}} {
		if got := e.Raw(x); !math.IsNaN(got) {
			t.Errorf("Raw(%v): got %v, want NaN", x, got)
		}
		if got := e.Predict(x); !math.IsNaN(got) {
			t.Errorf("Predict(%v): got %v, want NaN", x, got)
		}
	}
	var zero Ensemble
	if got := zero.Raw(nil); !math.IsNaN(got) {
		t.Errorf("zero Ensemble: got %v, want NaN", got)
	}
}

func TestPredictAllocs(t *testing.T) {
	X, y := loadCleveland(t)
	e := fit(t, X, len(y), clevelandFeatures, y, nil, DefaultParams())
	x := X[:clevelandFeatures]
	if a := testing.AllocsPerRun(100, func() { e.Predict(x) }); a != 0 {
		t.Errorf("Predict: %v allocations, want 0", a)
	}
}

func TestFitBadInput(t *testing.T) {
	ok := []float64{0, 1, 2, 3}
	labels := []float64{0, 0, 1, 1}
	for _, tc := range []struct {
		name       string
		X          []float64
		n, d       int
		y, w       []float64
		code       string
		field, msg string
	}{
		{"no rows", nil, 0, 1, nil, nil, pulse.EINVALID, "n", "got 0 rows"},
		{"no columns", ok, 4, 0, labels, nil, pulse.EINVALID, "d", "got 0 columns"},
		{"X length", ok[:3], 4, 1, labels, nil, pulse.EINVALID, "X", "got 3 values"},
		{"y length", ok, 4, 1, labels[:3], nil, pulse.EINVALID, "y", "got 3 labels"},
		{"w length", ok, 4, 1, labels, []float64{1}, pulse.EINVALID, "w", "got 1 weights"},
		{"infinite value", []float64{0, 1, math.Inf(1), 3}, 4, 1, labels, nil, pulse.EUNPROCESSABLE, "X", "X[2][0]: got +Inf"},
		{"label 2", ok, 4, 1, []float64{0, 2, 1, 1}, nil, pulse.EUNPROCESSABLE, "y", "y[1]: got 2, want 0 or 1"},
		{"label NaN", ok, 4, 1, []float64{0, 0, math.NaN(), 1}, nil, pulse.EUNPROCESSABLE, "y", "y[2]: got NaN"},
		{"negative weight", ok, 4, 1, labels, []float64{1, -1, 1, 1}, pulse.EUNPROCESSABLE, "w", "w[1]: got -1"},
		{"only label 0", ok, 4, 1, []float64{0, 0, 0, 0}, nil, pulse.EUNPROCESSABLE, "y", "no training row of label 1"},
		{"label 1 weighs 0", ok, 4, 1, labels, []float64{1, 1, 0, 0}, pulse.EUNPROCESSABLE, "y", "no training row of label 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(context.Background(), tc.X, tc.n, tc.d, tc.y, tc.w, DefaultParams())
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != tc.code || pe.Field != tc.field || !strings.Contains(pe.Message, tc.msg) {
				t.Errorf("got %#v, want code %s field %s message containing %q", err, tc.code, tc.field, tc.msg)
			}
		})
	}
	p := DefaultParams()
	p.EarlyStopping = true
	_, err := Fit(context.Background(), []float64{0, 1, 2}, 3, 1, []float64{0, 0, 1}, nil, p)
	if pulse.ErrorCode(err) != pulse.EUNPROCESSABLE || !strings.Contains(pulse.ErrorMessage(err), "1 rows of label 1") {
		t.Errorf("early stopping with one row of label 1: got %v", err)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		field string
		set   func(*Params)
	}{
		{"learning_rate", func(p *Params) { p.LearningRate = 0 }},
		{"learning_rate", func(p *Params) { p.LearningRate = 1.5 }},
		{"learning_rate", func(p *Params) { p.LearningRate = math.NaN() }},
		{"num_trees", func(p *Params) { p.NumTrees = 0 }},
		{"num_trees", func(p *Params) { p.NumTrees = MaxNumTrees + 1 }},
		{"max_leaves", func(p *Params) { p.MaxLeaves = 1 }},
		{"max_leaves", func(p *Params) { p.MaxLeaves = MaxMaxLeaves + 1 }},
		{"max_depth", func(p *Params) { p.MaxDepth = -1 }},
		{"min_samples_leaf", func(p *Params) { p.MinSamplesLeaf = 0 }},
		{"min_hessian_leaf", func(p *Params) { p.MinHessianLeaf = -1 }},
		{"min_hessian_leaf", func(p *Params) { p.MinHessianLeaf = math.Inf(1) }},
		{"l2", func(p *Params) { p.L2 = -0.1 }},
		{"l2", func(p *Params) { p.L2 = math.NaN() }},
		{"max_bins", func(p *Params) { p.MaxBins = 1 }},
		{"max_bins", func(p *Params) { p.MaxBins = 256 }},
		{"subsample", func(p *Params) { p.Subsample = 0 }},
		{"subsample", func(p *Params) { p.Subsample = 1.01 }},
		{"feature_fraction", func(p *Params) { p.FeatureFraction = 0 }},
		{"feature_fraction", func(p *Params) { p.FeatureFraction = 2 }},
		{"validation_fraction", func(p *Params) { p.ValidationFraction = 0 }},
		{"validation_fraction", func(p *Params) { p.ValidationFraction = 1 }},
		{"patience", func(p *Params) { p.Patience = 0 }},
		{"tol", func(p *Params) { p.Tol = -1e-9 }},
		{"tol", func(p *Params) { p.Tol = math.Inf(1) }},
	} {
		p := DefaultParams()
		tc.set(&p)
		err := p.Validate()
		var pe *pulse.Error
		if !errors.As(err, &pe) || pe.Code != pulse.EUNPROCESSABLE || pe.Field != "params."+tc.field ||
			!strings.HasPrefix(pe.Message, "params."+tc.field+": got ") || !strings.Contains(pe.Message, "want ") {
			t.Errorf("%s: got %#v, want an unprocessable error about params.%s", tc.field, err, tc.field)
		}
		if _, err := Fit(context.Background(), []float64{0, 1}, 2, 1, []float64{0, 1}, nil, p); pulse.ErrorCode(err) != pulse.EUNPROCESSABLE {
			t.Errorf("%s: Fit got %v, want the Validate error", tc.field, err)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	X, y := loadCleveland(t)
	n := len(y)
	// Missing values in ca and thal give splits with a "+Inf" threshold or a default
	// direction; early stopping adds a validation loss.
	p := DefaultParams()
	p.EarlyStopping, p.Subsample, p.Seed, p.MinSamplesLeaf = true, 0.9, 3, 2
	e := fit(t, X, n, clevelandFeatures, y, nil, p)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Ensemble
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	b2, err := json.Marshal(&back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("marshal, unmarshal, marshal changes the document")
	}
	rows := [][]float64{make([]float64, clevelandFeatures)}
	for i := range clevelandFeatures {
		rows[0][i] = math.NaN()
	}
	for i := range n {
		rows = append(rows, X[i*clevelandFeatures:(i+1)*clevelandFeatures])
	}
	for i, x := range rows {
		if a, c := e.Predict(x), back.Predict(x); math.Float64bits(a) != math.Float64bits(c) {
			t.Errorf("row %d: got %v after the round trip, want %v", i, c, a)
		}
	}
	if back.NumTrees() != e.NumTrees() || back.NumFeatures() != e.NumFeatures() ||
		fmt.Sprint(back.Importance()) != fmt.Sprint(e.Importance()) ||
		fmt.Sprint(back.ValidationLoss()) != fmt.Sprint(e.ValidationLoss()) {
		t.Errorf("accessors differ after the round trip")
	}
}

func TestUnmarshalCorrupt(t *testing.T) {
	// One tree: node 0 splits on feature 0, node 1 on feature 1; leaves 0, 1, 2.
	good := `{"format":"pulse-gbdt","version":1,"num_features":2,"base_score":0.5,"importance":[1,2],` +
		`"trees":[{"feature":[0,1],"threshold":[1.5,"+Inf"],"left":[-1,-2],"right":[1,-3],` +
		`"default_left":[true,false],"leaf_value":[-0.1,0.2,0.3]}]}`
	var e Ensemble
	if err := json.Unmarshal([]byte(good), &e); err != nil {
		t.Fatalf("good document: %v", err)
	}
	for _, tc := range []struct {
		x    []float64
		want float64
	}{{[]float64{1, 0}, 0.4}, {[]float64{2, 5}, 0.7}, {[]float64{2, math.NaN()}, 0.8}, {[]float64{math.NaN(), 0}, 0.4}} {
		if got := e.Raw(tc.x); !near(got, tc.want) {
			t.Errorf("Raw(%v): got %v, want %v", tc.x, got, tc.want)
		}
	}
	for _, tc := range []struct{ name, old, new, msg string }{
		{"truncated", `"leaf_value":[-0.1,0.2,0.3]}]}`, `"leaf_value":[-0.1,0.2`, "unexpected EOF"},
		{"trailing data", `0.3]}]}`, `0.3]}]} {}`, "after the JSON document"},
		{"unknown field", `"version":1`, `"version":1,"extra":1`, "unknown field"},
		{"wrong format", `pulse-gbdt`, `xgboost`, "format"},
		{"wrong version", `"version":1`, `"version":2`, "version 2"},
		{"no features", `"num_features":2`, `"num_features":0`, "num_features 0"},
		{"importance length", `[1,2]`, `[1]`, "importance values"},
		{"negative importance", `[1,2]`, `[1,-2]`, "importance 1"},
		{"child node out of range", `"right":[1,-3]`, `"right":[2,-3]`, "child node 2 out of range"},
		{"child leaf out of range", `"right":[1,-3]`, `"right":[1,-4]`, "child leaf 3 out of range"},
		{"cycle", `"left":[-1,-2],"right":[1,-3]`, `"left":[-1,1],"right":[-2,-3]`, "not reachable"},
		{"self loop", `"left":[-1,-2]`, `"left":[-1,1]`, "two parents"},
		{"child is root", `"right":[1,-3]`, `"right":[0,-3]`, "child is the root"},
		{"leaf twice", `"left":[-1,-2]`, `"left":[-1,-1]`, "leaf 0 has two parents"},
		{"NaN leaf", `0.2,0.3]`, `0.2,NaN]`, "invalid character"},
		{"NaN leaf as string", `0.2,0.3]`, `0.2,"NaN"]`, "cannot unmarshal"},
		{"huge leaf", `0.2,0.3]`, `0.2,1e999]`, "cannot unmarshal"},
		{"NaN threshold", `"+Inf"]`, `"NaN"]`, "threshold 1"},
		{"too few leaves", `[-0.1,0.2,0.3]`, `[-0.1,0.2]`, "2 leaf values for 2 nodes"},
		{"threshold length", `[1.5,"+Inf"]`, `[1.5]`, "lengths 2, 1"},
		{"default_left length", `[true,false]`, `[true]`, "lengths 2, 2, 2, 2 and 1"},
		{"feature out of range", `"feature":[0,1]`, `"feature":[0,2]`, "feature 2"},
		{"negative feature", `"feature":[0,1]`, `"feature":[0,-1]`, "feature -1"},
		{"feature not int32", `"feature":[0,1]`, `"feature":[0,4294967296]`, "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, tc.old, tc.new, 1)
			if doc == good {
				t.Fatalf("replacement %q not found", tc.old)
			}
			before := e
			err := e.UnmarshalJSON([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want an error containing %q", err, tc.msg)
			}
			if e.NumTrees() != before.NumTrees() || e.Raw([]float64{2, 5}) != before.Raw([]float64{2, 5}) {
				t.Errorf("a failed UnmarshalJSON changed the ensemble")
			}
		})
	}
	// Nodes 1 and 2 point at each other: every node has one parent, but they are not
	// reachable from the root.
	cyc := `{"format":"pulse-gbdt","version":1,"num_features":1,"base_score":0,"importance":[0],` +
		`"trees":[{"feature":[0,0,0],"threshold":[1,2,3],"left":[-1,2,1],"right":[-2,-3,-4],` +
		`"default_left":[true,true,true],"leaf_value":[0,0,0,0]}]}`
	if err := json.Unmarshal([]byte(cyc), &e); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("cycle off the root: got %v, want an error about unreachable nodes", err)
	}
}

func TestBinThresholds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vals    []float64
		maxBins int
		want    []float64
	}{
		{"empty", nil, 255, nil},
		{"constant", []float64{3, 3, 3}, 255, nil},
		{"midpoints", []float64{3, 1, 2, 2}, 255, []float64{1.5, 2.5}},
		{"midpoints at the limit", []float64{0, 1, 2, 3}, 4, []float64{0.5, 1.5, 2.5}},
		// numpy.percentile(x, linspace(0, 100, maxBins+1)[1:-1], method="averaged_inverted_cdf")
		{"quantiles", []float64{1, 2, 2, 3, 5, 8, 13, 21, 34, 55}, 4, []float64{2, 6.5, 21}},
		{"quantiles 0..11", []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 5, []float64{2, 4, 7, 9}},
		{"quantiles deduplicated", []float64{1, 1, 1, 1, 1, 1, 1, 2, 3, 4}, 3, []float64{1}},
		{"huge values", []float64{-math.MaxFloat64, math.MaxFloat64}, 255, []float64{0}},
		{"no +Inf", []float64{math.MaxFloat64, math.MaxFloat64 / 2}, 255, []float64{0.75 * math.MaxFloat64}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := binThresholds(append([]float64(nil), tc.vals...), nil, tc.maxBins)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for i, v := range tc.vals {
				b := binOf(got, v)
				if (b > 0 && !(got[b-1] < v)) || (b < len(got) && !(v <= got[b])) {
					t.Errorf("value %d (%v) in bin %d of %v", i, v, b, got)
				}
			}
		})
	}
}

// exp and log agree with package math within a few units in the last place (math.Exp on
// amd64 is an assembly routine with its own rounding; both are off by up to 2 ulps for
// large arguments).
func TestExpLog(t *testing.T) {
	ulps := func(a, b float64) uint64 {
		x, y := math.Float64bits(a), math.Float64bits(b)
		if x > y {
			return x - y
		}
		return y - x
	}
	for i := -7000; i <= 7000; i++ {
		x := float64(i) * 0.1013
		if d := ulps(exp(x), math.Exp(x)); d > 4 {
			t.Errorf("exp(%v): got %v, math.Exp %v", x, exp(x), math.Exp(x))
		}
		if x > 0 {
			if d := ulps(log(x), math.Log(x)); d > 2 {
				t.Errorf("log(%v): got %v, math.Log %v", x, log(x), math.Log(x))
			}
		}
	}
	for _, tc := range []struct{ got, want float64 }{
		{exp(math.Inf(1)), math.Inf(1)}, {exp(math.Inf(-1)), 0}, {exp(1000), math.Inf(1)}, {exp(0), 1},
		{log(0), math.Inf(-1)}, {log(1), 0}, {log(math.Inf(1)), math.Inf(1)},
		{sigmoid(0), 0.5}, {sigmoid(-1000), 0}, {sigmoid(1000), 1},
		{softplus(0), math.Ln2}, {softplus(1000), 1000}, {softplus(-1000), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
	if !math.IsNaN(exp(math.NaN())) || !math.IsNaN(log(-1)) {
		t.Errorf("NaN cases")
	}
}

func TestBinOf(t *testing.T) {
	thr := []float64{-3, -1, 0, 0, 2.5, 7, 7, 7, 100}
	for n := 0; n <= len(thr); n++ {
		for x := -5.0; x <= 105; x += 0.25 {
			want := sort.SearchFloat64s(thr[:n], x)
			if got := binOf(thr[:n], x); got != want {
				t.Errorf("binOf(%v, %v): got %d, want %d", thr[:n], x, got, want)
			}
		}
	}
}

func TestSortFloats(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, 2047, 2048, 5000} {
		vals := make([]float64, n)
		for i := range vals {
			switch r.IntN(6) {
			case 0:
				vals[i] = math.Copysign(0, -1)
			case 1:
				vals[i] = float64(r.IntN(5)) // duplicates, +0
			case 2:
				vals[i] = -r.ExpFloat64() * 1e300
			default:
				vals[i] = r.NormFloat64()
			}
		}
		want := slices.Clone(vals)
		slices.Sort(want)
		sortFloats(vals, make([]uint64, 2*n))
		for i := range vals {
			if vals[i] != want[i] { // -0 == +0
				t.Fatalf("n %d: element %d is %v, want %v", n, i, vals[i], want[i])
			}
		}
	}
}

// Raw, which walks eight trees at once on the breadth-first layout, selects the same leaves
// as a plain walk of each tree, and sums them in the same order.
func TestRawMatchesTrees(t *testing.T) {
	X, y := loadCleveland(t)
	p := DefaultParams()
	p.NumTrees, p.MinSamplesLeaf = 13, 3 // deep trees of different depths; 8 + 5 trees
	e := fit(t, X, len(y), clevelandFeatures, y, nil, p)
	r := rand.New(rand.NewPCG(7, 7))
	x := make([]float64, clevelandFeatures)
	for i := range y {
		copy(x, X[i*clevelandFeatures:(i+1)*clevelandFeatures])
		if i%2 == 1 {
			x[r.IntN(clevelandFeatures)] = math.NaN()
			x[r.IntN(clevelandFeatures)] = math.NaN()
		}
		want := e.baseScore
		for _, tr := range e.trees {
			want += tr.leafValue(x)
		}
		if got := e.Raw(x); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("row %d %v: Raw %v, tree by tree %v", i, x, got, want)
		}
	}
	if d := slices.Max(e.depths); d < 5 {
		t.Errorf("deepest tree has depth %d, want a deeper test", d)
	}
}
