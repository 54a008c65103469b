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

// fitLogRegParams fits a logistic regression with the penalty of p: Newton's method with
// Cholesky for a pure L2 penalty, proximal Newton otherwise.
func fitLogRegParams(ctx context.Context, x []float64, d int, y, sw []float64, p logRegParams) (logRegFit, error) {
	if p.l1Ratio == 0 {
		return fitLogReg(ctx, x, d, y, sw, p.c, p.tol, p.maxIter)
	}
	return fitLogRegProx(ctx, x, d, y, sw, p.c, p.l1Ratio, p.tol, p.maxIter)
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
	f := logRegObjective(x, d, y, sw, c, 1, 0, theta, z)
	for {
		logRegGradHess(x, d, y, sw, c, 1, theta, z, grad, hess)
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
			ft := logRegObjective(x, d, y, sw, c, 1, 0, trial, z)
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

// maxSweeps bounds the coordinate-descent sweeps of one proximal Newton step.
const maxSweeps = 1000

// fitLogRegProx minimises
//
//	C * sum_i sw_i * logloss_i + (1-r)/2 * ||w||^2 + r * ||w||_1
//
// with r = l1Ratio in (0, 1] over the weights and an unpenalised intercept, scikit-learn's
// objective for penalty "l1" (r = 1) and "elasticnet".
//
// It is proximal Newton (as newGLMNET): each outer iteration takes the quadratic model of the
// smooth part (the loss and the L2 term) at the current weights, minimises the model plus the
// L1 term by cyclic coordinate descent, whose soft-thresholding update gives exact zeros, and
// moves along the resulting direction with a backtracking line search on the full objective
// (Armijo condition on the predicted decrease, Tseng and Yun 2009). Coordinate descent stops
// when no coordinate's update lowers the model by more than 1e-3 times the squared
// subgradient norm, or after maxSweeps sweeps, so the inner solve tightens as the fit
// converges. The fit stops when the Euclidean norm of the minimum-norm subgradient (zero
// exactly at the minimum) is below tol, or after maxIter outer iterations. Every loop runs in
// index order: the result is deterministic.
func fitLogRegProx(ctx context.Context, x []float64, d int, y, sw []float64, c, l1Ratio, tol float64, maxIter int) (logRegFit, error) {
	dim := d + 1
	l1, l2 := l1Ratio, 1-l1Ratio
	theta := make([]float64, dim)
	trial := make([]float64, dim)
	grad := make([]float64, dim)
	delta := make([]float64, dim)
	hd := make([]float64, dim) // hess * delta
	hess := make([]float64, dim*dim)
	z := make([]float64, len(y))

	var fit logRegFit
	f := logRegObjective(x, d, y, sw, c, l2, l1, theta, z)
	for {
		logRegGradHess(x, d, y, sw, c, l2, theta, z, grad, hess)
		fit.gradNorm = subgradientNorm(grad, theta, d, l1)
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

		// Coordinate descent on q(delta) = grad.delta + delta.hess.delta/2 + l1*||w+delta||_1.
		clear(delta)
		clear(hd)
		innerTol := 1e-3 * fit.gradNorm * fit.gradNorm
		for range maxSweeps {
			var biggest float64
			for j := range dim {
				hjj := hess[j*dim+j]
				if !(hjj > 0) {
					continue // a column of zeros: its gradient is zero too
				}
				u := theta[j] + delta[j]
				r := grad[j] + hd[j]
				v := u - r/hjj
				if j < d {
					v = softThreshold(hjj*u-r, l1) / hjj
				}
				step := v - u
				if step == 0 {
					continue
				}
				delta[j] += step
				col := hess[j*dim : (j+1)*dim] // symmetric: row j is column j
				for k, h := range col {
					hd[k] += step * h
				}
				biggest = max(biggest, hjj*step*step)
			}
			if biggest <= innerTol {
				break
			}
		}

		// The predicted decrease of the model's linear part plus the L1 change.
		decrease := dot(grad, delta)
		for j := range d {
			decrease += l1 * (math.Abs(theta[j]+delta[j]) - math.Abs(theta[j]))
		}
		if !(decrease < 0) {
			break // no descent direction left: numerically at the minimum
		}
		accepted := false
		for t := 1.0; t > 1e-12; t /= 2 {
			for j := range theta {
				trial[j] = theta[j] + t*delta[j]
			}
			ft := logRegObjective(x, d, y, sw, c, l2, l1, trial, z)
			if ft <= f+1e-4*t*decrease+1e-12*math.Abs(f) {
				copy(theta, trial)
				f = ft
				accepted = true
				break
			}
		}
		if !accepted {
			break
		}
		fit.iterations++
	}
	fit.coef = theta[:d:d]
	fit.intercept = theta[d]
	return fit, nil
}

// softThreshold is sign(a) * max(|a| - l, 0).
func softThreshold(a, l float64) float64 {
	switch {
	case a > l:
		return a - l
	case a < -l:
		return a + l
	}
	return 0
}

// subgradientNorm returns the Euclidean norm of the minimum-norm subgradient of the smooth
// part (gradient grad) plus l1 * ||w||_1 at theta; the intercept (index d) is not penalised.
func subgradientNorm(grad, theta []float64, d int, l1 float64) float64 {
	var s float64
	for j, g := range grad {
		switch {
		case j == d:
		case theta[j] > 0:
			g += l1
		case theta[j] < 0:
			g -= l1
		default:
			g = softThreshold(g, l1)
		}
		s += g * g
	}
	return math.Sqrt(s)
}

// logRegObjective returns the objective at theta, C * loss + l2/2 * ||w||^2 + l1 * ||w||_1,
// and leaves the scores x*w+b in z.
func logRegObjective(x []float64, d int, y, sw []float64, c, l2, l1 float64, theta, z []float64) float64 {
	w, b := theta[:d], theta[d]
	f := 0.5 * l2 * dot(w, w)
	if l1 != 0 {
		var a float64
		for _, v := range w {
			a += math.Abs(v)
		}
		f += l1 * a
	}
	var loss float64
	for i := range y {
		zi := linear(w, b, x[i*d:(i+1)*d])
		z[i] = zi
		loss += sw[i] * (softplus(zi) - y[i]*zi)
	}
	return f + c*loss
}

// logRegGradHess fills the gradient and the Hessian (dim x dim, row-major, both triangles) of
// C * loss + l2/2 * ||w||^2 at theta, given its scores z.
func logRegGradHess(x []float64, d int, y, sw []float64, c, l2 float64, theta, z, grad, hess []float64) {
	dim := d + 1
	for j := range d {
		grad[j] = l2 * theta[j]
	}
	grad[d] = 0
	clear(hess)
	for j := range d {
		hess[j*dim+j] = l2
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

// linear returns b + w.x, summed in index order.
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
