package gbdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// The JSON document of an Ensemble.
const (
	jsonFormat  = "pulse-gbdt"
	jsonVersion = 1
)

// ensembleJSON is the JSON document of an Ensemble. Each tree has m internal nodes (the root
// is node 0) and m+1 leaves; a child reference c >= 0 is node c of the same tree, c < 0 is
// leaf -c-1. Floats are written exactly (shortest round-tripping decimal).
type ensembleJSON struct {
	Format         string     `json:"format"`
	Version        int        `json:"version"`
	NumFeatures    int        `json:"num_features"`
	BaseScore      float64    `json:"base_score"`
	Importance     []float64  `json:"importance"`
	ValidationLoss []float64  `json:"validation_loss,omitempty"`
	Trees          []treeJSON `json:"trees"`
}

type treeJSON struct {
	Feature     []int32    `json:"feature"`
	Threshold   thresholds `json:"threshold"`
	Left        []int32    `json:"left"`
	Right       []int32    `json:"right"`
	DefaultLeft []bool     `json:"default_left"`
	LeafValue   []float64  `json:"leaf_value"`
}

// thresholds are split thresholds: JSON numbers, and the string "+Inf" for the split that
// sends every non-missing value left (JSON has no infinity).
type thresholds []float64

// MarshalJSON implements json.Marshaler.
func (ts thresholds) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(ts)*20)
	b = append(b, '[')
	for i, t := range ts {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsInf(t, 1):
			b = append(b, `"+Inf"`...)
		case math.IsNaN(t) || math.IsInf(t, -1):
			return nil, fmt.Errorf("gbdt: threshold %d is %v", i, t)
		default:
			b = strconv.AppendFloat(b, t, 'g', -1, 64)
		}
	}
	return append(b, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (ts *thresholds) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(thresholds, len(raw))
	for i, r := range raw {
		if string(r) == `"+Inf"` {
			out[i] = math.Inf(1)
			continue
		}
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return fmt.Errorf("threshold %d: got %s, want a number or \"+Inf\"", i, r)
		}
	}
	*ts = out
	return nil
}

// MarshalJSON implements json.Marshaler. Predictions of an Ensemble read back with
// UnmarshalJSON are bit-identical.
func (e *Ensemble) MarshalJSON() ([]byte, error) {
	doc := ensembleJSON{
		Format:         jsonFormat,
		Version:        jsonVersion,
		NumFeatures:    e.numFeatures,
		BaseScore:      e.baseScore,
		Importance:     e.importance,
		ValidationLoss: e.validationLoss,
		Trees:          make([]treeJSON, len(e.trees)),
	}
	if doc.Importance == nil {
		doc.Importance = []float64{}
	}
	for t, tr := range e.trees {
		doc.Trees[t] = treeJSON{
			Feature:     tr.feature,
			Threshold:   tr.threshold,
			Left:        tr.left,
			Right:       tr.right,
			DefaultLeft: tr.defaultLeft,
			LeafValue:   tr.leaf,
		}
	}
	return json.Marshal(doc)
}

