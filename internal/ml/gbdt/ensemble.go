package gbdt

import "math"

// node is one node of the flat scoring layout. Each tree is laid out breadth-first from its
// root, and the two children of an internal node are adjacent, so that the next node is
// next+0 or next+1 and is chosen without a branch. A leaf points to itself (threshold +Inf,
// NaN left), so a walk can take more steps than the leaf's depth and stay on it: Raw walks
// eight trees at once, each for the depth of the deepest, which keeps eight independent chains
// of loads in flight instead of one.
type node struct {
	threshold float64 // x <= threshold goes left
	feature   int32
	next      uint32 // index of the left child; the top bit (nanLeft) says NaN goes left
}

// nanLeft is the bit of node.next that sends NaN to the left child.
const nanLeft = 1 << 31

// Ensemble is a trained model: a base score plus the sum of the leaf values its trees select.
// It is safe for concurrent use.
type Ensemble struct {
	numFeatures int
	baseScore   float64
	roots       []uint32 // index of each tree's root in nodes
	depths      []int    // depth of each tree's deepest leaf
	nodes       []node
	values      []float64 // leaf value of each leaf node, indexed like nodes
	trees       []*tree   // the same trees in their JSON layout
	importance  []float64
	// validationLoss is the per-iteration loss with early stopping, else nil.
	validationLoss []float64
}

// Raw returns the log-odds of label 1 for one row x of NumFeatures values (NaN = missing).
// It returns NaN, which no model produces, if len(x) is not NumFeatures. It does not allocate.
func (e *Ensemble) Raw(x []float64) float64 {
	if len(x) != e.numFeatures || e.numFeatures == 0 {
		return math.NaN()
	}
	nodes, values, roots, depths := e.nodes, e.values, e.roots, e.depths[:len(e.roots)]
	s := e.baseScore
	t := 0
	for ; t+8 <= len(roots); t += 8 {
		r := roots[t : t+8]
		i0, i1, i2, i3, i4, i5, i6, i7 := r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]
		dp := depths[t : t+8]
		for range max(dp[0], dp[1], dp[2], dp[3], dp[4], dp[5], dp[6], dp[7]) {
			i0 = step(nodes, x, i0)
			i1 = step(nodes, x, i1)
			i2 = step(nodes, x, i2)
			i3 = step(nodes, x, i3)
			i4 = step(nodes, x, i4)
			i5 = step(nodes, x, i5)
			i6 = step(nodes, x, i6)
			i7 = step(nodes, x, i7)
		}
		// One addition at a time, in tree order, as in training.
		s += values[i0]
		s += values[i1]
		s += values[i2]
		s += values[i3]
		s += values[i4]
		s += values[i5]
		s += values[i6]
		s += values[i7]
	}
	for ; t < len(roots); t++ {
		i := roots[t]
		for range depths[t] {
			i = step(nodes, x, i)
		}
		s += values[i]
	}
	return s
}

// step moves from node i to the child that x goes to.
func step(nodes []node, x []float64, i uint32) uint32 {
	n := &nodes[i]
	v := x[n.feature]
	var right uint32
	if !(v <= n.threshold) {
		right = 1
	}
	if v != v {
		right = n.next>>31 ^ 1
	}
	return n.next&^nanLeft + right
}

// Predict returns the probability of label 1 for one row x of NumFeatures values (NaN =
// missing). It returns NaN if len(x) is not NumFeatures. It does not allocate.
func (e *Ensemble) Predict(x []float64) float64 {
	r := e.Raw(x)
	if r != r {
		return r
	}
	return sigmoid(r)
}

// NumTrees returns the number of trees kept (with early stopping, those of the best
// iteration).
func (e *Ensemble) NumTrees() int { return len(e.roots) }

// addTree appends a valid tree (see checkTree) and lays it out for scoring.
func (e *Ensemble) addTree(tr *tree) {
	e.trees = append(e.trees, tr)
	e.roots = append(e.roots, uint32(len(e.nodes)))
	type item struct {
		at    int   // index in e.nodes
		ref   int32 // node (>= 0) or ^leaf of tr
		depth int
	}
	root := int32(-1)
	if len(tr.feature) > 0 {
		root = 0
	}
	queue := []item{{len(e.nodes), root, 0}}
	e.nodes = append(e.nodes, node{})
	e.values = append(e.values, 0)
	depth := 0
	for q := 0; q < len(queue); q++ {
		it := queue[q]
		if it.ref < 0 {
			e.nodes[it.at] = node{threshold: math.Inf(1), next: uint32(it.at) | nanLeft}
			e.values[it.at] = tr.leaf[^it.ref]
			depth = max(depth, it.depth)
			continue
		}
		c := len(e.nodes)
		e.nodes = append(e.nodes, node{}, node{})
		e.values = append(e.values, 0, 0)
		next := uint32(c)
		if tr.defaultLeft[it.ref] {
			next |= nanLeft
		}
		e.nodes[it.at] = node{threshold: tr.threshold[it.ref], feature: tr.feature[it.ref], next: next}
		queue = append(queue, item{c, tr.left[it.ref], it.depth + 1}, item{c + 1, tr.right[it.ref], it.depth + 1})
	}
	e.depths = append(e.depths, depth)
}

// NumFeatures returns the number of values a row must have.
func (e *Ensemble) NumFeatures() int { return e.numFeatures }

// BaseScore returns the log-odds every prediction starts from: that of the weighted rate of
// label 1 in the training rows.
func (e *Ensemble) BaseScore() float64 { return e.baseScore }

// Importance returns, per feature, the total gain of the splits on it in the kept trees
// (the decrease of the second-order loss approximation, G_L²/(H_L+λ) + G_R²/(H_R+λ) -
// G²/(H+λ), summed over splits). The slice is a copy.
func (e *Ensemble) Importance() []float64 {
	out := make([]float64, len(e.importance))
	copy(out, e.importance)
	return out
}

// BestIteration returns the number of boosting iterations whose trees are kept. With early
// stopping it is the iteration of the lowest validation loss (the trees after it are
// dropped, so it equals NumTrees; it is 0 if no tree improved on the base score by more than
// Tol), otherwise it is NumTrees.
func (e *Ensemble) BestIteration() int { return len(e.roots) }

// ValidationLoss returns, with early stopping, the weighted mean log-loss on the validation
// rows after each iteration that was run (element i after i+1 trees), including iterations
// after the best one; without early stopping it returns nil. The slice is a copy.
func (e *Ensemble) ValidationLoss() []float64 {
	if e.validationLoss == nil {
		return nil
	}
	out := make([]float64, len(e.validationLoss))
	copy(out, e.validationLoss)
	return out
}
