package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cloudmedical/pulse/internal/registry/registrytest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/tabular"
)

func TestAugment(t *testing.T) {
	modelJSON := []byte(`{"name":"m","version":3,"alias":"champion","metrics":{"accuracy":0.8,"roc_auc":0.9}}`)
	at := time.Date(2025, 3, 1, 12, 30, 0, 123456000, time.UTC)
	id := "0195525a-9c4e-7b1c-8f00-000000000001"
	for _, tc := range []struct {
		name     string
		inst     string
		p        float64
		warnings []string
	}{
		{"empty", `{}`, 0.25, nil},
		{"empty with a space", `{ }`, 0.25, nil},
		{"empty with a line break", "{\n\t}", 0.25, nil},
		{"compact", `{"a":1}`, 0.75, nil},
		{"spaced", `{ "a": 1 }`, 0.75, nil},
		{"multi-line", "{\n  \"a\": 1,\n  \"b\": [1, 2]\n}", 0.5, nil},
		{"nested and a brace in a string", `{"a":{"b":[1,{"c":"}"}]},"s":"{}"}`, 1e-9, nil},
		{"numbers kept as sent", `{"x":1.50,"y":1e2,"z":-0}`, 0.999999, nil},
		{"with warnings", `{"cp":9}`, 0.5, []string{`field "cp": category "9" was not seen in training; encoded as unknown`, `<&>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			label := 0
			if tc.p >= 0.5 {
				label = 1
			}
			out := augment([]byte(tc.inst), label, tc.p, 0.5, modelJSON, id, at.AppendFormat(nil, time.RFC3339Nano), tc.warnings)
			if !json.Valid(out) {
				t.Fatalf("not valid JSON: %s", out)
			}
			head := strings.TrimSpace(tc.inst[:len(tc.inst)-1])
			if !bytes.HasPrefix(out, []byte(head)) {
				t.Errorf("the input is not kept as sent: got %s, want it to start with %s", out, head)
			}
			var in, got map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.inst), &in); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range in {
				if !bytes.Equal(got[k], v) {
					t.Errorf("field %q: got %s, want %s", k, got[k], v)
				}
			}
			var pred struct {
				Label       *int     `json:"label"`
				Probability *float64 `json:"probability"`
				Threshold   *float64 `json:"threshold"`
			}
			if err := json.Unmarshal(got["prediction"], &pred); err != nil || pred.Label == nil || pred.Probability == nil || pred.Threshold == nil {
				t.Fatalf("prediction: got %s (err %v)", got["prediction"], err)
			}
			if *pred.Label != label || *pred.Probability != tc.p || *pred.Threshold != 0.5 {
				t.Errorf("prediction: got %s, want label %d probability %v threshold 0.5", got["prediction"], label, tc.p)
			}
			if !bytes.Equal(got["model"], modelJSON) {
				t.Errorf("model: got %s, want %s", got["model"], modelJSON)
			}
			if string(got["prediction_id"]) != `"`+id+`"` || string(got["scored_at"]) != `"2025-03-01T12:30:00.123456Z"` {
				t.Errorf("prediction_id %s scored_at %s", got["prediction_id"], got["scored_at"])
			}
			var warnings []string
			if raw, ok := got["warnings"]; ok {
				if err := json.Unmarshal(raw, &warnings); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings: got %q, want %q", warnings, tc.warnings)
			}
			n := len(in) + 4 // prediction, model, prediction_id, scored_at
			if tc.warnings != nil {
				n++
			}
			if len(got) != n {
				t.Errorf("got %d fields, want %d: %s", len(got), n, out)
			}
		})
	}
}

// recordingSink keeps copies of the records appended to it.
type recordingSink struct {
	mu    sync.Mutex
	calls [][]lake.Prediction
	err   error
}

func (s *recordingSink) AppendPredictions(ctx context.Context, recs ...lake.Prediction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	cp := make([]lake.Prediction, len(recs))
	for i, r := range recs {
		r.Features = bytes.Clone(r.Features)
		r.Response = bytes.Clone(r.Response)
		cp[i] = r
	}
	s.calls = append(s.calls, cp)
	return nil
}

func (s *recordingSink) records() []lake.Prediction {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []lake.Prediction
	for _, c := range s.calls {
		all = append(all, c...)
	}
	return all
}

func (s *recordingSink) nCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// trainingCSV is a small synthetic dataset with an input of every kind.
func trainingCSV() string {
	var b strings.Builder
	b.WriteString("age,cp,sex,smoker,colour,y\n")
	colours := []string{"red", "green", "blue"}
	for i := range 120 {
		age := 30 + (i*7)%45
		cp := 1 + i%3
		sex := (i / 3) % 2
		smoker := "no"
		if i%4 == 0 {
			smoker = "yes"
		}
		score := age + 8*sex + 6*(cp-1)
		if smoker == "yes" {
			score += 5
		}
		y := 0
		if score > 60 || i%11 == 0 { // some noise so that the classes overlap
			y = 1
		}
		ageCell := strconv.Itoa(age)
		if i%17 == 5 {
			ageCell = "?"
		}
		fmt.Fprintf(&b, "%s,%d,%d,%s,%s,%d\n", ageCell, cp, sex, smoker, colours[i%3], y)
	}
	return b.String()
}

var fixedNow = time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)

// testEnv is a registry with model "m" (version 1 champion, version 2 without alias) on real
// stores, and a scorer that appends to a recording sink.
type testEnv struct {
	reg    *registry.Service
	sink   *recordingSink
	scorer *Scorer
	prom   *prometheus.Registry
	v1, v2 *pulse.ModelVersion
}

func newTestEnv(t testing.TB, maxInstances int) *testEnv {
	t.Helper()
	ctx := context.Background()
	st := registrytest.New(t)
	db, blobs, lakeSt := st.DB, st.Blobs, st.Lake
	reg, err := registry.New(ctx, registry.Config{Store: db, Blobs: blobs, Lake: lakeSt})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := reg.RegisterDataset(ctx, registry.RegisterDatasetRequest{
		Name: "synthetic", Body: strings.NewReader(trainingCSV()),
		Options: tabular.Options{Kinds: map[string]pulse.Kind{"cp": pulse.Categorical}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{reg: reg, sink: &recordingSink{}, prom: prometheus.NewRegistry()}
	if e.v1, err = reg.Train(ctx, "m", registry.TrainRequest{Dataset: d.ID, Target: "y", Seed: 1, CVFolds: -1}); err != nil {
		t.Fatal(err)
	}
	if e.v2, err = reg.Train(ctx, "m", registry.TrainRequest{Dataset: d.ID, Target: "y", Seed: 2, CVFolds: -1, Params: map[string]any{"C": 0.05}}); err != nil {
		t.Fatal(err)
	}
	e.scorer, err = New(Config{Models: reg, Sink: e.sink, Registerer: e.prom, MaxInstances: maxInstances, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// probability scores named raw values with version's model through the ml API.
func (e *testEnv) probability(t *testing.T, version int, named map[string]ml.Value) float64 {
	t.Helper()
	l, err := e.reg.Load(context.Background(), "m", version)
	if err != nil {
		t.Fatal(err)
	}
	values := make([]ml.Value, len(l.Model.Inputs()))
	for i, c := range l.Model.Inputs() {
		values[i] = named[c.Name]
	}
	p, _ := l.Model.Predict(values, make([]float64, l.Model.Width()))
	return p
}

// response is the decoded form of one scored object.
type response struct {
	Prediction struct {
		Label       int     `json:"label"`
		Probability float64 `json:"probability"`
		Threshold   float64 `json:"threshold"`
	} `json:"prediction"`
	Model struct {
		Name    string `json:"name"`
		Version int    `json:"version"`
		Alias   string `json:"alias"`
		Metrics struct {
			Accuracy float64 `json:"accuracy"`
			ROCAUC   float64 `json:"roc_auc"`
		} `json:"metrics"`
	} `json:"model"`
	PredictionID string   `json:"prediction_id"`
	ScoredAt     string   `json:"scored_at"`
	Warnings     []string `json:"warnings"`
}

func decode(t *testing.T, b []byte) response {
	t.Helper()
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return r
}

func TestPredictOne(t *testing.T) {
	e := newTestEnv(t, 0)
	ctx := context.Background()
	body := `{ "age": 61, "cp": "3", "sex": true, "smoker": "yes", "colour": "blue", "patient": "p-17" }`
	out, err := e.scorer.Predict(ctx, Request{Model: "m", RequestID: "req-1", Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte(strings.TrimSuffix(body, " }")+`,"prediction":`)) || !json.Valid(out) {
		t.Errorf("the input is not echoed as sent: %s", out)
	}
	r := decode(t, out)
	want := e.probability(t, 1, map[string]ml.Value{
		"age": {Num: 61, Present: true}, "cp": {Str: "3", Present: true}, "sex": {Str: "1", Present: true},
		"smoker": {Str: "yes", Present: true}, "colour": {Str: "blue", Present: true},
	})
	if r.Prediction.Probability != want {
		t.Errorf("probability: got %v, want %v from the model", r.Prediction.Probability, want)
	}
	wantLabel := 0
	if want >= e.v1.Threshold {
		wantLabel = 1
	}
	if r.Prediction.Label != wantLabel || r.Prediction.Threshold != e.v1.Threshold {
		t.Errorf("label %d threshold %v, want %d %v", r.Prediction.Label, r.Prediction.Threshold, wantLabel, e.v1.Threshold)
	}
	if r.Model.Name != "m" || r.Model.Version != 1 || r.Model.Alias != pulse.AliasChampion ||
		r.Model.Metrics.Accuracy != e.v1.Metrics.Holdout.Accuracy || r.Model.Metrics.ROCAUC != e.v1.Metrics.Holdout.ROCAUC {
		t.Errorf("model block: got %+v, want m version 1 champion with the holdout metrics", r.Model)
	}
	if id, err := uuid.Parse(r.PredictionID); err != nil || id.Version() != 7 {
		t.Errorf("prediction_id %q: want a UUID version 7 (err %v)", r.PredictionID, err)
	}
	if r.ScoredAt != "2025-03-01T12:30:00Z" || r.Warnings != nil {
		t.Errorf("scored_at %q warnings %q", r.ScoredAt, r.Warnings)
	}

	recs := e.sink.records()
	if e.sink.nCalls() != 1 || len(recs) != 1 {
		t.Fatalf("sink: got %d calls with %d records, want 1 with 1", e.sink.nCalls(), len(recs))
	}
	rec := recs[0]
	if string(rec.Features) != body || !bytes.Equal(rec.Response, out) {
		t.Errorf("record: features %s response %s, want the body and the answer", rec.Features, rec.Response)
	}
	if rec.PredictionID != r.PredictionID || rec.Model != "m" || rec.Version != 1 || rec.Alias != pulse.AliasChampion ||
		rec.Label != wantLabel || rec.Probability != want || rec.Threshold != e.v1.Threshold || rec.RequestID != "req-1" ||
		!rec.ScoredAt.Equal(fixedNow) || rec.LatencyMicros < 0 {
		t.Errorf("record: got %+v", rec)
	}
}

func TestPredictImputesAndWarns(t *testing.T) {
	e := newTestEnv(t, 0)
	body := "\n  {\"cp\": 7, \"age\": null}\n"
	out, err := e.scorer.Predict(context.Background(), Request{Model: "m", Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, out)
	if want := e.probability(t, 1, map[string]ml.Value{"cp": {Str: "7", Present: true}}); r.Prediction.Probability != want {
		t.Errorf("probability: got %v, want %v", r.Prediction.Probability, want)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `category "7"`) {
		t.Errorf("warnings: got %q", r.Warnings)
	}
	if rec := e.sink.records(); len(rec) != 1 || string(rec[0].Features) != strings.TrimSpace(body) {
		t.Errorf("record features: got %q, want the object as sent", rec[0].Features)
	}
}

func TestPredictBatch(t *testing.T) {
	e := newTestEnv(t, 0)
	insts := []string{
		`{"i":0,"age":40,"sex":0}`,
		`{ "i": 1, "age": 70, "cp": 9 }`,
		`{}`,
		`{"i":3,"age":55.5,"cp":2.0,"smoker":"no","colour":"green"}`,
	}
	body := "{\"instances\": [ " + strings.Join(insts, " ,\n ") + " ] }"
	out, err := e.scorer.Predict(context.Background(), Request{Model: "m", Version: 2, RequestID: "r", Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	var batch struct {
		Predictions []json.RawMessage `json:"predictions"`
	}
	if err := json.Unmarshal(out, &batch); err != nil {
		t.Fatal(err)
	}
	if len(batch.Predictions) != len(insts) {
		t.Fatalf("got %d predictions, want %d: %s", len(batch.Predictions), len(insts), out)
	}
	named := []map[string]ml.Value{
		{"age": {Num: 40, Present: true}, "sex": {Str: "0", Present: true}},
		{"age": {Num: 70, Present: true}, "cp": {Str: "9", Present: true}},
		{},
		{"age": {Num: 55.5, Present: true}, "cp": {Str: "2", Present: true}, "smoker": {Str: "no", Present: true}, "colour": {Str: "green", Present: true}},
	}
	recs := e.sink.records()
	if e.sink.nCalls() != 1 || len(recs) != len(insts) {
		t.Fatalf("sink: got %d calls with %d records, want 1 call with %d", e.sink.nCalls(), len(recs), len(insts))
	}
	ids := map[string]bool{}
	for i, raw := range batch.Predictions {
		inst := insts[i]
		if !bytes.HasPrefix(raw, []byte(strings.TrimSpace(inst[:len(inst)-1]))) {
			t.Errorf("prediction %d does not echo its instance: %s", i, raw)
		}
		r := decode(t, raw)
		if want := e.probability(t, 2, named[i]); r.Prediction.Probability != want {
			t.Errorf("prediction %d: probability %v, want %v", i, r.Prediction.Probability, want)
		}
		if r.Model.Version != 2 || r.Model.Alias != "" {
			t.Errorf("prediction %d: model %+v, want version 2 without alias", i, r.Model)
		}
		if (len(r.Warnings) > 0) != (i == 1) {
			t.Errorf("prediction %d: warnings %q", i, r.Warnings)
		}
		if ids[r.PredictionID] {
			t.Errorf("prediction %d: id %s used twice", i, r.PredictionID)
		}
		ids[r.PredictionID] = true
		rec := recs[i]
		if string(rec.Features) != inst || !bytes.Equal(rec.Response, raw) || rec.PredictionID != r.PredictionID ||
			rec.Version != 2 || rec.Alias != "" || rec.RequestID != "r" || rec.Probability != r.Prediction.Probability {
			t.Errorf("record %d: got %+v, want instance %s and its answer", i, rec, inst)
		}
	}
	if !strings.Contains(string(batch.Predictions[1]), `"warnings":["field \"instances[1].cp\": category \"9\"`) {
		t.Errorf("the warning does not name the batch item: %s", batch.Predictions[1])
	}
}

func TestPredictRefused(t *testing.T) {
	e := newTestEnv(t, 3)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		req         Request
		code, field string
	}{
		{"not an object", Request{Model: "m", Body: []byte(`[{"age":1}]`)}, pulse.EINVALID, ""},
		{"empty body", Request{Model: "m", Body: []byte(" \n")}, pulse.EINVALID, ""},
		{"not JSON", Request{Model: "m", Body: []byte(`{"age":`)}, pulse.EINVALID, ""},
		{"trailing data", Request{Model: "m", Body: []byte(`{"age":1} {"age":2}`)}, pulse.EINVALID, ""},
		{"wrong type", Request{Model: "m", Body: []byte(`{"age":"old"}`)}, pulse.EUNPROCESSABLE, "age"},
		{"empty batch", Request{Model: "m", Body: []byte(`{"instances":[]}`)}, pulse.EUNPROCESSABLE, "instances"},
		{"null batch", Request{Model: "m", Body: []byte(`{"instances":null}`)}, pulse.EUNPROCESSABLE, "instances"},
		{"batch not an array", Request{Model: "m", Body: []byte(`{"instances":{"age":1}}`)}, pulse.EUNPROCESSABLE, "instances"},
		{"batch item not an object", Request{Model: "m", Body: []byte(`{"instances":[{"age":1},5]}`)}, pulse.EUNPROCESSABLE, "instances[1]"},
		{"batch item wrong type", Request{Model: "m", Body: []byte(`{"instances":[{"age":1},{"age":2},{"age":"x"}]}`)}, pulse.EUNPROCESSABLE, "instances[2].age"},
		{"batch item reserved field", Request{Model: "m", Body: []byte(`{"instances":[{"scored_at":1}]}`)}, pulse.EUNPROCESSABLE, "instances[0].scored_at"},
		{"batch item strict", Request{Model: "m", Strict: true, Body: []byte(`{"instances":[{"age":1,"x":2}]}`)}, pulse.EUNPROCESSABLE, "instances[0].x"},
		{"too many instances", Request{Model: "m", Body: []byte(`{"instances":[{},{},{},{}]}`)}, pulse.ETOOLARGE, "instances"},
		{"unknown model", Request{Model: "nope", Body: []byte(`{}`)}, pulse.ENOTFOUND, ""},
		{"unknown alias", Request{Model: "m", Alias: "challenger", Body: []byte(`{}`)}, pulse.ENOTFOUND, "alias"},
		{"unknown version", Request{Model: "m", Version: 9, Body: []byte(`{}`)}, pulse.ENOTFOUND, ""},
		{"unknown model by version", Request{Model: "nope", Version: 1, Body: []byte(`{}`)}, pulse.ENOTFOUND, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.scorer.Predict(ctx, tc.req)
			if out != nil {
				t.Errorf("got a body with the error: %s", out)
			}
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != tc.code || pe.Field != tc.field {
				t.Errorf("got %#v, want code %s field %q", err, tc.code, tc.field)
			}
		})
	}
	if n := e.sink.nCalls(); n != 0 {
		t.Errorf("refused requests reached the sink %d times", n)
	}
	// At the limit is fine.
	if _, err := e.scorer.Predict(ctx, Request{Model: "m", Body: []byte(`{"instances":[{},{},{}]}`)}); err != nil {
		t.Errorf("3 instances with MaxInstances 3: %v", err)
	}
	if e.scorer.MaxInstances() != 3 {
		t.Errorf("MaxInstances: got %d, want 3", e.scorer.MaxInstances())
	}
}

func TestPredictSinkFailure(t *testing.T) {
	e := newTestEnv(t, 0)
	e.sink.err = errors.New("disk full at /secret/path")
	for _, body := range []string{`{"age":50}`, `{"instances":[{"age":50},{"age":60}]}`} {
		out, err := e.scorer.Predict(context.Background(), Request{Model: "m", Body: []byte(body)})
		if out != nil {
			t.Errorf("%s: got an answer although nothing was stored: %s", body, out)
		}
		var pe *pulse.Error
		if !errors.As(err, &pe) || pe.Code != pulse.EUNAVAILABLE {
			t.Fatalf("%s: got %v, want an unavailable error", body, err)
		}
		if strings.Contains(pe.Message, "secret") {
			t.Errorf("the message leaks the sink's error: %q", pe.Message)
		}
	}
}

func TestPredictFollowsAlias(t *testing.T) {
	e := newTestEnv(t, 0)
	ctx := context.Background()
	if _, err := e.reg.SetAlias(ctx, "m", pulse.AliasChallenger, 2); err != nil {
		t.Fatal(err)
	}
	version := func(alias string) int {
		out, err := e.scorer.Predict(ctx, Request{Model: "m", Alias: alias, Body: []byte(`{"age":50}`)})
		if err != nil {
			t.Fatalf("alias %q: %v", alias, err)
		}
		r := decode(t, out)
		want := alias
		if want == "" {
			want = pulse.AliasChampion
		}
		if r.Model.Alias != want {
			t.Errorf("alias %q: model block names alias %q, want %q", alias, r.Model.Alias, want)
		}
		return r.Model.Version
	}
	if v := version(""); v != 1 {
		t.Errorf("champion: got version %d, want 1", v)
	}
	if v := version(pulse.AliasChallenger); v != 2 {
		t.Errorf("challenger: got version %d, want 2", v)
	}
	if _, err := e.reg.SetAlias(ctx, "m", pulse.AliasChampion, 2); err != nil {
		t.Fatal(err)
	}
	if v := version(pulse.AliasChampion); v != 2 {
		t.Errorf("champion after the move: got version %d, want 2", v)
	}
}

func TestPredictConcurrent(t *testing.T) {
	e := newTestEnv(t, 0)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf(`{"w":%d,"i":%d,"age":%d}`, w, i, 30+i)
				out, err := e.scorer.Predict(context.Background(), Request{Model: "m", Body: []byte(body)})
				if err == nil && !bytes.HasPrefix(out, []byte(body[:len(body)-1]+",")) {
					err = fmt.Errorf("answer %s does not echo %s", out, body)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs := e.sink.records()
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.PredictionID] = true
		if !bytes.HasPrefix(r.Response, r.Features[:len(r.Features)-1]) {
			t.Errorf("record %s: response does not echo its features", r.PredictionID)
		}
	}
	if len(recs) != workers*each || len(seen) != workers*each {
		t.Errorf("got %d records with %d distinct ids, want %d", len(recs), len(seen), workers*each)
	}
}

