package ml

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Search settings.
const (
	SearchGrid          = "grid"
	SearchRandom        = "random"
	DefaultSearchFolds  = 5
	DefaultSearchTrials = 10
	DefaultSearchMetric = MetricROCAUC
	// MaxSearchCandidates bounds the parameter settings one search may try.
	MaxSearchCandidates = 200
)

// Metrics a search can optimise: ROC AUC and accuracy are maximised, log loss and Brier score
// minimised. Accuracy is at the threshold of Spec.Params (0.5 by default), even when a
// target_sensitivity is given.
const (
	MetricROCAUC   = "roc_auc"
	MetricLogLoss  = "log_loss"
	MetricBrier    = "brier"
	MetricAccuracy = "accuracy"
)

// SearchSpec describes a hyperparameter search: which settings to try and how to score them.
// Each setting is scored by stratified k-fold cross-validation inside the training split, on
// folds drawn from Spec.Seed (the same folds for every setting); the best mean score wins, the
// first among equals. The parameter names are the algorithm's (see Spec.Params); a searched
// parameter may not also be in Spec.Params, and the decision threshold (threshold,
// target_sensitivity) is not searchable, since it does not change the fit.
type SearchSpec struct {
	// Method is "grid" (every combination of Grid's values) or "random" (Trials settings
	// drawn from Space).
	Method string `json:"method"`
	// Grid maps each parameter to the values to try, such as {"C": [0.01, 0.1, 1]}.
	Grid map[string][]any `json:"grid,omitempty"`
	// Space maps each parameter to the distribution it is drawn from.
	Space map[string]Distribution `json:"space,omitempty"`
	// Trials is the number of random settings, 1 to MaxSearchCandidates; 0 means
	// DefaultSearchTrials.
	Trials int `json:"trials,omitempty"`
	// Folds is the number of folds, at least 2; 0 means DefaultSearchFolds.
	Folds int `json:"folds,omitempty"`
	// Metric is "roc_auc" (the default), "log_loss", "brier" or "accuracy".
	Metric string `json:"metric,omitempty"`
}

// Distribution is one parameter's distribution in a random search; exactly one field is set.
type Distribution struct {
	// LogUniform [low, high], 0 < low <= high: exp of a uniform draw between log(low) and
	// log(high), for scales such as C.
	LogUniform []float64 `json:"log_uniform,omitempty"`
	// Uniform [low, high]: a uniform draw between low and high.
	Uniform []float64 `json:"uniform,omitempty"`
	// Int [low, high]: a whole number from low to high, both included, equally likely.
	Int []float64 `json:"int,omitempty"`
	// Choice lists the values, equally likely.
	Choice []any `json:"choice,omitempty"`
}

// searchPlan is a validated search: its settings and every candidate's parameters.
type searchPlan struct {
	method, metric string
	folds          int
	candidates     []params
	// values hold each candidate's searched parameters, as recorded.
	values []map[string]any
}

func searchError(field, format string, args ...any) error {
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, field+": "+format, args...)
}

