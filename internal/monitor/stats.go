package monitor

import (
	"math"
	"math/bits"
	"slices"
)

// z95 is the 0.975 quantile of the standard normal distribution: the half-width, in standard
// errors, of a two-sided 95% interval.
const z95 = 1.959963984540054

// Estimate is a metric with its 95% confidence interval.
type Estimate struct {
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// wilson returns the proportion k/n with its 95% Wilson score interval:
//
//	(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
//
// (Wilson 1927; Newcombe 1998, method 3). It returns nil when n is 0.
func wilson(k, n int) *Estimate {
	if n <= 0 {
		return nil
	}
	p := float64(k) / float64(n)
	nf := float64(n)
	z2 := z95 * z95
	d := 1 + z2/nf
	center := (p + z2/(2*nf)) / d
	half := z95 / d * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return &Estimate{Value: p, Lower: max(center-half, 0), Upper: min(center+half, 1)}
}

// aucDeLong returns the ROC AUC of the scores of the positives and of the negatives, both
// sorted ascending, with its 95% interval from DeLong's variance (DeLong, DeLong and
// Clarke-Pearson 1988), computed in one merge over the tied groups as Sun and Xu (2014) do.
//
// The AUC is the Mann-Whitney statistic with ties counting one half, the same number as the
// rank formula with tied ranks averaged that ml.Evaluate uses. DeLong's placement values are
// V10(x) = (#negatives below x + #negatives equal to x / 2) / N for each positive x and
// V01(y) = (#positives above y + #positives equal to y / 2) / P for each negative y; the
// variance is S10/P + S01/N with S10 and S01 their sample variances. The interval is
// AUC ± 1.96·sqrt(variance), clipped to [0, 1]; with fewer than 2 positives or 2 negatives
// the variance is undefined and the interval is [0, 1]. It returns nil without a positive
// or without a negative, where the AUC is undefined.
func aucDeLong(pos, neg []uint64) *Estimate {
	np, nn := len(pos), len(neg)
	if np == 0 || nn == 0 {
		return nil
	}
	P, N := float64(np), float64(nn)
	// Per tied group of value v: a positives and b negatives; negBelow negatives and posBelow
	// positives have smaller values.
	var sum10, sq10, sum01, sq01 float64
	i, j := 0, 0
	for i < np || j < nn {
		var v uint64
		switch {
		case i == np:
			v = neg[j]
		case j == nn:
			v = pos[i]
		default:
			v = min(pos[i], neg[j])
		}
		i0, j0 := i, j
		for i < np && pos[i] == v {
			i++
		}
		for j < nn && neg[j] == v {
			j++
		}
		a, b := float64(i-i0), float64(j-j0)
		if a > 0 {
			x := (float64(j0) + b/2) / N
			sum10 += a * x
			sq10 += a * x * x
		}
		if b > 0 {
			y := (float64(np-i) + a/2) / P
			sum01 += b * y
			sq01 += b * y * y
		}
	}
	auc := sum10 / P
	e := &Estimate{Value: auc, Lower: 0, Upper: 1}
	if np >= 2 && nn >= 2 {
		// Sample variances (ddof 1) of the placement values; both have mean AUC.
		s10 := max((sq10-sum10*sum10/P)/(P-1), 0)
		s01 := max((sq01-sum01*sum01/N)/(N-1), 0)
		se := math.Sqrt(s10/P + s01/N)
		e.Lower = max(auc-z95*se, 0)
		e.Upper = min(auc+z95*se, 1)
	}
	return e
}

// psiEpsilon is the proportion that stands in for an empty bin in the PSI, on either side,
// so that its logarithm is finite: a bin empty in both contributes 0, a bin with share a
// now and none in training contributes (a - ε)·ln(a/ε).
const psiEpsilon = 1e-4

// psi returns the population stability index of the counts of the recent values against the
// training proportions (same length): Σ (a_i - e_i)·ln(a_i/e_i) with a_i = counts[i]/n,
// each share floored at psiEpsilon. It is NaN when the counts sum to 0.
func psi(counts []int64, expected []float64) float64 {
	var n int64
	for _, c := range counts {
		n += c
	}
	if n == 0 {
		return math.NaN()
	}
	var s float64
	for i, c := range counts {
		a := max(float64(c)/float64(n), psiEpsilon)
		e := max(expected[i], psiEpsilon)
		s += (a - e) * math.Log(a/e)
	}
	return s
}

// scoreEdges are the interior edges of the 10 fixed score bins [0, 0.1), ..., [0.9, 1], the
// bins of ml.Evaluate's calibration curve: k/10 is the same float64 as ml's float64(k)/10.
var scoreEdges = [...]float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// scoreBin returns bin(scoreEdges[:], p) for p in [0, 1], without a search: int(10p) is at
// most one off the true bin.
func scoreBin(p float64) int {
	b := min(int(p*10), len(scoreEdges))
	if b > 0 && p < scoreEdges[b-1] {
		b--
	} else if b < len(scoreEdges) && p >= scoreEdges[b] {
		b++
	}
	return b
}

// bin returns the number of edges at or below x: the bin of x when bin i holds
// edges[i-1] <= x < edges[i], with -Inf and +Inf at the ends. NaN goes to bin 0. edges must
// be sorted ascending.
func bin(edges []float64, x float64) int {
	lo, hi := 0, len(edges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x >= edges[m] {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// radixSort sorts keys ascending, using tmp (at least len(keys) long) as working space:
// least-significant-digit first, a byte at a time, the counts of all eight bytes taken in one
// pass and the bytes that every key shares skipped. It is linear in len(keys), which beats a
// comparison sort for the windows' 10^4 keys.
func radixSort(keys, tmp []uint64) {
	n := len(keys)
	if n < 2 {
		return
	}
	if n <= 64 {
		insertionSort(keys)
		return
	}
	var count [8][256]int
	for _, k := range keys {
		for d := range 8 {
			count[d][byte(k>>(8*d))]++
		}
	}
	src, dst := keys, tmp[:n]
	for d := range 8 {
		c := &count[d]
		shift := uint(8 * d)
		if c[byte(src[0]>>shift)] == n {
			continue // every key has this byte
		}
		sum := 0
		for i, k := range c {
			c[i] = sum
			sum += k
		}
		for _, k := range src {
			b := byte(k >> shift)
			dst[c[b]] = k
			c[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

// selectKth partially orders a so that a[k] is the value it would have if a were sorted,
// with no larger value before it and no smaller one after it, and returns a[k]
// (quickselect with a median-of-three pivot; a subrange that keeps failing to shrink is
// sorted instead, bounding the worst case at O(n log n)). k must be in [0, len(a)).
func selectKth(a []uint64, k int) uint64 {
	lo, hi := 0, len(a)-1
	budget := 2 * bits.Len(uint(len(a)))
	for hi-lo > 16 {
		if budget == 0 {
			slices.Sort(a[lo : hi+1])
			return a[k]
		}
		budget--
		// median of three to a[lo]
		m := lo + (hi-lo)/2
		if a[m] < a[lo] {
			a[m], a[lo] = a[lo], a[m]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[m] {
			a[hi], a[m] = a[m], a[hi]
		}
		a[lo], a[m] = a[m], a[lo]
		pivot := a[lo]
		// Hoare partition: a[lo..j] <= pivot <= a[j+1..hi]
		i, j := lo-1, hi+1
		for {
			for i++; a[i] < pivot; i++ {
			}
			for j--; a[j] > pivot; j-- {
			}
			if i >= j {
				break
			}
			a[i], a[j] = a[j], a[i]
		}
		if k <= j {
			hi = j
		} else {
			lo = j + 1
		}
	}
	insertionSort(a[lo : hi+1])
	return a[k]
}

func insertionSort(keys []uint64) {
	for i := 1; i < len(keys); i++ {
		k := keys[i]
		j := i
		for j > 0 && keys[j-1] > k {
			keys[j] = keys[j-1]
			j--
		}
		keys[j] = k
	}
}

// finite returns f as a JSON-safe pointer: nil when f is NaN or infinite.
func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}
