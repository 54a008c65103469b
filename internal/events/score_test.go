package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cloudmedical/pulse/internal/jsonscan"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// scoreEvent is a score.requested event as a client writes it, with data as given.
func scoreEvent(id, data string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"/bedside/7","type":"com.cloudmedical.pulse.score.requested","subject":"patient-17","time":"2026-11-25T18:00:00.5Z","datacontenttype":"application/json","data":` + data + `}`
}

func TestDecodeScoreRequest(t *testing.T) {
	inputs := `{"age":63.0,"sex":1,"cp":"1","ca":null}`
	for _, tc := range []struct {
		name string
		in   string
		fast bool // the fast path decodes it
		want ScoreRequest
	}{
		{"plain", scoreEvent("e-1", `{"model":"heart-disease","inputs":`+inputs+`}`), true,
			ScoreRequest{ID: "e-1", Source: "/bedside/7", Subject: "patient-17", Model: "heart-disease", Inputs: json.RawMessage(inputs)}},
		{"every member", scoreEvent("e-2", `{"correlation_id":"bed-12/1","strict":true,"version":12,"model":"m.1","inputs":{}}`), true,
			ScoreRequest{ID: "e-2", Source: "/bedside/7", Subject: "patient-17", Model: "m.1", Version: 12, Strict: true, CorrelationID: "bed-12/1", Inputs: json.RawMessage(`{}`)}},
		{"alias and spaces", " {\n\"data\" : { \"alias\" : \"challenger\" , \"model\":\"m\",\"inputs\" : {\"instances\":[{}]} } ,\"type\":\"com.cloudmedical.pulse.score.requested\", \"source\":\"/x\",\"id\":\"e-3\",\"specversion\":\"1.0\"}\n", true,
			ScoreRequest{ID: "e-3", Source: "/x", Model: "m", Alias: "challenger", Inputs: json.RawMessage(`{"instances":[{}]}`)}},
		{"extension attribute", `{"specversion":"1.0","id":"e-4","source":"/x","type":"com.cloudmedical.pulse.score.requested","traceparent":"00-ab","data":{"model":"m","inputs":{"a":1}}}`, true,
			ScoreRequest{ID: "e-4", Source: "/x", Model: "m", Inputs: json.RawMessage(`{"a":1}`)}},
		{"escaped strings", `{"specversion":"1.0","id":"e-\u0035","source":"/x","type":"com.cloudmedical.pulse.score.requested","subject":"a\"b","data":{"model":"m","correlation_id":"c\n1","inputs":{"a\"":1}}}`, false,
			ScoreRequest{ID: "e-5", Source: "/x", Subject: `a"b`, Model: "m", CorrelationID: "c\n1", Inputs: json.RawMessage(`{"a\"":1}`)}},
		{"version written 2.0", scoreEvent("e-6", `{"model":"m","version":2.0,"inputs":{}}`), false,
			ScoreRequest{ID: "e-6", Source: "/bedside/7", Subject: "patient-17", Model: "m", Version: 2, Inputs: json.RawMessage(`{}`)}},
		{"null subject", `{"specversion":"1.0","id":"e-7","source":"/x","type":"com.cloudmedical.pulse.score.requested","subject":null,"data":{"model":"m","inputs":{}}}`, false,
			ScoreRequest{ID: "e-7", Source: "/x", Model: "m", Inputs: json.RawMessage(`{}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got ScoreRequest
			if err := DecodeScoreRequest([]byte(tc.in), &got); err != nil {
				t.Fatal(err)
			}
			if !sameRequest(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			var fast ScoreRequest
			if ok := decodeScoreFast([]byte(tc.in), &fast, nil); ok != tc.fast {
				t.Errorf("fast path: got %v, want %v", ok, tc.fast)
			}
		})
	}
}

func sameRequest(a, b ScoreRequest) bool {
	return a.ID == b.ID && a.Source == b.Source && a.Subject == b.Subject && a.Model == b.Model && a.Version == b.Version &&
		a.Alias == b.Alias && a.Strict == b.Strict && a.CorrelationID == b.CorrelationID && bytes.Equal(a.Inputs, b.Inputs)
}

