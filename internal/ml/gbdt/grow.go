package gbdt

import (
	"math"
	"sync"
	"sync/atomic"
)

// hbin is one histogram bin: the sums of gradients and hessians of the rows in it, and their
// count.
type hbin struct {
	g, h float64
	n    int
}

// gradHess is the gradient and hessian of the log-loss of one row.
type gradHess struct{ g, h float64 }

// split is the best split found for a node.
type split struct {
	gain        float64
	feature     int
	bin         int  // non-missing bins 0..bin go left
	missingLeft bool // where missing values (and NaN at prediction) go
	gl, hl      float64
	gr, hr      float64
	nl, nr      int
}

// gnode is a node of the tree being grown. Its rows are trainer.rows[start:end].
type gnode struct {
	start, end  int
	depth       int
	g, h        float64 // sums of gradients and hessians of its rows
	hist        []hbin  // kept while the node may still be split
	split       split
	left, right int     // child node ids; -1 for a leaf
	value       float64 // leaf value, set by emit
}

// tree is one grown tree in the Ensemble's layout, with child references local to the tree.
type tree struct {
	feature     []int32
	threshold   []float64
	left, right []int32
	defaultLeft []bool
	gain        []float64
	leaf        []float64
}

// leafValue returns the value of the leaf that row x falls in.
func (t *tree) leafValue(x []float64) float64 {
	i := int32(-1)
	if len(t.feature) > 0 {
		i = 0
	}
	for i >= 0 {
		v := x[t.feature[i]]
		if v <= t.threshold[i] || (v != v && t.defaultLeft[i]) {
			i = t.left[i]
		} else {
			i = t.right[i]
		}
	}
	return t.leaf[^i]
}

// Work is shared between goroutines only where the result cannot depend on how: each
// feature's histogram is summed by one goroutine in row order, gradients are computed row by
// row, and a stable partition is unique.
const (
	// parallelWork is the number of (row, feature) pairs above which a histogram is built
	// by several goroutines, one feature each at a time.
	parallelWork = 1 << 16
	// chunkRows is the number of rows per piece of work in partitions and gradients.
	chunkRows = 1 << 12
)

// grow grows one tree on the rows in sample (ascending) and the features in t.active, leaving
// the nodes in t.nodes and the rows of each leaf in its range of t.rows.
func (t *trainer) grow(sample []int32) *tree {
	rows := t.rows[:len(sample)]
	copy(rows, sample)
	var g, h float64
	for _, r := range rows {
		g += t.gh[r].g
		h += t.gh[r].h
	}
	t.nodes = append(t.nodes[:0], gnode{start: 0, end: len(rows), g: g, h: h, left: -1, right: -1})
	t.heap = t.heap[:0]
	if t.splittable(&t.nodes[0]) {
		t.nodes[0].hist = t.allocHist()
		t.buildHist(t.nodes[0].hist, rows)
		t.consider(0)
	}
	leaves := 1
	for len(t.heap) > 0 && leaves < t.p.MaxLeaves {
		id := t.pop()
		leaves++
		t.splitNode(id, leaves < t.p.MaxLeaves)
	}
	for _, id := range t.heap {
		t.freeHist(id)
	}
	t.heap = t.heap[:0]
	return t.emit()
}

// splittable reports whether a node may be split at all.
func (t *trainer) splittable(nd *gnode) bool {
	return nd.end-nd.start >= 2*t.p.MinSamplesLeaf && (t.p.MaxDepth == 0 || nd.depth < t.p.MaxDepth)
}

// consider finds the best split of node id and queues the node if the split gains, else
// releases its histogram.
func (t *trainer) consider(id int) {
	nd := &t.nodes[id]
	nd.split = t.findSplit(nd)
	if nd.split.gain > 0 {
		t.push(id)
	} else {
		t.freeHist(id)
	}
}

