package batch

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// checkProbability fails t when appendProbability and strconv disagree on p.
func checkProbability(t *testing.T, p float64) bool {
	t.Helper()
	want := strconv.FormatFloat(p, 'g', -1, 64)
	if got := string(appendProbability([]byte("x"), p)); got != "x"+want {
		t.Errorf("%b (%v): got %q, want %q", math.Float64bits(p), p, got[1:], want)
		return false
	}
	return true
}

// TestAppendProbability: the text of every kind of probability is strconv's shortest: random
// ones over the whole fast range and as the logistic function makes them, the neighbours of
// powers of ten and two, values with few digits, and those outside the fast range.
func TestAppendProbability(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	lo, hi := math.Float64bits(1e-4), math.Float64bits(1)
	errs := 0
	for range 1_000_000 {
		if errs > 10 {
			t.Fatal("too many differences")
		}
		if !checkProbability(t, math.Float64frombits(lo+r.Uint64N(hi-lo))) {
			errs++
		}
		z := r.NormFloat64() * 4
		if !checkProbability(t, 1/(1+math.Exp(-z))) {
			errs++
		}
	}
	edges := []float64{0, 1, -0.5, 0.5, 0.25, 0.75, 0.1, 0.01, 0.001, 1e-4, 1e-5, 2e-5, 0.3, 0.7, 0.123,
		0.9999, 0.99999999999999989, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), 1.5, 1e300}
	for _, x := range []float64{1e-4, 1e-3, 1e-2, 0.1, 1, 0.5, 0.25, 0.125, 0.0625, 1.0 / 1024, 1.0 / 8192, 0.3, 0.2} {
		y := x
		for range 50 {
			y = math.Nextafter(y, 0)
			edges = append(edges, y)
		}
		y = x
		for range 50 {
			y = math.Nextafter(y, 2)
			edges = append(edges, y)
		}
	}
	for d := 1; d <= 17; d++ {
		for range 2000 {
			digits := r.Uint64N(pow10u[d])
			for _, e := range []int{1, 2, 3, 4} {
				f, _ := strconv.ParseFloat("0."+string(appendDigits(nil, digits, d+e-1)), 64)
				edges = append(edges, f)
			}
		}
	}
	for _, p := range edges {
		checkProbability(t, p)
	}
}

// FuzzAppendProbability checks appendProbability against strconv on any float64.
func FuzzAppendProbability(f *testing.F) {
	f.Add(uint64(0x3fe0000000000001))
	f.Add(math.Float64bits(0.1))
	f.Fuzz(func(t *testing.T, b uint64) {
		checkProbability(t, math.Float64frombits(b))
	})
}

// BenchmarkAppendProbability: probabilities as the logistic function makes them.
func BenchmarkAppendProbability(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	ps := make([]float64, 4096)
	for i := range ps {
		ps[i] = 1 / (1 + math.Exp(-r.NormFloat64()*3))
	}
	buf := make([]byte, 0, 64)
	b.Run("pulse", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			buf = appendProbability(buf[:0], ps[i%len(ps)])
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			buf = strconv.AppendFloat(buf[:0], ps[i%len(ps)], 'g', -1, 64)
		}
	})
}