func TestDecodeScoreRequestRefuses(t *testing.T) {
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name, in, field, code string
	}{
		{"not JSON", `{"specversion":`, "", pulse.EINVALID},
		{"trailing data", scoreEvent("e", `{"model":"m","inputs":{}}`) + ` {}`, "", pulse.EINVALID},
		{"bad number in the inputs", scoreEvent("e", `{"model":"m","inputs":{"age":063}}`), "", pulse.EINVALID},
		{"control character in a string", scoreEvent("e", "{\"model\":\"m\",\"inputs\":{\"a\":\"x\ty\"}}"), "", pulse.EINVALID},
		{"not an event", `{"model":"m","inputs":{}}`, "specversion", pulse.EUNPROCESSABLE},
		{"another type", strings.Replace(scoreEvent("e", `{"prediction_id":"p","label":1,"observed_at":"2026-11-30T09:00:00Z"}`), "score.requested", "feedback", 1), "type", pulse.EUNPROCESSABLE},
		{"no model", scoreEvent("e", `{"inputs":{}}`), "data", pulse.EUNPROCESSABLE},
		{"no inputs", scoreEvent("e", `{"model":"m"}`), "data", pulse.EUNPROCESSABLE},
		{"inputs not an object", scoreEvent("e", `{"model":"m","inputs":[{}]}`), "data/inputs", pulse.EUNPROCESSABLE},
		{"bad model name", scoreEvent("e", `{"model":"Heart Disease","inputs":{}}`), "data/model", pulse.EUNPROCESSABLE},
		{"version 0", scoreEvent("e", `{"model":"m","version":0,"inputs":{}}`), "data/version", pulse.EUNPROCESSABLE},
		{"version 1.5", scoreEvent("e", `{"model":"m","version":1.5,"inputs":{}}`), "data/version", pulse.EUNPROCESSABLE},
		{"version and alias", scoreEvent("e", `{"model":"m","version":1,"alias":"a","inputs":{}}`), "data", pulse.EUNPROCESSABLE},
		{"empty alias", scoreEvent("e", `{"model":"m","alias":"","inputs":{}}`), "data/alias", pulse.EUNPROCESSABLE},
		{"strict not a boolean", scoreEvent("e", `{"model":"m","strict":"yes","inputs":{}}`), "data/strict", pulse.EUNPROCESSABLE},
		{"long correlation id", scoreEvent("e", `{"model":"m","correlation_id":"`+long+`","inputs":{}}`), "data/correlation_id", pulse.EUNPROCESSABLE},
		{"unknown member", scoreEvent("e", `{"model":"m","inputs":{},"priority":1}`), "data", pulse.EUNPROCESSABLE},
		{"empty id", strings.Replace(scoreEvent("e", `{"model":"m","inputs":{}}`), `"id":"e"`, `"id":""`, 1), "id", pulse.EUNPROCESSABLE},
		{"bad time", strings.Replace(scoreEvent("e", `{"model":"m","inputs":{}}`), `2026-11-25T18:00:00.5Z`, `yesterday`, 1), "time", pulse.EUNPROCESSABLE},
		{"binary data", `{"specversion":"1.0","id":"e","source":"/x","type":"com.cloudmedical.pulse.score.requested","data_base64":"e30="}`, "data_base64", pulse.EUNPROCESSABLE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r ScoreRequest
			err := DecodeScoreRequest([]byte(tc.in), &r)
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != tc.code || pe.Field != tc.field {
				t.Fatalf("got %v (%#v), want code %s field %q", err, err, tc.code, tc.field)
			}
			if _, perr := Parse([]byte(tc.in)); tc.name != "another type" && (perr == nil || perr.Error() != err.Error()) {
				t.Errorf("not Parse's error: got %v, Parse says %v", err, perr)
			}
		})
	}
}