// splitNode splits node id by its split into two new leaves; if more splits may follow, it
// builds the children's histograms (the smaller child's from its rows, the larger's by
// subtraction from the parent's) and queues their best splits.
func (t *trainer) splitNode(id int, more bool) {
	nd := t.nodes[id]
	s := nd.split
	t.partition(nd.start, nd.end, s)
	mid := nd.start + s.nl
	l, r := len(t.nodes), len(t.nodes)+1
	t.nodes[id].left, t.nodes[id].right, t.nodes[id].hist = l, r, nil
	t.nodes = append(t.nodes,
		gnode{start: nd.start, end: mid, depth: nd.depth + 1, g: s.gl, h: s.hl, left: -1, right: -1},
		gnode{start: mid, end: nd.end, depth: nd.depth + 1, g: s.gr, h: s.hr, left: -1, right: -1})
	okL, okR := t.splittable(&t.nodes[l]), t.splittable(&t.nodes[r])
	if !more || (!okL && !okR) {
		t.pool = append(t.pool, nd.hist)
		return
	}
	small, large := r, l
	if s.nl < s.nr {
		small, large = l, r
	}
	hs := t.allocHist()
	t.buildHist(hs, t.rows[t.nodes[small].start:t.nodes[small].end])
	hp := nd.hist // becomes the larger child's
	for _, f := range t.active {
		a, b := t.off[f], t.off[f]+t.nbins[f]+1
		big, sm := hp[a:b], hs[a:b]
		for i := range big {
			big[i].g -= sm[i].g
			big[i].h -= sm[i].h
			big[i].n -= sm[i].n
		}
	}
	t.nodes[small].hist, t.nodes[large].hist = hs, hp
	for _, c := range [2]int{l, r} {
		if t.splittable(&t.nodes[c]) {
			t.consider(c)
		} else {
			t.freeHist(c)
		}
	}
}

// partition reorders rows[start:end] stably so that the rows going left by s come first.
// Large nodes are partitioned in chunks on several goroutines; a stable partition is
// unique, so the result does not depend on how the work is shared.
func (t *trainer) partition(start, end int, s split) {
	rows, scratch := t.rows[start:end], t.scratch[start:end]
	n := len(rows)
	chunks := (n + chunkRows - 1) / chunkRows
	if chunks < 2 || t.workers < 2 {
		t.partitionChunk(rows, scratch, s)
		copy(rows, scratch)
		return
	}
	lefts := make([]int, chunks)
	parallel(t.workers, chunks, func(_, c int) {
		lo, hi := c*chunkRows, min(n, (c+1)*chunkRows)
		lefts[c] = t.partitionChunk(rows[lo:hi], scratch[lo:hi], s)
	})
	dst := make([]int, chunks) // where chunk c's left rows go; its right rows go to s.nl + lo - dst[c]
	for c := 1; c < chunks; c++ {
		dst[c] = dst[c-1] + lefts[c-1]
	}
	parallel(t.workers, chunks, func(_, c int) {
		lo, hi := c*chunkRows, min(n, (c+1)*chunkRows)
		copy(rows[dst[c]:], scratch[lo:lo+lefts[c]])
		copy(rows[s.nl+lo-dst[c]:], scratch[lo+lefts[c]:hi])
	})
}

// partitionChunk writes src's rows going left by s, then those going right, each in their
// order, to dst, and returns the number going left. It overwrites src.
func (t *trainer) partitionChunk(src, dst []int32, s split) int {
	col := t.codes[s.feature*t.n : (s.feature+1)*t.n]
	missing := t.nbins[s.feature]
	dst = dst[:len(src)]
	l, k := 0, 0
	for _, r := range src {
		c := int(col[r])
		left := c <= s.bin
		if c == missing {
			left = s.missingLeft
		}
		// Branch-free: write r to both places, advance one (l, k <= the index being read).
		dst[l] = r
		src[k] = r
		var inc int
		if left {
			inc = 1
		}
		l += inc
		k += 1 - inc
	}
	copy(dst[l:], src[:k])
	return l
}

// buildHist fills the bins of the active features of hist from rows.
func (t *trainer) buildHist(hist []hbin, rows []int32) {
	ordered := t.ordered[:len(rows)]
	if len(rows)*len(t.active) < parallelWork {
		for i, r := range rows {
			ordered[i] = t.gh[r]
		}
		for _, f := range t.active {
			t.featureHist(hist, f, rows, ordered)
		}
		return
	}
	parallel(t.workers, (len(rows)+chunkRows-1)/chunkRows, func(_, c int) {
		lo, hi := c*chunkRows, min(len(rows), (c+1)*chunkRows)
		for i, r := range rows[lo:hi] {
			ordered[lo+i] = t.gh[r]
		}
	})
	parallel(t.workers, len(t.active), func(_, j int) {
		t.featureHist(hist, t.active[j], rows, ordered)
	})
}

