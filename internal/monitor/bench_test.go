package monitor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/ml"
)

func benchOutcomes(n int) []Outcome {
	rng := rand.New(rand.NewPCG(1, 1))
	os := make([]Outcome, n)
	for i := range os {
		y := rng.IntN(2)
		p := min(rng.Float64()*0.7+0.3*float64(y), 1)
		pred := 0
		if p >= 0.5 {
			pred = 1
		}
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		os[i] = Outcome{Probability: p, Predicted: pred, Label: y, PredictedAt: at.Add(-time.Duration(rng.IntN(3600)) * time.Second), ObservedAt: at}
	}
	return os
}

func BenchmarkLiveWindowAdd(b *testing.B) {
	os := benchOutcomes(4096)
	w := newLive(b, LiveConfig{Size: 10000, Period: 24 * time.Hour})
	for i := range 10000 { // a full window: each Add overwrites the oldest
		if err := w.Add(os[i&4095]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := w.Add(os[i&4095]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkLiveWindowReport(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			os := benchOutcomes(n)
			w := newLive(b, LiveConfig{Size: n, Period: 24 * time.Hour})
			for _, o := range os {
				if err := w.Add(o); err != nil {
					b.Fatal(err)
				}
			}
			now := os[n-1].ObservedAt
			b.ReportAllocs()
			for b.Loop() {
				if m := w.Report(now); m.N != n {
					b.Fatalf("got n %d, want %d", m.N, n)
				}
			}
		})
	}
}

// clevelandRecords returns the Cleveland model's profile and its rows as records.
func clevelandRecords(b *testing.B) (*Profile, [][]ml.Value, []float64) {
	tab := cleveland(b)
	m := trainCleveland(b, tab).Model
	p, err := BuildProfile(m, tab)
	if err != nil {
		b.Fatal(err)
	}
	scores, _, err := m.PredictTable(tab)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([][]ml.Value, tab.Rows)
	for r := range rows {
		rows[r] = rowValues(b, m, tab, r)
	}
	return p, rows, scores
}

func BenchmarkDriftWindowAdd(b *testing.B) {
	p, rows, scores := clevelandRecords(b)
	w := newDrift(b, p, DriftConfig{Size: 10000, Period: time.Hour})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := i % len(rows)
		if err := w.Add(t0.Add(time.Duration(i)*time.Millisecond), rows[r], scores[r]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDriftWindowReport(b *testing.B) {
	p, rows, scores := clevelandRecords(b)
	w := newDrift(b, p, DriftConfig{Size: 10000})
	for i := range 10000 {
		if err := w.Add(t0, rows[i%len(rows)], scores[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := w.Report(t0); r.N != 10000 {
			b.Fatalf("got n %d, want 10000", r.N)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	policy := mustPolicy(b, examplePolicy)
	s := State{
		Now: t0, Champion: 3, PreviousGood: 2,
		Live:       metrics(500, est(0.6, 0.56, 0.64), est(0.7, 0.65, 0.75)),
		Drift:      &DriftReport{N: 1000, MaxPSI: ptr(0.4), Worst: "thalach", ScorePSI: ptr(0.1)},
		Challenger: &Shadow{Version: 4, Live: metrics(1000, nil, est(0.95, 0.93, 0.97)), Champion: metrics(1000, nil, est(0.7, 0.66, 0.74))},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(policy, s); err != nil {
			b.Fatal(err)
		}
	}
}
