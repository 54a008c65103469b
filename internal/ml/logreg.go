package ml

import (
	"context"
	"fmt"
	"math"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// logRegFit is the outcome of fitting a logistic regression.
type logRegFit struct {
	coef       []float64
	intercept  float64
	converged  bool
	iterations int
	gradNorm   float64
}

// fitLogReg minimises 0.5*||w||^2 + C * sum_i sw_i * logloss_i over the weights w and an
// unpenalised intercept, as scikit-learn's LogisticRegression(penalty="l2", C=C) does. x holds
// the rows (len(y) rows of d values, row-major), y the labels 0 or 1, sw the sample weights.
//
// It runs Newton's method from zero: each step solves the Hessian system by Cholesky and is
// shortened by backtracking until the objective decreases enough. It stops when the Euclidean
// norm of the gradient is below tol, or after maxIter steps (converged false).
func fitLogReg(ctx context.Context, x []float64, d int, y, sw []float64, c, tol float64, maxIter int) (logRegFit, error) {
	dim := d + 1 // the weights, then the intercept
	theta := make([]float64, dim)
	trial := make([]float64, dim)
	grad := make([]float64, dim)
	step := make([]float64, dim)
	hess := make([]float64, dim*dim)
	z := make([]float64, len(y))

	var fit logRegFit
	f := logRegObjective(x, d, y, sw, c, theta, z)
	for {
		logRegGradHess(x, d, y, sw, c, theta, z, grad, hess)
		fit.gradNorm = math.Sqrt(dot(grad, grad))
		if fit.gradNorm < tol {
			fit.converged = true
			break
		}
		if fit.iterations >= maxIter {
			break
		}
		if err := ctx.Err(); err != nil {
			return fit, fmt.Errorf("logreg: %w", err)
		}
		if !newtonStep(hess, grad, step) {
			return fit, pulse.Errorf(pulse.EINTERNAL, "logreg: the Hessian is not positive definite at iteration %d", fit.iterations)
		}
		slope := dot(grad, step)
		if !(slope < 0) {
			break // no descent direction left: numerically at the minimum
		}
		// Backtracking (Armijo). The slack of 1e-12*|f| lets the full Newton step through
		// near the minimum, where f no longer changes beyond its rounding error.
		accepted := false
		for t := 1.0; t > 1e-12; t /= 2 {
			for j := range theta {
				trial[j] = theta[j] + t*step[j]
			}
			ft := logRegObjective(x, d, y, sw, c, trial, z)
			if ft <= f+1e-4*t*slope+1e-12*math.Abs(f) {
				copy(theta, trial)
				f = ft
				accepted = true
				break
			}
		}
		if !accepted {
			break
		}
		fit.iterations++ // z holds the scores of the accepted trial, now theta
	}
	fit.coef = theta[:d:d]
	fit.intercept = theta[d]
	return fit, nil
}

// logRegObjective returns the objective at theta and leaves the scores x*w+b in z.
func logRegObjective(x []float64, d int, y, sw []float64, c float64, theta, z []float64) float64 {
	w, b := theta[:d], theta[d]
	f := 0.5 * dot(w, w)
	var loss float64
	for i := range y {
		zi := linear(w, b, x[i*d:(i+1)*d])
		z[i] = zi
		loss += sw[i] * (softplus(zi) - y[i]*zi)
	}
	return f + c*loss
}

// logRegGradHess fills the gradient and the Hessian (dim x dim, row-major, both triangles) at
// theta, given its scores z.
func logRegGradHess(x []float64, d int, y, sw []float64, c float64, theta, z, grad, hess []float64) {
	dim := d + 1
	copy(grad, theta)
	grad[d] = 0
	clear(hess)
	for j := range d {
		hess[j*dim+j] = 1
	}
	for i := range y {
		xi := x[i*d : (i+1)*d]
		p := sigmoid(z[i])
		r := c * sw[i] * (p - y[i])
		h := c * sw[i] * p * (1 - p)
		for j, v := range xi {
			grad[j] += r * v
			hv := h * v
			row := hess[j*dim : j*dim+j+1]
			for k := range row[:j] {
				row[k] += hv * xi[k]
			}
			row[j] += hv * v
			hess[d*dim+j] += hv
		}
		grad[d] += r
		hess[d*dim+d] += h
	}
	for j := range dim {
		for k := range j {
			hess[k*dim+j] = hess[j*dim+k]
		}
	}
}

// newtonStep solves hess * step = -grad by Cholesky, adding a growing multiple of the identity
// when hess is not numerically positive definite. hess is overwritten.
func newtonStep(hess, grad, step []float64) bool {
	dim := len(grad)
	orig := make([]float64, len(hess))
	copy(orig, hess)
	var maxDiag float64
	for j := range dim {
		maxDiag = max(maxDiag, hess[j*dim+j])
	}
	jitter := 0.0
	for range 12 {
		copy(hess, orig)
		for j := range dim {
			hess[j*dim+j] += jitter
		}
		if cholesky(hess, dim) {
			for j := range grad {
				step[j] = -grad[j]
			}
			choleskySolve(hess, dim, step)
			return true
		}
		if jitter == 0 {
			jitter = 1e-12 * max(maxDiag, 1)
		} else {
			jitter *= 10
		}
	}
	return false
}

// cholesky factors the symmetric positive definite a (n x n, row-major) into L*L^T, leaving L
// in the lower triangle. It reports false when a is not positive definite.
func cholesky(a []float64, n int) bool {
	for j := range n {
		s := a[j*n+j]
		for k := range j {
			s -= a[j*n+k] * a[j*n+k]
		}
		if !(s > 0) {
			return false
		}
		ljj := math.Sqrt(s)
		a[j*n+j] = ljj
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := range j {
				s -= a[i*n+k] * a[j*n+k]
			}
			a[i*n+j] = s / ljj
		}
	}
	return true
}

// choleskySolve solves L*L^T*v = b in place, with L from cholesky.
func choleskySolve(l []float64, n int, b []float64) {
	for i := range n {
		s := b[i]
		for k := range i {
			s -= l[i*n+k] * b[k]
		}
		b[i] = s / l[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for k := i + 1; k < n; k++ {
			s -= l[k*n+i] * b[k]
		}
		b[i] = s / l[i*n+i]
	}
}

func dot(a, b []float64) float64 {
	var s float64
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// linear returns b + w.x, summed in index order (Model.score sums the same way).
func linear(w []float64, b float64, x []float64) float64 {
	x = x[:len(w)]
	var s float64
	for j, v := range w {
		s += v * x[j]
	}
	return s + b
}

// sigmoid is the logistic function, computed without overflow.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softplus is log(1 + e^z), computed without overflow.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}
