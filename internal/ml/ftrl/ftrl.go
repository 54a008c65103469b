// Package ftrl holds an online logistic regression learnt by FTRL-Proximal (McMahan et al.
// 2013, "Ad Click Prediction: a View from the Trenches", Algorithm 1) with per-coordinate
// learning rates, L1 and L2 regularisation, and online standardisation of the inputs.
//
// A Learner learns one labelled example at a time from a stream. It knows nothing of datasets:
// an example is a dense vector of float64 features in a fixed order, where NaN (or ±Inf) means
// missing. Categorical inputs are expected one-hot encoded by the caller; their 0/1 columns
// should be listed in Params.NoScale so that their zeros stay zeros and cost nothing.
//
// The model is
//
//	P(y=1|x) = sigmoid(bias + sum_i w_i * s_i(x_i))
//
// where s_i standardises feature i with its running mean and standard deviation (or is the
// identity for unscaled features), and a missing feature contributes nothing (s_i = 0, which
// for a standardised feature is imputation by its running mean).
package ftrl

import (
	"math"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Clip bounds a standardised feature to [-Clip, Clip]. While a feature's mean and standard
// deviation are estimated from a handful of observations, one outlier can standardise to a huge
// value and throw the weights far off; clipping bounds the damage of any single example.
const Clip = 10

// maxMargin bounds |bias + w·x| before the sigmoid, so that exp never overflows and the
// probability stays strictly inside (0, 1): sigmoid(±35) is 1-6e-16 and 6e-16.
const maxMargin = 35

// MaxWeight is the largest sample weight UpdateWeighted accepts.
const MaxWeight = 1e6

// Params are the hyperparameters of a Learner. Start from DefaultParams: the zero value is not
// valid.
type Params struct {
	// Alpha scales the per-coordinate learning rate alpha/(beta+sqrt(n_i)); default 0.1.
	Alpha float64 `json:"alpha"`
	// Beta smooths the learning rate while a coordinate has seen few gradients; default 1.
	Beta float64 `json:"beta"`
	// L1 (lambda1) drives weights of uninformative features to exactly 0; default 0.1.
	L1 float64 `json:"l1"`
	// L2 (lambda2) shrinks the weights; default 1.
	L2 float64 `json:"l2"`
	// Scale standardises each feature online by its running mean and standard deviation
	// (Welford) before learning; default true. Binary 0/1 features may be excluded via NoScale
	// indexes (0-based positions in the input vector).
	Scale   bool  `json:"scale"`
	NoScale []int `json:"no_scale,omitempty"`
}

// DefaultParams returns the default parameters: alpha 0.1, beta 1, L1 0.1, L2 1, scaling on.
func DefaultParams() Params {
	return Params{Alpha: 0.1, Beta: 1, L1: 0.1, L2: 1, Scale: true}
}

// Validate reports the first bad parameter as a *pulse.Error with code EUNPROCESSABLE and
// Field "params.<json name>". It cannot check NoScale indexes against the number of features;
// New does.
func (p Params) Validate() error {
	bad := func(name string, v float64, want string) error {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params."+name, "params.%s: got %v, want %s", name, v, want)
	}
	switch {
	case !(p.Alpha > 0) || math.IsInf(p.Alpha, 0):
		return bad("alpha", p.Alpha, "a positive number")
	case !(p.Beta > 0) || math.IsInf(p.Beta, 0):
		return bad("beta", p.Beta, "a positive number")
	case !(p.L1 >= 0) || math.IsInf(p.L1, 0):
		return bad("l1", p.L1, "a non-negative number")
	case !(p.L2 >= 0) || math.IsInf(p.L2, 0):
		return bad("l2", p.L2, "a non-negative number")
	}
	seen := make(map[int]bool, len(p.NoScale))
	for k, i := range p.NoScale {
		if i < 0 {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params.no_scale",
				"params.no_scale[%d]: got %d, want a feature index from 0", k, i)
		}
		if seen[i] {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params.no_scale",
				"params.no_scale[%d]: got %d twice, want each index once", k, i)
		}
		seen[i] = true
	}
	return nil
}

// coord is the FTRL state of one coordinate (a feature's weight, or the bias).
type coord struct {
	z     float64 // accumulated adjusted gradients
	n     float64 // accumulated squared gradients
	sqrtN float64 // math.Sqrt(n), kept so that each update takes one square root
}

// weight returns the coordinate's weight, computed lazily from z and n (Algorithm 1):
// 0 if |z| <= l1, else -(z - sgn(z)*l1) / ((beta+sqrt(n))/alpha + l2).
func (c *coord) weight(alpha, beta, l1, l2 float64) float64 {
	z := c.z
	if z >= -l1 && z <= l1 { // |z| <= l1; also true for z == 0 when l1 == 0
		return 0
	}
	if z > 0 {
		z -= l1
	} else {
		z += l1
	}
	return -z / ((beta+c.sqrtN)/alpha + l2)
}

