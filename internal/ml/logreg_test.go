package ml

import (
	"context"
	"math"
	"testing"
)

// tiny is a small, not separable data set of 8 rows and 2 features.
var (
	tinyX = []float64{
		0.5, 1.0,
		1.5, -0.5,
		-1.0, 0.3,
		2.0, 1.2,
		-0.3, -1.1,
		0.8, 0.1,
		-1.6, 0.9,
		1.1, -1.4,
	}
	tinyY = []float64{1, 1, 0, 1, 0, 0, 1, 1}
)

// gradientDescent minimises the same objective as fitLogReg with plain gradient descent,
// written independently of the package: the reference solution.
func gradientDescent(x []float64, d int, y, sw []float64, c float64) ([]float64, float64) {
	n := len(y)
	// Step 1/L with L bounding the Hessian's largest eigenvalue.
	l := 1.0
	for i := range n {
		s := 1.0
		for j := range d {
			s += x[i*d+j] * x[i*d+j]
		}
		l += c * sw[i] * s / 4
	}
	w := make([]float64, d)
	var b float64
	gw := make([]float64, d)
	for range 1_000_000 {
		for j := range gw {
			gw[j] = w[j]
		}
		var gb float64
		for i := range n {
			z := b
			for j := range d {
				z += w[j] * x[i*d+j]
			}
			r := c * sw[i] * (1/(1+math.Exp(-z)) - y[i])
			for j := range d {
				gw[j] += r * x[i*d+j]
			}
			gb += r
		}
		norm := gb * gb
		for j := range d {
			w[j] -= gw[j] / l
			norm += gw[j] * gw[j]
		}
		b -= gb / l
		if math.Sqrt(norm) < 1e-13 {
			break
		}
	}
	return w, b
}

func TestFitLogRegMatchesReference(t *testing.T) {
	ones := []float64{1, 1, 1, 1, 1, 1, 1, 1}
	weights := []float64{0.5, 2, 1, 1, 3, 0.25, 1, 1.5}
	tests := []struct {
		name string
		c    float64
		sw   []float64
	}{
		{"C=1", 1, ones},
		{"C=10", 10, ones},
		{"C=0.05", 0.05, ones},
		{"C=2, sample weights", 2, weights},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fit, err := fitLogReg(context.Background(), tinyX, 2, tinyY, tt.sw, tt.c, 1e-10, 100)
			if err != nil {
				t.Fatal(err)
			}
			if !fit.converged || fit.gradNorm >= 1e-10 || fit.iterations < 1 {
				t.Errorf("converged %v after %d iterations, gradient norm %g; want convergence below 1e-10",
					fit.converged, fit.iterations, fit.gradNorm)
			}
			w, b := gradientDescent(tinyX, 2, tinyY, tt.sw, tt.c)
			for j := range w {
				if !near(fit.coef[j], w[j], 1e-6) {
					t.Errorf("coef %d: got %.12f, want %.12f", j, fit.coef[j], w[j])
				}
			}
			if !near(fit.intercept, b, 1e-6) {
				t.Errorf("intercept: got %.12f, want %.12f", fit.intercept, b)
			}

			// KKT: w = C * X^T (sw * (y - p)) and sum(sw * (y - p)) = 0.
			kkt := make([]float64, 2)
			var kktB float64
			for i := range tinyY {
				z := fit.intercept + fit.coef[0]*tinyX[2*i] + fit.coef[1]*tinyX[2*i+1]
				r := tt.c * tt.sw[i] * (tinyY[i] - 1/(1+math.Exp(-z)))
				kkt[0] += r * tinyX[2*i]
				kkt[1] += r * tinyX[2*i+1]
				kktB += r
			}
			for j := range kkt {
				if !near(fit.coef[j], kkt[j], 1e-9) {
					t.Errorf("KKT: coef %d is %.12f, C*X^T(y-p) is %.12f", j, fit.coef[j], kkt[j])
				}
			}
			if !near(kktB, 0, 1e-9) {
				t.Errorf("KKT: sum of residuals is %g, want 0", kktB)
			}
		})
	}
}

func TestFitLogRegSeparable(t *testing.T) {
	x := []float64{-2, -1, 1, 2}
	y := []float64{0, 0, 1, 1}
	fit, err := fitLogReg(context.Background(), x, 1, y, []float64{1, 1, 1, 1}, 1, 1e-8, 100)
	if err != nil {
		t.Fatal(err)
	}
	w, b := gradientDescent(x, 1, y, []float64{1, 1, 1, 1}, 1)
	if !fit.converged || !near(fit.coef[0], w[0], 1e-6) || !near(fit.intercept, b, 1e-6) {
		t.Errorf("got converged %v w %v b %v, want w %v b %v", fit.converged, fit.coef[0], fit.intercept, w[0], b)
	}
	if !(fit.coef[0] > 0) || !near(fit.intercept, 0, 1e-9) {
		t.Errorf("symmetric separable data: got w %v b %v, want w > 0 and b = 0", fit.coef[0], fit.intercept)
	}
}

