package monitor

import (
	"fmt"
	"math"
	"time"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Drift window defaults and limits.
const (
	DefaultDriftSize    = 10000 // DriftConfig.Size when 0
	DefaultDriftBuckets = 20    // DriftConfig.Buckets when 0
	maxDriftSize        = 1_000_000_000
	maxDriftBuckets     = 1000
)

// DriftConfig sets a DriftWindow's extent.
type DriftConfig struct {
	// Size is the count window: the report covers at most the last Size records. 0 means
	// DefaultDriftSize.
	Size int
	// Period is the time window: records that arrived Period or longer before the time of the
	// report leave it. 0 means no time limit.
	Period time.Duration
	// Buckets is the number of steps a window is cut into: the window moves by whole buckets
	// of Size/Buckets records or Period/Buckets of time, so that it holds between
	// Size - Size/Buckets and Size records, and every record of the last Period plus possibly
	// some up to Period + Period/Buckets old. 0 means DefaultDriftBuckets.
	Buckets int
}

func (c DriftConfig) withDefaults() (DriftConfig, error) {
	if c.Size == 0 {
		c.Size = DefaultDriftSize
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultDriftBuckets
	}
	switch {
	case c.Size < 1 || c.Size > maxDriftSize:
		return c, pulse.FieldErrorf(pulse.EINVALID, "size", "drift window: size: got %d, want 1 to %d", c.Size, maxDriftSize)
	case c.Period < 0:
		return c, pulse.FieldErrorf(pulse.EINVALID, "period", "drift window: period: got %v, want 0 (none) or more", c.Period)
	case c.Buckets < 1 || c.Buckets > maxDriftBuckets:
		return c, pulse.FieldErrorf(pulse.EINVALID, "buckets", "drift window: buckets: got %d, want 1 to %d", c.Buckets, maxDriftBuckets)
	}
	return c, nil
}

// DriftWindow counts recent traffic (raw input values and the score) into the bins of a
// Profile, over a sliding window by count and by time. Add is O(features) and allocates
// nothing; memory is bounded by the number of buckets times the number of bins, whatever the
// window's size. A DriftWindow is not safe for concurrent use: callers serialise Add and
// Report.
type DriftWindow struct {
	profile *Profile
	feats   []driftFeature
	width   int // counters per bucket: each feature's bins and a missing counter, then the score's bins
	score   int // offset of the score's bins

	size     int
	period   time.Duration
	capacity int           // records per bucket
	span     time.Duration // time per bucket; 0 without a period

	ring   []bucket // ring[(head+i)%len(ring)], i < count, oldest first
	head   int
	count  int
	total  []int64 // the sum of the live buckets' counters
	n      int     // records in the live buckets
	latest time.Time
}

// driftFeature is how one input's value finds its counter.
type driftFeature struct {
	offset  int
	bins    int // present-value bins; the missing counter is at offset+bins
	numeric bool
	edges   []float64
	cats    categoryIndex
}

// bucket is the counters of the records of one step of the window.
type bucket struct {
	counts      []int32
	n           int
	first, last time.Time
}

// NewDriftWindow returns an empty window over the bins of profile p, which must be valid
// (see Profile.Validate) and must not be changed afterwards. Values given to Add are in the
// order of p.Features.
func NewDriftWindow(p *Profile, cfg DriftConfig) (*DriftWindow, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("drift window: %w", err)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &DriftWindow{
		profile:  p,
		feats:    make([]driftFeature, len(p.Features)),
		size:     cfg.Size,
		period:   cfg.Period,
		capacity: (cfg.Size + cfg.Buckets - 1) / cfg.Buckets,
		span:     cfg.Period / time.Duration(cfg.Buckets),
	}
	if w.period > 0 && w.span <= 0 {
		w.span = 1
	}
	for i := range p.Features {
		f := &p.Features[i]
		w.feats[i] = driftFeature{offset: w.width, bins: f.bins(), numeric: f.Kind == pulse.Numeric, edges: f.Edges}
		if !w.feats[i].numeric {
			w.feats[i].cats = newCategoryIndex(f.Categories)
		}
		w.width += f.bins() + 1
	}
	w.score = w.width
	w.width += len(scoreEdges) + 1
	// Buckets closed by count hold capacity records each, so at most Buckets+1 of them are in
	// the window; buckets closed by time start at least span apart, so at most Buckets+2 of
	// them are; and one is open.
	slots := 2*cfg.Buckets + 4
	counts := make([]int32, slots*w.width)
	w.ring = make([]bucket, slots)
	for i := range w.ring {
		w.ring[i].counts = counts[i*w.width : (i+1)*w.width : (i+1)*w.width]
	}
	w.total = make([]int64, w.width)
	return w, nil
}

// Add counts one record that arrived at now: its raw input values, in the order of the
// profile's features (as ml.Model.Predict takes them), and its score. A numeric value that is
// not finite counts as missing, like a value that is not Present; a binary or categorical
// value of a category the profile does not list counts in the "other" bin. A record older
// than one added before is counted at the time of the newest. Errors are EINVALID
// *pulse.Error values; the window is then unchanged.
func (w *DriftWindow) Add(now time.Time, values []ml.Value, score float64) error {
	if len(values) != len(w.feats) {
		return pulse.Errorf(pulse.EINVALID, "drift window: got %d values, want %d (one per input)", len(values), len(w.feats))
	}
	if !(score >= 0 && score <= 1) {
		return pulse.FieldErrorf(pulse.EINVALID, "score", "drift window: score: got %v, want a probability in [0, 1]", score)
	}
	if now.After(w.latest) {
		w.latest = now
	}
	now = w.latest
	w.evict(now)
	b := w.open(now)
	b.n++
	b.last = now
	w.n++
	for i := range w.feats {
		f := &w.feats[i]
		v := &values[i]
		k := f.offset + f.bins // missing
		if v.Present {
			if f.numeric {
				if !math.IsNaN(v.Num) && !math.IsInf(v.Num, 0) {
					k = f.offset + bin(f.edges, v.Num)
				}
			} else {
				k = f.offset + f.cats.index(v.Str)
			}
		}
		b.counts[k]++
		w.total[k]++
	}
	k := w.score + bin(scoreEdges[:], score)
	b.counts[k]++
	w.total[k]++
	for w.n > w.size {
		w.drop()
	}
	return nil
}

// open returns the bucket that takes a record at now, opening a new one when the newest is
// full or its time span is over.
func (w *DriftWindow) open(now time.Time) *bucket {
	if w.count > 0 {
		b := &w.ring[(w.head+w.count-1)%len(w.ring)]
		if b.n < w.capacity && (w.span == 0 || now.Sub(b.first) < w.span) {
			return b
		}
	}
	if w.count == len(w.ring) { // not reached (see NewDriftWindow); bounded all the same
		w.drop()
	}
	b := &w.ring[(w.head+w.count)%len(w.ring)]
	w.count++
	clear(b.counts)
	b.n = 0
	b.first, b.last = now, now
	return b
}

// evict drops the buckets whose newest record is Period or more older than now.
func (w *DriftWindow) evict(now time.Time) {
	if w.period == 0 {
		return
	}
	cutoff := now.Add(-w.period)
	for w.count > 0 && !w.ring[w.head].last.After(cutoff) {
		w.drop()
	}
}

// drop removes the oldest bucket.
func (w *DriftWindow) drop() {
	b := &w.ring[w.head]
	for k, c := range b.counts {
		w.total[k] -= int64(c)
	}
	w.n -= b.n
	w.head = (w.head + 1) % len(w.ring)
	w.count--
}

// DriftReport compares the window's records with the training profile.
type DriftReport struct {
	// N is the number of records in the window.
	N int `json:"n"`
	// Features are the inputs, in the profile's order.
	Features []FeatureDrift `json:"features"`
	// ScorePSI is the PSI of the score's distribution (null with no records).
	ScorePSI *float64 `json:"score_psi"`
	// MaxPSI is the largest PSI of the features and Worst the feature that has it (the first
	// in order among equals); null and empty with no records.
	MaxPSI *float64 `json:"max_psi"`
	Worst  string   `json:"worst,omitempty"`
}

// FeatureDrift is one input's drift.
type FeatureDrift struct {
	Name string `json:"name"`
	// PSI is the population stability index of the present values against the training
	// proportions; null when the window holds no present value of the input.
	PSI *float64 `json:"psi"`
	// MissingRate is the share of the window's records where the input is missing (null with
	// no records), TrainingMissingRate the profile's.
	MissingRate         *float64 `json:"missing_rate"`
	TrainingMissingRate float64  `json:"training_missing_rate"`
}

// Report evicts the records that have left the time window at now (or at the newest record's
// time, if later) and compares the rest with the profile. It costs O(bins) and allocates the
// report.
func (w *DriftWindow) Report(now time.Time) DriftReport {
	if now.Before(w.latest) {
		now = w.latest
	}
	w.evict(now)
	r := DriftReport{N: w.n, Features: make([]FeatureDrift, len(w.feats))}
	for i := range w.feats {
		f := &w.feats[i]
		pf := &w.profile.Features[i]
		fd := FeatureDrift{Name: pf.Name, TrainingMissingRate: pf.MissingRate}
		fd.PSI = finite(psi(w.total[f.offset:f.offset+f.bins], pf.Proportions))
		if w.n > 0 {
			fd.MissingRate = finite(float64(w.total[f.offset+f.bins]) / float64(w.n))
		}
		if fd.PSI != nil && (r.MaxPSI == nil || *fd.PSI > *r.MaxPSI) {
			r.MaxPSI = fd.PSI
			r.Worst = fd.Name
		}
		r.Features[i] = fd
	}
	r.ScorePSI = finite(psi(w.total[w.score:w.width], w.profile.Score.Proportions))
	return r
}
