package ftrl

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// trained returns a learner that has learnt 300 examples of a stream with missing values.
func trained(t *testing.T) *Learner {
	t.Helper()
	p := DefaultParams()
	p.NoScale = streamBinary
	l, err := New(streamDim, p)
	if err != nil {
		t.Fatal(err)
	}
	learn(l, newStream(10, 1), 300)
	return l
}

func TestJSONRoundTrip(t *testing.T) {
	l := trained(t)
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var got Learner
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Dim() != l.Dim() || got.Count() != l.Count() {
		t.Errorf("dim, count: got %d, %d; want %d, %d", got.Dim(), got.Count(), l.Dim(), l.Count())
	}
	gp, wp := got.Params(), l.Params()
	if gp.Alpha != wp.Alpha || gp.Beta != wp.Beta || gp.L1 != wp.L1 || gp.L2 != wp.L2 ||
		gp.Scale != wp.Scale || !slices.Equal(gp.NoScale, wp.NoScale) {
		t.Errorf("params: got %+v, want %+v", gp, wp)
	}
	gw, gb := got.Weights()
	ww, wb := l.Weights()
	if i := sameBits(append(gw, gb), append(ww, wb)); i >= 0 {
		t.Errorf("weights: got %v, want %v", append(gw, gb), append(ww, wb))
	}
	gm, gs := got.Scaling()
	wm, ws := l.Scaling()
	if sameBits(gm, wm) >= 0 || sameBits(gs, ws) >= 0 {
		t.Errorf("scaling: got %v %v, want %v %v", gm, gs, wm, ws)
	}
	// Predictions, which read the scaler as it is, agree bit for bit.
	s := newStream(11, 1)
	for k := range 200 {
		x, _ := s.next()
		if g, w := got.Predict(x), l.Predict(x); math.Float64bits(g) != math.Float64bits(w) {
			t.Fatalf("Predict of example %d: got %v, want %v", k, g, w)
		}
	}
	again, err := json.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(b) {
		t.Errorf("marshal after unmarshal:\n got %s\nwant %s", again, b)
	}
	if !strings.Contains(string(b), `"version":1`) {
		t.Errorf("state has no version 1: %s", b)
	}
}

