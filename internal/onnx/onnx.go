// Package onnx writes a trained model as an ONNX model (a serialized onnx.ModelProto) that ONNX
// Runtime, including ONNX Runtime Mobile, runs to compute the same probability as
// ml.Model.Predict, preprocessing included. It writes the protobuf by hand (only the fields it
// needs), so it needs no ONNX library.
//
// Input contract. The graph has one input per model input, named as the input, of shape [N, 1]
// (N rows scored at once):
//   - a numeric input is tensor(double); NaN is a missing value (±Inf counts as missing too, as
//     in Predict);
//   - a binary or categorical input is tensor(string) holding the canonical category
//     (pulse.CanonicalCategory: "1", not "1.0"; trimmed of spaces); "" is a missing value. A
//     category not seen in training is encoded as unknown (all zeros), as in Predict.
//
// The outputs are "probability" (tensor(double) [N, 1], of class 1) and "label" (tensor(int64)
// [N, 1], 1 when the probability is at least the model's threshold).
//
// Precision. Everything is computed in double precision, so ONNX Runtime agrees with Predict to
// rounding (the tests find below 1e-15 on the Cleveland rows, and assert 1e-9). The float32
// operators of ai.onnx.ml (LinearClassifier, Scaler, Imputer, TreeEnsembleClassifier) would
// not: their rounding alone moves a probability by about 1e-7. The graph therefore uses
// ai.onnx.ml only where it is exact (TreeEnsemble of opset 5 with double splits and weights,
// OneHotEncoder whose 0/1 output is cast to double, LabelEncoder for categories) and standard
// operators in double otherwise:
//   - logreg: the encoded row (numeric values imputed with the median, binary 0/1, categorical
//     one-hot, a missing category replaced by the mode) times the coefficients, the
//     standardisation folded into them as Predict does, plus the bias, then Sigmoid;
//   - gbdt: the raw encoded row (NaN for a missing value in every column of the input) through
//     TreeEnsemble (splits x <= threshold, NaN down each node's default branch), plus the base
//     score, then Sigmoid;
//   - ftrl: the raw encoded row standardised with the learner's frozen running mean and
//     standard deviation and clipped to [-10, 10] (numeric inputs), a missing value
//     contributing nothing, times the weights, plus the bias, clipped to [-35, 35], then
//     Sigmoid.
//
// The file declares IR version 10 and the opsets "" 21 and "ai.onnx.ml" 5.
package onnx

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Versions written into every file.
const (
	IRVersion    = 10
	Opset        = 21 // of the default domain ""
	MLDomain     = "ai.onnx.ml"
	MLOpset      = 5
	ProducerName = "pulse"
)

const (
	maxFTRLMargin = 35 // ftrl clips its margin to [-35, 35]
	// TreeEnsemble attributes: nodes_modes BRANCH_LEQ (x <= split takes the true branch),
	// aggregate_function SUM, post_transform NONE.
	branchLEQ     = 0
	aggregateSum  = 1
	postTransform = 0
)

// The graph's outputs.
const (
	ProbabilityOutput = "probability"
	LabelOutput       = "label"
)

// Meta is what the file records about the model version besides the model itself.
type Meta struct {
	// Model and Version name the version: the graph's name and the ModelProto's model_version.
	Model   string
	Version int
	// PulseVersion is the producer_version.
	PulseVersion string
}

// Export returns the ONNX model of m (see the package documentation for its inputs, outputs
// and precision). The bytes are deterministic: the same model and meta give the same file.
func Export(m *ml.Model, meta Meta) ([]byte, error) {
	if m == nil {
		return nil, pulse.Errorf(pulse.EINVALID, "onnx export: no model")
	}
	inputs, _ := m.Preprocessing()
	g, err := newGraph(inputs)
	if err != nil {
		return nil, err
	}
	switch m.Algorithm() {
	case ml.AlgorithmLogReg:
		err = g.logReg(m, inputs)
	case ml.AlgorithmGBDT:
		err = g.gbdt(m, inputs)
	case ml.AlgorithmFTRL:
		err = g.ftrl(m, inputs)
	default:
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: algorithm %q is not supported, want logreg, gbdt or ftrl", m.Algorithm())
	}
	if err != nil {
		return nil, err
	}
	ge := g.op("GreaterOrEqual", "at_threshold", ProbabilityOutput, g.scalar("threshold", m.Threshold()))
	g.node("", "Cast", []string{ge}, LabelOutput, attrInt("to", typeInt64))
	return g.model(m, meta)
}

