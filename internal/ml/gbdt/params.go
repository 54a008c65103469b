// Package gbdt is a histogram-based gradient-boosted decision tree learner for binary
// log-loss, in the style of LightGBM and scikit-learn's HistGradientBoostingClassifier.
//
// It knows nothing of datasets: Fit takes a dense row-major float64 matrix in which NaN means
// missing, and returns an Ensemble that scores one row at a time without allocating. Trees
// grow leaf-wise (best first) on binned features, missing values are handled natively (each
// split learns a default direction), and training is bit-for-bit reproducible for a given
// Seed on every run and platform: sums are always taken in row order, random draws come from
// a PCG stream, and the exponential and logarithm are implemented here so that neither an
// assembly routine nor a fused multiply-add can change a result.
package gbdt

import (
	"fmt"
	"math"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Limits of Params.
const (
	MaxNumTrees  = 100000 // largest Params.NumTrees
	MaxMaxLeaves = 65536  // largest Params.MaxLeaves
	MaxMaxBins   = 255    // largest Params.MaxBins; one more bin is reserved for missing values
)

// Params are the hyper-parameters of Fit. Start from DefaultParams: the zero value is not
// valid. The JSON names are the ones Validate reports in pulse.Error.Field ("params.<name>").
type Params struct {
	// LearningRate shrinks every leaf value, in (0, 1]; default 0.1.
	LearningRate float64 `json:"learning_rate"`
	// NumTrees is the maximum number of boosting iterations (one tree each), from 1 to
	// MaxNumTrees; default 100.
	NumTrees int `json:"num_trees"`
	// MaxLeaves bounds the leaves of a tree, from 2 to MaxMaxLeaves; default 31. Trees grow
	// best-first: the leaf whose split gains most is split next.
	MaxLeaves int `json:"max_leaves"`
	// MaxDepth bounds the depth of a tree (the root has depth 0); 0 means unlimited.
	MaxDepth int `json:"max_depth"`
	// MinSamplesLeaf is the least number of training rows in a leaf, at least 1; default 20.
	MinSamplesLeaf int `json:"min_samples_leaf"`
	// MinHessianLeaf is the least sum of hessians (weighted p(1-p)) in a leaf, at least 0;
	// default 1e-3.
	MinHessianLeaf float64 `json:"min_hessian_leaf"`
	// L2 is the L2 regularisation of leaf values (lambda), at least 0; default 0.
	L2 float64 `json:"l2"`
	// MaxBins is the number of bins of non-missing values per feature, from 2 to MaxMaxBins;
	// default 255.
	MaxBins int `json:"max_bins"`
	// Subsample is the fraction of training rows drawn (without replacement) for each tree, in
	// (0, 1]; default 1.
	Subsample float64 `json:"subsample"`
	// FeatureFraction is the fraction of features drawn for each tree, in (0, 1]; default 1.
	FeatureFraction float64 `json:"feature_fraction"`
	// EarlyStopping holds out a stratified ValidationFraction of the rows, stops after
	// Patience iterations without an improvement of the validation log-loss by more than Tol,
	// and keeps the trees of the best iteration.
	EarlyStopping bool `json:"early_stopping"`
	// ValidationFraction is the held-out fraction with EarlyStopping, in (0, 1); default 0.1.
	ValidationFraction float64 `json:"validation_fraction"`
	// Patience is the number of iterations without improvement before stopping, at least 1;
	// default 10.
	Patience int `json:"patience"`
	// Tol is the least decrease of the validation log-loss that counts as an improvement, at
	// least 0; default 1e-7.
	Tol float64 `json:"tol"`
	// Seed drives the validation split, Subsample and FeatureFraction. Every value, 0
	// included, is a valid seed.
	Seed uint64 `json:"seed"`
}

// DefaultParams returns the defaults, which match scikit-learn's
// HistGradientBoostingClassifier (without its automatic early stopping).
func DefaultParams() Params {
	return Params{
		LearningRate:       0.1,
		NumTrees:           100,
		MaxLeaves:          31,
		MaxDepth:           0,
		MinSamplesLeaf:     20,
		MinHessianLeaf:     1e-3,
		L2:                 0,
		MaxBins:            255,
		Subsample:          1,
		FeatureFraction:    1,
		EarlyStopping:      false,
		ValidationFraction: 0.1,
		Patience:           10,
		Tol:                1e-7,
	}
}

// Validate returns nil if every parameter is in range, and otherwise a *pulse.Error with code
// pulse.EUNPROCESSABLE whose Field is "params.<json name>" of the first bad parameter (in
// declaration order) and whose message says what is allowed.
func (p Params) Validate() error {
	bad := func(name string, got any, want string) error {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params."+name, "params.%s: got %v, want %s", name, got, want)
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case !(p.LearningRate > 0 && p.LearningRate <= 1):
		return bad("learning_rate", p.LearningRate, "a number in (0, 1]")
	case p.NumTrees < 1 || p.NumTrees > MaxNumTrees:
		return bad("num_trees", p.NumTrees, fmt.Sprintf("a whole number from 1 to %d", MaxNumTrees))
	case p.MaxLeaves < 2 || p.MaxLeaves > MaxMaxLeaves:
		return bad("max_leaves", p.MaxLeaves, fmt.Sprintf("a whole number from 2 to %d", MaxMaxLeaves))
	case p.MaxDepth < 0:
		return bad("max_depth", p.MaxDepth, "0 (unlimited) or a positive whole number")
	case p.MinSamplesLeaf < 1:
		return bad("min_samples_leaf", p.MinSamplesLeaf, "a whole number of at least 1")
	case !(p.MinHessianLeaf >= 0) || !finite(p.MinHessianLeaf):
		return bad("min_hessian_leaf", p.MinHessianLeaf, "a finite number of at least 0")
	case !(p.L2 >= 0) || !finite(p.L2):
		return bad("l2", p.L2, "a finite number of at least 0")
	case p.MaxBins < 2 || p.MaxBins > MaxMaxBins:
		return bad("max_bins", p.MaxBins, fmt.Sprintf("a whole number from 2 to %d", MaxMaxBins))
	case !(p.Subsample > 0 && p.Subsample <= 1):
		return bad("subsample", p.Subsample, "a number in (0, 1]")
	case !(p.FeatureFraction > 0 && p.FeatureFraction <= 1):
		return bad("feature_fraction", p.FeatureFraction, "a number in (0, 1]")
	case !(p.ValidationFraction > 0 && p.ValidationFraction < 1):
		return bad("validation_fraction", p.ValidationFraction, "a number in (0, 1)")
	case p.Patience < 1:
		return bad("patience", p.Patience, "a whole number of at least 1")
	case !(p.Tol >= 0) || !finite(p.Tol):
		return bad("tol", p.Tol, "a finite number of at least 0")
	}
	return nil
}
