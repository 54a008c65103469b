package ftrl

import (
	"encoding/csv"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// refFTRL is a direct transcription of Algorithm 1 of McMahan et al. (2013), per-coordinate
// FTRL-Proximal for logistic regression, with no scaling. The last coordinate is the bias
// (input 1), whose lambda1 and lambda2 are 0 as the Learner documents.
type refFTRL struct {
	alpha, beta float64
	l1, l2      []float64 // per coordinate
	z, n        []float64
}

func newRef(d int, p Params) *refFTRL {
	r := &refFTRL{alpha: p.Alpha, beta: p.Beta,
		l1: make([]float64, d+1), l2: make([]float64, d+1),
		z: make([]float64, d+1), n: make([]float64, d+1)}
	for i := range d {
		r.l1[i], r.l2[i] = p.L1, p.L2
	}
	return r
}

// weights returns w_i for every coordinate as Algorithm 1 computes it.
func (r *refFTRL) weights() []float64 {
	w := make([]float64, len(r.z))
	for i := range w {
		if math.Abs(r.z[i]) <= r.l1[i] {
			w[i] = 0
		} else {
			sgn := math.Copysign(1, r.z[i])
			w[i] = -(r.z[i] - sgn*r.l1[i]) / ((r.beta+math.Sqrt(r.n[i]))/r.alpha + r.l2[i])
		}
	}
	return w
}

// step predicts x (features then a 1 for the bias; NaN is read as 0), learns label y and
// returns the prediction.
func (r *refFTRL) step(x []float64, y float64) float64 {
	xb := append(slices.Clone(x), 1)
	var active []int // I = {i : x_i != 0}
	for i, v := range xb {
		if math.IsNaN(v) {
			xb[i] = 0
		}
		if xb[i] != 0 {
			active = append(active, i)
		}
	}
	w := r.weights()
	dot := 0.0
	for _, i := range active {
		dot += xb[i] * w[i]
	}
	p := 1 / (1 + math.Exp(-dot))
	for _, i := range active {
		g := (p - y) * xb[i]
		sigma := (math.Sqrt(r.n[i]+g*g) - math.Sqrt(r.n[i])) / r.alpha
		r.z[i] += g - sigma*w[i]
		r.n[i] += g * g
	}
	return p
}

// stream generates a synthetic labelled stream: numeric features with assorted means and
// scales, some one-hot blocks, a few missing values, and labels drawn from a logistic model
// whose margin the caller can sharpen.
type stream struct {
	rng   *rand.Rand
	d     int
	sharp float64
}

// Layout of stream examples: features 0-4 numeric (0-2 relevant, 3-4 noise), 5-7 one one-hot
// block (relevant), 8-9 independent 0/1 flags (noise).
const streamDim = 10

var streamBinary = []int{5, 6, 7, 8, 9}

func newStream(seed uint64, sharp float64) *stream {
	return &stream{rng: rand.New(rand.NewPCG(seed, 0x5eed)), d: streamDim, sharp: sharp}
}

// next returns a fresh example and its label.
func (s *stream) next() ([]float64, float64) {
	r := s.rng
	x := make([]float64, s.d)
	x[0] = 100 + 20*r.NormFloat64() // e.g. a pressure
	x[1] = 0.01 * r.NormFloat64()   // a tiny-unit measurement
	x[2] = 5 + r.NormFloat64()
	x[3] = 50 + 10*r.NormFloat64()
	x[4] = r.NormFloat64()
	x[5+r.IntN(3)] = 1
	if r.IntN(2) == 1 {
		x[8] = 1
	}
	if r.IntN(3) == 1 {
		x[9] = 1
	}
	margin := 1.5*(x[0]-100)/20 - 1.0*x[1]/0.01 + 0.8*(x[2]-5) + 1.2*x[5] - 1.2*x[7] - 0.2
	margin *= s.sharp
	y := 0.0
	if r.Float64() < 1/(1+math.Exp(-margin)) {
		y = 1
	}
	if r.IntN(50) == 0 {
		x[r.IntN(5)] = math.NaN()
	}
	return x, y
}

func TestMatchesAlgorithm1(t *testing.T) {
	p := Params{Alpha: 0.2, Beta: 1, L1: 0.5, L2: 0.3, Scale: false}
	// Unscaled inputs of moderate size: standardise the numeric ones up front.
	s := newStream(1, 1)
	l, err := New(streamDim, p)
	if err != nil {
		t.Fatal(err)
	}
	ref := newRef(streamDim, p)
	for k := range 3000 {
		x, y := s.next()
		x[0] = (x[0] - 100) / 20
		x[1] /= 0.01
		x[2] -= 5
		x[3] = (x[3] - 50) / 10
		want := ref.step(x, y)
		got := l.Update(x, y)
		if math.Abs(got-want) > 1e-12 {
			t.Fatalf("example %d: Update returned %v, Algorithm 1 predicted %v", k, got, want)
		}
	}
	w, bias := l.Weights()
	rw := ref.weights()
	for i := range w {
		if math.Abs(w[i]-rw[i]) > 1e-12 {
			t.Errorf("weight %d: got %v, Algorithm 1 has %v", i, w[i], rw[i])
		}
	}
	if math.Abs(bias-rw[streamDim]) > 1e-12 {
		t.Errorf("bias: got %v, Algorithm 1 has %v", bias, rw[streamDim])
	}
	nonzero := 0
	for _, v := range w {
		if v != 0 {
			nonzero++
		}
	}
	if nonzero < 4 {
		t.Errorf("only %d non-zero weights %v: the comparison is too weak", nonzero, w)
	}
}

func TestL1Sparsity(t *testing.T) {
	relevant := []int{0, 1, 2, 5, 7}
	irrelevant := []int{3, 4, 8, 9}
	for _, tc := range []struct {
		l1         float64
		wantSparse bool
	}{
		{0, false},
		{60, true},
	} {
		p := DefaultParams()
		p.L1 = tc.l1
		p.NoScale = streamBinary
		l, err := New(streamDim, p)
		if err != nil {
			t.Fatal(err)
		}
		s := newStream(2, 3)
		for range 5000 {
			l.Update(s.next())
		}
		w, _ := l.Weights()
		for _, i := range relevant {
			if w[i] == 0 {
				t.Errorf("l1 %v: relevant feature %d: got weight 0, want non-zero (weights %v)", tc.l1, i, w)
			}
		}
		for _, i := range irrelevant {
			if tc.wantSparse && w[i] != 0 {
				t.Errorf("l1 %v: irrelevant feature %d: got weight %v, want exactly 0", tc.l1, i, w[i])
			}
			if !tc.wantSparse && w[i] == 0 {
				t.Errorf("l1 %v: irrelevant feature %d: got weight 0, want noise without L1", tc.l1, i)
			}
		}
	}
}

func TestLearnsSyntheticStream(t *testing.T) {
	p := DefaultParams()
	p.NoScale = streamBinary
	l, err := New(streamDim, p)
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(3, 4) // sharp margin: nearly separable
	correct := 0
	for k := range 20000 {
		x, y := s.next()
		prob := l.Update(x, y)
		if k >= 15000 && (prob >= 0.5) == (y == 1) {
			correct++
		}
	}
	acc := float64(correct) / 5000
	t.Logf("prequential accuracy of the last 5000 of 20000: %.4f", acc)
	if acc <= 0.9 {
		t.Errorf("prequential accuracy of the last 5000: got %.4f, want > 0.9", acc)
	}
	if got := l.Count(); got != 20000 {
		t.Errorf("Count: got %d, want 20000", got)
	}
}

// readCleveland reads the 13 raw features (NaN for "?") and the label num > 0.
func readCleveland(t *testing.T) ([][]float64, []float64) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.TrimLeadingSpace = true
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num" {
		t.Fatalf("header: got %q", got)
	}
	var xs [][]float64
	var ys []float64
	for k, rec := range recs[1:] {
		x := make([]float64, 13)
		for j := range 13 {
			if rec[j] == "?" {
				x[j] = math.NaN()
				continue
			}
			if x[j], err = strconv.ParseFloat(rec[j], 64); err != nil {
				t.Fatalf("row %d, column %d: %v", k+1, j, err)
			}
		}
		num, err := strconv.ParseFloat(rec[13], 64)
		if err != nil {
			t.Fatalf("row %d, num: %v", k+1, err)
		}
		y := 0.0
		if num > 0 {
			y = 1
		}
		xs = append(xs, x)
		ys = append(ys, y)
	}
	if len(xs) != 303 {
		t.Fatalf("got %d rows, want 303", len(xs))
	}
	return xs, ys
}