func TestUnmarshalRejectsCorruptState(t *testing.T) {
	valid, err := trained(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	// edit decodes the valid state, applies f and encodes it again.
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	scaler := func(m map[string]any) map[string]any { return m["scaler"].(map[string]any) }
	params := func(m map[string]any) map[string]any { return m["params"].(map[string]any) }
	set := func(v any, i int, x any) { v.([]any)[i] = x }
	for _, tc := range []struct {
		name      string
		state     string
		wantCode  string
		wantField string
	}{
		{"truncated", string(valid[:len(valid)/2]), pulse.EINVALID, ""},
		{"empty", "", pulse.EINVALID, ""},
		{"not an object", `[1,2]`, pulse.EINVALID, ""},
		{"NaN literal", strings.Replace(string(valid), `"z":[`, `"z":[NaN,`, 1), pulse.EINVALID, ""},
		{"NaN string", edit(func(m map[string]any) { set(m["z"], 0, "NaN") }), pulse.EINVALID, ""},
		{"overflowing number", strings.Replace(string(valid), `"n":[`, `"n":[1e999,`, 1), pulse.EINVALID, ""},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), pulse.EINVALID, ""},
		{"trailing data", string(valid) + `{}`, pulse.EINVALID, ""},
		{"unknown version", edit(func(m map[string]any) { m["version"] = 2 }), pulse.EUNPROCESSABLE, "version"},
		{"no version", edit(func(m map[string]any) { delete(m, "version") }), pulse.EUNPROCESSABLE, "version"},
		{"dim 0", edit(func(m map[string]any) { m["dim"] = 0 }), pulse.EUNPROCESSABLE, "dim"},
		{"dim too large", edit(func(m map[string]any) { m["dim"] = 11 }), pulse.EUNPROCESSABLE, "z"},
		{"bad alpha", edit(func(m map[string]any) { params(m)["alpha"] = -1 }), pulse.EUNPROCESSABLE, "params.alpha"},
		{"no params", edit(func(m map[string]any) { delete(m, "params") }), pulse.EUNPROCESSABLE, "params.alpha"},
		{"no_scale out of range", edit(func(m map[string]any) { params(m)["no_scale"] = []int{10} }), pulse.EUNPROCESSABLE, "params.no_scale"},
		{"negative count", edit(func(m map[string]any) { m["count"] = -1 }), pulse.EUNPROCESSABLE, "count"},
		{"z short", edit(func(m map[string]any) { m["z"] = m["z"].([]any)[1:] }), pulse.EUNPROCESSABLE, "z"},
		{"n long", edit(func(m map[string]any) { m["n"] = append(m["n"].([]any), 1.0) }), pulse.EUNPROCESSABLE, "n"},
		{"no z", edit(func(m map[string]any) { delete(m, "z") }), pulse.EUNPROCESSABLE, "z"},
		{"negative n", edit(func(m map[string]any) { set(m["n"], 3, -0.5) }), pulse.EUNPROCESSABLE, "n[3]"},
		{"scaler means short", edit(func(m map[string]any) { scaler(m)["mean"] = []float64{1} }), pulse.EUNPROCESSABLE, "scaler.mean"},
		{"scaler m2 missing", edit(func(m map[string]any) { delete(scaler(m), "m2") }), pulse.EUNPROCESSABLE, "scaler.m2"},
		{"negative scaler count", edit(func(m map[string]any) { set(scaler(m)["count"], 0, -1) }), pulse.EUNPROCESSABLE, "scaler.count[0]"},
		{"scaler count over count", edit(func(m map[string]any) { set(scaler(m)["count"], 0, 301) }), pulse.EUNPROCESSABLE, "scaler.count[0]"},
		{"negative m2", edit(func(m map[string]any) { set(scaler(m)["m2"], 2, -3) }), pulse.EUNPROCESSABLE, "scaler.m2[2]"},
		{"statistics of an unscaled feature", edit(func(m map[string]any) { set(scaler(m)["mean"], 5, 0.5) }), pulse.EUNPROCESSABLE, "scaler.count[5]"},
		{"m2 with one observation", edit(func(m map[string]any) {
			set(scaler(m)["count"], 0, 1)
		}), pulse.EUNPROCESSABLE, "scaler.m2[0]"},
	} {
		l := trained(t)
		before, _ := l.MarshalJSON()
		err := l.UnmarshalJSON([]byte(tc.state))
		var e *pulse.Error
		if !errors.As(err, &e) {
			t.Errorf("%s: got %v, want a *pulse.Error", tc.name, err)
			continue
		}
		if e.Code != tc.wantCode || e.Field != tc.wantField {
			t.Errorf("%s: got code %q field %q (%v), want code %q field %q", tc.name, e.Code, e.Field, err, tc.wantCode, tc.wantField)
		}
		if after, _ := l.MarshalJSON(); string(after) != string(before) {
			t.Errorf("%s: the failed unmarshal changed the learner", tc.name)
		}
	}
}

func TestUnmarshalRejectsNonFinite(t *testing.T) {
	// JSON cannot carry NaN or Inf, but validate must not rely on that.
	l := trained(t)
	b, _ := l.MarshalJSON()
	for _, tc := range []struct {
		name string
		edit func(s *state)
		want string
	}{
		{"z NaN", func(s *state) { s.Z[1] = math.NaN() }, "z[1]"},
		{"n Inf", func(s *state) { s.N[0] = math.Inf(1) }, "n[0]"},
		{"mean Inf", func(s *state) { s.Scaler.Mean[2] = math.Inf(-1) }, "scaler.mean[2]"},
		{"m2 NaN", func(s *state) { s.Scaler.M2[1] = math.NaN() }, "scaler.m2[1]"},
	} {
		var s state
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		tc.edit(&s)
		err := s.validate()
		var e *pulse.Error
		if !errors.As(err, &e) || e.Code != pulse.EUNPROCESSABLE || e.Field != tc.want {
			t.Errorf("%s: got %v, want an %s error about %s", tc.name, err, pulse.EUNPROCESSABLE, tc.want)
		}
	}
}
