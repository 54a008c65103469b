package monitor

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

func TestWilson(t *testing.T) {
	// Newcombe (1998), Table I, method 3 (score interval without continuity correction).
	tests := []struct {
		k, n         int
		lower, upper float64
	}{
		{81, 263, 0.2553, 0.3662},
		{15, 148, 0.0624, 0.1605},
		{0, 20, 0, 0.1611},
		{1, 29, 0.0061, 0.1718},
		{29, 29, 0.8830, 1}, // 1 - (0/29's upper bound)
	}
	for _, tt := range tests {
		e := wilson(tt.k, tt.n)
		if e == nil {
			t.Fatalf("wilson(%d, %d): got nil", tt.k, tt.n)
		}
		if math.Abs(e.Lower-tt.lower) > 5e-5 || math.Abs(e.Upper-tt.upper) > 5e-5 {
			t.Errorf("wilson(%d, %d): got [%.4f, %.4f], want [%.4f, %.4f]", tt.k, tt.n, e.Lower, e.Upper, tt.lower, tt.upper)
		}
		if want := float64(tt.k) / float64(tt.n); e.Value != want {
			t.Errorf("wilson(%d, %d): got value %v, want %v", tt.k, tt.n, e.Value, want)
		}
	}
	if e := wilson(0, 0); e != nil {
		t.Errorf("wilson(0, 0): got %+v, want nil", e)
	}
}

// bruteDeLong is DeLong's AUC and variance straight from the definition, O(P·N).
func bruteDeLong(y []int, p []float64) (auc, variance float64) {
	var pos, neg []float64
	for i := range y {
		if y[i] == 1 {
			pos = append(pos, p[i])
		} else {
			neg = append(neg, p[i])
		}
	}
	psiFn := func(x, y float64) float64 {
		switch {
		case x > y:
			return 1
		case x == y:
			return 0.5
		}
		return 0
	}
	v10 := make([]float64, len(pos))
	v01 := make([]float64, len(neg))
	for i, x := range pos {
		for j, z := range neg {
			s := psiFn(x, z)
			v10[i] += s / float64(len(neg))
			v01[j] += s / float64(len(pos))
			auc += s
		}
	}
	auc /= float64(len(pos) * len(neg))
	sampleVar := func(v []float64) float64 {
		var ss float64
		for _, x := range v {
			ss += (x - auc) * (x - auc)
		}
		return ss / float64(len(v)-1)
	}
	return auc, sampleVar(v10)/float64(len(pos)) + sampleVar(v01)/float64(len(neg))
}

func keys(p []float64) []uint64 {
	k := make([]uint64, len(p))
	for i, x := range p {
		k[i] = math.Float64bits(x)
	}
	slices.Sort(k)
	return k
}

func TestAUCDeLong(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		name  string
		n     int
		steps int // scores are multiples of 1/steps: many ties when small
	}{
		{"ties", 400, 10},
		{"few ties", 300, 100000},
		{"tiny", 5, 3},
	} {
		y := make([]int, tt.n)
		p := make([]float64, tt.n)
		for i := range y {
			y[i] = rng.IntN(2)
			// informative: positives score higher on average
			p[i] = math.Min(float64(rng.IntN(tt.steps)+y[i]*tt.steps/3)/float64(tt.steps), 1)
		}
		y[0], y[1], y[2], y[3] = 0, 0, 1, 1 // both classes, at least 2 each
		var pos, neg []float64
		for i := range y {
			if y[i] == 1 {
				pos = append(pos, p[i])
			} else {
				neg = append(neg, p[i])
			}
		}
		e := aucDeLong(keys(pos), keys(neg))
		wantAUC, wantVar := bruteDeLong(y, p)
		if math.Abs(e.Value-wantAUC) > 1e-12 {
			t.Errorf("%s: got AUC %v, want %v (definition)", tt.name, e.Value, wantAUC)
		}
		if ev := ml.Evaluate(y, p, 0.5); math.Abs(e.Value-ev.ROCAUC) > 1e-12 {
			t.Errorf("%s: got AUC %v, want ml.Evaluate's %v", tt.name, e.Value, ev.ROCAUC)
		}
		half := z95 * math.Sqrt(wantVar)
		if lo := math.Max(wantAUC-half, 0); math.Abs(e.Lower-lo) > 1e-9 {
			t.Errorf("%s: got lower %v, want %v", tt.name, e.Lower, lo)
		}
		if hi := math.Min(wantAUC+half, 1); math.Abs(e.Upper-hi) > 1e-9 {
			t.Errorf("%s: got upper %v, want %v", tt.name, e.Upper, hi)
		}
	}
	// Undefined with one class; the interval is [0, 1] with a single positive.
	if e := aucDeLong(keys([]float64{0.2, 0.3}), nil); e != nil {
		t.Errorf("one class: got %+v, want nil", e)
	}
	if e := aucDeLong(keys([]float64{0.9}), keys([]float64{0.2, 0.3})); e == nil || e.Value != 1 || e.Lower != 0 || e.Upper != 1 {
		t.Errorf("one positive: got %+v, want AUC 1 in [0, 1]", e)
	}
}