// auc is the rank-based ROC AUC (Mann-Whitney U), ties counted half.
func auc(scores, ys []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var rankSum, pos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		rank := float64(i+j+1) / 2 // average of the 1-based ranks i+1..j
		for k := i; k < j; k++ {
			if ys[idx[k]] == 1 {
				rankSum += rank
				pos++
			}
		}
		i = j
	}
	neg := float64(len(scores)) - pos
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

func TestAUC(t *testing.T) {
	for _, tc := range []struct {
		scores, ys []float64
		want       float64
	}{
		{[]float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{[]float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}, 0},
		{[]float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1}, 0.5},
		{[]float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75},
	} {
		if got := auc(tc.scores, tc.ys); got != tc.want {
			t.Errorf("auc(%v, %v): got %v, want %v", tc.scores, tc.ys, got, tc.want)
		}
	}
}

func TestCleveland(t *testing.T) {
	xs, ys := readCleveland(t)
	l, err := New(13, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	var preqScores, preqYs []float64
	for pass := range 10 {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			prob := l.Update(xs[i], ys[i])
			if pass == 0 {
				preqScores = append(preqScores, prob)
				preqYs = append(preqYs, ys[i])
			}
		}
	}
	preq := auc(preqScores, preqYs)
	scores := make([]float64, len(xs))
	for i, x := range xs {
		scores[i] = l.Predict(x)
	}
	in := auc(scores, ys)
	t.Logf("Cleveland: prequential AUC of one pass %.4f; in-sample AUC after 10 passes %.4f", preq, in)
	if in <= 0.88 {
		t.Errorf("in-sample AUC after 10 passes: got %.4f, want > 0.88", in)
	}
	if preq <= 0.8 {
		t.Errorf("prequential AUC of one pass: got %.4f, want > 0.8", preq)
	}
}

