package ftrl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// StateVersion is the version of the JSON state that MarshalJSON writes and UnmarshalJSON
// reads.
const StateVersion = 1

// state is the JSON form of a Learner. Everything else (weights, standard deviations, square
// roots) is a pure function of it, so a restored learner continues bit for bit.
type state struct {
	Version int       `json:"version"`
	Dim     int       `json:"dim"`
	Params  Params    `json:"params"`
	Count   int64     `json:"count"` // examples learnt
	Z       []float64 `json:"z"`     // per coordinate: the d features, then the bias
	N       []float64 `json:"n"`
	Scaler  scaler    `json:"scaler"`
}

// scaler is the running statistics of the features; those of unscaled features stay 0.
type scaler struct {
	Count []int64   `json:"count"`
	Mean  []float64 `json:"mean"`
	M2    []float64 `json:"m2"`
}

// MarshalJSON returns the learner's complete state: parameters, z and n of every coordinate
// (the bias last), the scaler's counts, means and sums of squared deviations, and the number
// of examples learnt, with a schema version. UnmarshalJSON restores it exactly.
func (l *Learner) MarshalJSON() ([]byte, error) {
	s := state{
		Version: StateVersion,
		Dim:     l.d,
		Params:  l.Params(),
		Count:   l.count,
		Z:       make([]float64, len(l.coords)),
		N:       make([]float64, len(l.coords)),
		Scaler: scaler{
			Count: make([]int64, l.d),
			Mean:  make([]float64, l.d),
			M2:    make([]float64, l.d),
		},
	}
	for i, c := range l.coords {
		s.Z[i], s.N[i] = c.z, c.n
	}
	for i, st := range l.stats {
		s.Scaler.Count[i], s.Scaler.Mean[i], s.Scaler.M2[i] = st.count, st.mean, st.m2
	}
	b, err := json.Marshal(s)
	if err != nil {
		// Only a non-finite value can fail, after unscaled inputs of absurd magnitude.
		return nil, pulse.Errorf(pulse.EINTERNAL, "ftrl: marshal state: %v", err)
	}
	return b, nil
}

// UnmarshalJSON replaces the learner's state with one written by MarshalJSON. It rejects
// malformed JSON and unknown fields (EINVALID), and an unknown version, invalid parameters,
// wrong lengths, non-finite numbers, negative n, counts or m2, and inconsistent scaler
// statistics (EUNPROCESSABLE). On error the learner is left unchanged.
func (l *Learner) UnmarshalJSON(b []byte) error {
	var s state
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return pulse.Errorf(pulse.EINVALID, "ftrl state: %v", err)
	}
	if dec.More() {
		return pulse.Errorf(pulse.EINVALID, "ftrl state: unexpected data after the JSON object")
	}
	if err := s.validate(); err != nil {
		return err
	}
	n := alloc(s.Dim, s.Params)
	for i := range n.coords {
		c := &n.coords[i]
		c.z, c.n = s.Z[i], s.N[i]
		c.sqrtN = math.Sqrt(c.n)
	}
	for i := range n.stats {
		st := &n.stats[i]
		st.count, st.mean, st.m2 = s.Scaler.Count[i], s.Scaler.Mean[i], s.Scaler.M2[i]
		st.setSD()
	}
	n.count = s.Count
	*l = *n
	return nil
}

// validate checks everything UnmarshalJSON promises to check.
func (s *state) validate() error {
	bad := func(field, format string, args ...any) error {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "ftrl state: "+field+": "+format, args...)
	}
	if s.Version != StateVersion {
		return bad("version", "got %d, want %d", s.Version, StateVersion)
	}
	if err := check(s.Dim, s.Params); err != nil {
		return fmt.Errorf("ftrl state: %w", err)
	}
	if s.Count < 0 {
		return bad("count", "got %d, want a non-negative count", s.Count)
	}
	d := s.Dim
	for _, a := range []struct {
		field string
		got   int
		want  int
	}{
		{"z", len(s.Z), d + 1},
		{"n", len(s.N), d + 1},
		{"scaler.count", len(s.Scaler.Count), d},
		{"scaler.mean", len(s.Scaler.Mean), d},
		{"scaler.m2", len(s.Scaler.M2), d},
	} {
		if a.got != a.want {
			return bad(a.field, "got %d values, want %d (dim %d)", a.got, a.want, d)
		}
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for i := range s.Z {
		if !finite(s.Z[i]) {
			return bad(fmt.Sprintf("z[%d]", i), "got %v, want a finite number", s.Z[i])
		}
		if !finite(s.N[i]) || s.N[i] < 0 {
			return bad(fmt.Sprintf("n[%d]", i), "got %v, want a finite number >= 0", s.N[i])
		}
	}
	scaled := scaledMask(d, s.Params)
	for i := range d {
		c, mean, m2 := s.Scaler.Count[i], s.Scaler.Mean[i], s.Scaler.M2[i]
		if c < 0 || c > s.Count {
			return bad(fmt.Sprintf("scaler.count[%d]", i), "got %d, want 0 to count (%d)", c, s.Count)
		}
		if !finite(mean) {
			return bad(fmt.Sprintf("scaler.mean[%d]", i), "got %v, want a finite number", mean)
		}
		if !finite(m2) || m2 < 0 {
			return bad(fmt.Sprintf("scaler.m2[%d]", i), "got %v, want a finite number >= 0", m2)
		}
		if !scaled[i] && (c != 0 || mean != 0 || m2 != 0) {
			return bad(fmt.Sprintf("scaler.count[%d]", i), "feature %d is not scaled, want count, mean and m2 0", i)
		}
		if c < 2 && m2 != 0 {
			return bad(fmt.Sprintf("scaler.m2[%d]", i), "got %v with %d observations, want 0", m2, c)
		}
		if c == 0 && mean != 0 {
			return bad(fmt.Sprintf("scaler.mean[%d]", i), "got %v with no observations, want 0", mean)
		}
	}
	return nil
}
