package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudmedical/pulse/internal/jsonscan"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

var predictionIDRE = regexp.MustCompile(`"prediction_id":"[0-9a-f-]{36}"`)

// withoutIDs blanks the prediction ids of a response: the one part that differs between two
// scorings of the same input (scored_at is fixed by the test's clock).
func withoutIDs(b []byte) string {
	return predictionIDRE.ReplaceAllString(string(b), `"prediction_id":"-"`)
}

// countingModels counts how often the scorer resolves a model.
type countingModels struct {
	*registry.Service
	loads atomic.Int64
}

func (m *countingModels) Load(ctx context.Context, model string, version int) (*registry.Loaded, error) {
	m.loads.Add(1)
	return m.Service.Load(ctx, model, version)
}

func TestPredictEach(t *testing.T) {
	e := newTestEnv(t, 3)
	ctx := context.Background()
	reserved := []string{"request_id", "correlation_id"}
	reqs := []Request{
		{Model: "m", RequestID: "r0", Body: []byte(`{"age":61,"cp":"3","sex":1,"smoker":"yes","colour":"blue","patient":"p-17"}`)},
		{Model: "m", Version: 2, RequestID: "r1", Body: []byte(` { "age": 40, "cp": 9 } `)},
		{Model: "nope", RequestID: "r2", Body: []byte(`{"age":40}`)},
		{Model: "m", RequestID: "r3", Body: []byte(`{"age":"old"}`)},
		{Model: "m", RequestID: "r4", Body: []byte(`{"instances":[{"age":50},{"age":70,"sex":0}]}`)},
		{Model: "m", RequestID: "r5", Body: []byte(`{"age":50,"request_id":"x"}`), Reserved: reserved},
		{Model: "m", RequestID: "r6", Body: []byte(`{"instances":[{"age":50},{"correlation_id":"c"}]}`), Reserved: reserved},
		{Model: "m", Alias: "challenger", RequestID: "r7", Body: []byte(`{}`)},
		{Model: "m", Strict: true, RequestID: "r8", Body: []byte(`{"age":50,"x":1}`)},
		{Model: "m", RequestID: "r9", Body: []byte(`{"instances":[{},{},{},{}]}`)},
		{Model: "m", RequestID: "r10", Body: []byte(`{"age":`)},
		{Model: "m", RequestID: "r11", Body: []byte(`{"age":52,"request_id":"x"}`)}, // not reserved for REST
	}
	wantErr := map[int]struct{ code, field string }{
		2:  {pulse.ENOTFOUND, ""},
		3:  {pulse.EUNPROCESSABLE, "age"},
		5:  {pulse.EUNPROCESSABLE, "request_id"},
		6:  {pulse.EUNPROCESSABLE, "instances[1].correlation_id"},
		7:  {pulse.ENOTFOUND, "alias"},
		8:  {pulse.EUNPROCESSABLE, "x"},
		9:  {pulse.ETOOLARGE, "instances"},
		10: {pulse.EINVALID, ""},
	}
	results, err := e.scorer.PredictEach(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(reqs) {
		t.Fatalf("got %d results, want %d", len(results), len(reqs))
	}
	// What the records should be: one call of the sink, the scored requests' records in order.
	var wantRecs []string // request ids
	for i, req := range reqs {
		res := results[i]
		if w, ok := wantErr[i]; ok {
			var pe *pulse.Error
			if res.Body != nil || !errors.As(res.Err, &pe) || pe.Code != w.code || pe.Field != w.field {
				t.Errorf("request %d: got body %s error %#v, want code %s field %q", i, res.Body, res.Err, w.code, w.field)
			}
			// The same error as Predict.
			_, perr := e.scorer.Predict(ctx, req)
			if perr == nil || perr.Error() != res.Err.Error() || pulse.ErrorCode(perr) != pulse.ErrorCode(res.Err) {
				t.Errorf("request %d: PredictEach error %v, Predict error %v", i, res.Err, perr)
			}
			continue
		}
		if res.Err != nil {
			t.Errorf("request %d: %v", i, res.Err)
			continue
		}
		n := 1
		if bytes.Contains(req.Body, []byte("instances")) {
			n = 2
		}
		for range n {
			wantRecs = append(wantRecs, req.RequestID)
		}
		want, err := e.scorer.Predict(ctx, req)
		if err != nil {
			t.Fatalf("request %d: Predict: %v", i, err)
		}
		if got := withoutIDs(res.Body); got != withoutIDs(want) {
			t.Errorf("request %d: got\n%s\nwant what Predict answers\n%s", i, res.Body, want)
		}
	}
	calls := e.sink.calls[0] // the PredictEach call came first
	var gotRecs []string
	for _, r := range calls {
		gotRecs = append(gotRecs, r.RequestID)
	}
	if strings.Join(gotRecs, ",") != strings.Join(wantRecs, ",") {
		t.Errorf("records of the one append: got request ids %v, want %v", gotRecs, wantRecs)
	}
	for _, r := range calls {
		if !bytes.Contains(results[requestIndex(t, r.RequestID)].Body, []byte(`"prediction_id":"`+r.PredictionID+`"`)) {
			t.Errorf("record %s (request %s) is not in the answer", r.PredictionID, r.RequestID)
		}
	}
}

func requestIndex(t *testing.T, id string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(id, "r%d", &i); err != nil {
		t.Fatal(err)
	}
	return i
}

func TestPredictEachSharesResolutionAndCounts(t *testing.T) {
	e := newTestEnv(t, 0)
	models := &countingModels{Service: e.reg}
	sc, err := New(Config{Models: models, Sink: e.sink, Now: e.scorer.cfg.Now})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i := range 50 {
		reqs = append(reqs, Request{Model: "m", Body: []byte(fmt.Sprintf(`{"age":%d}`, 20+i))})
		reqs = append(reqs, Request{Model: "m", Version: 2, Body: []byte(fmt.Sprintf(`{"age":%d}`, 20+i))})
	}
	results, err := sc.PredictEach(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("request %d: %v", i, r.Err)
		}
	}
	if n := models.loads.Load(); n != 2 {
		t.Errorf("model loads: got %d, want 2 (one per version)", n)
	}
	if n := e.sink.nCalls(); n != 1 {
		t.Errorf("sink calls: got %d, want 1", n)
	}
	var total float64
	for _, v := range []string{"1", "2"} {
		for _, label := range []string{"0", "1"} {
			total += testutil.ToFloat64(sc.predictions.WithLabelValues("m", v, label))
		}
	}
	if total != 100 {
		t.Errorf("pulse_predictions_total: got %v, want 100", total)
	}
}