// UnmarshalJSON implements json.Unmarshaler. It rejects unknown fields and any document that
// could not have come from Fit: a child index out of range, a node with two parents or
// unreachable from the root (a cycle), array lengths that disagree, a feature id not below
// num_features, a NaN or infinite value (other than a "+Inf" threshold). On error e is left
// unchanged.
func (e *Ensemble) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var doc ensembleJSON
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("gbdt: decode ensemble: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("gbdt: decode ensemble: data after the JSON document")
	}
	if doc.Format != jsonFormat || doc.Version != jsonVersion {
		return fmt.Errorf("gbdt: format %q version %d, want %q version %d", doc.Format, doc.Version, jsonFormat, jsonVersion)
	}
	d := doc.NumFeatures
	if d < 1 || d > math.MaxInt32 {
		return fmt.Errorf("gbdt: num_features %d, want at least 1", d)
	}
	if !isFinite(doc.BaseScore) {
		return fmt.Errorf("gbdt: base_score %v, want a finite number", doc.BaseScore)
	}
	if len(doc.Importance) != d {
		return fmt.Errorf("gbdt: %d importance values, want num_features = %d", len(doc.Importance), d)
	}
	for i, v := range doc.Importance {
		if !isFinite(v) || v < 0 {
			return fmt.Errorf("gbdt: importance %d is %v, want a finite number of at least 0", i, v)
		}
	}
	for i, v := range doc.ValidationLoss {
		if !isFinite(v) || v < 0 {
			return fmt.Errorf("gbdt: validation_loss %d is %v, want a finite number of at least 0", i, v)
		}
	}
	out := &Ensemble{
		numFeatures:    d,
		baseScore:      doc.BaseScore,
		importance:     doc.Importance,
		validationLoss: doc.ValidationLoss,
	}
	for t, tj := range doc.Trees {
		if err := checkTree(tj, d); err != nil {
			return fmt.Errorf("gbdt: tree %d: %w", t, err)
		}
		if int64(len(out.nodes))+2*int64(len(tj.Feature))+1 >= nanLeft {
			return errors.New("gbdt: too many nodes")
		}
		out.addTree(&tree{
			feature:     tj.Feature,
			threshold:   tj.Threshold,
			left:        tj.Left,
			right:       tj.Right,
			defaultLeft: tj.DefaultLeft,
			leaf:        tj.LeafValue,
		})
	}
	*e = *out
	return nil
}

// checkTree checks that tj is a binary tree rooted at node 0 over features [0, d).
func checkTree(tj treeJSON, d int) error {
	m := len(tj.Feature)
	if len(tj.Threshold) != m || len(tj.Left) != m || len(tj.Right) != m || len(tj.DefaultLeft) != m {
		return fmt.Errorf("feature, threshold, left, right and default_left have lengths %d, %d, %d, %d and %d, want equal",
			m, len(tj.Threshold), len(tj.Left), len(tj.Right), len(tj.DefaultLeft))
	}
	if len(tj.LeafValue) != m+1 {
		return fmt.Errorf("%d leaf values for %d nodes, want %d", len(tj.LeafValue), m, m+1)
	}
	for i, v := range tj.LeafValue {
		if !isFinite(v) {
			return fmt.Errorf("leaf %d: value %v, want a finite number", i, v)
		}
	}
	nodeParent := make([]bool, m)
	leafParent := make([]bool, m+1)
	for i := range m {
		if f := tj.Feature[i]; f < 0 || int(f) >= d {
			return fmt.Errorf("node %d: feature %d, want from 0 to %d", i, f, d-1)
		}
		if t := tj.Threshold[i]; math.IsNaN(t) || math.IsInf(t, -1) {
			return fmt.Errorf("node %d: threshold %v, want a number or +Inf", i, t)
		}
		for _, c := range [2]int32{tj.Left[i], tj.Right[i]} {
			switch {
			case c >= 0 && int(c) >= m:
				return fmt.Errorf("node %d: child node %d out of range, want below %d", i, c, m)
			case c == 0:
				return fmt.Errorf("node %d: child is the root", i)
			case c > 0 && nodeParent[c]:
				return fmt.Errorf("node %d: child node %d has two parents", i, c)
			case c > 0:
				nodeParent[c] = true
			case int(^c) > m:
				return fmt.Errorf("node %d: child leaf %d out of range, want below %d", i, ^c, m+1)
			case leafParent[^c]:
				return fmt.Errorf("node %d: child leaf %d has two parents", i, ^c)
			default:
				leafParent[^c] = true
			}
		}
	}
	// Every node but the root now has at most one parent, so a walk from the root visits
	// each node at most once; a node it misses is on a cycle.
	if m == 0 {
		return nil
	}
	visited := 0
	stack := []int32{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		visited++
		for _, c := range [2]int32{tj.Left[i], tj.Right[i]} {
			if c > 0 {
				stack = append(stack, c)
			}
		}
	}
	if visited != m {
		return fmt.Errorf("%d of %d nodes are not reachable from the root (a cycle)", m-visited, m)
	}
	return nil
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