// parallel calls fn(w, i) for i in [0, k) on up to workers goroutines (the caller's
// included), w being the goroutine's number (< workers). Each call must only write what
// belongs to i (or to w).
func parallel(workers, k int, fn func(w, i int)) {
	workers = min(workers, k)
	if workers < 2 {
		for i := range k {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	work := func(w int) {
		for {
			i := int(next.Add(1)) - 1
			if i >= k {
				return
			}
			fn(w, i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { work(w) })
	}
	work(0) // the caller is worker 0
	wg.Wait()
}

// featureHist fills feature f's bins of hist; ordered holds the gradients and hessians of
// rows, in the same order.
func (t *trainer) featureHist(hist []hbin, f int, rows []int32, ordered []gradHess) {
	hf := hist[t.off[f] : t.off[f]+t.nbins[f]+1]
	clear(hf)
	col := t.codes[f*t.n : (f+1)*t.n]
	ordered = ordered[:len(rows)]
	if len(rows) == t.n { // all rows, in order
		col = col[:len(ordered)]
		for i, c := range col {
			b := &hf[c]
			b.g += ordered[i].g
			b.h += ordered[i].h
			b.n++
		}
		return
	}
	for i, r := range rows {
		b := &hf[col[r]]
		b.g += ordered[i].g
		b.h += ordered[i].h
		b.n++
	}
}

// findSplit returns the best split of a node over the active features, with gain 0 if none
// gains. For each feature it scans the non-missing bins from left to right, sending the
// node's missing values right and then left; a split that sends every non-missing value left
// and the missing ones right (threshold +Inf) is among them. Ties go to the lowest feature,
// then the lowest bin, then missing-right. When the node has no missing values of the
// feature, NaN at prediction goes to the child with more training rows (right on a tie).
func (t *trainer) findSplit(nd *gnode) split {
	msl, mhl, l2 := t.p.MinSamplesLeaf, t.p.MinHessianLeaf, t.p.L2
	n := nd.end - nd.start
	g, h := nd.g, nd.h
	parent := score(g, h, l2)
	best := split{}
	sawMissing := false
	for _, f := range t.active {
		nb := t.nbins[f]
		hf := nd.hist[t.off[f] : t.off[f]+nb+1]
		miss := hf[nb]
		// Missing right: left holds bins 0..b; with missing values, b = nb-1 (every
		// non-missing value left) is a split too.
		end := nb - 1
		if miss.n > 0 {
			end = nb
		}
		var gl, hl float64
		nl := 0
		for b := 0; b < end; b++ {
			e := hf[b]
			if e.n == 0 {
				continue // same partition as the previous bin, which wins the tie
			}
			nl += e.n
			gl += e.g
			hl += e.h
			nr := n - nl
			if nl < msl {
				continue
			}
			if nr < msl {
				break
			}
			hr := h - hl
			if hl < mhl {
				continue
			}
			if hr < mhl {
				break
			}
			gr := g - gl
			gain := score(gl, hl, l2) + score(gr, hr, l2) - parent
			if gain > best.gain {
				best = split{gain: gain, feature: f, bin: b, gl: gl, hl: hl, gr: gr, hr: hr, nl: nl, nr: nr}
				sawMissing = miss.n > 0
			}
		}
		if miss.n == 0 {
			continue
		}
		// Missing left: left holds the missing values and bins 0..b.
		gl, hl, nl = miss.g, miss.h, miss.n
		for b := 0; b < nb-1; b++ {
			e := hf[b]
			if e.n == 0 {
				continue
			}
			nl += e.n
			gl += e.g
			hl += e.h
			nr := n - nl
			if nl < msl {
				continue
			}
			if nr < msl {
				break
			}
			hr := h - hl
			if hl < mhl {
				continue
			}
			if hr < mhl {
				break
			}
			gr := g - gl
			gain := score(gl, hl, l2) + score(gr, hr, l2) - parent
			if gain > best.gain || (gain == best.gain && best.feature == f && b < best.bin) {
				best = split{gain: gain, feature: f, bin: b, missingLeft: true, gl: gl, hl: hl, gr: gr, hr: hr, nl: nl, nr: nr}
				sawMissing = true
			}
		}
	}
	if best.gain > 0 && !sawMissing {
		best.missingLeft = best.nl > best.nr
	}
	return best
}

// score is G²/(H+λ), the loss decrease of a leaf with the optimal value (0 for an empty one).
func score(g, h, l2 float64) float64 {
	d := h + l2
	if !(d > 0) {
		return 0
	}
	return g * g / d
}

// leafValue is the shrunk Newton step -G/(H+λ) of a leaf.
func leafValue(g, h, l2, lr float64) float64 {
	d := h + l2
	if !(d > 0) {
		return 0
	}
	return float64(-(g / d) * lr) // rounded here: never fused into a later sum
}

// emit converts t.nodes into a tree: internal nodes and leaves are numbered in the order the
// nodes were created (the root first). It also sets each leaf node's value.
func (t *trainer) emit() *tree {
	idx := t.idx[:0]
	ni, li := int32(0), int32(0)
	for _, nd := range t.nodes {
		if nd.left >= 0 {
			idx = append(idx, ni)
			ni++
		} else {
			idx = append(idx, ^li)
			li++
		}
	}
	t.idx = idx
	tr := &tree{
		feature:     make([]int32, ni),
		threshold:   make([]float64, ni),
		left:        make([]int32, ni),
		right:       make([]int32, ni),
		defaultLeft: make([]bool, ni),
		gain:        make([]float64, ni),
		leaf:        make([]float64, li),
	}
	for id := range t.nodes {
		nd := &t.nodes[id]
		if nd.left < 0 {
			nd.value = leafValue(nd.g, nd.h, t.p.L2, t.p.LearningRate)
			tr.leaf[^idx[id]] = nd.value
			continue
		}
		i, s := idx[id], nd.split
		thr := math.Inf(1) // every non-missing value left
		if s.bin < t.nbins[s.feature]-1 {
			thr = t.thr[s.feature][s.bin]
		}
		tr.feature[i] = int32(s.feature)
		tr.threshold[i] = thr
		tr.left[i] = idx[nd.left]
		tr.right[i] = idx[nd.right]
		tr.defaultLeft[i] = s.missingLeft
		tr.gain[i] = s.gain
	}
	return tr
}

// leafOf returns the leaf node id training row r falls in, walking t.nodes on binned data.
func (t *trainer) leafOf(r int) int {
	id := 0
	for t.nodes[id].left >= 0 {
		nd := &t.nodes[id]
		c := int(t.codes[nd.split.feature*t.n+r])
		left := c <= nd.split.bin
		if c == t.nbins[nd.split.feature] {
			left = nd.split.missingLeft
		}
		if left {
			id = nd.left
		} else {
			id = nd.right
		}
	}
	return id
}

// allocHist returns a histogram from the pool or a new one.
func (t *trainer) allocHist() []hbin {
	if k := len(t.pool); k > 0 {
		h := t.pool[k-1]
		t.pool = t.pool[:k-1]
		return h
	}
	return make([]hbin, t.totalBins)
}

// freeHist returns node id's histogram, if any, to the pool.
func (t *trainer) freeHist(id int) {
	if h := t.nodes[id].hist; h != nil {
		t.pool = append(t.pool, h)
		t.nodes[id].hist = nil
	}
}

// before orders the queue of splittable nodes: larger gain first, then the older node.
func (t *trainer) before(a, b int) bool {
	ga, gb := t.nodes[a].split.gain, t.nodes[b].split.gain
	return ga > gb || (ga == gb && a < b)
}

// push adds node id to the queue (a binary heap).
func (t *trainer) push(id int) {
	t.heap = append(t.heap, id)
	i := len(t.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !t.before(t.heap[i], t.heap[p]) {
			break
		}
		t.heap[i], t.heap[p] = t.heap[p], t.heap[i]
		i = p
	}
}

// pop removes and returns the first node of the queue.
func (t *trainer) pop() int {
	hp := t.heap
	top := hp[0]
	last := len(hp) - 1
	hp[0] = hp[last]
	hp = hp[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(hp) {
			break
		}
		c := l
		if r := l + 1; r < len(hp) && t.before(hp[r], hp[l]) {
			c = r
		}
		if !t.before(hp[c], hp[i]) {
			break
		}
		hp[i], hp[c] = hp[c], hp[i]
		i = c
	}
	t.heap = hp
	return top
}