func TestPredictEachSinkFailure(t *testing.T) {
	e := newTestEnv(t, 0)
	e.sink.err = errors.New("disk full")
	results, err := e.scorer.PredictEach(context.Background(), []Request{
		{Model: "m", Body: []byte(`{"age":50}`)}, {Model: "nope", Body: []byte(`{}`)},
	})
	if results != nil || pulse.ErrorCode(err) != pulse.EUNAVAILABLE {
		t.Fatalf("got %v, %v; want no results and an unavailable error", results, err)
	}
	if n := testutil.ToFloat64(e.scorer.predictions.WithLabelValues("m", "1", "0")) + testutil.ToFloat64(e.scorer.predictions.WithLabelValues("m", "1", "1")); n != 0 {
		t.Errorf("records that were not stored were counted: %v", n)
	}
	// Nothing to store: no sink call, no error.
	e.sink.err = nil
	results, err = e.scorer.PredictEach(context.Background(), []Request{{Model: "nope", Body: []byte(`{}`)}})
	if err != nil || len(results) != 1 || pulse.ErrorCode(results[0].Err) != pulse.ENOTFOUND || e.sink.nCalls() != 0 {
		t.Fatalf("only refused requests: got %v, %v and %d sink calls", results, err, e.sink.nCalls())
	}
	if results, err := e.scorer.PredictEach(context.Background(), nil); err != nil || len(results) != 0 {
		t.Fatalf("no requests: got %v, %v", results, err)
	}
}