// graph collects the nodes and initializers of the graph being written.
type graph struct {
	inputs []msg // ValueInfoProto of the graph inputs
	nodes  []msg
	inits  []msg
	used   map[string]bool // every value name so far
	// x holds the graph input of each model input, in order.
	x []string
}

func newGraph(inputs []ml.InputPreprocessing) (*graph, error) {
	g := &graph{used: map[string]bool{ProbabilityOutput: true, LabelOutput: true}}
	for _, in := range inputs {
		if g.used[in.Name] {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, in.Name, "onnx export: input %q: the name is taken by another input or an output of the graph", in.Name)
		}
		g.used[in.Name] = true
		elem := int64(typeDouble)
		if in.Kind != pulse.Numeric {
			elem = typeString
		}
		g.inputs = append(g.inputs, valueInfo(in.Name, elem, "N", 1))
		g.x = append(g.x, in.Name)
	}
	return g, nil
}

// fresh returns an unused value name made from hint.
func (g *graph) fresh(hint string) string {
	name := hint
	for i := 2; g.used[name]; i++ {
		name = hint + "_" + strconv.Itoa(i)
	}
	g.used[name] = true
	return name
}

// node adds a node of one output; out "" names the output after the operator. It returns the
// output's name.
func (g *graph) node(domain, opType string, in []string, out string, attrs ...attribute) string {
	if out == "" {
		out = g.fresh(opType)
	}
	n := msg{}
	for _, i := range in {
		n = n.str(nodeInput, i)
	}
	n = n.str(nodeOutput, out).str(nodeName, out).str(nodeOpType, opType)
	if domain != "" {
		n = n.str(nodeDomain, domain)
	}
	for _, a := range attrs {
		n = n.sub(nodeAttribute, msg(a))
	}
	g.nodes = append(g.nodes, n)
	return out
}

// op adds a node of the default domain without attributes whose output is named from hint.
func (g *graph) op(opType, hint string, in ...string) string {
	return g.node("", opType, in, g.fresh(hint))
}

// initializer adds a constant tensor made by t for its name.
func (g *graph) initializer(hint string, t func(name string) msg) string {
	name := g.fresh(hint)
	g.inits = append(g.inits, t(name))
	return name
}

// scalar adds a double constant of shape [].
func (g *graph) scalar(hint string, v float64) string {
	return g.initializer(hint, func(name string) msg { return doubleTensor(name, nil, []float64{v}) })
}

// vector adds a double constant of shape dims.
func (g *graph) vector(hint string, dims []int64, vs []float64) string {
	return g.initializer(hint, func(name string) msg { return doubleTensor(name, dims, vs) })
}

// isMissingNumber returns a bool [N,1]: x is NaN or ±Inf.
func (g *graph) isMissingNumber(x string) string {
	return g.op("Or", x+"/missing", g.op("IsNaN", x+"/is_nan", x), g.op("IsInf", x+"/is_inf", x))
}

// binary returns the encoded column of a binary input: 1 for Categories[1], 0 for another
// category or an unknown one, and missing for "".
func (g *graph) binary(x string, cats []string, missing float64) string {
	keys := append(append([]string{}, cats...), "")
	values := make([]float64, len(keys))
	if len(cats) > 1 {
		values[1] = 1
	}
	values[len(cats)] = missing
	return g.node(MLDomain, "LabelEncoder", []string{x}, g.fresh(x+"/encoded"),
		attrStrings("keys_strings", keys),
		attrTensor("values_tensor", doubleTensor("", []int64{int64(len(values))}, values)),
		attrTensor("default_tensor", doubleTensor("", []int64{1}, []float64{0})))
}

// oneHot returns the one-hot columns [N, len(cats)] (double) of a string input: all zeros for
// a value that is not one of cats ("" included).
func (g *graph) oneHot(x string, cats []string) string {
	oh := g.node(MLDomain, "OneHotEncoder", []string{x}, g.fresh(x+"/one_hot"),
		attrStrings("cats_strings", cats), attrInt("zeros", 1))
	flat := g.node("", "Flatten", []string{oh}, g.fresh(x+"/one_hot_2d"), attrInt("axis", 1))
	return g.node("", "Cast", []string{flat}, g.fresh(x+"/encoded"), attrInt("to", typeDouble))
}

