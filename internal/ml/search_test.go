package ml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func TestSearchGrid(t *testing.T) {
	tab := cleveland(t)
	spec := Spec{
		Target: "num > 0", Algorithm: "logreg", Seed: 11,
		Params: map[string]any{"class_weight": "balanced"},
		Search: &SearchSpec{Method: "grid", Grid: map[string][]any{"C": {0.0001, 0.01, 1.0}, "penalty": {"l1", "l2"}}},
	}
	res := train(t, tab, spec)
	s := res.Search
	if s == nil || s.Method != "grid" || s.Metric != "roc_auc" || s.Folds != 5 || len(s.Candidates) != 6 {
		t.Fatalf("search: got %+v, want grid, roc_auc, 5 folds, 6 candidates", s)
	}
	// Keys sorted, the last varying fastest.
	wantOrder := []map[string]any{
		{"C": 0.0001, "penalty": "l1"}, {"C": 0.0001, "penalty": "l2"},
		{"C": 0.01, "penalty": "l1"}, {"C": 0.01, "penalty": "l2"},
		{"C": 1.0, "penalty": "l1"}, {"C": 1.0, "penalty": "l2"},
	}
	best := 0
	for i, c := range s.Candidates {
		if !reflect.DeepEqual(c.Params, wantOrder[i]) {
			t.Errorf("candidate %d: got %v, want %v", i+1, c.Params, wantOrder[i])
		}
		if !(c.Mean > 0 && c.Mean <= 1) || !(c.SD >= 0) || math.IsNaN(c.SD) {
			t.Errorf("candidate %d: mean %v sd %v", i+1, c.Mean, c.SD)
		}
		if c.Mean > s.Candidates[best].Mean {
			best = i
		}
	}
	// C = 0.0001 with l1 zeroes every coefficient: every score is tied and the AUC is 0.5.
	if s.Candidates[0].Mean != 0.5 {
		t.Errorf("C=0.0001, l1: got AUC %v, want 0.5 (an empty model)", s.Candidates[0].Mean)
	}
	if !reflect.DeepEqual(s.Best, s.Candidates[best].Params) {
		t.Errorf("best: got %v, want %v", s.Best, s.Candidates[best].Params)
	}
	if res.Params["C"] != s.Best["C"] || res.Params["penalty"] != s.Best["penalty"] || res.Params["class_weight"] != "balanced" {
		t.Errorf("effective params %v do not hold the best %v and the fixed class_weight", res.Params, s.Best)
	}

	// The candidate's score is the mean over the search's folds, recomputed here.
	j := &job{t: tab, features: nil, y: nil, target: "num > 0", seed: 11}
	tg, _ := parseTarget("num > 0", tab.Schema)
	j.y, _ = tg.labels(tab)
	j.features, _ = featureColumns(tab.Schema, nil, tg.col)
	train0, _, _ := stratifiedSplit(j.y, DefaultHoldout, rand.New(rand.NewPCG(11, pcgStream)))
	fold, _ := stratifiedFolds(j.y, train0, 5, rand.New(rand.NewPCG(11, searchFoldStream)), "search.folds")
	p, _ := parseParams("logreg", map[string]any{"class_weight": "balanced", "C": 0.01, "penalty": "l2"})
	oof, err := j.crossValidate(context.Background(), train0, fold, 5, p)
	if err != nil {
		t.Fatal(err)
	}
	var aucs []float64
	for _, m := range foldMetrics(j.y, train0, fold, 5, oof, 0.5) {
		aucs = append(aucs, m.ROCAUC)
	}
	mean, sd := meanSD(aucs)
	if c := s.Candidates[3]; c.Mean != mean || c.SD != sd {
		t.Errorf("C=0.01, l2: got mean %v sd %v, recomputed %v and %v", c.Mean, c.SD, mean, sd)
	}

	// The final model and its CV are those of the best params given directly.
	plain := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", Seed: 11, Params: res.Params})
	a, _ := Encode(res.Model)
	b, _ := Encode(plain.Model)
	if !bytes.Equal(a, b) || !reflect.DeepEqual(res.Metrics, plain.Metrics) {
		t.Error("the searched model differs from the one trained with the best params")
	}
	if _, err := json.Marshal(res.Search); err != nil {
		t.Errorf("the search record is not JSON: %v", err)
	}

	// Same spec, same search, bit for bit.
	again := train(t, tab, spec)
	if !reflect.DeepEqual(again.Search, res.Search) {
		t.Error("two searches with the same seed differ")
	}
}