func TestPSI(t *testing.T) {
	quarter := []float64{0.25, 0.25, 0.25, 0.25}
	tests := []struct {
		name     string
		counts   []int64
		expected []float64
		want     float64
	}{
		{"identical", []int64{25, 25, 25, 25}, quarter, 0},
		// 0.15 ln 1.6 + 0.05 ln 1.2 + 0.05 ln 1.25 + 0.15 ln 2.5
		{"shift", []int64{40, 30, 20, 10}, quarter, 0.22821740957339182},
		// two empty bins count as 1e-4: 2 (0.25 ln 2) + 2 (0.2499 ln 2500)
		{"empty bins", []int64{50, 0, 0, 50}, quarter, 4.257031786505947},
		// an unseen category (training share 0 -> 1e-4)
		{"unseen", []int64{1, 1, 2}, []float64{0.75, 0.25, 0}, 4.807051020723032},
	}
	for _, tt := range tests {
		if got := psi(tt.counts, tt.expected); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: got PSI %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := psi([]int64{0, 0}, []float64{0.5, 0.5}); !math.IsNaN(got) {
		t.Errorf("no values: got PSI %v, want NaN", got)
	}
}

func TestScoreBinsAreCalibrationBins(t *testing.T) {
	var ps []float64
	for k := range 11 {
		e := float64(k) / 10
		ps = append(ps, e, math.Nextafter(e, -1), math.Nextafter(e, 2))
	}
	ps = append(ps, 0, 1, 0.05, 0.95)
	for _, p := range ps {
		if p < 0 || p > 1 {
			continue
		}
		cal := ml.Evaluate([]int{0}, []float64{p}, 0.5).Calibration
		if len(cal) != 1 {
			t.Fatalf("p %v: got %d calibration bins, want 1", p, len(cal))
		}
		want := int(math.Round(cal[0].Lower * 10))
		if got := bin(scoreEdges[:], p); got != want {
			t.Errorf("p %v: got bin %d, want ml's calibration bin %d", p, got, want)
		}
	}
}

func TestBin(t *testing.T) {
	edges := []float64{1, 2, 5}
	tests := []struct {
		x    float64
		want int
	}{
		{math.Inf(-1), 0}, {0.5, 0}, {1, 1}, {1.5, 1}, {2, 2}, {4.99, 2}, {5, 3}, {1e9, 3}, {math.NaN(), 0},
	}
	for _, tt := range tests {
		if got := bin(edges, tt.x); got != tt.want {
			t.Errorf("bin(%v): got %d, want %d", tt.x, got, tt.want)
		}
	}
	if got := bin(nil, 3); got != 0 {
		t.Errorf("no edges: got bin %d, want 0", got)
	}
}

func TestRadixSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 63, 64, 65, 1000, 10000} {
		for _, gen := range []func() uint64{
			rng.Uint64,
			func() uint64 { return math.Float64bits(rng.Float64()) },
			func() uint64 { return uint64(rng.IntN(5)) << 40 }, // few distinct, shared bytes
		} {
			k := make([]uint64, n)
			for i := range k {
				k[i] = gen()
			}
			want := slices.Clone(k)
			slices.Sort(want)
			radixSort(k, make([]uint64, n))
			if !slices.Equal(k, want) {
				t.Fatalf("n %d: radix sort differs from slices.Sort", n)
			}
		}
	}
}

func errorAs(err error, target **pulse.Error) bool {
	return errors.As(err, target)
}

func TestScoreBin(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	ps := []float64{0, 1, math.SmallestNonzeroFloat64, math.Nextafter(1, 0)}
	for k := 1; k < 10; k++ {
		e := float64(k) / 10
		ps = append(ps, e, math.Nextafter(e, 0), math.Nextafter(e, 1), e*(1+1e-15), e*(1-1e-15))
	}
	for range 100000 {
		ps = append(ps, rng.Float64())
	}
	for _, p := range ps {
		if got, want := scoreBin(p), bin(scoreEdges[:], p); got != want {
			t.Errorf("scoreBin(%v): got %d, want %d", p, got, want)
		}
	}
}

func TestSelectKth(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	for _, n := range []int{1, 2, 17, 100, 5000} {
		for _, gen := range []func(i int) uint64{
			func(int) uint64 { return rng.Uint64() },
			func(int) uint64 { return uint64(rng.IntN(3)) },   // many ties
			func(i int) uint64 { return uint64(i) },           // sorted
			func(i int) uint64 { return uint64(n - i) },       // reversed
			func(i int) uint64 { return uint64(min(i, n-i)) }, // organ pipe
		} {
			a := make([]uint64, n)
			for i := range a {
				a[i] = gen(i)
			}
			sorted := slices.Clone(a)
			slices.Sort(sorted)
			for _, k := range []int{0, n / 2, nearestRank(0.95, n), n - 1} {
				b := slices.Clone(a)
				if got := selectKth(b, k); got != sorted[k] {
					t.Fatalf("n %d: selectKth(%d): got %d, want %d", n, k, got, sorted[k])
				}
				for i := range b {
					if (i < k && b[i] > b[k]) || (i > k && b[i] < b[k]) {
						t.Fatalf("n %d, k %d: a[%d] = %d is on the wrong side of %d", n, k, i, b[i], b[k])
					}
				}
			}
		}
	}
}

func TestNearestRank(t *testing.T) {
	tests := []struct {
		q    float64
		n    int
		want int
	}{
		{0.5, 1, 0}, {0.5, 2, 0}, {0.5, 3, 1}, {0.5, 100, 49}, {0.95, 100, 94}, {0.95, 101, 95}, {0.95, 1, 0},
	}
	for _, tt := range tests {
		if got := nearestRank(tt.q, tt.n); got != tt.want {
			t.Errorf("nearestRank(%v, %d): got %d, want %d", tt.q, tt.n, got, tt.want)
		}
	}
}
