package ml

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

var algorithms = []string{AlgorithmLogReg, AlgorithmGBDT, AlgorithmFTRL}

// TestAlgorithmsCleveland trains each algorithm end to end on Cleveland over several seeds:
// cross-validated ROC AUC close to logreg's (the data set's reference is 0.90-0.92), a holdout,
// and a JSON description.
func TestAlgorithmsCleveland(t *testing.T) {
	tab := cleveland(t)
	const seeds = 5
	mean := map[string]float64{}
	for _, alg := range algorithms {
		for seed := range uint64(seeds) {
			res := train(t, tab, Spec{Target: "num > 0", Algorithm: alg, Seed: seed})
			cv, h := res.Metrics.CV, res.Metrics.Holdout
			if cv == nil || cv.Folds != 10 || h == nil || h.N != 61 || res.Model.Algorithm() != alg {
				t.Fatalf("%s seed %d: got CV %v holdout %v algorithm %q", alg, seed, cv, h, res.Model.Algorithm())
			}
			if len(h.Calibration) == 0 || h.Specificity <= 0 || h.Sensitivity != h.Recall {
				t.Errorf("%s seed %d: holdout %+v", alg, seed, h)
			}
			mean[alg] += cv.ROCAUC / seeds
			d := res.Model.Describe()
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("%s: describe is not JSON: %v", alg, err)
			}
			if d["algorithm"] != alg || !reflect.DeepEqual(d["params"], res.Params) {
				t.Errorf("%s: describe params %v, want %v", alg, d["params"], res.Params)
			}
		}
		t.Logf("%s: mean CV ROC AUC over %d seeds %.4f", alg, seeds, mean[alg])
	}
	for _, alg := range algorithms {
		if mean[alg] < 0.86 || mean[alg] < mean[AlgorithmLogReg]-0.05 {
			t.Errorf("%s: mean CV ROC AUC %.4f, want >= 0.86 and within 0.05 of logreg's %.4f", alg, mean[alg], mean[AlgorithmLogReg])
		}
	}
}

func TestAlgorithmsDeterministicAndRoundTrip(t *testing.T) {
	tab := cleveland(t)
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			spec := Spec{Target: "num > 0", Algorithm: alg, Seed: 42}
			r1 := train(t, tab, spec)
			a, err := Encode(r1.Model)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(a, []byte(`{"format":"pulse.model","schema_version":1,"algorithm":"`+alg+`",`)) {
				t.Errorf("artifact starts %.80s", a)
			}
			b, _ := Encode(train(t, tab, spec).Model)
			if !bytes.Equal(a, b) {
				t.Error("two trainings with the same seed gave different artifacts")
			}
			spec.Params = r1.Params
			c, _ := Encode(train(t, tab, spec).Model)
			if !bytes.Equal(a, c) {
				t.Error("training with the effective params gave a different artifact")
			}
			spec.Seed = 43
			d, _ := Encode(train(t, tab, spec).Model)
			if bytes.Equal(a, d) {
				t.Error("seeds 42 and 43 gave the same artifact")
			}

			m, err := Decode(a, sha(a))
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Encode(m)
			if !bytes.Equal(a, again) {
				t.Error("encode(decode(artifact)) differs from the artifact")
			}
			p1, _, err := r1.Model.PredictTable(tab)
			if err != nil {
				t.Fatal(err)
			}
			p2, _, err := m.PredictTable(tab)
			if err != nil {
				t.Fatal(err)
			}
			for i := range p1 {
				if math.Float64bits(p1[i]) != math.Float64bits(p2[i]) {
					t.Fatalf("row %d: decoded model predicts %v, original %v", i+1, p2[i], p1[i])
				}
			}
			j1, _ := json.Marshal(r1.Model.Describe())
			j2, _ := json.Marshal(m.Describe())
			if !bytes.Equal(j1, j2) {
				t.Errorf("describe differs after the round trip:\n%s\n%s", j1, j2)
			}
			if !reflect.DeepEqual(m.Inputs(), r1.Model.Inputs()) || m.Threshold() != r1.Model.Threshold() || m.Width() != r1.Model.Width() {
				t.Error("inputs, threshold or width differ after the round trip")
			}
		})
	}
}