// learn feeds k examples of s to l and returns the predictions, bit patterns included.
func learn(l *Learner, s *stream, k int) []float64 {
	out := make([]float64, k)
	for i := range out {
		out[i] = l.Update(s.next())
	}
	return out
}

func sameBits(a, b []float64) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return i
		}
	}
	return -1
}

func TestSnapshotContinuesBitForBit(t *testing.T) {
	p := DefaultParams()
	p.NoScale = streamBinary
	whole, err := New(streamDim, p)
	if err != nil {
		t.Fatal(err)
	}
	wantPreds := learn(whole, newStream(4, 1), 1000)

	first, err := New(streamDim, p)
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(4, 1)
	preds := learn(first, s, 500)
	b, err := first.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var restored Learner
	if err := restored.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	clone := first.Clone()
	preds = append(preds, learn(&restored, s, 500)...)

	if i := sameBits(preds, wantPreds); i >= 0 {
		t.Fatalf("prediction %d after restore: got %v, uninterrupted run %v", i, preds[i], wantPreds[i])
	}
	w, bias := restored.Weights()
	ww, wbias := whole.Weights()
	if i := sameBits(append(w, bias), append(ww, wbias)); i >= 0 {
		t.Errorf("weights after restore: got %v, uninterrupted run %v", append(w, bias), append(ww, wbias))
	}
	got, err := restored.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want, err := whole.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("state after restore differs from the uninterrupted run:\n got %s\nwant %s", got, want)
	}

	// The clone taken at 500 continues the same way too, and was not moved by the original.
	if clone.Count() != 500 {
		t.Errorf("clone Count: got %d, want 500", clone.Count())
	}
	s2 := newStream(4, 1)
	for range 500 {
		s2.next()
	}
	clonePreds := learn(clone, s2, 500)
	if i := sameBits(clonePreds, wantPreds[500:]); i >= 0 {
		t.Errorf("clone prediction %d: got %v, uninterrupted run %v", 500+i, clonePreds[i], wantPreds[500+i])
	}
}

func TestDeterministic(t *testing.T) {
	var states [2]string
	for k := range states {
		p := DefaultParams()
		p.NoScale = streamBinary
		l, err := New(streamDim, p)
		if err != nil {
			t.Fatal(err)
		}
		learn(l, newStream(5, 1), 2000)
		b, err := l.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		states[k] = string(b)
	}
	if states[0] != states[1] {
		t.Errorf("two runs on the same stream differ:\n%s\n%s", states[0], states[1])
	}
}

