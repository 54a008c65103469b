package online

import (
	"slices"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// bins is the resolution of the cumulative ROC AUC: scores are binned in 1/bins.
const bins = 1024

// prequential tracks test-then-train metrics: each record's probability, scored before it is
// learnt, against its label. The window is a ring of the last records; the cumulative AUC
// comes from binned scores so that memory stays bounded. add allocates nothing.
type prequential struct {
	threshold float64
	p         []float64 // ring of window probabilities
	y         []uint8   // and labels
	next, n   int       // next slot, records in the ring
	correct   int       // correct predictions in the ring

	total, totalCorrect int64
	pos, neg            [bins]int64

	pairs []scored // scratch for the window AUC
}

type scored struct {
	p float64
	y uint8
}

func newPrequential(window int, threshold float64) *prequential {
	return &prequential{
		threshold: threshold,
		p:         make([]float64, window),
		y:         make([]uint8, window),
		pairs:     make([]scored, 0, window),
	}
}

func (q *prequential) hit(p float64, y int) bool {
	return (p >= q.threshold) == (y == 1)
}

// add records one scored, labelled record.
func (q *prequential) add(p float64, y int) {
	if q.n == len(q.p) {
		if q.hit(q.p[q.next], int(q.y[q.next])) {
			q.correct--
		}
	} else {
		q.n++
	}
	q.p[q.next], q.y[q.next] = p, uint8(y)
	q.next = (q.next + 1) % len(q.p)
	hit := q.hit(p, y)
	if hit {
		q.correct++
		q.totalCorrect++
	}
	q.total++
	b := int(p * bins)
	b = min(max(b, 0), bins-1)
	if y == 1 {
		q.pos[b]++
	} else {
		q.neg[b]++
	}
}

// metrics returns the window's and the cumulative metrics. The window AUC sorts the window:
// call it at most every second or so, not per record.
func (q *prequential) metrics() pulse.Prequential {
	m := pulse.Prequential{Window: q.n}
	if q.n > 0 {
		m.Accuracy = float64(q.correct) / float64(q.n)
		q.pairs = q.pairs[:0]
		for i := range q.n {
			q.pairs = append(q.pairs, scored{q.p[i], q.y[i]})
		}
		m.ROCAUC = rankAUC(q.pairs)
	}
	if q.total > 0 {
		m.CumulativeAccuracy = float64(q.totalCorrect) / float64(q.total)
		var pos, neg, below float64
		var area float64
		for b := range bins {
			p, n := float64(q.pos[b]), float64(q.neg[b])
			area += p * (below + n/2)
			below += n
			pos += p
			neg += n
		}
		if pos > 0 && neg > 0 {
			m.CumulativeROCAUC = area / (pos * neg)
		}
	}
	return m
}

// rankAUC returns the ROC AUC of the pairs (the Mann-Whitney statistic, ties counted half),
// or 0 when one class is absent. It sorts pairs.
func rankAUC(pairs []scored) float64 {
	slices.SortFunc(pairs, func(a, b scored) int {
		switch {
		case a.p < b.p:
			return -1
		case a.p > b.p:
			return 1
		}
		return 0
	})
	var pos, neg, rankSum float64
	for i := 0; i < len(pairs); {
		j := i
		var npos float64
		for j < len(pairs) && pairs[j].p == pairs[i].p {
			npos += float64(pairs[j].y)
			j++
		}
		// ranks i+1 .. j share the mean rank
		rankSum += npos * (float64(i+1) + float64(j)) / 2
		pos += npos
		neg += float64(j-i) - npos
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}