func TestPredictMetrics(t *testing.T) {
	e := newTestEnv(t, 0)
	ctx := context.Background()
	for _, req := range []Request{
		{Model: "m", Body: []byte(`{"age":50}`)},
		{Model: "m", Body: []byte(`{"instances":[{"age":50},{"age":51}]}`)},
		{Model: "m", Body: []byte(`{"age":"x"}`)},
		{Model: "no-such-model-1", Body: []byte(`{}`)},
		{Model: "no-such-model-2", Version: 1, Body: []byte(`{}`)},
	} {
		e.scorer.Predict(ctx, req)
	}
	mfs, err := e.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{} // "name{labels}" -> count
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetHistogram() != nil:
				got[key] = m.GetHistogram().GetSampleCount()
			case m.GetCounter() != nil:
				got[key] = uint64(m.GetCounter().GetValue())
			}
		}
	}
	if got["pulse_predict_duration_seconds{model=m,status=ok,version=1}"] != 2 ||
		got["pulse_predict_duration_seconds{model=m,status=unprocessable,version=1}"] != 1 {
		t.Errorf("duration counts: got %v", got)
	}
	var labelled uint64
	for k, n := range got {
		if strings.HasPrefix(k, "pulse_predictions_total{label=") && strings.Contains(k, "model=m,version=1") {
			labelled += n
		}
		// A name that is not a model must not become a label value: clients choose them freely.
		if strings.Contains(k, "no-such-model") {
			t.Errorf("series for an unknown model: %s", k)
		}
	}
	if labelled != 3 {
		t.Errorf("pulse_predictions_total for m version 1: got %d, want 3 (%v)", labelled, got)
	}
	if got["pulse_predict_duration_seconds{model=,status=not_found,version=}"] != 2 {
		t.Errorf("not-found requests: got %v, want 2 under model=\"\"", got)
	}
}