func TestClone(t *testing.T) {
	l, err := New(streamDim, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(6, 1)
	learn(l, s, 100)
	c := l.Clone()
	before, _ := c.MarshalJSON()
	learn(l, s, 100)
	after, _ := c.MarshalJSON()
	if string(before) != string(after) {
		t.Errorf("the clone changed when the original learnt")
	}
	if c.Count() != 100 || l.Count() != 200 {
		t.Errorf("Count: clone %d, original %d; want 100, 200", c.Count(), l.Count())
	}
}

func TestMissingAndZero(t *testing.T) {
	p := DefaultParams()
	p.L1 = 0
	p.NoScale = streamBinary
	l, err := New(streamDim, p)
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(8, 2)
	learn(l, s, 3000)
	_, bias := l.Weights()
	nan := math.NaN()
	allMissing := []float64{nan, math.Inf(1), nan, math.Inf(-1), nan, nan, nan, nan, nan, nan}
	if got, want := l.Predict(allMissing), sigmoid(bias); got != want {
		t.Errorf("Predict(all missing): got %v, want sigmoid(bias) %v", got, want)
	}
	zeros := make([]float64, streamDim)
	mean, _ := l.Scaling()
	copy(zeros, mean[:5]) // numeric features at their means scale to 0; binaries are 0
	if got, want := l.Predict(zeros), sigmoid(bias); math.Abs(got-want) > 1e-15 {
		t.Errorf("Predict(means and zeros): got %v, want sigmoid(bias) %v", got, want)
	}
	// A missing feature predicts as if it were at its running mean.
	x, _ := s.next()
	x[0] = mean[0]
	atMean := l.Predict(x)
	x[0] = nan
	if got := l.Predict(x); math.Abs(got-atMean) > 1e-15 {
		t.Errorf("Predict with feature 0 missing: got %v, want %v as at its mean", got, atMean)
	}
	// Missing values do not enter the statistics.
	before := l.stats[0].count
	l.Update(x, 1)
	if got := l.stats[0].count; got != before {
		t.Errorf("scaler count of a missing feature: got %d, want %d", got, before)
	}
	if got := l.stats[1].count; got != before+1 {
		t.Errorf("scaler count of a present feature: got %d, want %d", got, before+1)
	}
}

func TestScaling(t *testing.T) {
	p := DefaultParams()
	p.NoScale = streamBinary
	l, err := New(streamDim, p)
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(9, 1)
	var cols [streamDim][]float64
	for range 2000 {
		x, y := s.next()
		for i, v := range x {
			if !math.IsNaN(v) {
				cols[i] = append(cols[i], v)
			}
		}
		l.Update(x, y)
	}
	mean, sd := l.Scaling()
	for i, col := range cols {
		wantMean, wantSD := 0.0, 1.0
		if !slices.Contains(streamBinary, i) {
			for _, v := range col {
				wantMean += v
			}
			wantMean /= float64(len(col))
			ss := 0.0
			for _, v := range col {
				ss += (v - wantMean) * (v - wantMean)
			}
			wantSD = math.Sqrt(ss / float64(len(col)-1))
		}
		if math.Abs(mean[i]-wantMean) > 1e-9*math.Max(1, math.Abs(wantMean)) {
			t.Errorf("feature %d mean: got %v, want %v", i, mean[i], wantMean)
		}
		if math.Abs(sd[i]-wantSD) > 1e-9*wantSD {
			t.Errorf("feature %d sd: got %v, want %v", i, sd[i], wantSD)
		}
	}
	// Outliers are clipped to Clip standard deviations.
	x := []float64{0, 0, 5, 50, 0, 1, 0, 0, 0, 0}
	x[0] = mean[0] + Clip*sd[0]
	atClip := l.Predict(x)
	x[0] = mean[0] + 1e9
	if got := l.Predict(x); got != atClip {
		t.Errorf("Predict with an outlier: got %v, want %v as at the clip", got, atClip)
	}
	x[0] = mean[0]
	if got := l.Predict(x); got == atClip {
		t.Errorf("Predict at the mean: got %v, the same as at the clip", got)
	}
}

func TestFirstExamplesScaleToZero(t *testing.T) {
	l, err := New(2, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	// Unseen features predict as missing, and the first observation scales to 0: only the bias
	// learns from it.
	if got := l.Predict([]float64{1e6, -3}); got != 0.5 {
		t.Errorf("Predict before learning: got %v, want 0.5", got)
	}
	if got := l.Update([]float64{1e6, -3}, 1); got != 0.5 {
		t.Errorf("first Update: got %v, want 0.5", got)
	}
	w, bias := l.Weights()
	if w[0] != 0 || w[1] != 0 || !(bias > 0) {
		t.Errorf("after one example: got weights %v and bias %v, want 0, 0 and a positive bias", w, bias)
	}
}

func TestBadExamples(t *testing.T) {
	l, err := New(3, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	l.Update([]float64{1, 2, 3}, 1)
	l.Update([]float64{2, 1, 0}, 0)
	before, _ := l.MarshalJSON()
	for _, tc := range []struct {
		name string
		x    []float64
		y, w float64
	}{
		{"short x", []float64{1, 2}, 1, 1},
		{"long x", []float64{1, 2, 3, 4}, 1, 1},
		{"nil x", nil, 1, 1},
		{"label 0.5", []float64{1, 2, 3}, 0.5, 1},
		{"label 2", []float64{1, 2, 3}, 2, 1},
		{"label NaN", []float64{1, 2, 3}, math.NaN(), 1},
		{"weight 0", []float64{1, 2, 3}, 1, 0},
		{"weight -1", []float64{1, 2, 3}, 1, -1},
		{"weight NaN", []float64{1, 2, 3}, 1, math.NaN()},
		{"weight +Inf", []float64{1, 2, 3}, 1, math.Inf(1)},
		{"weight too large", []float64{1, 2, 3}, 1, 2 * MaxWeight},
	} {
		if got := l.UpdateWeighted(tc.x, tc.y, tc.w); !math.IsNaN(got) {
			t.Errorf("%s: UpdateWeighted returned %v, want NaN", tc.name, got)
		}
	}
	if got := l.Predict([]float64{1}); !math.IsNaN(got) {
		t.Errorf("Predict with a short x: got %v, want NaN", got)
	}
	after, _ := l.MarshalJSON()
	if string(after) != string(before) {
		t.Errorf("bad examples changed the state:\n got %s\nwant %s", after, before)
	}
}

func TestUpdateWeighted(t *testing.T) {
	p := Params{Alpha: 0.1, Beta: 1, L1: 0, L2: 0}
	a, _ := New(1, p)
	b, _ := New(1, p)
	x := []float64{0.7}
	a.UpdateWeighted(x, 1, 2)
	b.Update(x, 1)
	wa, ba := a.Weights()
	wb, bb := b.Weights()
	if !(wa[0] > wb[0] && ba > bb) {
		t.Errorf("weight 2: got weights %v, %v; want larger than weight 1's %v, %v", wa, ba, wb, bb)
	}
	// One step from zero for the bias: g = (0.5-1)*2 = -1, n = 1, z = -1 - (1-0)/alpha*0 = -1,
	// w = -z/((beta+sqrt(n))/alpha) = 1/((1+1)/0.1) = 0.05.
	if ba != 0.05 {
		t.Errorf("bias after one weight-2 positive example: got %v, want 0.05", ba)
	}
}

func TestNoAllocations(t *testing.T) {
	l, x, ys := benchLearner(t)
	k := 0
	if got := testing.AllocsPerRun(200, func() {
		l.Update(x[k%len(x)], ys[k%len(x)])
		k++
	}); got != 0 {
		t.Errorf("Update: got %v allocations, want 0", got)
	}
	if got := testing.AllocsPerRun(200, func() {
		l.Predict(x[k%len(x)])
		k++
	}); got != 0 {
		t.Errorf("Predict: got %v allocations, want 0", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		edit      func(*Params)
		wantField string
	}{
		{"defaults", func(*Params) {}, ""},
		{"no L1, no L2, no scaling", func(p *Params) { p.L1, p.L2, p.Scale = 0, 0, false }, ""},
		{"alpha 0", func(p *Params) { p.Alpha = 0 }, "params.alpha"},
		{"alpha negative", func(p *Params) { p.Alpha = -1 }, "params.alpha"},
		{"alpha NaN", func(p *Params) { p.Alpha = math.NaN() }, "params.alpha"},
		{"alpha Inf", func(p *Params) { p.Alpha = math.Inf(1) }, "params.alpha"},
		{"beta 0", func(p *Params) { p.Beta = 0 }, "params.beta"},
		{"beta NaN", func(p *Params) { p.Beta = math.NaN() }, "params.beta"},
		{"l1 negative", func(p *Params) { p.L1 = -0.1 }, "params.l1"},
		{"l1 Inf", func(p *Params) { p.L1 = math.Inf(1) }, "params.l1"},
		{"l2 negative", func(p *Params) { p.L2 = -1 }, "params.l2"},
		{"l2 NaN", func(p *Params) { p.L2 = math.NaN() }, "params.l2"},
		{"no_scale negative", func(p *Params) { p.NoScale = []int{-1} }, "params.no_scale"},
		{"no_scale twice", func(p *Params) { p.NoScale = []int{2, 1, 2} }, "params.no_scale"},
	} {
		p := DefaultParams()
		tc.edit(&p)
		err := p.Validate()
		if tc.wantField == "" {
			if err != nil {
				t.Errorf("%s: got %v, want no error", tc.name, err)
			}
			continue
		}
		var e *pulse.Error
		if !errors.As(err, &e) {
			t.Errorf("%s: got %v, want a *pulse.Error", tc.name, err)
			continue
		}
		if e.Code != pulse.EUNPROCESSABLE || e.Field != tc.wantField || !strings.HasPrefix(e.Message, tc.wantField) {
			t.Errorf("%s: got code %q field %q message %q, want %q about %s", tc.name, e.Code, e.Field, e.Message, pulse.EUNPROCESSABLE, tc.wantField)
		}
	}
	if err := (Params{}).Validate(); err == nil {
		t.Errorf("zero Params: got no error, want one")
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name      string
		d         int
		noScale   []int
		wantField string
	}{
		{"ok", 3, []int{0, 2}, ""},
		{"no features", 0, nil, "dim"},
		{"negative features", -1, nil, "dim"},
		{"no_scale out of range", 3, []int{3}, "params.no_scale"},
	} {
		p := DefaultParams()
		p.NoScale = tc.noScale
		l, err := New(tc.d, p)
		if tc.wantField == "" {
			if err != nil || l == nil || l.Dim() != tc.d {
				t.Errorf("%s: got %v, %v; want a learner of dim %d", tc.name, l, err, tc.d)
			}
			continue
		}
		var e *pulse.Error
		if l != nil || !errors.As(err, &e) || e.Code != pulse.EUNPROCESSABLE || e.Field != tc.wantField {
			t.Errorf("%s: got %v, %v; want nil and an %s error about %s", tc.name, l, err, pulse.EUNPROCESSABLE, tc.wantField)
		}
	}
	// New keeps its own copy of NoScale.
	p := DefaultParams()
	p.NoScale = []int{1}
	l, err := New(2, p)
	if err != nil {
		t.Fatal(err)
	}
	p.NoScale[0] = 0
	if got := l.Params().NoScale; !slices.Equal(got, []int{1}) {
		t.Errorf("Params().NoScale after the caller's edit: got %v, want [1]", got)
	}
}

func TestSigmoidClipsTheMargin(t *testing.T) {
	for _, tc := range []struct {
		m, want float64
	}{
		{0, 0.5},
		{1000, sigmoid(35)},
		{math.Inf(1), sigmoid(35)},
		{-1000, sigmoid(-35)},
		{math.Inf(-1), sigmoid(-35)},
	} {
		if got := sigmoid(tc.m); got != tc.want {
			t.Errorf("sigmoid(%v): got %v, want %v", tc.m, got, tc.want)
		}
	}
	if hi, lo := sigmoid(35), sigmoid(-35); !(hi < 1 && lo > 0) {
		t.Errorf("sigmoid(±35): got %v and %v, want strictly inside (0, 1)", hi, lo)
	}
}

func TestZeroLearner(t *testing.T) {
	var l Learner
	if got := l.Predict(nil); !math.IsNaN(got) {
		t.Errorf("Predict: got %v, want NaN", got)
	}
	if got := l.Update([]float64{}, 1); !math.IsNaN(got) {
		t.Errorf("Update: got %v, want NaN", got)
	}
	if w, b := l.Weights(); w != nil || !math.IsNaN(b) {
		t.Errorf("Weights: got %v, %v; want nil, NaN", w, b)
	}
	if l.Count() != 0 {
		t.Errorf("Count: got %d, want 0", l.Count())
	}
}
