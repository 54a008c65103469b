package gbdt

import (
	"math"
	"slices"
)

// binThresholds returns the bin edges of one feature from its non-missing training values
// (vals, which it sorts in place), as scikit-learn's _BinMapper does: with at most maxBins
// distinct values the midpoints between consecutive ones, otherwise the maxBins-quantiles
// (numpy's "averaged_inverted_cdf") without duplicates. A value x falls in bin i when
// thr[i-1] < x <= thr[i]; there are len(thr)+1 bins of non-missing values.
// buf is scratch space for sorting, as long as vals, or nil.
func binThresholds(vals []float64, buf []uint64, maxBins int) []float64 {
	if len(vals) == 0 {
		return nil
	}
	sortFloats(vals, buf)
	distinct := 1
	for i := 1; i < len(vals); i++ {
		if vals[i] != vals[i-1] {
			distinct++
		}
	}
	if distinct == 1 {
		return nil
	}
	var thr []float64
	if distinct <= maxBins {
		thr = make([]float64, 0, distinct-1)
		for i := 1; i < len(vals); i++ {
			if vals[i] != vals[i-1] {
				thr = append(thr, midpoint(vals[i-1], vals[i]))
			}
		}
	} else {
		// Quantile k/maxBins, k = 1..maxBins-1, of n sorted values: with m = n*k/maxBins,
		// the mean of vals[m-1] and vals[m] when m is a whole number, else vals[floor(m)].
		// Integer arithmetic decides "whole number" exactly.
		n := len(vals)
		thr = make([]float64, 0, maxBins-1)
		for k := 1; k < maxBins; k++ {
			num := n * k
			m := num / maxBins
			var q float64
			if num%maxBins == 0 {
				q = midpoint(vals[m-1], vals[m])
			} else {
				q = vals[m]
			}
			if len(thr) == 0 || q != thr[len(thr)-1] {
				thr = append(thr, q)
			}
		}
	}
	// +Inf thresholds are reserved for the split that sends only missing values right.
	for i, t := range thr {
		if t > math.MaxFloat64 {
			thr[i] = math.MaxFloat64
		}
	}
	return thr
}

// midpoint returns (a+b)/2 without overflow.
func midpoint(a, b float64) float64 {
	m := (a + b) * 0.5
	if math.IsInf(m, 0) {
		m = float64(a*0.5) + float64(b*0.5)
	}
	return m
}

// binOf returns the bin of a non-missing value: the number of thresholds below x. The
// binary search has no data-dependent branch.
func binOf(thr []float64, x float64) int {
	if len(thr) == 0 {
		return 0
	}
	base, n := 0, len(thr)
	for n > 1 {
		half := n / 2
		var below int
		if thr[base+half-1] < x {
			below = 1
		}
		base += below * half
		n -= half
	}
	if thr[base] < x {
		base++
	}
	return base
}

// sortFloats sorts vals, which hold no NaN, in increasing order: with a radix sort when
// they are many and buf (twice as long as vals) is given, else with slices.Sort.
func sortFloats(vals []float64, buf []uint64) {
	n := len(vals)
	if n < 2048 || len(buf) < 2*n {
		slices.Sort(vals)
		return
	}
	// Map each value to a key whose unsigned order is the numeric order: flip every bit of
	// a negative number, only the sign bit of a positive one. Then sort the keys by bytes,
	// least significant first, skipping bytes that all keys share.
	src, dst := buf[:n], buf[n:2*n]
	for i, v := range vals {
		k := math.Float64bits(v)
		if k>>63 == 1 {
			src[i] = ^k
		} else {
			src[i] = k | 1<<63
		}
	}
	var count [256]int
	for shift := uint(0); shift < 64; shift += 8 {
		clear(count[:])
		for _, k := range src {
			count[byte(k>>shift)]++
		}
		if count[byte(src[0]>>shift)] == n {
			continue
		}
		pos := 0
		for b, c := range count {
			count[b] = pos
			pos += c
		}
		for _, k := range src {
			b := byte(k >> shift)
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	for i, k := range src {
		if k>>63 == 1 {
			k &^= 1 << 63
		} else {
			k = ^k
		}
		vals[i] = math.Float64frombits(k)
	}
}