// rawColumns returns the encoded row of gbdt and ftrl, as ml.Model encodes it: numeric values
// as they are (±Inf as NaN), NaN for a missing value in every column of its input, zeros for
// an unknown category. The result is [N, Width()] double.
func (g *graph) rawColumns(inputs []ml.InputPreprocessing) string {
	cols := make([]string, len(inputs))
	var nan, empty string // constants, added once when needed
	for i, in := range inputs {
		x := g.x[i]
		if nan == "" {
			nan = g.scalar("nan", math.NaN())
		}
		switch in.Kind {
		case pulse.Numeric:
			cols[i] = g.op("Where", x+"/encoded", g.op("IsInf", x+"/is_inf", x), nan, x)
		case pulse.Binary:
			cols[i] = g.binary(x, in.Categories, math.NaN())
		default:
			if empty == "" {
				empty = g.initializer("empty_string", func(name string) msg { return stringTensor(name, nil, []string{""}) })
			}
			missing := g.op("Equal", x+"/missing", x, empty)
			cols[i] = g.op("Where", x+"/encoded_raw", missing, nan, g.oneHot(x, in.Categories))
		}
	}
	return g.node("", "Concat", cols, g.fresh("encoded"), attrInt("axis", 1))
}

// logReg adds the probability of a logreg model: Predict's score with the same constants (the
// standardisation folded into each numeric input's slope and into the bias, as
// ml.Model.prepare does), so that only the order of the additions may differ.
func (g *graph) logReg(m *ml.Model, inputs []ml.InputPreprocessing) error {
	coef, intercept, ok := m.LogRegCoefficients()
	if !ok {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: the model has no logreg coefficients")
	}
	weights := make([]float64, 0, len(coef))
	bias := intercept
	cols := make([]string, len(inputs))
	k := 0
	for i, in := range inputs {
		x := g.x[i]
		w := width(in)
		if k+w > len(coef) {
			return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: got %d coefficients, want more for input %q", len(coef), in.Name)
		}
		switch in.Kind {
		case pulse.Numeric:
			slope := coef[k] / in.Scale
			bias -= slope * in.Mean
			weights = append(weights, slope)
			cols[i] = g.op("Where", x+"/imputed", g.isMissingNumber(x), g.scalar(x+"/median", in.Median), x)
		case pulse.Binary:
			missing := 0.0
			if in.Mode == 1 {
				missing = 1
			}
			weights = append(weights, coef[k])
			cols[i] = g.binary(x, in.Categories, missing)
		default:
			if in.Mode < 0 || in.Mode >= len(in.Categories) {
				return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: input %q has no mode category", in.Name)
			}
			// A missing value ("") becomes the mode; an unknown category stays unknown.
			keys := append([]string{""}, in.Categories...)
			values := append([]string{in.Categories[in.Mode]}, in.Categories...)
			imputed := g.node(MLDomain, "LabelEncoder", []string{x}, g.fresh(x+"/imputed"),
				attrStrings("keys_strings", keys), attrStrings("values_strings", values), attrString("default_string", ""))
			weights = append(weights, coef[k:k+w]...)
			cols[i] = g.oneHot(imputed, in.Categories)
		}
		k += w
	}
	if k != len(coef) {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: got %d coefficients, want %d", len(coef), k)
	}
	encoded := g.node("", "Concat", cols, g.fresh("encoded"), attrInt("axis", 1))
	dot := g.op("MatMul", "linear", encoded, g.vector("weights", []int64{int64(len(weights)), 1}, weights))
	z := g.op("Add", "log_odds", dot, g.scalar("bias", bias))
	g.node("", "Sigmoid", []string{z}, ProbabilityOutput)
	return nil
}

