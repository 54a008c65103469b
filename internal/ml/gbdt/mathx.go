package gbdt

import "math"

// The exponential and logarithm below are the portable Go implementations of package math
// (from FreeBSD's msun), with every product that feeds an addition wrapped in float64(...)
// (check: GOAMD64=v3 go build -gcflags=-S ./internal/ml/gbdt | grep VFMADD finds nothing).
// Package math may use assembly (with or without FMA, chosen at run time on amd64) and the
// compiler may fuse x*y+z on arm64, ppc64, s390x and amd64 v3, so its results can differ in
// the last bit between machines; these cannot, which is what makes Fit and Predict
// reproducible bit for bit everywhere. The Go spec guarantees that an explicit conversion
// rounds and so prevents fusion.

// exp returns e**x.
func exp(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		log2e = 1.44269504088896338700e+00

		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28) // 2**-28

		p1 = 1.66666666666666657415e-01
		p2 = -2.77777777770155933842e-03
		p3 = 6.61375632143793436117e-05
		p4 = -1.65339022054652515390e-06
		p5 = 4.13813679705723846039e-08
	)
	switch {
	case x != x:
		return x
	case x > overflow:
		return math.Inf(1)
	case x < underflow:
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	var k int
	switch {
	case x < 0:
		k = int(float64(log2e*x) - 0.5)
	case x > 0:
		k = int(float64(log2e*x) + 0.5)
	}
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(float64(k) * ln2Lo)
	r := hi - lo
	t := r * r
	c := r - float64(t*(p1+float64(t*(p2+float64(t*(p3+float64(t*(p4+float64(t*p5)))))))))
	y := 1 - ((lo - float64(r*c)/(2-c)) - hi)
	if k >= -1021 && k <= 1023 {
		return y * math.Float64frombits(uint64(k+1023)<<52) // exact: the result is normal
	}
	return math.Ldexp(y, k)
}

// log returns the natural logarithm of x.
func log(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		l1    = 6.666666666666735130e-01
		l2    = 3.999999999940941908e-01
		l3    = 2.857142874366239149e-01
		l4    = 2.222219843214978396e-01
		l5    = 1.818357216161805012e-01
		l6    = 1.531383769920937332e-01
		l7    = 1.479819860511658591e-01
	)
	switch {
	case x != x || math.IsInf(x, 1):
		return x
	case x < 0:
		return math.NaN()
	case x == 0:
		return math.Inf(-1)
	}
	f1, ki := math.Frexp(x)
	if f1 < math.Sqrt2/2 {
		f1 *= 2
		ki--
	}
	f := f1 - 1
	k := float64(ki)
	s := f / (2 + f)
	s2 := s * s
	s4 := s2 * s2
	t1 := float64(s2 * (l1 + float64(s4*(l3+float64(s4*(l5+float64(s4*l7)))))))
	t2 := float64(s4 * (l2 + float64(s4*(l4+float64(s4*l6)))))
	r := t1 + t2
	hfsq := float64(float64(0.5*f) * f)
	return float64(k*ln2Hi) - ((hfsq - (float64(s*(hfsq+r)) + float64(k*ln2Lo))) - f)
}

// sigmoid returns 1/(1+e**-z) without overflow.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + exp(-z))
	}
	e := exp(z)
	return e / (1 + e)
}

// softplus returns log(1+e**z) without overflow: the log-loss of a row with raw score z is
// softplus(z) for label 0 and softplus(-z) for label 1.
func softplus(z float64) float64 {
	if z > 0 {
		return z + log1pExp(-z)
	}
	return log1pExp(z)
}

// log1pExp returns log(1+e**z) for z <= 0.
func log1pExp(z float64) float64 {
	e := exp(z)
	if e < 1e-8 {
		return e // log(1+e) = e - e²/2 + ..., the rest is below 1e-16 relative
	}
	return log(1 + e)
}
