package gbdt

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// trainer holds the binned training rows and the buffers of one Fit.
type trainer struct {
	p         Params
	n         int         // training rows
	codes     []uint8     // bin codes, feature-major: codes[f*n+i]; nbins[f] is "missing"
	thr       [][]float64 // bin thresholds per feature
	nbins     []int       // bins of non-missing values per feature
	off       []int       // offset of each feature's bins in a histogram
	totalBins int
	y, w      []float64
	raw       []float64  // current log-odds of each training row
	gh        []gradHess // gradients and hessians
	ordered   []gradHess // gh gathered in a node's row order
	rows      []int32    // row indices, partitioned by node
	scratch   []int32
	active    []int // features of the current tree, ascending
	nodes     []gnode
	heap      []int
	idx       []int32
	pool      [][]hbin
	workers   int
}

// Fit trains an ensemble on X (n rows × d columns, row-major; NaN = missing), labels y (each
// 0 or 1) and optional per-row weights w (nil = all 1). It is deterministic: for the same
// inputs and Params (Seed included) it returns the same bits on every run and platform,
// whatever the number of CPUs.
//
// Bad parameters and bad data (a label other than 0 or 1, an infinite value, a negative
// weight, only one label) give a *pulse.Error with code pulse.EUNPROCESSABLE; inconsistent
// lengths give pulse.EINVALID. If ctx is cancelled, Fit stops between trees and returns an
// error wrapping ctx.Err().
func Fit(ctx context.Context, X []float64, n, d int, y, w []float64, p Params) (*Ensemble, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := checkInput(X, n, d, y, w); err != nil {
		return nil, err
	}
	if w == nil {
		w = make([]float64, n)
		for i := range w {
			w[i] = 1
		}
	}
	rng := newRNG(p.Seed)
	var train, valid []int
	if p.EarlyStopping {
		var err error
		if train, valid, err = stratifiedSplit(y, p.ValidationFraction, rng); err != nil {
			return nil, err
		}
	} else {
		train = make([]int, n)
		for i := range train {
			train[i] = i
		}
	}

	var sumPos, sumNeg float64
	for _, r := range train {
		if y[r] == 1 {
			sumPos += w[r]
		} else {
			sumNeg += w[r]
		}
	}
	if !(sumPos > 0) || !(sumNeg > 0) {
		label := 1
		if sumPos > 0 {
			label = 0
		}
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "y",
			"y: no training row of label %d has a positive weight; want both labels 0 and 1", label)
	}
	base := log(sumPos / sumNeg)

	t := newTrainer(X, d, y, w, train, p)
	for i := range t.raw {
		t.raw[i] = base
	}
	var valRaw, valLoss []float64
	bestLoss := 0.0
	if p.EarlyStopping {
		valRaw = make([]float64, len(valid))
		for i := range valRaw {
			valRaw[i] = base
		}
		valLoss = make([]float64, 0, p.NumTrees)
		bestLoss = meanLogLoss(valRaw, valid, y, w)
	}

	sample := make([]int32, t.n)
	for i := range sample {
		sample[i] = int32(i)
	}
	nSample := min(t.n, max(1, int(math.Round(p.Subsample*float64(t.n)))))
	rowPerm := slices.Clone(sample)
	nFeat := min(d, max(1, int(math.Round(p.FeatureFraction*float64(d)))))
	featPerm := make([]int, d)
	for i := range featPerm {
		featPerm[i] = i
	}

	trees := make([]*tree, 0, p.NumTrees)
	best, since := 0, 0
	flat := 0 // nodes of the scoring layout, which indexes them with 31 bits
	for it := 0; it < p.NumTrees; it++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("gbdt: fit: %w", err)
		}
		t.gradients()
		if nSample < t.n {
			choose(rng, rowPerm, nSample)
			sample = append(sample[:0], rowPerm[:nSample]...)
			slices.Sort(sample)
		}
		t.active = t.active[:0]
		if nFeat < d {
			choose(rng, featPerm, nFeat)
			t.active = append(t.active, featPerm[:nFeat]...)
			slices.Sort(t.active)
		} else {
			t.active = append(t.active, featPerm...)
		}

		tr := t.grow(sample)
		if flat += 2*len(tr.feature) + 1; flat >= nanLeft {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params.num_trees",
				"params.num_trees: the trees have over 2^31 nodes after %d iterations; want fewer trees or leaves", it+1)
		}
		trees = append(trees, tr)
		if nSample < t.n {
			for r := range t.raw {
				t.raw[r] += t.nodes[t.leafOf(r)].value
			}
		} else {
			for _, nd := range t.nodes {
				if nd.left < 0 {
					for _, r := range t.rows[nd.start:nd.end] {
						t.raw[r] += nd.value
					}
				}
			}
		}

		if !p.EarlyStopping {
			continue
		}
		for i, r := range valid {
			valRaw[i] += tr.leafValue(X[r*d : (r+1)*d])
		}
		loss := meanLogLoss(valRaw, valid, y, w)
		valLoss = append(valLoss, loss)
		if loss < bestLoss-p.Tol {
			bestLoss, best, since = loss, it+1, 0
		} else if since++; since >= p.Patience {
			break
		}
	}
	if !p.EarlyStopping {
		best = len(trees)
	}
	return assemble(d, base, trees[:best], valLoss), nil
}

