package batch

import (
	"math"
	"math/bits"
	"strconv"
)

// appendProbability appends p as strconv.AppendFloat(dst, p, 'g', -1, 64) does: the shortest
// decimal that reads back as p, the one nearest p when there are several. Probabilities in
// [1e-4, 1), nearly all of them, take a fast path written for that range: "0." and digits. The
// decimal of n significant digits nearest p is found exactly with 128-bit integer arithmetic,
// and it reads back as p when it lies strictly inside p's rounding interval (half an ulp on
// each side). A nearer grid holds the coarser one, so the shortest n is found by trying 16,
// then fewer or 17. Rare cases (a power of two, whose interval is lopsided; a decimal exactly on
// the interval's edge or halfway between two; a carry into one more digit) go to strconv.
func appendProbability(dst []byte, p float64) []byte {
	if !(p >= 1e-4 && p < 1) {
		return strconv.AppendFloat(dst, p, 'g', -1, 64)
	}
	b := math.Float64bits(p)
	m := b&(1<<52-1) | 1<<52 // p = m × 2^-s
	s := uint(1075 - b>>52)  // 53 ≤ s ≤ 66 in this range
	if m == 1<<52 {
		return strconv.AppendFloat(dst, p, 'g', -1, 64)
	}
	// p = 0.d... × 10^(e+1): 10^e ≤ p < 10^(e+1). The float64 nearest 10^e is above it for
	// e = -1..-4, so no p equals it; nearest checks the digit count anyway.
	e := -4
	switch {
	case p >= 0.1:
		e = -1
	case p >= 0.01:
		e = -2
	case p >= 0.001:
		e = -3
	}
	n := 16
	q, fit := nearest(m, s, n, e)
	switch fit {
	case fits:
		for n > 1 {
			shorter, fit := nearest(m, s, n-1, e)
			if fit == unsure {
				return strconv.AppendFloat(dst, p, 'g', -1, 64)
			}
			if fit == noFit {
				break
			}
			q, n = shorter, n-1
		}
	case noFit:
		n = 17
		if q, fit = nearest(m, s, n, e); fit != fits {
			return strconv.AppendFloat(dst, p, 'g', -1, 64)
		}
	default:
		return strconv.AppendFloat(dst, p, 'g', -1, 64)
	}
	dst = append(dst, '0', '.')
	for range -e - 1 {
		dst = append(dst, '0')
	}
	return appendDigits(dst, q, n)
}

// fit says whether a decimal reads back as the float64 it was made from.
type fit int8

const (
	noFit  fit = iota // outside the rounding interval
	fits              // strictly inside
	unsure            // on its edge, halfway between two decimals, or not of n digits
)

// nearest returns the decimal of n significant digits nearest m × 2^-s (whose decimal
// exponent is e) as the integer q of its digits, and whether it reads back as m × 2^-s.
func nearest(m uint64, s uint, n, e int) (q uint64, _ fit) {
	k := n - 1 - e // q ≈ m × 2^-s × 10^k; k ≤ 20
	// prod = m × 10^k, below 2^53 × 10^20 < 2^120
	var hi, lo uint64
	if k > 19 {
		hi, lo = bits.Mul64(m*pow10u[k-19], pow10u[19])
	} else {
		hi, lo = bits.Mul64(m, pow10u[k])
	}
	// q = prod >> s, r = prod mod 2^s
	var rhi, rlo uint64
	if s >= 64 {
		q = hi >> (s - 64)
		rhi, rlo = hi&(1<<(s-64)-1), lo
	} else {
		q = hi<<(64-s) | lo>>s
		rhi, rlo = 0, lo&(1<<s-1)
	}
	// d is the distance from prod to q×2^s, rounding q to nearest: min(r, 2^s - r).
	halfHi, halfLo := uint64(0), uint64(1)<<(s-1)
	if s-1 >= 64 {
		halfHi, halfLo = 1<<(s-65), 0
	}
	switch cmp128(rhi, rlo, halfHi, halfLo) {
	case 0:
		return 0, unsure // halfway
	case 1:
		q++
		// d = 2^s - r
		fullHi, fullLo := uint64(0), uint64(1)<<s
		if s >= 64 {
			fullHi, fullLo = 1<<(s-64), 0
		}
		var borrow uint64
		rlo, borrow = bits.Sub64(fullLo, rlo, 0)
		rhi, _ = bits.Sub64(fullHi, rhi, borrow)
	}
	if q < pow10u[n-1] || q >= pow10u[n] {
		return q, unsure
	}
	// Inside the interval: d < half an ulp = 2^(s-1) / 2^s of p's unit, that is, scaled by
	// 10^k × 2^s: 2d < 10^k.
	var thi, tlo uint64
	if k > 19 {
		thi, tlo = bits.Mul64(pow10u[k-19], pow10u[19])
	} else {
		tlo = pow10u[k]
	}
	dhi, dlo := rhi<<1|rlo>>63, rlo<<1
	switch cmp128(dhi, dlo, thi, tlo) {
	case -1:
		return q, fits
	case 0:
		return q, unsure
	}
	return q, noFit
}

// cmp128 compares the 128-bit integers ahi:alo and bhi:blo.
func cmp128(ahi, alo, bhi, blo uint64) int {
	switch {
	case ahi != bhi:
		if ahi < bhi {
			return -1
		}
		return 1
	case alo < blo:
		return -1
	case alo > blo:
		return 1
	}
	return 0
}

// pow10u are the powers of ten that a uint64 holds.
var pow10u = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
	1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// digitPairs are "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// appendDigits appends the n decimal digits of q (q < 10^n, leading zeros written).
func appendDigits(dst []byte, q uint64, n int) []byte {
	var buf [20]byte
	i := n
	for i >= 2 {
		r := q % 100
		q /= 100
		i -= 2
		buf[i], buf[i+1] = digitPairs[2*r], digitPairs[2*r+1]
	}
	if i == 1 {
		buf[0] = byte('0' + q)
	}
	return append(dst, buf[:n]...)
}
