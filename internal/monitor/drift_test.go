package monitor

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// quartileProfile profiles one numeric input x = 0..99 (4 bins: edges 25, 50, 75, a quarter
// each) and one categorical input c with training shares a 3/4, b 1/4.
func quartileProfile(t testing.TB) *Profile {
	t.Helper()
	inputs := []pulse.Column{{Name: "x", Kind: pulse.Numeric}, {Name: "c", Kind: pulse.Categorical, Categories: []string{"a", "b"}}}
	var rows [][]ml.Value
	var scores []float64
	for i := range 100 {
		c := "a"
		if i%4 == 0 {
			c = "b"
		}
		rows = append(rows, []ml.Value{{Num: float64(i), Present: true}, {Str: c, Present: true}})
		scores = append(scores, float64(i)/100)
	}
	p, err := ProfileFromRows(inputs, rows, scores, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Features[0].Edges) != 3 || p.Features[0].Edges[1] != 50 {
		t.Fatalf("x: got edges %v, want [25 50 75]", p.Features[0].Edges)
	}
	return p
}

func newDrift(t testing.TB, p *Profile, cfg DriftConfig) *DriftWindow {
	t.Helper()
	w, err := NewDriftWindow(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func add(t testing.TB, w *DriftWindow, at time.Time, x float64, c string, score float64) {
	t.Helper()
	vals := []ml.Value{{Num: x, Present: !math.IsNaN(x)}, {Str: c, Present: c != ""}}
	if err := w.Add(at, vals, score); err != nil {
		t.Fatal(err)
	}
}

func psiOf(t testing.TB, r DriftReport, i int) float64 {
	t.Helper()
	if r.Features[i].PSI == nil {
		t.Fatalf("%s: PSI is null", r.Features[i].Name)
	}
	return *r.Features[i].PSI
}

func TestDriftKnownShift(t *testing.T) {
	p := quartileProfile(t)
	tests := []struct {
		name    string
		xs      []float64 // one record per value, with x's bin counts 40/30/20/10 and so on
		cats    []string
		wantX   float64
		wantC   float64
		missing float64
	}{
		{
			name: "identical",
			xs:   repeat([]float64{0, 30, 60, 90}, 25),
			cats: repeat([]string{"a", "a", "a", "b"}, 25),
		},
		{
			// x: 0.15 ln 1.6 + 0.05 ln 1.2 + 0.05 ln 1.25 + 0.15 ln 2.5; c as in training
			name:  "shift",
			xs:    concat(repeat([]float64{10}, 40), repeat([]float64{30}, 30), repeat([]float64{60}, 20), repeat([]float64{99}, 10)),
			cats:  repeat([]string{"a", "a", "a", "b"}, 25),
			wantX: 0.22821740957339182,
		},
		{
			// x: two empty bins (1e-4); c: a 1/4, b 1/4, unseen "z" 1/2; and half of x missing,
			// which only the missing rate shows.
			name:    "empty bins, unseen category, missing",
			xs:      concat(repeat([]float64{0}, 2), repeat([]float64{math.NaN()}, 4), repeat([]float64{80}, 2)),
			cats:    []string{"a", "b", "z", "z", "a", "b", "z", "z"},
			wantX:   4.257031786505947,
			wantC:   4.807051020723032,
			missing: 0.5,
		},
	}
	for _, tt := range tests {
		w := newDrift(t, p, DriftConfig{})
		for i, x := range tt.xs {
			add(t, w, t0, x, tt.cats[i], 0.5)
		}
		r := w.Report(t0)
		if r.N != len(tt.xs) {
			t.Errorf("%s: got n %d, want %d", tt.name, r.N, len(tt.xs))
		}
		if got := psiOf(t, r, 0); math.Abs(got-tt.wantX) > 1e-12 {
			t.Errorf("%s: x: got PSI %v, want %v", tt.name, got, tt.wantX)
		}
		if got := psiOf(t, r, 1); math.Abs(got-tt.wantC) > 1e-12 {
			t.Errorf("%s: c: got PSI %v, want %v", tt.name, got, tt.wantC)
		}
		if got := *r.Features[0].MissingRate; got != tt.missing {
			t.Errorf("%s: x: got missing rate %v, want %v", tt.name, got, tt.missing)
		}
		wantMax, wantWorst := tt.wantX, "x"
		if tt.wantC > tt.wantX {
			wantMax, wantWorst = tt.wantC, "c"
		}
		if r.MaxPSI == nil || math.Abs(*r.MaxPSI-wantMax) > 1e-12 || r.Worst != wantWorst {
			t.Errorf("%s: got max PSI %v of %q, want %v of %q", tt.name, r.MaxPSI, r.Worst, wantMax, wantWorst)
		}
	}
}

func repeat[T any](xs []T, n int) []T {
	var out []T
	for range n {
		out = append(out, xs...)
	}
	return out
}

func concat[T any](xss ...[]T) []T {
	var out []T
	for _, xs := range xss {
		out = append(out, xs...)
	}
	return out
}

func TestDriftSameRowsCleveland(t *testing.T) {
	tab := cleveland(t)
	m := trainCleveland(t, tab).Model
	p, err := BuildProfile(m, tab)
	if err != nil {
		t.Fatal(err)
	}
	w := newDrift(t, p, DriftConfig{Size: 1000})
	scores, _, err := m.PredictTable(tab)
	if err != nil {
		t.Fatal(err)
	}
	for r := range tab.Rows {
		if err := w.Add(t0, rowValues(t, m, tab, r), scores[r]); err != nil {
			t.Fatal(err)
		}
	}
	rep := w.Report(t0)
	if rep.N != 303 {
		t.Errorf("got n %d, want 303", rep.N)
	}
	for i, f := range rep.Features {
		if got := psiOf(t, rep, i); math.Abs(got) > 1e-12 {
			t.Errorf("%s: got PSI %v for the training rows themselves, want 0", f.Name, got)
		}
		if *f.MissingRate != f.TrainingMissingRate {
			t.Errorf("%s: got missing rate %v, want the training %v", f.Name, *f.MissingRate, f.TrainingMissingRate)
		}
	}
	if rep.ScorePSI == nil || math.Abs(*rep.ScorePSI) > 1e-12 {
		t.Errorf("got score PSI %v, want 0", rep.ScorePSI)
	}
}

func TestDriftEvictionByCount(t *testing.T) {
	p := quartileProfile(t)
	w := newDrift(t, p, DriftConfig{Size: 100, Buckets: 10})
	for range 100 {
		add(t, w, t0, 10, "a", 0.05) // bin 0
	}
	if r := w.Report(t0); r.N != 100 {
		t.Fatalf("after 100: got n %d, want 100", r.N)
	}
	add(t, w, t0, 90, "a", 0.95)
	if r := w.Report(t0); r.N != 91 {
		t.Errorf("after 101: got n %d, want 91 (the oldest bucket of 10 left)", r.N)
	}
	for range 99 {
		add(t, w, t0, 90, "a", 0.95) // bin 3
	}
	r := w.Report(t0)
	if r.N != 100 {
		t.Fatalf("after 200: got n %d, want 100", r.N)
	}
	// Only the last 100 records, all in bin 3: 3 (1e-4 - 0.25) ln(1e-4/0.25) + 0.75 ln 4.
	if got, want := psiOf(t, r, 0), 6.9054080651788805; math.Abs(got-want) > 1e-12 {
		t.Errorf("x: got PSI %v, want %v (the first 100 records evicted)", got, want)
	}
	// Memory does not grow with traffic.
	for range 100000 {
		add(t, w, t0, 90, "a", 0.95)
	}
	if len(w.ring) != 2*10+4 {
		t.Errorf("got %d buckets, want %d", len(w.ring), 2*10+4)
	}
}

func TestDriftEvictionByTime(t *testing.T) {
	p := quartileProfile(t)
	w := newDrift(t, p, DriftConfig{Size: 1000, Period: 10 * time.Minute, Buckets: 10})
	for range 10 {
		add(t, w, t0, 10, "a", 0.05)
	}
	for range 5 {
		add(t, w, t0.Add(5*time.Minute), 90, "b", 0.95)
	}
	tests := []struct {
		at   time.Duration
		want int
	}{
		{9 * time.Minute, 15},
		{10 * time.Minute, 5}, // the records of t0 are 10 minutes old: gone
		{15*time.Minute - time.Nanosecond, 5},
		{15 * time.Minute, 0},
	}
	for _, tt := range tests {
		r := w.Report(t0.Add(tt.at))
		if r.N != tt.want {
			t.Errorf("at +%v: got n %d, want %d", tt.at, r.N, tt.want)
		}
	}
	r := w.Report(t0.Add(time.Hour))
	if r.N != 0 || r.MaxPSI != nil || r.ScorePSI != nil || r.Features[0].PSI != nil || r.Features[0].MissingRate != nil || r.Worst != "" {
		t.Errorf("empty window: got %+v, want nulls", r)
	}
	b, err := json.Marshal(r)
	if err != nil || strings.Contains(string(b), "NaN") || !strings.Contains(string(b), `"max_psi":null`) {
		t.Errorf("empty window JSON: got %s (%v), want nulls", b, err)
	}
	// A record older than the newest is counted at the newest time.
	w = newDrift(t, p, DriftConfig{Period: time.Minute})
	add(t, w, t0.Add(time.Hour), 10, "a", 0.5)
	add(t, w, t0, 10, "a", 0.5)
	if r := w.Report(t0.Add(time.Hour + 30*time.Second)); r.N != 2 {
		t.Errorf("late record: got n %d, want 2", r.N)
	}
}

func TestDriftAddErrors(t *testing.T) {
	p := quartileProfile(t)
	w := newDrift(t, p, DriftConfig{})
	tests := []struct {
		name  string
		vals  []ml.Value
		score float64
		want  string
	}{
		{"values", []ml.Value{{Num: 1, Present: true}}, 0.5, "got 1 values, want 2"},
		{"score NaN", make([]ml.Value, 2), math.NaN(), "score: got NaN"},
		{"score range", make([]ml.Value, 2), 1.5, "score: got 1.5"},
	}
	for _, tt := range tests {
		err := w.Add(t0, tt.vals, tt.score)
		if pulse.ErrorCode(err) != pulse.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an EINVALID error containing %q", tt.name, err, tt.want)
		}
	}
	if r := w.Report(t0); r.N != 0 {
		t.Errorf("after errors: got n %d, want 0", r.N)
	}
	for _, cfg := range []DriftConfig{{Size: -1}, {Period: -time.Second}, {Buckets: -2}, {Buckets: 5000}} {
		if _, err := NewDriftWindow(p, cfg); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("config %+v: got %v, want EINVALID", cfg, err)
		}
	}
	if _, err := NewDriftWindow(&Profile{Format: 2}, DriftConfig{}); err == nil {
		t.Errorf("bad profile: got no error")
	}
}