// planSearch validates s and builds the candidates: fixed overlaid with each setting, checked
// as Spec.Params are, so that a bad value is reported before anything is fitted.
func planSearch(s *SearchSpec, algorithm string, fixed map[string]any, seed uint64) (*searchPlan, error) {
	plan := &searchPlan{method: s.Method, metric: s.Metric, folds: s.Folds}
	switch plan.metric {
	case "":
		plan.metric = DefaultSearchMetric
	case MetricROCAUC, MetricLogLoss, MetricBrier, MetricAccuracy:
	default:
		return nil, searchError("search.metric", "got %q, want roc_auc, log_loss, brier or accuracy", s.Metric)
	}
	switch {
	case plan.folds == 0:
		plan.folds = DefaultSearchFolds
	case plan.folds < 2:
		return nil, searchError("search.folds", "got %d, want 2 or more, or 0 for the default %d", s.Folds, DefaultSearchFolds)
	}

	var settings []map[string]any
	var prefix string
	switch s.Method {
	case SearchGrid:
		prefix = "search.grid."
		if s.Space != nil || s.Trials != 0 {
			return nil, searchError("search.method", "grid takes grid, not space or trials (those are for random)")
		}
		if len(s.Grid) == 0 {
			return nil, searchError("search.grid", "empty; want each parameter to search with a list of values, such as {\"C\": [0.1, 1]}")
		}
		keys := slices.Sorted(maps.Keys(s.Grid))
		n := 1
		for _, k := range keys {
			if err := searchable(prefix+k, k, fixed); err != nil {
				return nil, err
			}
			if len(s.Grid[k]) == 0 {
				return nil, searchError(prefix+k, "no values; want a list of at least one")
			}
			n *= len(s.Grid[k])
			if n > MaxSearchCandidates {
				return nil, searchError("search.grid", "more than %d combinations; want at most %d", MaxSearchCandidates, MaxSearchCandidates)
			}
		}
		settings = gridSettings(s.Grid, keys)
	case SearchRandom:
		prefix = "search.space."
		if s.Grid != nil {
			return nil, searchError("search.method", "random takes space and trials, not grid (that is for grid)")
		}
		if len(s.Space) == 0 {
			return nil, searchError("search.space", `empty; want each parameter to search with a distribution, such as {"C": {"log_uniform": [0.001, 10]}}`)
		}
		trials := s.Trials
		switch {
		case trials == 0:
			trials = DefaultSearchTrials
		case trials < 1 || trials > MaxSearchCandidates:
			return nil, searchError("search.trials", "got %d, want 1 to %d, or 0 for the default %d", s.Trials, MaxSearchCandidates, DefaultSearchTrials)
		}
		keys := slices.Sorted(maps.Keys(s.Space))
		for _, k := range keys {
			if err := searchable(prefix+k, k, fixed); err != nil {
				return nil, err
			}
			if err := s.Space[k].check(prefix + k); err != nil {
				return nil, err
			}
		}
		rng := rand.New(rand.NewPCG(seed, sampleStream))
		settings = make([]map[string]any, trials)
		for i := range settings {
			settings[i] = make(map[string]any, len(keys))
			for _, k := range keys {
				settings[i][k] = s.Space[k].sample(rng)
			}
		}
	default:
		return nil, searchError("search.method", "got %q, want grid or random", s.Method)
	}

	for i, set := range settings {
		raw := maps.Clone(fixed)
		if raw == nil {
			raw = make(map[string]any, len(set))
		}
		maps.Copy(raw, set)
		p, err := parseParams(algorithm, raw)
		if err != nil {
			return nil, candidateError(err, prefix, set, i)
		}
		eff := p.effective()
		values := make(map[string]any, len(set))
		for k, v := range set {
			if e, ok := eff[k]; ok {
				v = e // as recorded: int for whole-number parameters
			}
			values[k] = v
		}
		plan.candidates = append(plan.candidates, p)
		plan.values = append(plan.values, values)
	}
	return plan, nil
}

// searchable checks that parameter k may be searched.
func searchable(field, k string, fixed map[string]any) error {
	if k == "threshold" || k == "target_sensitivity" {
		return searchError(field, "the decision threshold does not change the fit; set %s in params", k)
	}
	if _, ok := fixed[k]; ok {
		return searchError(field, "params.%s is set too; set it in one place", k)
	}
	return nil
}

// candidateError points an error of a candidate's parameters at the searched parameter it is
// about, or says which candidate it is.
func candidateError(err error, prefix string, set map[string]any, i int) error {
	var pe *pulse.Error
	if !errors.As(err, &pe) {
		return err
	}
	if k, ok := strings.CutPrefix(pe.Field, "params."); ok {
		if _, searched := set[k]; searched {
			return &pulse.Error{
				Code:    pe.Code,
				Field:   prefix + k,
				Message: strings.Replace(pe.Message, "params."+k, prefix+k, 1),
			}
		}
	}
	return &pulse.Error{
		Code:    pe.Code,
		Field:   pe.Field,
		Message: fmt.Sprintf("search candidate %d (%s): %s", i+1, show(set), pe.Message),
	}
}

// gridSettings returns every combination of the grid's values; the last key varies fastest,
// as in scikit-learn's ParameterGrid.
func gridSettings(grid map[string][]any, keys []string) []map[string]any {
	settings := []map[string]any{{}}
	for _, k := range keys {
		var next []map[string]any
		for _, s := range settings {
			for _, v := range grid[k] {
				c := maps.Clone(s)
				c[k] = v
				next = append(next, c)
			}
		}
		settings = next
	}
	return settings
}