func TestFitLogRegMaxIter(t *testing.T) {
	fit, err := fitLogReg(context.Background(), tinyX, 2, tinyY, []float64{1, 1, 1, 1, 1, 1, 1, 1}, 1, 1e-8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if fit.converged || fit.iterations != 1 {
		t.Errorf("got converged %v after %d iterations, want not converged after 1", fit.converged, fit.iterations)
	}
}

func TestFitLogRegCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fitLogReg(ctx, tinyX, 2, tinyY, []float64{1, 1, 1, 1, 1, 1, 1, 1}, 1, 1e-8, 100); err == nil {
		t.Error("got no error for a cancelled context")
	}
}

func TestCholesky(t *testing.T) {
	// a = m m^T + I for a fixed m.
	m := []float64{2, -1, 0.5, 1, 3, -2, 0, 0.5, 1}
	n := 3
	a := make([]float64, n*n)
	for i := range n {
		for j := range n {
			for k := range n {
				a[i*n+j] += m[i*n+k] * m[j*n+k]
			}
			if i == j {
				a[i*n+j]++
			}
		}
	}
	b := []float64{1, -2, 3}
	l := append([]float64(nil), a...)
	if !cholesky(l, n) {
		t.Fatal("cholesky failed on a positive definite matrix")
	}
	v := append([]float64(nil), b...)
	choleskySolve(l, n, v)
	for i := range n {
		var s float64
		for j := range n {
			s += a[i*n+j] * v[j]
		}
		if !near(s, b[i], 1e-12) {
			t.Errorf("row %d: a*v = %v, want %v", i, s, b[i])
		}
	}
	if cholesky([]float64{1, 2, 2, 1}, 2) {
		t.Error("cholesky succeeded on an indefinite matrix")
	}
}

func TestSigmoidSoftplus(t *testing.T) {
	for _, z := range []float64{-800, -30, -1, 0, 1, 30, 800} {
		p := sigmoid(z)
		if math.IsNaN(p) || p < 0 || p > 1 {
			t.Errorf("sigmoid(%v) = %v", z, p)
		}
		sp := softplus(z)
		if math.IsNaN(sp) || math.IsInf(sp, 0) || sp < 0 || sp < z {
			t.Errorf("softplus(%v) = %v", z, sp)
		}
	}
	if !near(sigmoid(1), 1/(1+math.Exp(-1)), 1e-16) || !near(softplus(1), math.Log(1+math.E), 1e-15) {
		t.Errorf("sigmoid(1) = %v, softplus(1) = %v", sigmoid(1), softplus(1))
	}
}

// proximalGradient minimises C * loss + (1-r)/2 ||w||^2 + r ||w||_1 by plain proximal
// gradient descent (ISTA) with step 1/L, written independently of the package: the reference
// solution of the L1 and elastic-net fits.
func proximalGradient(x []float64, d int, y, sw []float64, c, r float64) ([]float64, float64) {
	n := len(y)
	l := 1.0
	for i := range n {
		s := 1.0
		for j := range d {
			s += x[i*d+j] * x[i*d+j]
		}
		l += c * sw[i] * s / 4
	}
	w := make([]float64, d)
	var b float64
	gw := make([]float64, d)
	for range 2_000_000 {
		for j := range gw {
			gw[j] = (1 - r) * w[j]
		}
		var gb float64
		for i := range n {
			z := b
			for j := range d {
				z += w[j] * x[i*d+j]
			}
			res := c * sw[i] * (1/(1+math.Exp(-z)) - y[i])
			for j := range d {
				gw[j] += res * x[i*d+j]
			}
			gb += res
		}
		var change float64
		for j := range d {
			v := w[j] - gw[j]/l
			switch t := r / l; {
			case v > t:
				v -= t
			case v < -t:
				v += t
			default:
				v = 0
			}
			change = max(change, math.Abs(v-w[j]))
			w[j] = v
		}
		b -= gb / l
		change = max(change, math.Abs(gb/l))
		if change < 1e-15 {
			break
		}
	}
	return w, b
}

