package evaluator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// benchEvaluator is an evaluator with stub stores: the benchmarks measure the hot paths only.
func benchEvaluator(b *testing.B) *Evaluator {
	b.Helper()
	e, err := New(Config{Models: stubModels{}, Store: stubStore{}})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// stubModels and stubStore are never called by the hot paths.
type (
	models     interface{ Models }
	store      interface{ Store }
	stubModels struct{ models }
	stubStore  struct{ store }
)

// BenchmarkObserve is the cost serving pays per scored record: copy the values, queue them
// (the drainer runs concurrently, as in pulse serve).
func BenchmarkObserve(b *testing.B) {
	e := benchEvaluator(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case o := <-e.obs:
				e.valuePool.Put(o.values)
			}
		}
	}()
	vals := make([]ml.Value, 13)
	for i := range vals {
		vals[i] = ml.Value{Num: float64(i), Present: true}
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e.Observe("heart-disease", 1, vals, 0.42, now)
	}
}

// BenchmarkLiveAccuracy is the lookup serving makes per request for the model block.
func BenchmarkLiveAccuracy(b *testing.B) {
	e := benchEvaluator(b)
	m := map[vkey]summary{}
	for v := range 20 {
		m[vkey{"heart-disease", v + 1}] = summary{accuracy: 0.9, labels: 500, ok: true, gen: uint64(v + 1)}
	}
	e.summaries.Store(&m)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok, _ := e.LiveAccuracy("heart-disease", 7); !ok {
			b.Fatal("not found")
		}
	}
}

// BenchmarkOutcomes adds labelled outcomes in batches of 100, a champion's paired with its
// shadow challenger's: the cost per outcome of the feedback join's listener.
func BenchmarkOutcomes(b *testing.B) {
	e := benchEvaluator(b)
	e.shadowing["heart-disease"] = 2
	now := time.Now()
	batch := make([]Outcome, 100)
	ids := make([]string, 50)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range ids {
			ids[i] = fmt.Sprintf("p-%d", n)
			n++
		}
		for i := range batch {
			o := Outcome{PredictionID: ids[i/2], Model: "heart-disease", Version: 1, Alias: pulse.AliasChampion,
				Probability: float64(i%10) / 10, Predicted: i % 2, Label: (i / 3) % 2, ScoredAt: now.Add(-time.Minute), ObservedAt: now}
			if i%2 == 1 {
				o.Version, o.Alias, o.Shadow = 2, pulse.AliasChallenger, true
			}
			batch[i] = o
		}
		e.Outcomes(context.Background(), batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/outcome")
}
