package ftrl

import (
	"math/rand/v2"
	"testing"
)

// benchLearner returns a learner over 25 heart-disease-like features (13 numeric, then 12
// one-hot columns of three categoricals, unscaled) warmed up on a pool of examples, and the
// pool.
func benchLearner(tb testing.TB) (*Learner, [][]float64, []float64) {
	tb.Helper()
	const numeric, d = 13, 25
	p := DefaultParams()
	for i := numeric; i < d; i++ {
		p.NoScale = append(p.NoScale, i)
	}
	l, err := New(d, p)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([][]float64, 1024)
	ys := make([]float64, len(xs))
	for k := range xs {
		x := make([]float64, d)
		m := 0.0
		for i := range numeric {
			x[i] = 50 + 10*rng.NormFloat64()
			m += float64(i%3-1) * (x[i] - 50) / 10
		}
		x[numeric+rng.IntN(4)] = 1   // a 4-level categorical
		x[numeric+4+rng.IntN(3)] = 1 // a 3-level one
		x[numeric+7+rng.IntN(5)] = 1 // a 5-level one
		if rng.Float64() < sigmoid(m) {
			ys[k] = 1
		}
		xs[k] = x
	}
	for k := range xs {
		l.Update(xs[k], ys[k])
	}
	return l, xs, ys
}

func BenchmarkUpdate(b *testing.B) {
	l, xs, ys := benchLearner(b)
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		l.Update(xs[k], ys[k])
		k = (k + 1) & (len(xs) - 1)
	}
}

func BenchmarkPredict(b *testing.B) {
	l, xs, _ := benchLearner(b)
	b.ReportAllocs()
	k := 0
	s := 0.0
	for b.Loop() {
		s += l.Predict(xs[k])
		k = (k + 1) & (len(xs) - 1)
	}
	if s < 0 {
		b.Fatal(s)
	}
}