// update applies the gradient g to the coordinate whose current weight is w.
func (c *coord) update(g, w, alpha float64) {
	n := c.n + g*g
	s := math.Sqrt(n)
	c.z += g - (s-c.sqrtN)/alpha*w
	c.n = n
	c.sqrtN = s
}

// stat is the running mean and variance (Welford) of one standardised feature.
type stat struct {
	count int64   // non-missing observations
	mean  float64 // running mean
	m2    float64 // sum of squared deviations from the mean
	sd    float64 // standard deviation used to scale: 1 until count >= 2 or while m2 == 0
}

// setSD recomputes sd from count and m2.
func (s *stat) setSD() {
	s.sd = 1
	if s.count >= 2 && s.m2 > 0 {
		if sd := math.Sqrt(s.m2 / float64(s.count-1)); sd > 0 { // not if m2/(count-1) underflows
			s.sd = sd
		}
	}
}

// scale standardises v with the statistics as they are and clips it to [-Clip, Clip]. A feature
// not observed yet scales to 0, as if v were its mean.
func (s *stat) scale(v float64) float64 {
	if s.count == 0 {
		return 0
	}
	return clip((v - s.mean) / s.sd)
}

func clip(v float64) float64 {
	if v > Clip {
		return Clip
	}
	if v < -Clip {
		return -Clip
	}
	return v
}

// Learner is an FTRL-Proximal online logistic regression over d features plus a bias.
//
// The bias is an extra coordinate whose input is always 1. It learns with its own adaptive
// learning rate but is neither L1- nor L2-penalised: it only tracks the base rate, and
// shrinking it toward 0 (probability 0.5) would bias every prediction of a rare outcome.
//
// Scaling order: Update first adds x to the running statistics of each non-missing
// standardised feature, then standardises x with those statistics (x included). A feature seen
// once thus scales to 0, and the first examples cannot blow up. Predict only reads the
// statistics. The standard deviation is the sample one (m2/(count-1)); it is 1 until a feature
// has two observations and while its variance is 0. Scaled values are clipped to [-Clip, Clip].
// The statistics count examples, not sample weights.
//
// A feature whose (scaled) value is 0 contributes nothing to the margin and has gradient 0, so
// it is skipped: its weight is not even computed, and one-hot inputs cost little.
//
// Learning is deterministic: the same stream gives the same state, bit for bit, and a state
// restored by UnmarshalJSON continues exactly as the uninterrupted learner would.
//
// The zero Learner is only a target for UnmarshalJSON: it predicts and learns nothing (NaN).
// A Learner is not safe for concurrent use. Clone it to freeze a snapshot that serves
// predictions while the original keeps learning.
type Learner struct {
	d      int
	p      Params
	scaled []bool  // per feature: standardise it
	coords []coord // d features, then the bias at index d
	stats  []stat  // per feature; only the entries of scaled features change
	count  int64

	// scratch for Update, so that it allocates nothing
	xs []float64 // scaled inputs, 0 for missing
	ws []float64 // weights of the non-zero inputs
}

// New returns a learner for d features (d >= 1) with all weights 0.
func New(d int, p Params) (*Learner, error) {
	if err := check(d, p); err != nil {
		return nil, err
	}
	l := alloc(d, p)
	for i := range l.stats {
		l.stats[i].sd = 1
	}
	return l, nil
}

// check validates d and p together.
func check(d int, p Params) error {
	if d < 1 {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "dim", "ftrl: got %d features, want at least 1", d)
	}
	if err := p.Validate(); err != nil {
		return err
	}
	for k, i := range p.NoScale {
		if i >= d {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "params.no_scale",
				"params.no_scale[%d]: got %d, want a feature index below %d", k, i, d)
		}
	}
	return nil
}

// alloc returns a zero learner for a valid d and p.
func alloc(d int, p Params) *Learner {
	p.NoScale = append([]int(nil), p.NoScale...)
	return &Learner{
		d:      d,
		p:      p,
		scaled: scaledMask(d, p),
		coords: make([]coord, d+1),
		stats:  make([]stat, d),
		xs:     make([]float64, d),
		ws:     make([]float64, d),
	}
}

// scaledMask returns, per feature, whether p standardises it.
func scaledMask(d int, p Params) []bool {
	scaled := make([]bool, d)
	if p.Scale {
		for i := range scaled {
			scaled[i] = true
		}
		for _, i := range p.NoScale {
			scaled[i] = false
		}
	}
	return scaled
}

// Dim returns the number of features the learner expects.
func (l *Learner) Dim() int { return l.d }

// Params returns the learner's parameters.
func (l *Learner) Params() Params {
	p := l.p
	p.NoScale = append([]int(nil), p.NoScale...)
	return p
}

// Count returns the number of examples learnt.
func (l *Learner) Count() int64 { return l.count }