func TestSearchTiesAndMetrics(t *testing.T) {
	tab := cleveland(t)
	// max_iter 100 and 200 converge to the same model: tied, the first wins.
	res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV,
		Search: &SearchSpec{Method: "grid", Grid: map[string][]any{"max_iter": {100, 200}}}})
	c := res.Search.Candidates
	if c[0].Mean != c[1].Mean || res.Search.Best["max_iter"] != 100 || res.Params["max_iter"] != 100 {
		t.Errorf("tie: got %+v, best %v, want equal means and the first", c, res.Search.Best)
	}
	// Log loss and Brier are minimised; accuracy and AUC maximised.
	for _, metric := range []string{"log_loss", "brier", "accuracy", "roc_auc"} {
		res := train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV, Seed: 5,
			Search: &SearchSpec{Method: "grid", Metric: metric, Folds: 4, Grid: map[string][]any{"C": {0.001, 0.03, 1, 100}}}})
		s := res.Search
		if s.Metric != metric || s.Folds != 4 {
			t.Errorf("%s: got metric %q folds %d", metric, s.Metric, s.Folds)
		}
		for _, c := range s.Candidates {
			if better(metric, c.Mean, meanOf(s, s.Best)) {
				t.Errorf("%s: candidate %v (%v) beats the best %v (%v)", metric, c.Params, c.Mean, s.Best, meanOf(s, s.Best))
			}
		}
		// C = 0.001 shrinks every probability towards the base rate: the worst log loss.
		if metric == "log_loss" && s.Best["C"] == 0.001 {
			t.Errorf("log_loss: C=0.001 won with %v", s.Candidates[0].Mean)
		}
	}
}

func meanOf(s *pulse.Search, params map[string]any) float64 {
	for _, c := range s.Candidates {
		if reflect.DeepEqual(c.Params, params) {
			return c.Mean
		}
	}
	return math.NaN()
}

func TestSearchRandom(t *testing.T) {
	tab := cleveland(t)
	// A search as the registry receives it, in JSON.
	var search SearchSpec
	err := json.Unmarshal([]byte(`{"method": "random", "trials": 7, "metric": "log_loss",
		"space": {"C": {"log_uniform": [0.01, 10]}, "penalty": {"choice": ["l1", "l2"]}, "max_iter": {"int": [50, 60]}}}`), &search)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Target: "num > 0", Algorithm: "logreg", Seed: 2, Search: &search}
	res := train(t, tab, spec)
	s := res.Search
	if s.Method != "random" || len(s.Candidates) != 7 {
		t.Fatalf("got %s with %d candidates, want random with 7", s.Method, len(s.Candidates))
	}
	penalties := map[any]int{}
	for i, c := range s.Candidates {
		C, _ := c.Params["C"].(float64)
		n, isInt := c.Params["max_iter"].(int)
		if !(C >= 0.01 && C <= 10) || !isInt || n < 50 || n > 60 || (c.Params["penalty"] != "l1" && c.Params["penalty"] != "l2") {
			t.Errorf("candidate %d: %v is outside the space", i+1, c.Params)
		}
		penalties[c.Params["penalty"]]++
	}
	if len(penalties) != 2 {
		t.Errorf("7 draws from {l1, l2} gave only %v", penalties)
	}
	again := train(t, tab, spec)
	if !reflect.DeepEqual(again.Search, s) {
		t.Error("two random searches with the same seed differ")
	}
	spec.Seed = 3
	other := train(t, tab, spec)
	if reflect.DeepEqual(other.Search.Candidates[0].Params, s.Candidates[0].Params) {
		t.Error("seeds 2 and 3 drew the same first candidate")
	}
	// Elastic net with its l1_ratio searched (the penalty fixed).
	res = train(t, tab, Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: NoCV, Params: map[string]any{"penalty": "elasticnet"},
		Search: &SearchSpec{Method: "random", Trials: 3, Space: map[string]Distribution{"l1_ratio": {Uniform: []float64{0, 1}}}}})
	if r, ok := res.Params["l1_ratio"].(float64); !ok || r != res.Search.Best["l1_ratio"] {
		t.Errorf("elasticnet: params %v, best %v", res.Params, res.Search.Best)
	}
}