func TestSplitObject(t *testing.T) {
	sc := newScratch()
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{`{}`, map[string]string{}},
		{"{ \n}", map[string]string{}},
		{`{"a":1}`, map[string]string{"a": "1"}},
		{` {"a" : [1, {"b":"]"}] , "c":"x\"y" ,"d":null,"e":-1.5e3,"f":true}`, map[string]string{"a": `[1, {"b":"]"}]`, "c": `"x\"y"`, "d": "null", "e": "-1.5e3", "f": "true"}},
		{`{"a":1,"a":2}`, map[string]string{"a": "2"}},
		{`{"\u0061ge":3,"t\"q":{}}`, map[string]string{"age": "3", `t"q`: "{}"}},
	} {
		got := sc.splitObject(bytes.TrimSpace([]byte(tc.in)))
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %d fields, want %d", tc.in, len(got), len(tc.want))
		}
		for k, v := range tc.want {
			if string(got[k]) != v {
				t.Errorf("%s: field %q: got %s, want %s", tc.in, k, got[k], v)
			}
		}
	}
}

// FuzzSplitObject checks that jsonscan.Valid agrees with json.Valid (below jsonscan.MaxDepth), that
// splitObject reads every valid JSON object as encoding/json does into a
// map[string]json.RawMessage, and splitArray every array as into []json.RawMessage.
func FuzzSplitObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":[1,{"b":"}"}],"c":"\u00e9\\"}`, `{"x":1,"x":{"y":null}}`, "{\"\xff\":1}", `[1, "a" ,{}]`, `[]`,
		`{"a":1,}`, `[01]`, `{"a" 1}`, `-`, `1.`, `"\x01"`, `{"a":-0.5e+3}`} {
		f.Add([]byte(s))
	}
	sc := newScratch()
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.TrimSpace(b)
		if jsonscan.Valid(b) != json.Valid(b) && (jsonscan.Valid(b) || jsonscan.Depth(b) < jsonscan.MaxDepth) {
			t.Fatalf("%q: jsonscan.Valid says %v, json.Valid %v", b, jsonscan.Valid(b), json.Valid(b))
		}
		if !json.Valid(b) {
			return
		}
		switch b[0] {
		case '{':
			var want map[string]json.RawMessage
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			got := sc.splitObject(b)
			if len(got) != len(want) {
				t.Fatalf("%q: got %d members, want %d", b, len(got), len(want))
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || !bytes.Equal(g, v) {
					t.Fatalf("%q: member %q: got %q, want %q", b, k, g, v)
				}
			}
		case '[':
			var want []json.RawMessage
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			got := splitArray(b, nil)
			if len(got) != len(want) {
				t.Fatalf("%q: got %d elements, want %d", b, len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%q: element %d: got %q, want %q", b, i, got[i], want[i])
				}
			}
		}
	})
}