// TestTrainingMatchesPrediction checks that every algorithm's holdout metrics are those of the
// probabilities PredictTable gives the held-out rows: training and serving encode alike.
func TestTrainingMatchesPrediction(t *testing.T) {
	tab := cleveland(t)
	tg, _ := parseTarget("num > 0", tab.Schema)
	y, _ := tg.labels(tab)
	for _, alg := range algorithms {
		res := train(t, tab, Spec{Target: "num > 0", Algorithm: alg, CVFolds: NoCV})
		p, _, err := res.Model.PredictTable(tab)
		if err != nil {
			t.Fatal(err)
		}
		rows := heldOut(t, tab, y, res)
		hp := make([]float64, len(rows))
		hy := make([]int, len(rows))
		for i, r := range rows {
			hp[i], hy[i] = p[r], y[r]
		}
		if got := Evaluate(hy, hp, 0.5); !reflect.DeepEqual(got, *res.Metrics.Holdout) {
			t.Errorf("%s: holdout metrics recomputed %+v, Train reported %+v", alg, got, *res.Metrics.Holdout)
		}
	}
}

func TestEncodeRows(t *testing.T) {
	tab := cleveland(t)
	nan := math.NaN()
	values := [][]Value{
		{{Num: 60, Present: true}, {Str: "1", Present: true}, {Str: "3", Present: true}},
		{{}, {}, {}},
		{{Num: math.Inf(1), Present: true}, {Str: "M", Present: true}, {Str: "9", Present: true}},
		{{Num: 41, Present: true}, {Str: "0", Present: true}, {Str: "1", Present: true}},
	}
	// Raw encoding (gbdt and ftrl): age as it is, NaN for missing (in every column of cp),
	// zeros for unknown categories.
	raw := [][]float64{
		{60, 1, 0, 0, 1, 0},
		{nan, nan, nan, nan, nan, nan},
		{nan, 0, 0, 0, 0, 0},
		{41, 0, 1, 0, 0, 0},
	}
	unknown := []int{0, 0, 2, 0}
	for _, alg := range []string{AlgorithmGBDT, AlgorithmFTRL} {
		m := train(t, tab, Spec{Target: "num > 0", Algorithm: alg, CVFolds: NoCV, Features: []string{"age", "sex", "cp"}}).Model
		if m.Width() != 6 {
			t.Fatalf("%s: width %d, want 6", alg, m.Width())
		}
		x := make([]float64, 6)
		for i, v := range values {
			u, err := m.Encode(v, x)
			if err != nil || u != unknown[i] {
				t.Errorf("%s row %d: unknown %d (%v), want %d", alg, i+1, u, err, unknown[i])
			}
			for k := range x {
				if math.Float64bits(x[k]) != math.Float64bits(raw[i][k]) && !(math.IsNaN(x[k]) && math.IsNaN(raw[i][k])) {
					t.Errorf("%s row %d: got %v, want %v", alg, i+1, x, raw[i])
					break
				}
			}
		}
		if got := m.noScale(); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
			t.Errorf("%s: unscaled %v, want the binary and one-hot values 1-5", alg, got)
		}
	}
	// logreg: the standardised design row, mode-imputed (sex 1, cp 4).
	m := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV, Features: []string{"age", "sex", "cp"}}).Model
	x := make([]float64, 6)
	if _, err := m.Encode(values[1], x); err != nil {
		t.Fatal(err)
	}
	in := m.inputs[0]
	if want := []float64{(in.median - in.mean) / in.scale, 1, 0, 0, 0, 1}; !slices.Equal(x, want) {
		t.Errorf("logreg, all missing: got %v, want %v", x, want)
	}
	if _, err := m.Encode(values[0][:2], x); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("too few values: got %v, want EINVALID", err)
	}
	if _, err := m.Encode(values[0], x[:5]); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("short x: got %v, want EINVALID", err)
	}
}