// gbdt adds the probability of a gbdt model: the trees as one TreeEnsemble (opset 5, double),
// plus the base score.
func (g *graph) gbdt(m *ml.Model, inputs []ml.InputPreprocessing) error {
	trees, base, ok, err := m.GBDTTrees()
	if err != nil {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: %v", err)
	}
	if !ok {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: the model has no gbdt trees")
	}
	var e ensemble
	for t := range trees {
		if err := e.add(&trees[t], m.Width()); err != nil {
			return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: tree %d: %v", t, err)
		}
	}
	if len(trees) == 0 { // TreeEnsemble needs a tree: one leaf of 0 adds nothing
		if err := e.add(&ml.Tree{LeafValue: []float64{0}}, m.Width()); err != nil {
			return err
		}
	}
	n := int64(len(e.featureIDs))
	modes := make([]uint8, n)
	for i := range modes {
		modes[i] = branchLEQ
	}
	sum := g.node(MLDomain, "TreeEnsemble", []string{g.rawColumns(inputs)}, g.fresh("trees"),
		attrInt("aggregate_function", aggregateSum),
		attrInt("post_transform", postTransform),
		attrInt("n_targets", 1),
		attrInts("tree_roots", e.roots),
		attrInts("nodes_featureids", e.featureIDs),
		attrTensor("nodes_splits", doubleTensor("", []int64{n}, e.splits)),
		attrTensor("nodes_modes", uint8Tensor("", []int64{n}, modes)),
		attrInts("nodes_truenodeids", e.trueIDs),
		attrInts("nodes_trueleafs", e.trueLeafs),
		attrInts("nodes_falsenodeids", e.falseIDs),
		attrInts("nodes_falseleafs", e.falseLeafs),
		attrInts("nodes_missing_value_tracks_true", e.missingTrue),
		attrInts("leaf_targetids", make([]int64, len(e.leafWeights))),
		attrTensor("leaf_weights", doubleTensor("", []int64{int64(len(e.leafWeights))}, e.leafWeights)),
	)
	z := g.op("Add", "log_odds", sum, g.scalar("base_score", base))
	g.node("", "Sigmoid", []string{z}, ProbabilityOutput)
	return nil
}

// ensemble is the flat node and leaf lists of TreeEnsemble.
type ensemble struct {
	roots                         []int64
	featureIDs, trueIDs, falseIDs []int64
	trueLeafs, falseLeafs         []int64
	missingTrue                   []int64
	splits, leafWeights           []float64
}

// add appends one tree, checking its references.
func (e *ensemble) add(tr *ml.Tree, width int) error {
	nodeBase, leafBase := int64(len(e.featureIDs)), int64(len(e.leafWeights))
	e.roots = append(e.roots, nodeBase)
	nodes := len(tr.Feature)
	if nodes == 0 { // a single leaf: one node whose branches both reach it
		if len(tr.LeafValue) != 1 {
			return fmt.Errorf("got %d leaves and no split, want 1", len(tr.LeafValue))
		}
		e.featureIDs = append(e.featureIDs, 0)
		e.splits = append(e.splits, 0)
		e.trueIDs, e.trueLeafs = append(e.trueIDs, leafBase), append(e.trueLeafs, 1)
		e.falseIDs, e.falseLeafs = append(e.falseIDs, leafBase), append(e.falseLeafs, 1)
		e.missingTrue = append(e.missingTrue, 0)
		e.leafWeights = append(e.leafWeights, tr.LeafValue[0])
		return nil
	}
	if len(tr.Threshold) != nodes || len(tr.Left) != nodes || len(tr.Right) != nodes || len(tr.DefaultLeft) != nodes {
		return fmt.Errorf("node arrays of different lengths")
	}
	child := func(c int32) (id, leaf int64, err error) {
		if c >= 0 {
			if int(c) >= nodes {
				return 0, 0, fmt.Errorf("node %d out of range", c)
			}
			return nodeBase + int64(c), 0, nil
		}
		l := int(-c - 1)
		if l >= len(tr.LeafValue) {
			return 0, 0, fmt.Errorf("leaf %d out of range", l)
		}
		return leafBase + int64(l), 1, nil
	}
	for i := range nodes {
		f := tr.Feature[i]
		if f < 0 || int(f) >= width {
			return fmt.Errorf("node %d: feature %d out of range", i, f)
		}
		tID, tLeaf, err := child(tr.Left[i])
		if err != nil {
			return err
		}
		fID, fLeaf, err := child(tr.Right[i])
		if err != nil {
			return err
		}
		missing := int64(0)
		if tr.DefaultLeft[i] {
			missing = 1
		}
		e.featureIDs = append(e.featureIDs, int64(f))
		e.splits = append(e.splits, tr.Threshold[i])
		e.trueIDs, e.trueLeafs = append(e.trueIDs, tID), append(e.trueLeafs, tLeaf)
		e.falseIDs, e.falseLeafs = append(e.falseIDs, fID), append(e.falseLeafs, fLeaf)
		e.missingTrue = append(e.missingTrue, missing)
	}
	e.leafWeights = append(e.leafWeights, tr.LeafValue...)
	return nil
}