// BenchmarkPredictEach scores a batch of 1000 one-object requests through PredictEach, with a
// sink that keeps nothing: the asynchronous path's cost per record.
func BenchmarkPredictEach(b *testing.B) {
	e := newTestEnv(b, 0)
	sc, err := New(Config{Models: e.reg, Sink: noopSink{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	reqs := make([]Request, 1000)
	for i := range reqs {
		reqs[i] = Request{Model: "m", RequestID: "bench", Body: []byte(fmt.Sprintf(`{"age":%d,"cp":3,"sex":1,"smoker":"yes","colour":"blue","patient":"p-%d"}`, 30+i%40, i))}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sc.PredictEach(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reqs)), "ns/record")
}

// TestFastAndGeneralPathsAgree scores bodies whose member names need no decoding (read
// straight from the object, features.Parser) and the same bodies with one name written with
// an escape (read through a map, features.Parse): the predictions, warnings and errors must
// be the same.
func TestFastAndGeneralPathsAgree(t *testing.T) {
	e := newTestEnv(t, 0)
	ctx := context.Background()
	reserved := []string{"request_id", "correlation_id", "error"}
	for _, tc := range []struct{ body, escaped string }{
		{`{"age":61,"cp":"3","sex":1,"smoker":"yes","colour":"blue","patient":"p-17"}`,
			`{"\u0061ge":61,"cp":"3","sex":1,"smoker":"yes","colour":"blue","patient":"p-17"}`},
		{`{"patient":"p-17","colour":"blue","smoker":"no","sex":0,"cp":3.0,"age":61.5}`,
			`{"patient":"p-17","colour":"blue","smoker":"no","sex":0,"cp":3.0,"\u0061ge":61.5}`},
		{`{"age":61,"age":"x"}`, `{"\u0061ge":61,"age":"x"}`},
		{`{"age":"x","age":61}`, `{"age":"x","\u0061ge":61}`},
		{`{"age":61,"cp":9,"colour":"mauve"}`, `{"age":61,"\u0063p":9,"colour":"mauve"}`},
		{`{"age":61,"cp":" 2 ","colour":"r\u0065d"}`, `{"\u0061ge":61,"cp":" 2 ","colour":"r\u0065d"}`},
		{`{"age":61,"sex":true}`, `{"\u0061ge":61,"sex":true}`},
		{`{"age":61,"sex":7}`, `{"\u0061ge":61,"sex":7}`},
		{`{"age":61,"request_id":"x"}`, `{"age":61,"request\u005fid":"x"}`},
		{`{"age":61,"error":null}`, `{"\u0061ge":61,"error":null}`},
		{`{"age":61,"model":{}}`, `{"age":61,"\u006dodel":{}}`},
		{`{"age":61,"instances":[{"age":1}]}`, `{"age":61,"\u0069nstances":[{"age":1}]}`},
		{`{"instances":[{"age":50,"cp":2},{"age":70,"sex":0,"x":1}]}`, `{"instances":[{"age":50,"cp":2},{"\u0061ge":70,"sex":0,"x":1}]}`},
		{`{"instances":[{"age":50},{"correlation_id":"c"}]}`, `{"\u0069nstances":[{"age":50},{"correlation_id":"c"}]}`},
		{`{"age":61,"x":1,"é":2}`, `{"age":61,"x":1,"\u00e9":2}`},
		{`{"x":1}`, `{"\u0078":1}`},
	} {
		for _, strict := range []bool{false, true} {
			fast, ferr := e.scorer.Predict(ctx, Request{Model: "m", Strict: strict, Body: []byte(tc.body), Reserved: reserved})
			general, gerr := e.scorer.Predict(ctx, Request{Model: "m", Strict: strict, Body: []byte(tc.escaped), Reserved: reserved})
			if (ferr == nil) != (gerr == nil) || ferr != nil && (ferr.Error() != gerr.Error() || pulse.ErrorCode(ferr) != pulse.ErrorCode(gerr)) {
				t.Errorf("%s (strict %v): got %v, with an escaped name %v", tc.body, strict, ferr, gerr)
				continue
			}
			if ferr != nil {
				var fpe, gpe *pulse.Error
				if errors.As(ferr, &fpe) && errors.As(gerr, &gpe) && fpe.Field != gpe.Field {
					t.Errorf("%s: field %q, with an escaped name %q", tc.body, fpe.Field, gpe.Field)
				}
				continue
			}
			var f, g struct {
				Prediction  json.RawMessage
				Predictions []struct {
					Prediction json.RawMessage
					Warnings   []string
				}
				Warnings []string
			}
			if err := json.Unmarshal(fast, &f); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(general, &g); err != nil {
				t.Fatal(err)
			}
			if f.Prediction == nil && f.Predictions == nil {
				t.Errorf("%s: no prediction in %s", tc.body, fast)
			}
			if !bytes.Equal(f.Prediction, g.Prediction) || fmt.Sprint(f.Warnings) != fmt.Sprint(g.Warnings) || fmt.Sprint(f.Predictions) != fmt.Sprint(g.Predictions) {
				t.Errorf("%s (strict %v): got %s %q %v, with an escaped name %s %q %v", tc.body, strict, f.Prediction, f.Warnings, f.Predictions, g.Prediction, g.Warnings, g.Predictions)
			}
		}
	}
}
