package serving

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// recordingObserver keeps copies of what it observes.
type recordingObserver struct {
	mu   sync.Mutex
	seen []observed
}

type observed struct {
	model   string
	version int
	values  []ml.Value
	p       float64
	at      time.Time
}

func (o *recordingObserver) Observe(model string, version int, values []ml.Value, p float64, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, observed{model, version, slices.Clone(values), p, at})
}

func (o *recordingObserver) all() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

// fixedLive reports the same live accuracy for every version of "m" from a generation on.
type fixedLive struct {
	mu  sync.Mutex
	acc float64
	n   int
	ok  bool
	gen uint64
}

func (l *fixedLive) LiveAccuracy(model string, version int) (float64, int, bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acc, l.n, l.ok, l.gen
}

func (l *fixedLive) set(acc float64, n int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acc, l.n, l.ok = acc, n, ok
	l.gen++
}

// TestObserverAndShadow: every stored record is observed with its inputs; a record answered
// by the champion is scored again by the challenger after the answer, stored with the same
// prediction_id, alias challenger and Shadow, and observed too; records scored by version or
// by another alias, a failed request, and a model whose shadow is off are not.
func TestObserverAndShadow(t *testing.T) {
	e := newTestEnv(t, 0)
	ctx := context.Background()
	obs := &recordingObserver{}
	var mu sync.Mutex
	enabled := true
	sc, err := New(Config{Models: e.reg, Sink: e.sink, Registerer: prometheus.NewRegistry(), Now: func() time.Time { return fixedNow },
		Observer: obs, Shadow: ShadowConfig{Enabled: func(model string) bool { mu.Lock(); defer mu.Unlock(); return enabled }}})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)

	// Without a challenger: observed, not shadowed.
	body := []byte(`{"age":61,"cp":3,"sex":1,"smoker":"yes","patient":"p-1"}`)
	if _, err := sc.Predict(ctx, Request{Model: "m", Body: body}); err != nil {
		t.Fatal(err)
	}
	if got := obs.all(); len(got) != 1 || got[0].model != "m" || got[0].version != 1 || !got[0].at.Equal(fixedNow) {
		t.Fatalf("observed: got %+v, want one record of version 1", got)
	}
	wantAge := ml.Value{Num: 61, Present: true}
	l1, _ := e.reg.Load(ctx, "m", 1)
	for i, in := range l1.Model.Inputs() {
		if in.Name == "age" && obs.all()[0].values[i] != wantAge {
			t.Errorf("observed age: got %+v, want %+v", obs.all()[0].values[i], wantAge)
		}
	}
	if _, err := e.reg.SetAlias(ctx, "m", pulse.AliasChallenger, 2); err != nil {
		t.Fatal(err)
	}
	out, err := sc.Predict(ctx, Request{Model: "m", RequestID: "r-7", Body: []byte(`{"instances":[{"age":50,"cp":1},{"age":70,"cp":2,"smoker":"no"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Predictions []struct {
			PredictionID string `json:"prediction_id"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(out, &answer); err != nil || len(answer.Predictions) != 2 {
		t.Fatalf("answer: %s (%v)", out, err)
	}
	waitUntil(t, func() bool { return len(e.sink.records()) == 5 })
	recs := e.sink.records()
	for i, id := range []string{answer.Predictions[0].PredictionID, answer.Predictions[1].PredictionID} {
		champ, shadow := recs[1+i], recs[3+i]
		if champ.PredictionID != id || champ.Shadow || champ.Alias != "champion" || champ.Version != 1 {
			t.Errorf("champion record %d: got %+v", i, champ)
		}
		if shadow.PredictionID != id || !shadow.Shadow || shadow.Alias != "challenger" || shadow.Version != 2 ||
			!shadow.ScoredAt.Equal(champ.ScoredAt) || string(shadow.Features) != string(champ.Features) || len(shadow.Response) != 0 || shadow.RequestID != "r-7" {
			t.Errorf("shadow record %d: got %+v", i, shadow)
		}
		named := map[string]ml.Value{"age": {Num: []float64{50, 70}[i], Present: true}, "cp": {Str: []string{"1", "2"}[i], Present: true}}
		if i == 1 {
			named["smoker"] = ml.Value{Str: "no", Present: true}
		}
		if want := e.probability(t, 2, named); shadow.Probability != want || shadow.Label != labelOf(want, shadow.Threshold) {
			t.Errorf("shadow record %d: probability %v label %d, want %v as version 2 scores it", i, shadow.Probability, shadow.Label, want)
		}
	}
	waitUntil(t, func() bool { return len(obs.all()) == 5 })
	if got := obs.all(); got[3].version != 2 || got[4].version != 2 || got[3].p != recs[3].Probability {
		t.Errorf("observed shadow records: got %+v", got[3:])
	}
	if got := testutil.ToFloat64(sc.shadow.scored.WithLabelValues("m", "2")); got != 2 {
		t.Errorf("pulse_shadow_predictions_total: got %v, want 2", got)
	}

	// Not shadowed: by version, by the challenger alias itself, a failed request, shadow off.
	for _, req := range []Request{
		{Model: "m", Version: 1, Body: body},
		{Model: "m", Alias: "challenger", Body: body},
		{Model: "m", Body: []byte(`{"age":"old"}`)},
	} {
		_, _ = sc.Predict(ctx, req)
	}
	mu.Lock()
	enabled = false
	mu.Unlock()
	if _, err := sc.Predict(ctx, Request{Model: "m", Body: body}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(e.sink.records()); got != 8 {
		t.Errorf("records after the unshadowed requests: got %d, want 8 (5 + 3 answered, none shadowed)", got)
	}
	if got := len(obs.all()); got != 8 {
		t.Errorf("observed after the unshadowed requests: got %d, want 8 (the failed request is not)", got)
	}
}

// TestShadowQueueFull: when the queue is full, a record is not shadowed and is counted; the
// answer is not delayed.
func TestShadowQueueFull(t *testing.T) {
	e := newTestEnv(t, 0)
	ctx := context.Background()
	sink := &blockingSink{recordingSink: e.sink, block: make(chan struct{}), entered: make(chan struct{})}
	sc, err := New(Config{Models: e.reg, Sink: sink, Registerer: prometheus.NewRegistry(),
		Shadow: ShadowConfig{Enabled: func(string) bool { return true }, Queue: 2, Workers: 1, Linger: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.SetAlias(ctx, "m", pulse.AliasChallenger, 2); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"age":61,"cp":3}`)
	if _, err := sc.Predict(ctx, Request{Model: "m", Body: body}); err != nil {
		t.Fatal(err)
	}
	<-sink.entered // the worker is stuck storing the first shadow record
	for range 10 {
		if _, err := sc.Predict(ctx, Request{Model: "m", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(sc.shadow.failures.WithLabelValues("m", "queue_full")); got != 8 {
		t.Errorf("dropped: got %v, want 8 of 10 (two fit the queue)", got)
	}
	close(sink.block)
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// blockingSink blocks shadow appends (Shadow records) until block is closed, saying on
// entered when the first one arrives.
type blockingSink struct {
	*recordingSink
	block, entered chan struct{}
	once           sync.Once
}

func (s *blockingSink) AppendPredictions(ctx context.Context, recs ...lake.Prediction) error {
	if len(recs) > 0 && recs[0].Shadow {
		s.once.Do(func() { close(s.entered) })
		<-s.block
	}
	return s.recordingSink.AppendPredictions(ctx, recs...)
}

// TestModelBlockLive: the model block shows the live accuracy and labels next to the holdout
// metrics once the live source says so, and follows its changes.
func TestModelBlockLive(t *testing.T) {
	e := newTestEnv(t, 0)
	ctx := context.Background()
	live := &fixedLive{}
	sc, err := New(Config{Models: e.reg, Sink: e.sink, Live: live})
	if err != nil {
		t.Fatal(err)
	}
	block := func() map[string]any {
		out, err := sc.Predict(ctx, Request{Model: "m", Body: []byte(`{"age":61}`)})
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Model struct {
				Metrics map[string]any `json:"metrics"`
			} `json:"model"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r.Model.Metrics
	}
	if m := block(); m["live_accuracy"] != nil || m["accuracy"] != e.v1.Metrics.Holdout.Accuracy {
		t.Errorf("no live metrics: got %v", m)
	}
	live.set(0.875, 40, false)
	if m := block(); m["live_accuracy"] != nil {
		t.Errorf("too few labels: got %v, want no live_accuracy", m)
	}
	live.set(0.875, 160, true)
	if m := block(); m["live_accuracy"] != 0.875 || m["live_labels"] != 160.0 || m["roc_auc"] != e.v1.Metrics.Holdout.ROCAUC {
		t.Errorf("live metrics: got %v, want live_accuracy 0.875 over 160 labels next to the holdout's", m)
	}
	live.set(0.9, 161, true)
	if m := block(); m["live_accuracy"] != 0.9 || m["live_labels"] != 161.0 {
		t.Errorf("updated live metrics: got %v", m)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type discardObserver struct{ buf []ml.Value }

func (o *discardObserver) Observe(model string, version int, values []ml.Value, p float64, at time.Time) {
	o.buf = append(o.buf[:0], values...)
}

// BenchmarkPredictObserved is BenchmarkPredict with what continuous evaluation adds to the
// request path: the observer (copying the values), the live metrics lookup for the model
// block, and the shadow check (shadow on, no challenger).
func BenchmarkPredictObserved(b *testing.B) {
	e := newTestEnv(b, 0)
	live := &fixedLive{}
	live.set(0.875, 160, true)
	sc, err := New(Config{Models: e.reg, Sink: noopSink{}, Observer: &discardObserver{}, Live: live,
		Shadow: ShadowConfig{Enabled: func(string) bool { return true }}})
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close(context.Background())
	ctx := context.Background()
	req := Request{Model: "m", RequestID: "bench", Body: []byte(`{"age":61,"cp":3,"sex":1,"smoker":"yes","colour":"blue","patient":"p-17"}`)}
	if _, err := sc.Predict(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sc.Predict(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