// check validates the distribution.
func (d Distribution) check(field string) error {
	set := 0
	for _, n := range []int{len(d.LogUniform), len(d.Uniform), len(d.Int), len(d.Choice)} {
		if n > 0 {
			set++
		}
	}
	if set != 1 {
		return searchError(field, "want exactly one of log_uniform, uniform or int ([low, high]) or choice (a list)")
	}
	bounds := func(name string, b []float64, ok func(lo, hi float64) bool, want string) error {
		if len(b) != 2 || !finite(b[0]) || !finite(b[1]) || !(b[0] <= b[1]) || !ok(b[0], b[1]) {
			return searchError(field, "%s: got %v, want [low, high] with %s", name, b, want)
		}
		return nil
	}
	switch {
	case len(d.LogUniform) > 0:
		return bounds("log_uniform", d.LogUniform, func(lo, _ float64) bool { return lo > 0 }, "0 < low <= high")
	case len(d.Uniform) > 0:
		return bounds("uniform", d.Uniform, func(_, _ float64) bool { return true }, "low <= high")
	case len(d.Int) > 0:
		return bounds("int", d.Int, func(lo, hi float64) bool {
			return lo == math.Trunc(lo) && hi == math.Trunc(hi) && math.Abs(lo) < 1<<53 && math.Abs(hi) < 1<<53
		}, "whole numbers low <= high")
	}
	return nil
}

// sample draws one value.
func (d Distribution) sample(rng *rand.Rand) any {
	switch {
	case len(d.LogUniform) > 0:
		lo, hi := math.Log(d.LogUniform[0]), math.Log(d.LogUniform[1])
		return math.Exp(lo + (hi-lo)*rng.Float64())
	case len(d.Uniform) > 0:
		lo, hi := d.Uniform[0], d.Uniform[1]
		return lo + (hi-lo)*rng.Float64()
	case len(d.Int) > 0:
		lo, hi := int64(d.Int[0]), int64(d.Int[1])
		return int(lo + rng.Int64N(hi-lo+1))
	default:
		return d.Choice[rng.IntN(len(d.Choice))]
	}
}

// search scores every candidate of plan by cross-validation inside rows and returns the best
// candidate's parameters and the record of the search.
func (j *job) search(ctx context.Context, rows []int, plan *searchPlan) (params, *pulse.Search, error) {
	rng := rand.New(rand.NewPCG(j.seed, searchFoldStream))
	fold, err := stratifiedFolds(j.y, rows, plan.folds, rng, "search.folds")
	if err != nil {
		return params{}, nil, err
	}
	record := &pulse.Search{
		Method:     plan.method,
		Metric:     plan.metric,
		Folds:      plan.folds,
		Candidates: make([]pulse.SearchCandidate, len(plan.candidates)),
	}
	best := -1
	scores := make([]float64, plan.folds)
	for i, p := range plan.candidates {
		oof, err := j.crossValidate(ctx, rows, fold, plan.folds, p)
		if err != nil {
			return params{}, nil, fmt.Errorf("search candidate %d: %w", i+1, err)
		}
		for f, m := range foldMetrics(j.y, rows, fold, plan.folds, oof, p.threshold) {
			scores[f] = metricValue(m, plan.metric)
		}
		mean, sd := meanSD(scores)
		record.Candidates[i] = pulse.SearchCandidate{Params: plan.values[i], Mean: mean, SD: sd}
		if best < 0 || better(plan.metric, mean, record.Candidates[best].Mean) {
			best = i
		}
	}
	record.Best = plan.values[best]
	return plan.candidates[best], record, nil
}

// metricValue returns the named metric of m.
func metricValue(m pulse.EvalMetrics, metric string) float64 {
	switch metric {
	case MetricLogLoss:
		return m.LogLoss
	case MetricBrier:
		return m.Brier
	case MetricAccuracy:
		return m.Accuracy
	default:
		return m.ROCAUC
	}
}

// better reports whether score a beats score b on the metric (strictly: ties keep b).
func better(metric string, a, b float64) bool {
	if metric == MetricLogLoss || metric == MetricBrier {
		return a < b
	}
	return a > b
}

// meanSD returns the mean and the sample standard deviation (ddof 1; 0 for one value).
func meanSD(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}