// TestPredictScratch checks that gbdt and ftrl predict alike with a scratch, with none and
// with one too short.
func TestPredictScratch(t *testing.T) {
	tab := cleveland(t)
	for _, alg := range algorithms {
		m := train(t, tab, Spec{Target: "num > 0", Algorithm: alg, CVFolds: NoCV}).Model
		values := rowValues(t, m, 3)
		p, _ := m.Predict(values, make([]float64, m.Width()))
		for _, scratch := range [][]float64{nil, make([]float64, 2), make([]float64, m.Width()+5)} {
			if q, _ := m.Predict(values, scratch); q != p || !(p > 0 && p < 1) {
				t.Errorf("%s: scratch of %d: got %v, want %v", alg, len(scratch), q, p)
			}
		}
		if q, _ := m.Predict(values[1:], nil); !math.IsNaN(q) {
			t.Errorf("%s: too few values: got %v, want NaN", alg, q)
		}
		if n := testing.AllocsPerRun(100, func() { m.Predict(values, nil) }); alg == AlgorithmLogReg && n != 0 {
			t.Errorf("%s: %v allocations without scratch, want 0", alg, n)
		}
		scratch := make([]float64, m.Width())
		if n := testing.AllocsPerRun(100, func() { m.Predict(values, scratch) }); n != 0 {
			t.Errorf("%s: Predict allocates %v times, want 0", alg, n)
		}
	}
}

// rowValues returns row r of Cleveland as the model's input values.
func rowValues(t testing.TB, m *Model, r int) []Value {
	tab := cleveland(t)
	values := make([]Value, len(m.Inputs()))
	for i, in := range m.Inputs() {
		v, err := tableValue(tab, tab.Schema.Index(in.Name), r, in.Kind)
		if err != nil {
			t.Fatal(err)
		}
		values[i] = v
	}
	return values
}

func TestLearner(t *testing.T) {
	tab := cleveland(t)
	for _, alg := range []string{AlgorithmLogReg, AlgorithmGBDT} {
		m := train(t, tab, Spec{Target: "num > 0", Algorithm: alg, CVFolds: NoCV}).Model
		if m.Learner() != nil {
			t.Errorf("%s: got a learner", alg)
		}
		if _, err := m.WithLearner(nil); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("%s: WithLearner: got %v, want EINVALID", alg, err)
		}
	}
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "ftrl", CVFolds: NoCV})
	m := res.Model
	l := m.Learner()
	if l == nil || l.Count() != int64(10*res.TrainingRows) {
		t.Fatalf("got learner %v, want one that learnt 10 passes of %d rows", l, res.TrainingRows)
	}
	values := rowValues(t, m, 0)
	before, _ := m.Predict(values, nil)
	// A stream keeps learning from raw values: Encode, then Update the copy.
	x := make([]float64, m.Width())
	if _, err := m.Encode(values, x); err != nil {
		t.Fatal(err)
	}
	if p := l.Predict(x); p != before {
		t.Errorf("the learner predicts %v, the model %v", p, before)
	}
	l.Update(x, 1)
	for range 50 {
		l.Update(x, 1)
	}
	if after, _ := m.Predict(values, nil); after != before {
		t.Errorf("updating the copy changed the model: %v then %v", before, after)
	}
	m2, err := m.WithLearner(l)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := m2.Predict(values, nil)
	if want := l.Predict(x); p2 != want || !(p2 > before) {
		t.Errorf("the new model predicts %v, its learner %v, the old model %v; want the learner's, higher", p2, want, before)
	}
	// The new model is a complete model: its artifact decodes.
	b, err := Encode(m2)
	if err != nil {
		t.Fatal(err)
	}
	m3, err := Decode(b, "")
	if err != nil {
		t.Fatal(err)
	}
	if p3, _ := m3.Predict(values, nil); p3 != p2 || m3.Learner().Count() != l.Count() {
		t.Errorf("decoded: predicts %v after %d examples, want %v after %d", p3, m3.Learner().Count(), p2, l.Count())
	}
	other := train(t, tab, Spec{Target: "num > 0", Algorithm: "ftrl", CVFolds: NoCV, Features: []string{"age"}}).Model
	if _, err := m.WithLearner(other.Learner()); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("a learner of another width: got %v, want EINVALID", err)
	}
}