// clevelandStream draws Cleveland rows at random; shift is added to thalach (maximum heart
// rate), as in a population on beta blockers.
type clevelandStream struct {
	vals    [][]ml.Value
	scores  []float64
	thalach int
	rng     *rand.Rand
	row     []ml.Value
}

func newClevelandStream(t testing.TB, m *ml.Model, seed uint64) *clevelandStream {
	tab := cleveland(t)
	s := &clevelandStream{rng: rand.New(rand.NewPCG(seed, 7)), thalach: -1}
	for i, in := range m.Inputs() {
		if in.Name == "thalach" {
			s.thalach = i
		}
	}
	if s.thalach < 0 {
		t.Fatal("no input thalach")
	}
	for r := range tab.Rows {
		s.vals = append(s.vals, rowValues(t, m, tab, r))
	}
	s.scores, _, _ = m.PredictTable(tab)
	s.row = make([]ml.Value, len(m.Inputs()))
	return s
}

// next returns a random row with thalach shifted, and the model's score of it.
func (s *clevelandStream) next(m *ml.Model, shift float64) ([]ml.Value, float64) {
	r := s.rng.IntN(len(s.vals))
	copy(s.row, s.vals[r])
	if shift == 0 {
		return s.row, s.scores[r]
	}
	s.row[s.thalach].Num += shift
	p, _ := m.Predict(s.row, nil)
	return s.row, p
}