// ftrl adds the probability of an ftrl model with its weights and scaling frozen.
func (g *graph) ftrl(m *ml.Model, inputs []ml.InputPreprocessing) error {
	st, ok := m.FTRL()
	if !ok {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: the model has no ftrl weights")
	}
	w := m.Width()
	if len(st.Weights) != w || len(st.Scaled) != w || len(st.Mean) != w || len(st.SD) != w {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "onnx export: got %d ftrl weights, want %d", len(st.Weights), w)
	}
	// Unscaled values pass through (x-0)/1, clipped to ±Inf: unchanged, exactly.
	mean, sd := make([]float64, w), make([]float64, w)
	lo, hi := make([]float64, w), make([]float64, w)
	for i := range w {
		mean[i], sd[i], lo[i], hi[i] = 0, 1, math.Inf(-1), math.Inf(1)
		if st.Scaled[i] {
			mean[i], sd[i], lo[i], hi[i] = st.Mean[i], st.SD[i], -ftrl.Clip, ftrl.Clip
		}
	}
	dims := []int64{int64(w)}
	x := g.rawColumns(inputs)
	scaled := g.op("Div", "standardised", g.op("Sub", "centred", x, g.vector("mean", dims, mean)), g.vector("sd", dims, sd))
	clipped := g.op("Min", "clipped", g.op("Max", "clipped_below", scaled, g.vector("clip_low", dims, lo)), g.vector("clip_high", dims, hi))
	// A missing value contributes nothing.
	values := g.op("Where", "present_values", g.op("IsNaN", "missing", x), g.scalar("zero", 0), clipped)
	dot := g.op("MatMul", "linear", values, g.vector("weights", []int64{int64(w), 1}, st.Weights))
	margin := g.op("Add", "margin", dot, g.scalar("bias", st.Bias))
	z := g.op("Clip", "log_odds", margin, g.scalar("margin_low", -maxFTRLMargin), g.scalar("margin_high", maxFTRLMargin))
	g.node("", "Sigmoid", []string{z}, ProbabilityOutput)
	return nil
}

// width is the number of encoded values of an input.
func width(in ml.InputPreprocessing) int {
	if in.Kind == pulse.Categorical {
		return len(in.Categories)
	}
	return 1
}

// model assembles the ModelProto.
func (g *graph) model(m *ml.Model, meta Meta) ([]byte, error) {
	name := meta.Model
	if name == "" {
		name = "pulse"
	}
	gr := msg{}
	for _, n := range g.nodes {
		gr = gr.sub(graphNode, n)
	}
	gr = gr.str(graphName, name)
	for _, t := range g.inits {
		gr = gr.sub(graphInitializer, t)
	}
	gr = gr.str(graphDocString, fmt.Sprintf("Pulse model %s version %d (%s, target %q). Inputs: one [N,1] tensor per feature, "+
		"double for numeric (NaN = missing), string for binary and categorical (canonical category, \"\" = missing). "+
		"Outputs: probability (double [N,1]) and label (int64 [N,1], probability >= %s).",
		name, meta.Version, m.Algorithm(), m.Target(), strconv.FormatFloat(m.Threshold(), 'g', -1, 64)))
	for _, in := range g.inputs {
		gr = gr.sub(graphInput, in)
	}
	gr = gr.sub(graphOutput, valueInfo(ProbabilityOutput, typeDouble, "N", 1))
	gr = gr.sub(graphOutput, valueInfo(LabelOutput, typeInt64, "N", 1))

	inputs, err := json.Marshal(m.Inputs())
	if err != nil {
		return nil, fmt.Errorf("onnx export: %w", err)
	}
	out := msg{}.varint(modelIRVersion, IRVersion).
		sub(modelOpsetImport, msg{}.str(opsetDomain, "").varint(opsetVersion, Opset)).
		sub(modelOpsetImport, msg{}.str(opsetDomain, MLDomain).varint(opsetVersion, MLOpset)).
		str(modelProducerName, ProducerName).
		str(modelProducerVersion, meta.PulseVersion).
		varint(modelModelVersion, int64(meta.Version)).
		str(modelDocString, "Exported by Pulse: the same probability as the Pulse model version, computed in double precision.").
		sub(modelGraph, gr)
	for _, kv := range [][2]string{
		{"pulse.model", meta.Model},
		{"pulse.version", strconv.Itoa(meta.Version)},
		{"pulse.algorithm", m.Algorithm()},
		{"pulse.target", m.Target()},
		{"pulse.threshold", strconv.FormatFloat(m.Threshold(), 'g', -1, 64)},
		{"pulse.inputs", string(inputs)},
	} {
		out = out.sub(modelMetadataProps, msg{}.str(entryKey, kv[0]).str(entryValue, kv[1]))
	}
	return out, nil
}