func TestAlgorithmParams(t *testing.T) {
	tab := cleveland(t)
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "gbdt", CVFolds: NoCV, Params: map[string]any{
		"num_trees": 20, "max_leaves": json.Number("8"), "learning_rate": 0.2, "early_stopping": true,
		"validation_fraction": 0.2, "class_weight": "balanced", "max_depth": 3, "subsample": 0.8,
	}})
	p := res.Params
	if p["num_trees"] != 20 || p["max_leaves"] != 8 || p["learning_rate"] != 0.2 || p["early_stopping"] != true ||
		p["class_weight"] != "balanced" || p["max_depth"] != 3 || p["min_samples_leaf"] != 20 || p["threshold"] != 0.5 {
		t.Errorf("gbdt params: got %v", p)
	}
	d := res.Model.Describe()
	if n := d["trees"].(int); n < 1 || n > 20 {
		t.Errorf("gbdt: %d trees, want 1 to 20", n)
	}
	var share float64
	for _, f := range d["importance_by_input"].([]map[string]any) {
		share += f["share"].(float64)
	}
	if len(d["importance_by_input"].([]map[string]any)) != 13 || !near(share, 1, 1e-9) {
		t.Errorf("gbdt importance by input: %v (shares sum to %v)", d["importance_by_input"], share)
	}

	res = train(t, tab, Spec{Target: "num > 0", Algorithm: "ftrl", CVFolds: NoCV, Params: map[string]any{
		"passes": 3, "alpha": 0.5, "l1": 0, "scale": false, "class_weight": "balanced",
	}})
	want := map[string]any{"passes": 3, "alpha": 0.5, "beta": 1.0, "l1": 0.0, "l2": 1.0, "scale": false, "class_weight": "balanced", "threshold": 0.5}
	if !reflect.DeepEqual(res.Params, want) {
		t.Errorf("ftrl params: got %v, want %v", res.Params, want)
	}
	if d := res.Model.Describe(); d["examples"] != int64(3*res.TrainingRows) || d["nonzero_weights"].(int) != res.Model.Width() {
		t.Errorf("ftrl: %v examples, %v non-zero weights; want %d and all %d (no L1)", d["examples"], d["nonzero_weights"], 3*res.TrainingRows, res.Model.Width())
	}

	tests := []struct {
		alg    string
		params map[string]any
		field  string
		has    string
	}{
		{"gbdt", map[string]any{"seed": 1}, "params.seed", "unknown parameter of gbdt; want one of learning_rate, num_trees"},
		{"gbdt", map[string]any{"C": 1}, "params.C", "unknown parameter of gbdt"},
		{"gbdt", map[string]any{"num_trees": 2.5}, "params.num_trees", "got 2.5, want a whole number"},
		{"gbdt", map[string]any{"num_trees": 0}, "params.num_trees", "params.num_trees"},
		{"gbdt", map[string]any{"learning_rate": "fast"}, "params.learning_rate", `got "fast", want a number`},
		{"gbdt", map[string]any{"learning_rate": 2}, "params.learning_rate", "params.learning_rate"},
		{"gbdt", map[string]any{"early_stopping": "yes"}, "params.early_stopping", "true or false"},
		{"gbdt", map[string]any{"class_weight": "auto"}, "params.class_weight", `"none" or "balanced"`},
		{"ftrl", map[string]any{"passes": 0}, "params.passes", "from 1 to 1000"},
		{"ftrl", map[string]any{"alpha": -1}, "params.alpha", "positive"},
		{"ftrl", map[string]any{"no_scale": []int{1}}, "params.no_scale", "unknown parameter of ftrl"},
		{"ftrl", map[string]any{"penalty": "l1"}, "params.penalty", "unknown parameter of ftrl"},
		{"logreg", map[string]any{"num_trees": 5}, "params.num_trees", "unknown parameter of logreg"},
	}
	for _, tt := range tests {
		_, err := Train(context.Background(), tab, Spec{Target: "num > 0", Algorithm: tt.alg, Params: tt.params})
		checkError(t, err, pulse.EUNPROCESSABLE, tt.field, 0, tt.has)
	}
}