func TestNewRequires(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without Models and Sink: got no error")
	}
}

type noopSink struct{}

func (noopSink) AppendPredictions(context.Context, ...lake.Prediction) error { return nil }

// BenchmarkPredict scores one JSON object through Scorer.Predict, with a sink that keeps
// nothing: parsing, scoring, the augmented answer and the record.
func BenchmarkPredict(b *testing.B) {
	e := newTestEnv(b, 0)
	sc, err := New(Config{Models: e.reg, Sink: noopSink{}})
	if err != nil {
		b.Fatal(err)
	}
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

// TestModelBlocksBounded: the cache of model blocks never holds more than maxBlocks, and a
// block built after the cache started again is the same as before.
func TestModelBlocksBounded(t *testing.T) {
	e := newTestEnv(t, 0)
	sc, err := New(Config{Models: e.reg, Sink: noopSink{}})
	if err != nil {
		t.Fatal(err)
	}
	v := &pulse.ModelVersion{Model: "m", Algorithm: "logreg", Threshold: 0.5}
	first := string(sc.modelJSON(v, "champion"))
	for i := 1; i <= 3*maxBlocks; i++ {
		w := *v
		w.Version = i
		sc.modelJSON(&w, "")
		if n := len(*sc.blocks.Load()); n > maxBlocks {
			t.Fatalf("after %d versions: %d blocks cached, want at most %d", i, n, maxBlocks)
		}
	}
	if got := string(sc.modelJSON(v, "champion")); got != first {
		t.Errorf("block built again: got %s, want %s", got, first)
	}
}