func TestSearchErrors(t *testing.T) {
	tab := cleveland(t)
	grid := func(g map[string][]any) *SearchSpec { return &SearchSpec{Method: "grid", Grid: g} }
	space := func(s map[string]Distribution) *SearchSpec { return &SearchSpec{Method: "random", Space: s} }
	many := make([]any, 15)
	for i := range many {
		many[i] = float64(i + 1)
	}
	tests := []struct {
		name   string
		search *SearchSpec
		params map[string]any
		field  string
		has    string
	}{
		{"unknown method", &SearchSpec{Method: "bayes"}, nil, "search.method", `got "bayes", want grid or random`},
		{"unknown metric", &SearchSpec{Method: "grid", Metric: "f2", Grid: map[string][]any{"C": {1}}}, nil, "search.metric", `got "f2"`},
		{"one fold", &SearchSpec{Method: "grid", Folds: 1, Grid: map[string][]any{"C": {1}}}, nil, "search.folds", "got 1"},
		{"empty grid", grid(nil), nil, "search.grid", "empty"},
		{"no values", grid(map[string][]any{"C": {}}), nil, "search.grid.C", "no values"},
		{"too many", grid(map[string][]any{"C": many, "tol": many}), nil, "search.grid", "more than 200"},
		{"bad value", grid(map[string][]any{"C": {1, -1}}), nil, "search.grid.C", "search.grid.C: got -1, want a positive number"},
		{"unknown parameter", grid(map[string][]any{"gamma": {1}}), nil, "search.grid.gamma", "unknown parameter of logreg"},
		{"threshold", grid(map[string][]any{"threshold": {0.3}}), nil, "search.grid.threshold", "does not change the fit"},
		{"set twice", grid(map[string][]any{"C": {1}}), map[string]any{"C": 2}, "search.grid.C", "params.C is set too"},
		{"grid with trials", &SearchSpec{Method: "grid", Trials: 3, Grid: map[string][]any{"C": {1}}}, nil, "search.method", "not space or trials"},
		{"random with grid", &SearchSpec{Method: "random", Grid: map[string][]any{"C": {1}}}, nil, "search.method", "not grid"},
		{"empty space", space(nil), nil, "search.space", "empty"},
		{"too many trials", &SearchSpec{Method: "random", Trials: 201, Space: map[string]Distribution{"C": {Uniform: []float64{1, 2}}}}, nil, "search.trials", "got 201"},
		{"two distributions", space(map[string]Distribution{"C": {Uniform: []float64{1, 2}, LogUniform: []float64{1, 2}}}), nil, "search.space.C", "exactly one"},
		{"no distribution", space(map[string]Distribution{"C": {}}), nil, "search.space.C", "exactly one"},
		{"log of zero", space(map[string]Distribution{"C": {LogUniform: []float64{0, 1}}}), nil, "search.space.C", "0 < low"},
		{"reversed bounds", space(map[string]Distribution{"C": {Uniform: []float64{2, 1}}}), nil, "search.space.C", "low <= high"},
		{"three bounds", space(map[string]Distribution{"C": {Uniform: []float64{1, 2, 3}}}), nil, "search.space.C", "[low, high]"},
		{"fractional int", space(map[string]Distribution{"max_iter": {Int: []float64{1.5, 9}}}), nil, "search.space.max_iter", "whole numbers"},
		{"out of range draw", space(map[string]Distribution{"max_iter": {Int: []float64{0, 5}}}), nil, "search.space.max_iter", "whole number from 1"},
		{"bad choice", space(map[string]Distribution{"penalty": {Choice: []any{"l1", "l4"}}}), nil, "search.space.penalty", `got "l4"`},
		{"candidate invalid as a whole", grid(map[string][]any{"C": {1}}), map[string]any{"penalty": "elasticnet"}, "params.l1_ratio", `search candidate 1 ({"C":1})`},
		{"too few rows for the folds", &SearchSpec{Method: "grid", Folds: 120, Grid: map[string][]any{"C": {1}}}, nil, "search.folds", "class 1 has only 111 training rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Train(context.Background(), tab, Spec{Target: "num > 0", Algorithm: "logreg", Params: tt.params, Search: tt.search})
			checkError(t, err, pulse.EUNPROCESSABLE, tt.field, 0, tt.has)
		})
	}
	_, err := Train(context.Background(), tab, Spec{Target: "num > 0", Algorithm: "svm", Search: grid(map[string][]any{"C": {1}})})
	checkError(t, err, pulse.EUNPROCESSABLE, "algorithm", 0, `got "svm"`)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Train(ctx, tab, Spec{Target: "num > 0", Algorithm: "logreg", Search: grid(map[string][]any{"C": {1, 2}})})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v, want context.Canceled", err)
	}
}