// Predict returns P(y=1|x) with the current weights and scaling. Missing (NaN or ±Inf) features
// contribute nothing, which for a standardised feature is imputation by its running mean. It
// returns NaN if len(x) != Dim(). It allocates nothing and changes nothing.
func (l *Learner) Predict(x []float64) float64 {
	if len(x)+1 != len(l.coords) { // also the zero Learner, which has no bias coordinate
		return math.NaN()
	}
	a, b, l1, l2 := l.p.Alpha, l.p.Beta, l.p.L1, l.p.L2
	coords := l.coords[:len(x)]
	stats := l.stats[:len(x)]
	scaled := l.scaled[:len(x)]
	m := 0.0
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if scaled[i] {
			v = stats[i].scale(v)
		}
		if v == 0 {
			continue
		}
		m += coords[i].weight(a, b, l1, l2) * v
	}
	m += l.coords[l.d].weight(a, b, 0, 0)
	return sigmoid(m)
}

// Update learns from one labelled example (y 0 or 1, weight 1) and returns the probability it
// predicted for x before learning from it (test-then-train, for prequential evaluation). See
// UpdateWeighted.
func (l *Learner) Update(x []float64, y float64) float64 {
	return l.UpdateWeighted(x, y, 1)
}

// UpdateWeighted learns from one labelled example with sample weight w, which multiplies its
// gradient. It returns the probability predicted for x with the weights before the update
// (the scaling statistics already include x, see Learner).
//
// It learns nothing and returns NaN if len(x) != Dim(), y is not 0 or 1, or w is not in
// (0, MaxWeight]. Missing features (NaN or ±Inf) are skipped: they update neither the
// statistics nor the weights. Unscaled features should be of moderate magnitude (they enter
// the squared gradients as they are). It allocates nothing.
func (l *Learner) UpdateWeighted(x []float64, y, w float64) float64 {
	if len(x)+1 != len(l.coords) || (y != 0 && y != 1) || !(w > 0 && w <= MaxWeight) {
		return math.NaN()
	}
	a, b, l1, l2 := l.p.Alpha, l.p.Beta, l.p.L1, l.p.L2
	coords := l.coords[:len(x)]
	stats := l.stats[:len(x)]
	scaled := l.scaled[:len(x)]
	xs := l.xs[:len(x)]
	ws := l.ws[:len(x)]

	m := 0.0
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			xs[i] = 0
			continue
		}
		if scaled[i] {
			s := &stats[i]
			s.count++
			delta := v - s.mean
			s.mean += delta / float64(s.count)
			s.m2 += delta * (v - s.mean)
			s.setSD()
			v = clip((v - s.mean) / s.sd)
		}
		xs[i] = v
		if v == 0 {
			continue
		}
		wi := coords[i].weight(a, b, l1, l2)
		ws[i] = wi
		m += wi * v
	}
	bias := &l.coords[l.d]
	wb := bias.weight(a, b, 0, 0)
	m += wb
	p := sigmoid(m)

	g := (p - y) * w
	for i, v := range xs {
		if v == 0 {
			continue
		}
		coords[i].update(g*v, ws[i], a)
	}
	bias.update(g, wb, a)
	l.count++
	return p
}

func sigmoid(m float64) float64 {
	if m > maxMargin {
		m = maxMargin
	} else if m < -maxMargin {
		m = -maxMargin
	}
	return 1 / (1 + math.Exp(-m))
}

// Weights returns a copy of the current weights, in the scaled space the learner works in
// (a standardised feature's weight applies to (x-mean)/sd), and the bias. The zero Learner has
// no weights and a NaN bias.
func (l *Learner) Weights() (w []float64, bias float64) {
	if len(l.coords) == 0 {
		return nil, math.NaN()
	}
	a, b, l1, l2 := l.p.Alpha, l.p.Beta, l.p.L1, l.p.L2
	w = make([]float64, l.d)
	for i := range w {
		w[i] = l.coords[i].weight(a, b, l1, l2)
	}
	return w, l.coords[l.d].weight(a, b, 0, 0)
}

// Scaling returns copies of the running mean and the standard deviation each feature is scaled
// with, so that weights can be read in the features' own units (w_i/sd_i). An unscaled
// feature has mean 0 and sd 1, as does a standardised feature not observed yet.
func (l *Learner) Scaling() (mean, sd []float64) {
	mean = make([]float64, l.d)
	sd = make([]float64, l.d)
	for i, s := range l.stats {
		mean[i], sd[i] = s.mean, s.sd
	}
	return mean, sd
}

// Clone returns a deep copy of the learner: a snapshot to freeze as a model version.
func (l *Learner) Clone() *Learner {
	c := alloc(l.d, l.p)
	copy(c.coords, l.coords)
	copy(c.stats, l.stats)
	c.count = l.count
	return c
}