// TestDriftClevelandStream: a stream resampled from the training data never reads as drift;
// a shift of thalach by -40 beats per minute (1.7 standard deviations) does, within a
// documented number of records.
func TestDriftClevelandStream(t *testing.T) {
	tab := cleveland(t)
	m := trainCleveland(t, tab).Model
	p, err := BuildProfile(m, tab)
	if err != nil {
		t.Fatal(err)
	}
	s := newClevelandStream(t, m, 1)
	w := newDrift(t, p, DriftConfig{Size: 1000, Buckets: 20})
	const stable = 20000
	var worst float64
	var worstName string
	for i := range stable {
		vals, score := s.next(m, 0)
		if err := w.Add(t0, vals, score); err != nil {
			t.Fatal(err)
		}
		if i >= 500 && i%50 == 0 {
			r := w.Report(t0)
			if *r.MaxPSI > worst {
				worst, worstName = *r.MaxPSI, r.Worst
			}
		}
	}
	if worst >= 0.1 {
		t.Errorf("stable stream: max PSI reached %.4f (%s), want under 0.1", worst, worstName)
	}
	t.Logf("stable stream of %d records, window 1000: largest max PSI %.4f (%s)", stable, worst, worstName)

	detected := -1
	for i := range 1000 {
		vals, score := s.next(m, -40)
		if err := w.Add(t0, vals, score); err != nil {
			t.Fatal(err)
		}
		if r := w.Report(t0); *r.MaxPSI > 0.25 {
			if r.Worst != "thalach" {
				t.Errorf("shift: worst feature %q, want thalach", r.Worst)
			}
			detected = i + 1
			break
		}
	}
	// About a third of the window shifted is enough: PSI 0.25 is reached after ~330 records
	// of the 1000-record window (seed 1).
	if detected < 0 || detected > 400 {
		t.Errorf("shift of thalach by -40: PSI > 0.25 after %d records, want within 400", detected)
	}
	t.Logf("shift of thalach by -40: max PSI > 0.25 after %d records", detected)
}