// gradients sets the gradient and hessian of the log-loss of every training row.
func (t *trainer) gradients() {
	parallel(t.workers, (t.n+chunkRows-1)/chunkRows, func(_, c int) {
		lo, hi := c*chunkRows, min(t.n, (c+1)*chunkRows)
		for i, z := range t.raw[lo:hi] {
			q := sigmoid(z)
			i += lo
			t.gh[i] = gradHess{t.w[i] * (q - t.y[i]), t.w[i] * (q * (1 - q))}
		}
	})
}

// checkInput checks the shapes and values of Fit's data.
func checkInput(X []float64, n, d int, y, w []float64) error {
	switch {
	case n < 1 || n > math.MaxInt32:
		return pulse.FieldErrorf(pulse.EINVALID, "n", "n: got %d rows, want from 1 to %d", n, math.MaxInt32)
	case d < 1 || d > math.MaxInt32:
		return pulse.FieldErrorf(pulse.EINVALID, "d", "d: got %d columns, want from 1 to %d", d, math.MaxInt32)
	case len(X)/d != n || len(X)%d != 0:
		return pulse.FieldErrorf(pulse.EINVALID, "X", "X: got %d values, want n×d = %d×%d", len(X), n, d)
	case len(y) != n:
		return pulse.FieldErrorf(pulse.EINVALID, "y", "y: got %d labels, want n = %d", len(y), n)
	case w != nil && len(w) != n:
		return pulse.FieldErrorf(pulse.EINVALID, "w", "w: got %d weights, want n = %d", len(w), n)
	}
	for i, v := range X {
		if math.IsInf(v, 0) {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "X",
				"X[%d][%d]: got %v, want a finite number or NaN for missing", i/d, i%d, v)
		}
	}
	for i, v := range y {
		if v != 0 && v != 1 {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "y", "y[%d]: got %v, want 0 or 1", i, v)
		}
	}
	for i, v := range w {
		if !(v >= 0) || math.IsInf(v, 1) {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "w", "w[%d]: got %v, want a finite number of at least 0", i, v)
		}
	}
	return nil
}