// FuzzDecodeScoreRequest checks that the fast path accepts only what the general path (Parse
// and the schema) accepts, and decodes it the same.
func FuzzDecodeScoreRequest(f *testing.F) {
	f.Add([]byte(scoreEvent("e-1", `{"model":"heart-disease","correlation_id":"c","version":3,"strict":false,"inputs":{"age":63.0,"x":[1,{"y":"}"}]}}`)))
	f.Add([]byte(scoreEvent("e-2", `{"model":"m","alias":"challenger","inputs":{"instances":[{},{"a":null}]}}`)))
	f.Add([]byte(`{"specversion":"1.0","id":"e","source":"/x","type":"com.cloudmedical.pulse.score.requested","ext1":{"a":[]},"data":{"model":"m","inputs":{}},"data":{"model":"n","inputs":{"b":2}}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"é","source":"/x","type":"com.cloudmedical.pulse.score.requested","time":"2026-01-01T00:00:00+01:00","data":{"model":"m","version":2147483647,"inputs":{}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow ScoreRequest
		if !decodeScoreFast(b, &fast, nil) {
			return
		}
		if err := decodeScoreSlow(b, &slow); err != nil {
			t.Fatalf("the fast path accepts %q, the general path refuses it: %v", b, err)
		}
		if !sameRequest(fast, slow) {
			t.Fatalf("%q: fast path %+v, general path %+v", b, fast, slow)
		}
	})
}

func TestAppendScoreResult(t *testing.T) {
	at := time.Date(2026, 11, 25, 18, 0, 0, 123000000, time.UTC)
	req := &ScoreRequest{ID: "e-\"1", Subject: "patient\u2028\xff", CorrelationID: "bed <12>", Model: "m"}
	body := []byte(`{"age":63,"prediction":{"label":1,"probability":0.82,"threshold":0.5},"model":{"name":"m","version":1},"prediction_id":"0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a11","scored_at":"2026-11-25T18:00:00.123Z"}`)
	for _, tc := range []struct {
		name string
		err  error
		want string // data
	}{
		{"scored", nil, `{"age":63,"prediction":{"label":1,"probability":0.82,"threshold":0.5},"model":{"name":"m","version":1},"prediction_id":"0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a11","scored_at":"2026-11-25T18:00:00.123Z","request_id":"e-\"1","correlation_id":"bed <12>"}`},
		{"refused", pulse.FieldErrorf(pulse.EUNPROCESSABLE, "age", "field %q: got %s, want a number", "age", `"old"`),
			`{"request_id":"e-\"1","correlation_id":"bed <12>","error":{"type":"urn:pulse:problem:unprocessable","title":"Unprocessable Entity","status":422,"detail":"field \"age\": got \"old\", want a number","code":"unprocessable","field":"age"}}`},
		{"internal", errors.New("disk on fire at /secret"),
			`{"request_id":"e-\"1","correlation_id":"bed <12>","error":{"type":"urn:pulse:problem:internal","title":"Internal Server Error","status":500,"detail":"internal error","code":"internal"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendScoreResult([]byte("prefix"), "/pulse/serve", req, body, tc.err, at)
			b, ok := bytes.CutPrefix(b, []byte("prefix"))
			if !ok {
				t.Fatalf("dst not kept: %s", b)
			}
			e, err := Parse(b)
			if err != nil {
				t.Fatalf("the result is not a valid event: %v\n%s", err, b)
			}
			if e.Type != TypeScoreCompleted || e.Source != "/pulse/serve" || e.Subject != "patient\u2028\ufffd" || !e.Time.Equal(at) ||
				e.DataSchema != schemas[TypeScoreCompleted].id || len(e.ID) != 36 {
				t.Errorf("envelope: got %+v", e)
			}
			if string(e.Data) != tc.want {
				t.Errorf("data:\ngot  %s\nwant %s", e.Data, tc.want)
			}
		})
	}
}

// FuzzAppendJSONString checks that strings are written as encoding/json writes them (without
// HTML escaping).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s/", "\x00\x1f\t\n\r\b\f", "é\u2028\u2029", "\xff\xfe", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != strings.TrimSuffix(want.String(), "\n") {
			t.Fatalf("%q: got %s, want %s", s, got, want.String())
		}
	})
}