func TestFitLogRegProxMatchesReference(t *testing.T) {
	ones := []float64{1, 1, 1, 1, 1, 1, 1, 1}
	weights := []float64{0.5, 2, 1, 1, 3, 0.25, 1, 1.5}
	tests := []struct {
		name      string
		c, r      float64
		sw        []float64
		wantZeros int
	}{
		{"l1 C=10", 10, 1, ones, 0},
		{"l1 C=1: one zero", 1, 1, ones, 1},
		{"l1 C=0.2: all zero", 0.2, 1, ones, 2},
		{"elasticnet 0.5 C=2", 2, 0.5, ones, 0},
		{"elasticnet 0.3 C=1, sample weights", 1, 0.3, weights, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fit, err := fitLogRegProx(context.Background(), tinyX, 2, tinyY, tt.sw, tt.c, tt.r, 1e-10, 100)
			if err != nil {
				t.Fatal(err)
			}
			if !fit.converged || fit.gradNorm >= 1e-10 {
				t.Errorf("converged %v after %d iterations, subgradient norm %g; want convergence below 1e-10",
					fit.converged, fit.iterations, fit.gradNorm)
			}
			w, b := proximalGradient(tinyX, 2, tinyY, tt.sw, tt.c, tt.r)
			zeros := 0
			for j := range w {
				if !near(fit.coef[j], w[j], 1e-7) {
					t.Errorf("coef %d: got %.12f, want %.12f", j, fit.coef[j], w[j])
				}
				if (w[j] == 0) != (fit.coef[j] == 0) {
					t.Errorf("coef %d: got %v, want %v: the zeros differ", j, fit.coef[j], w[j])
				}
				if fit.coef[j] == 0 {
					zeros++
				}
			}
			if tt.wantZeros >= 0 && zeros != tt.wantZeros {
				t.Errorf("got %d zero coefficients %v, want %d", zeros, fit.coef, tt.wantZeros)
			}
			if !near(fit.intercept, b, 1e-7) {
				t.Errorf("intercept: got %.12f, want %.12f", fit.intercept, b)
			}

			// KKT: for w_j != 0, C*X_j^T(y-p) - (1-r) w_j = r sign(w_j); for w_j = 0,
			// |C*X_j^T(y-p)| <= r; and the residuals sum to 0.
			var kktB float64
			kkt := make([]float64, 2)
			for i := range tinyY {
				z := fit.intercept + fit.coef[0]*tinyX[2*i] + fit.coef[1]*tinyX[2*i+1]
				res := tt.c * tt.sw[i] * (tinyY[i] - 1/(1+math.Exp(-z)))
				kkt[0] += res * tinyX[2*i]
				kkt[1] += res * tinyX[2*i+1]
				kktB += res
			}
			for j, g := range kkt {
				wj := fit.coef[j]
				switch {
				case wj == 0 && math.Abs(g) > tt.r+1e-9:
					t.Errorf("KKT: coef %d is 0 but |C*X^T(y-p)| = %v > %v", j, math.Abs(g), tt.r)
				case wj != 0 && !near(g-(1-tt.r)*wj, tt.r*math.Copysign(1, wj), 1e-9):
					t.Errorf("KKT: coef %d = %v: C*X^T(y-p) - (1-r)w = %v, want %v", j, wj, g-(1-tt.r)*wj, tt.r*math.Copysign(1, wj))
				}
			}
			if !near(kktB, 0, 1e-9) {
				t.Errorf("KKT: sum of residuals is %g, want 0", kktB)
			}
		})
	}
}

func TestFitLogRegProxDeterministicAndBounded(t *testing.T) {
	ones := []float64{1, 1, 1, 1, 1, 1, 1, 1}
	a, _ := fitLogRegProx(context.Background(), tinyX, 2, tinyY, ones, 3, 0.7, 1e-12, 100)
	b, _ := fitLogRegProx(context.Background(), tinyX, 2, tinyY, ones, 3, 0.7, 1e-12, 100)
	for j := range a.coef {
		if math.Float64bits(a.coef[j]) != math.Float64bits(b.coef[j]) {
			t.Errorf("coef %d: %v then %v", j, a.coef[j], b.coef[j])
		}
	}
	fit, err := fitLogRegProx(context.Background(), tinyX, 2, tinyY, ones, 3, 0.7, 1e-12, 1)
	if err != nil || fit.converged || fit.iterations != 1 {
		t.Errorf("max_iter 1: got converged %v after %d iterations (%v), want not converged after 1", fit.converged, fit.iterations, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fitLogRegProx(ctx, tinyX, 2, tinyY, ones, 3, 0.7, 1e-12, 100); err == nil {
		t.Error("got no error for a cancelled context")
	}
	// A column of zeros gets a zero coefficient, not a division by zero.
	x := []float64{1, 0, -1, 0, 2, 0, -2, 0, 0.5, 0}
	fit, err = fitLogRegProx(context.Background(), x, 2, []float64{1, 0, 1, 0, 0}, []float64{1, 1, 1, 1, 1}, 1, 1, 1e-10, 100)
	if err != nil || !fit.converged || fit.coef[1] != 0 || math.IsNaN(fit.coef[0]) {
		t.Errorf("zero column: got %v converged %v (%v), want a finite fit with coef 1 = 0", fit.coef, fit.converged, err)
	}
}