// newTrainer bins the training rows of X.
func newTrainer(X []float64, d int, y, w []float64, train []int, p Params) *trainer {
	n := len(train)
	t := &trainer{
		p:       p,
		n:       n,
		codes:   make([]uint8, n*d),
		thr:     make([][]float64, d),
		nbins:   make([]int, d),
		off:     make([]int, d),
		y:       make([]float64, n),
		w:       make([]float64, n),
		raw:     make([]float64, n),
		gh:      make([]gradHess, n),
		ordered: make([]gradHess, n),
		rows:    make([]int32, n),
		scratch: make([]int32, n),
		active:  make([]int, 0, d),
		workers: runtime.GOMAXPROCS(0),
	}
	for i, r := range train {
		t.y[i], t.w[i] = y[r], w[r]
	}
	workers := t.workers
	if n*d < parallelWork {
		workers = 1 // not worth a goroutine
	}
	vals := make([][]float64, workers)
	bufs := make([][]uint64, workers)
	parallel(workers, d, func(wk, f int) {
		if vals[wk] == nil {
			vals[wk] = make([]float64, 0, n)
			bufs[wk] = make([]uint64, 2*n)
		}
		v := vals[wk][:0]
		for _, r := range train {
			if x := X[r*d+f]; x == x && w[r] != 0 {
				v = append(v, x)
			}
		}
		vals[wk] = v
		t.thr[f] = binThresholds(v, bufs[wk], p.MaxBins)
		t.nbins[f] = len(t.thr[f]) + 1
		col := t.codes[f*n : (f+1)*n]
		for i, r := range train {
			x := X[r*d+f]
			if x != x {
				col[i] = uint8(t.nbins[f])
			} else {
				col[i] = uint8(binOf(t.thr[f], x))
			}
		}
	})
	for f := range d {
		t.off[f] = t.totalBins
		t.totalBins += t.nbins[f] + 1
	}
	return t
}

// meanLogLoss returns the weighted mean log-loss of rows (indices into y and w) with raw
// scores raw.
func meanLogLoss(raw []float64, rows []int, y, w []float64) float64 {
	var sum, wsum float64
	for i, r := range rows {
		z := raw[i]
		if y[r] == 1 {
			z = -z
		}
		sum += float64(w[r] * softplus(z))
		wsum += w[r]
	}
	if !(wsum > 0) {
		return 0
	}
	return sum / wsum
}

// stratifiedSplit holds out round(frac×count) rows of each label (at least 1, and at least 1
// left for training), drawn at random; both lists come back ascending.
func stratifiedSplit(y []float64, frac float64, rng rng) (train, valid []int, err error) {
	var byLabel [2][]int
	for i, v := range y {
		byLabel[int(v)] = append(byLabel[int(v)], i)
	}
	for label, rows := range byLabel {
		if len(rows) < 2 {
			return nil, nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "y",
				"y: %d rows of label %d, want at least 2 to hold out a validation set for early stopping",
				len(rows), label)
		}
		k := min(len(rows)-1, max(1, int(math.Round(frac*float64(len(rows))))))
		choose(rng, rows, k)
		valid = append(valid, rows[:k]...)
		train = append(train, rows[k:]...)
	}
	slices.Sort(train)
	slices.Sort(valid)
	return train, valid, nil
}

// rng draws from a PCG stream; it uses only PCG.Uint64, whose sequence for a seed is fixed.
type rng struct{ src *rand.PCG }

func newRNG(seed uint64) rng { return rng{rand.NewPCG(seed, 0x9e3779b97f4a7c15)} }

// intn returns a uniform integer in [0, n), n > 0 (Lemire's method).
func (r rng) intn(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(r.src.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.src.Uint64(), un)
		}
	}
	return int(hi)
}

// choose moves k elements drawn uniformly without replacement to the front of s (a partial
// Fisher-Yates shuffle).
func choose[T any](r rng, s []T, k int) {
	for i := 0; i < k; i++ {
		j := i + r.intn(len(s)-i)
		s[i], s[j] = s[j], s[i]
	}
}

// assemble lays trees out in an Ensemble and sums their gains per feature.
func assemble(d int, base float64, trees []*tree, valLoss []float64) *Ensemble {
	e := &Ensemble{
		numFeatures:    d,
		baseScore:      base,
		importance:     make([]float64, d),
		validationLoss: valLoss,
	}
	for _, tr := range trees {
		e.addTree(tr)
		for i, f := range tr.feature {
			e.importance[f] += tr.gain[i]
		}
	}
	return e
}