func TestAlgorithmsSearchAndThreshold(t *testing.T) {
	tab := cleveland(t)
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "gbdt", Seed: 1, Params: map[string]any{"target_sensitivity": 0.9},
		Search: &SearchSpec{Method: "grid", Grid: map[string][]any{"max_leaves": {4, 8}, "learning_rate": {0.05, 0.1}}}})
	s := res.Search
	if len(s.Candidates) != 4 || res.Params["max_leaves"] != s.Best["max_leaves"] || res.Params["learning_rate"] != s.Best["learning_rate"] {
		t.Errorf("gbdt grid: %+v, params %v", s, res.Params)
	}
	if res.Params["target_sensitivity"] != 0.9 || res.Model.Threshold() != res.Params["threshold"] || res.Metrics.CV.Sensitivity < 0.85 {
		t.Errorf("gbdt: threshold %v for target sensitivity 0.9, CV sensitivity %v", res.Model.Threshold(), res.Metrics.CV.Sensitivity)
	}
	res = train(t, tab, Spec{Target: "num > 0", Algorithm: "ftrl", Seed: 1, CVFolds: NoCV,
		Search: &SearchSpec{Method: "random", Trials: 4, Space: map[string]Distribution{
			"alpha": {LogUniform: []float64{0.01, 1}}, "passes": {Int: []float64{1, 5}}}}})
	for _, c := range res.Search.Candidates {
		if a := c.Params["alpha"].(float64); a < 0.01 || a > 1 || c.Params["passes"].(int) < 1 {
			t.Errorf("ftrl candidate %v outside the space", c.Params)
		}
	}
	_, err := Train(context.Background(), tab, Spec{Target: "num > 0", Algorithm: "gbdt",
		Search: &SearchSpec{Method: "grid", Grid: map[string][]any{"max_leaves": {8, 1}}}})
	checkError(t, err, pulse.EUNPROCESSABLE, "search.grid.max_leaves", 0, "search.grid.max_leaves")
}

