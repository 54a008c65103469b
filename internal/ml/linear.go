package ml

// Linear is a logistic regression as one term per raw input, for scorers that resolve each
// distinct cell to its term once (a batch scorer caches the term of every category text it
// has seen) instead of encoding every row. The probability of a row is
// Sigmoid(Bias + term(input 0) + term(input 1) + ...), summed in input order: the same
// additions, in the same order, as Predict, so the result is bit-identical to Predict's (a
// term of 0 changes nothing but the sign of a zero sum, which Sigmoid does not see). Predict
// rounds each product before adding it (never a fused multiply-add: TestScoreNotFused), so a
// term computed apart, float64(Slope*x), is the very number it adds.
type Linear struct {
	Bias   float64
	Inputs []LinearInput // in Inputs() order
}

// LinearInput is how one raw input contributes to a Linear score.
type LinearInput struct {
	// Slope: a numeric input's term is Slope*x, x being the value as given, or Median when it
	// is missing or not finite.
	Slope, Median float64
	// Terms: a binary or categorical input's term for each category of
	// Inputs()[i].Categories (same index); a category not seen in training has term 0.
	Terms []float64
	// Missing is the term of a missing value: Slope*Median, or the term of the category
	// that imputes a missing one.
	Missing float64
}

// Linear returns the model's terms when it is a logistic regression, and false otherwise.
// The result is the caller's.
func (m *Model) Linear() (*Linear, bool) {
	lr := m.logReg
	if lr == nil {
		return nil, false
	}
	l := &Linear{Bias: lr.bias, Inputs: make([]LinearInput, len(m.inputs))}
	k := 0
	for i := range m.inputs {
		in := &m.inputs[i]
		li := &l.Inputs[i]
		switch in.code {
		case numericCode:
			li.Slope, li.Median = lr.slope[i], in.median
			li.Missing = li.Slope * li.Median
		case binaryCode:
			// Predict adds coef[k] for the second category and nothing for the first.
			li.Terms = make([]float64, len(in.categories))
			if len(li.Terms) > 1 {
				li.Terms[1] = lr.coef[k]
			}
			if in.mode == 1 {
				li.Missing = lr.coef[k]
			}
		default: // categorical: one coefficient per category
			li.Terms = append([]float64(nil), lr.coef[k:k+len(in.categories)]...)
			if in.mode >= 0 {
				li.Missing = li.Terms[in.mode]
			}
		}
		k += in.width()
	}
	return l, true
}

// Sigmoid is the logistic function as Predict computes it: Predict's probability of a
// logistic regression is Sigmoid of its score.
func Sigmoid(z float64) float64 { return sigmoid(z) }