func BenchmarkDecodeScoreRequest(b *testing.B) {
	ev := []byte(scoreEvent("0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a10", `{"model":"heart-disease","correlation_id":"c-17","inputs":{"age":63.0,"sex":1.0,"cp":1.0,"trestbps":145.0,"chol":233.0,"fbs":1.0,"restecg":2.0,"thalach":150.0,"exang":0.0,"oldpeak":2.3,"slope":3.0,"ca":0.0,"thal":6.0}}`))
	var r ScoreRequest
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeScoreRequest(ev, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendScoreResult(b *testing.B) {
	req := &ScoreRequest{ID: "0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a10", Subject: "patient-17", CorrelationID: "c-17", Model: "heart-disease"}
	body := []byte(`{"age":63.0,"sex":1.0,"cp":1.0,"trestbps":145.0,"chol":233.0,"fbs":1.0,"restecg":2.0,"thalach":150.0,"exang":0.0,"oldpeak":2.3,"slope":3.0,"ca":0.0,"thal":6.0,"prediction":{"label":1,"probability":0.8204,"threshold":0.5},"model":{"name":"heart-disease","version":1,"alias":"champion","metrics":{"accuracy":0.885,"roc_auc":0.938}},"prediction_id":"0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a11","scored_at":"2026-11-25T18:00:00.123Z"}`)
	at := time.Now()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendScoreResult(buf[:0], "/pulse/serve", req, body, nil, at)
	}
}

// TestScoreResultMatchesAsyncAPI: the results the consumer writes, scored and refused, are
// valid against the score.completed payload of the AsyncAPI document, and the request example
// against score.requested.
func TestScoreResultMatchesAsyncAPI(t *testing.T) {
	var doc any
	if err := json.Unmarshal(AsyncAPI(Topics{Prefix: "pulse."}, "localhost:9092"), &doc); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("asyncapi.json", doc); err != nil {
		t.Fatal(err)
	}
	completed, err := c.Compile("asyncapi.json#/components/messages/scoreCompleted/payload")
	if err != nil {
		t.Fatal(err)
	}
	requested, err := c.Compile("asyncapi.json#/components/messages/scoreRequested/payload")
	if err != nil {
		t.Fatal(err)
	}
	validate := func(sch *jsonschema.Schema, b []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(v)
	}
	req := &ScoreRequest{ID: "e-1", CorrelationID: "c-1"}
	scored := []byte(`{"age":63,"prediction":{"label":1,"probability":0.82,"threshold":0.5},"model":{"name":"m","version":1},"prediction_id":"0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a11","scored_at":"2026-11-25T18:00:00Z"}`)
	batch := []byte(`{"predictions":[` + string(scored) + `]}`)
	for name, b := range map[string][]byte{
		"scored":    AppendScoreResult(nil, "/pulse/serve", req, scored, nil, time.Now()),
		"instances": AppendScoreResult(nil, "/pulse/serve", req, batch, nil, time.Now()),
		"refused":   AppendScoreResult(nil, "/pulse/serve", req, nil, pulse.Errorf(pulse.ENOTFOUND, "model %q not found", "x"), time.Now()),
	} {
		if err := validate(completed, b); err != nil {
			t.Errorf("%s result does not match the AsyncAPI payload: %v\n%s", name, err, b)
		}
	}
	// Neither a prediction with an error, nor a result without request_id.
	for name, data := range map[string]string{
		"both":          `{"request_id":"e","prediction":{"label":1,"probability":0.5,"threshold":0.5},"model":{"name":"m","version":1},"prediction_id":"0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a11","scored_at":"2026-11-25T18:00:00Z","error":{"type":"t","title":"t","status":500,"detail":"d","code":"internal"}}`,
		"no request_id": `{"error":{"type":"t","title":"t","status":500,"detail":"d","code":"internal"}}`,
	} {
		if _, err := New("/x", TypeScoreCompleted, "", json.RawMessage(data)); err == nil {
			t.Errorf("%s: a score.completed event that breaks the schema was accepted", name)
		}
	}
	e, err := New("/x", TypeScoreRequested, "", json.RawMessage(sampleData[TypeScoreRequested]))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := e.Marshal()
	if err := validate(requested, raw); err != nil {
		t.Errorf("score request does not match the AsyncAPI payload: %v", err)
	}
}

// FuzzValidJSON checks that jsonscan.Valid agrees with json.Valid on documents nested less than
// jsonscan.MaxDepth deep (deeper ones it refuses, for the general path).
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, ` [1, -0.5e+3, "a\u00e9\n", true, false, null, {"a": {}}] `, `{"a":1,}`, `[01]`, `"\x01"`, `1.`, `-`, `{"a" 1}`, `[1 2]`, `"\uD800"`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := jsonscan.Valid(b), json.Valid(b)
		if got && !want {
			t.Fatalf("jsonscan.Valid accepts %q, json.Valid does not", b)
		}
		if want && !got && jsonscan.Depth(b) < jsonscan.MaxDepth {
			t.Fatalf("jsonscan.Valid refuses %q, json.Valid accepts it", b)
		}
	})
}