func TestDecodeAlgorithmPayloadErrors(t *testing.T) {
	tab := cleveland(t)
	enc := func(alg string) []byte {
		b, err := Encode(train(t, tab, Spec{Target: "num > 0", Algorithm: alg, CVFolds: NoCV, Params: map[string]any{}}).Model)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gb, fb, lb := enc("gbdt"), enc("ftrl"), enc("logreg")
	obj := func(a map[string]any, k string) map[string]any { return a[k].(map[string]any) }
	tree := func(a map[string]any) map[string]any { return obj(a, "gbdt")["trees"].([]any)[0].(map[string]any) }
	var logArtifact map[string]any
	if err := json.Unmarshal(lb, &logArtifact); err != nil {
		t.Fatal(err)
	}
	logPayload := logArtifact["logreg"]
	tests := []struct {
		name string
		b    []byte
		has  string
	}{
		{"gbdt: no payload", edit(t, gb, func(a map[string]any) { delete(a, "gbdt") }), "the gbdt payload is missing"},
		{"gbdt: null payload", edit(t, gb, func(a map[string]any) { a["gbdt"] = nil }), "the gbdt payload is missing"},
		{"gbdt: two payloads", edit(t, gb, func(a map[string]any) { a["logreg"] = logPayload }), "2 algorithm payloads"},
		{"gbdt: no params", edit(t, gb, func(a map[string]any) { delete(a, "params") }), "the gbdt parameters are missing"},
		{"gbdt: bad param", edit(t, gb, func(a map[string]any) { obj(a, "params")["num_trees"] = -3 }), "params.num_trees"},
		{"gbdt: unknown param", edit(t, gb, func(a map[string]any) { obj(a, "params")["depth"] = 3 }), "params.depth"},
		{"gbdt: threshold in params", edit(t, gb, func(a map[string]any) { obj(a, "params")["threshold"] = 0.5 }), "params hold threshold"},
		{"gbdt: child out of range", edit(t, gb, func(a map[string]any) { tree(a)["left"].([]any)[0] = 9999 }), "model artifact"},
		{"gbdt: unknown field", edit(t, gb, func(a map[string]any) { obj(a, "gbdt")["extra"] = 1 }), "model artifact"},
		{"gbdt: leaf value NaN", bytes.Replace(gb, []byte(`"leaf_value":[`), []byte(`"leaf_value":["NaN",`), 1), "model artifact"},
		{"gbdt: feature count", edit(t, gb, func(a map[string]any) { a["inputs"] = a["inputs"].([]any)[1:] }), "gbdt takes 22 values, want 21"},
		{"gbdt: logreg preprocessing", edit(t, gb, func(a map[string]any) { a["inputs"].([]any)[0].(map[string]any)["mean"] = 1 }), "has no median, mean or scale"},
		{"gbdt: mode", edit(t, gb, func(a map[string]any) { a["inputs"].([]any)[1].(map[string]any)["mode"] = "1" }), "has no mode"},
		{"ftrl: no payload", edit(t, fb, func(a map[string]any) { delete(a, "ftrl") }), "the ftrl payload is missing"},
		{"ftrl: short z", edit(t, fb, func(a map[string]any) { obj(a, "ftrl")["z"] = obj(a, "ftrl")["z"].([]any)[1:] }), "model artifact"},
		{"ftrl: NaN count", edit(t, fb, func(a map[string]any) { obj(a, "ftrl")["count"] = -1 }), "model artifact"},
		{"ftrl: params differ", edit(t, fb, func(a map[string]any) { obj(a, "params")["alpha"] = 0.7 }), "parameters differ"},
		{"ftrl: scaling differs", edit(t, fb, func(a map[string]any) { obj(obj(a, "ftrl"), "params")["no_scale"] = []int{1} }), "unscaled"},
		{"ftrl: bad passes", edit(t, fb, func(a map[string]any) { obj(a, "params")["passes"] = 0 }), "params.passes"},
		{"logreg: params", edit(t, lb, func(a map[string]any) { a["params"] = map[string]any{"C": 1} }), "not params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.b, "")
			if err == nil {
				t.Fatalf("got a model of width %d, want an error", m.Width())
			}
			if pulse.ErrorCode(err) != pulse.EUNPROCESSABLE || !strings.Contains(err.Error(), tt.has) {
				t.Errorf("got %v (%s), want an EUNPROCESSABLE error containing %q", err, pulse.ErrorCode(err), tt.has)
			}
		})
	}
	// No prefix of an artifact decodes (every prefix of ftrl's, every 61st of gbdt's).
	for n := range len(fb) {
		if _, err := Decode(fb[:n], ""); err == nil {
			t.Fatalf("ftrl: the first %d of %d bytes decoded to a model", n, len(fb))
		}
	}
	for n := 0; n < len(gb); n += 61 {
		if _, err := Decode(gb[:n], ""); err == nil {
			t.Fatalf("gbdt: the first %d of %d bytes decoded to a model", n, len(gb))
		}
	}
}

func benchmarkPredict(b *testing.B, alg string) {
	tab := cleveland(b)
	m := train(b, tab, Spec{Target: "num > 0", Algorithm: alg, CVFolds: NoCV}).Model
	values := rowValues(b, m, 0)
	scratch := make([]float64, m.Width())
	b.ReportAllocs()
	var sum float64
	for b.Loop() {
		p, _ := m.Predict(values, scratch)
		sum += p
	}
	if math.IsNaN(sum) {
		b.Fatal("NaN")
	}
}

func BenchmarkPredictGBDT(b *testing.B) { benchmarkPredict(b, AlgorithmGBDT) }
func BenchmarkPredictFTRL(b *testing.B) { benchmarkPredict(b, AlgorithmFTRL) }

func BenchmarkTrainClevelandGBDT(b *testing.B) {
	tab := cleveland(b)
	spec := Spec{Target: "num > 0", Algorithm: AlgorithmGBDT}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Train(b.Context(), tab, spec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrainClevelandFTRL(b *testing.B) {
	tab := cleveland(b)
	spec := Spec{Target: "num > 0", Algorithm: AlgorithmFTRL}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Train(b.Context(), tab, spec); err != nil {
			b.Fatal(err)
		}
	}
}
