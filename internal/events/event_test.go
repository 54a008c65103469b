package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// sampleData is valid data for every documented type.
var sampleData = map[string]string{
	TypeIngestRecord:           `{"dataset":"heart-cleveland","record":{"age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"ca":null,"thal":"6.0"},"label":0}`,
	TypeTrainRequested:         `{"model":"heart-alert","dataset":"heart-cleveland","target":"num > 0","algorithm":"gbdt","params":{"max_leaves":8},"seed":7,"holdout":0.2,"cv_folds":5,"search":{"method":"grid","grid":{"max_leaves":[4,8]}}}`,
	TypeScoreRequested:         `{"model":"heart-alert","correlation_id":"c-1","inputs":{"age":63,"sex":1,"thal":"6.0","ca":null}}`,
	TypeScoreCompleted:         `{"age":63,"prediction":{"label":1,"probability":0.82,"threshold":0.5},"model":{"name":"heart-alert","version":3,"alias":"champion","metrics":{"accuracy":0.8,"roc_auc":0.9}},"prediction_id":"0193a0c4-7d1e-7c3a-9f5e-2b8d4e6f8a11","scored_at":"2026-11-25T18:00:00Z","request_id":"r-1","correlation_id":"c-1"}`,
	TypeFeedback:               `{"prediction_id":"p-1","label":1,"observed_at":"2026-11-30T09:00:00Z"}`,
	TypeModelVersionRegistered: `{"model":"heart-alert","version":3,"algorithm":"logreg","dataset":"heart-cleveland","trigger":"event","metrics":{"holdout":{"roc_auc":0.9}}}`,
	TypeModelAliasMoved:        `{"model":"heart-alert","alias":"champion","version":3,"previous_version":2}`,
	TypeModelDecision:          `{"id":17,"model":"heart-alert","rule":"rollback","action":"rollback","version":2,"champion":3,"policy_version":1,"reason":"accuracy below 0.7","numbers":{"labels":1000,"accuracy_upper":0.68},"result":"champion moved from version 3 back to version 2","at":"2026-11-25T21:00:00Z"}`,
	TypeJobStarted:             `{"job_id":12,"kind":"train","attempt":1,"model":"heart-alert","request_id":"e-1"}`,
	TypeJobSucceeded:           `{"job_id":12,"kind":"train","attempt":1,"result":{"version":3}}`,
	TypeJobFailed:              `{"job_id":12,"kind":"train","attempt":2,"error":"dataset \"x\" not found","final":true}`,
}

func TestEveryTypeHasSampleSchemaAndTopic(t *testing.T) {
	if len(Types()) != 11 {
		t.Fatalf("got %d types, want 11", len(Types()))
	}
	for _, typ := range Types() {
		if _, ok := sampleData[typ]; !ok {
			t.Errorf("no sample data for %s", typ)
		}
		if TopicOf(typ) == "" {
			t.Errorf("%s has no topic", typ)
		}
		if len(Schema(typ)) == 0 {
			t.Errorf("%s has no schema", typ)
		}
	}
}

func TestNewParseRoundTrip(t *testing.T) {
	for _, typ := range Types() {
		t.Run(typ, func(t *testing.T) {
			e, err := New("/pulse/test", typ, "heart-alert", json.RawMessage(sampleData[typ]))
			if err != nil {
				t.Fatal(err)
			}
			if e.SpecVersion != "1.0" || e.ID == "" || e.Time.IsZero() || e.DataContentType != ContentTypeJSON || !strings.HasSuffix(e.DataSchema, ".json") {
				t.Fatalf("New: incomplete envelope %+v", e)
			}
			b, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(%s): %v", b, err)
			}
			if got.ID != e.ID || got.Type != typ || got.Source != e.Source || got.Subject != "heart-alert" || !got.Time.Equal(e.Time) {
				t.Fatalf("Parse: got %+v, want %+v", got, e)
			}
			if string(got.Data) != sampleData[typ] {
				t.Fatalf("Parse data: got %s, want %s", got.Data, sampleData[typ])
			}
		})
	}
}

func TestNewRejectsInvalidData(t *testing.T) {
	_, err := New("/pulse/test", TypeFeedback, "", map[string]any{"prediction_id": "p", "label": 1})
	assertField(t, err, "data", "observed_at")
	_, err = New("/pulse/test", "com.example.unknown", "", map[string]any{})
	assertField(t, err, "type", "com.example.unknown")
	_, err = New("/pulse/test", TypeFeedback, "", func() {})
	if err == nil {
		t.Fatal("New with unmarshalable data: got nil error")
	}
}

func assertField(t *testing.T, err error, field, inMessage string) {
	t.Helper()
	var pe *pulse.Error
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a *pulse.Error about %q", err, field)
	}
	if pe.Field != field {
		t.Fatalf("got field %q (%v), want %q", pe.Field, err, field)
	}
	if !strings.Contains(pe.Message, inMessage) {
		t.Fatalf("message %q does not mention %q", pe.Message, inMessage)
	}
}

func TestParseRejects(t *testing.T) {
	valid := `"specversion":"1.0","id":"e-1","source":"/x","type":"com.cloudmedical.pulse.feedback"`
	data := `"data":` + sampleData[TypeFeedback]
	tests := []struct {
		name, in, field, mention string
		code                     string
	}{
		{"not json", `{"specversion":`, "", "not a JSON object", pulse.EINVALID},
		{"array", `[1,2]`, "", "not a JSON object", pulse.EINVALID},
		{"null", `null`, "", "not a JSON object", pulse.EINVALID},
		{"uppercase attribute", `{` + valid + `,"ID":"2",` + data + `}`, "ID", "extension", pulse.EUNPROCESSABLE},
		{"boolean source", `{"specversion":"1.0","id":"1","source":true,"type":"t",` + data + `}`, "source", "want a string", pulse.EUNPROCESSABLE},
		{"no specversion", `{"id":"1","source":"/x","type":"t",` + data + `}`, "specversion", "required", pulse.EUNPROCESSABLE},
		{"old specversion", `{"specversion":"0.3","id":"1","source":"/x","type":"t",` + data + `}`, "specversion", "0.3", pulse.EUNPROCESSABLE},
		{"no id", `{"specversion":"1.0","source":"/x","type":"com.cloudmedical.pulse.feedback",` + data + `}`, "id", "required", pulse.EUNPROCESSABLE},
		{"empty id", `{"specversion":"1.0","id":"","source":"/x","type":"com.cloudmedical.pulse.feedback",` + data + `}`, "id", "non-empty", pulse.EUNPROCESSABLE},
		{"numeric id", `{"specversion":"1.0","id":7,"source":"/x","type":"com.cloudmedical.pulse.feedback",` + data + `}`, "id", "want a string", pulse.EUNPROCESSABLE},
		{"no source", `{"specversion":"1.0","id":"1","type":"com.cloudmedical.pulse.feedback",` + data + `}`, "source", "required", pulse.EUNPROCESSABLE},
		{"no type", `{"specversion":"1.0","id":"1","source":"/x",` + data + `}`, "type", "required", pulse.EUNPROCESSABLE},
		{"unknown type", `{"specversion":"1.0","id":"1","source":"/x","type":"com.example.x",` + data + `}`, "type", "com.example.x", pulse.EUNPROCESSABLE},
		{"bad time", `{` + valid + `,"time":"yesterday",` + data + `}`, "time", "RFC 3339", pulse.EUNPROCESSABLE},
		{"xml", `{` + valid + `,"datacontenttype":"application/xml",` + data + `}`, "datacontenttype", "application/xml", pulse.EUNPROCESSABLE},
		{"base64", `{` + valid + `,"data_base64":"AAAA"}`, "data_base64", "binary", pulse.EUNPROCESSABLE},
		{"no data", `{` + valid + `}`, "data", "required", pulse.EUNPROCESSABLE},
		{"bad extension", `{` + valid + `,"Trace-Parent":"x",` + data + `}`, "Trace-Parent", "extension", pulse.EUNPROCESSABLE},
		{"schema: missing", `{` + valid + `,"data":{"prediction_id":"p","label":1}}`, "data", "observed_at", pulse.EUNPROCESSABLE},
		{"schema: type", `{` + valid + `,"data":{"prediction_id":"p","label":[1],"observed_at":"2026-01-01T00:00:00Z"}}`, "data/label", "want", pulse.EUNPROCESSABLE},
		{"schema: format", `{` + valid + `,"data":{"prediction_id":"p","label":1,"observed_at":"soon"}}`, "data/observed_at", "date-time", pulse.EUNPROCESSABLE},
		{"schema: extra", `{` + valid + `,"data":{"prediction_id":"p","label":1,"observed_at":"2026-01-01T00:00:00Z","x":1}}`, "data", "'x'", pulse.EUNPROCESSABLE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if got := pulse.ErrorCode(err); got != tt.code {
				t.Fatalf("code %q (%v), want %q", got, err, tt.code)
			}
			if tt.field != "" {
				assertField(t, err, tt.field, tt.mention)
			} else if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
	// A valid extension attribute is accepted.
	if _, err := Parse([]byte(`{` + valid + `,"traceparent":"00-abc",` + data + `}`)); err != nil {
		t.Fatalf("extension attribute: %v", err)
	}
}

func TestTopics(t *testing.T) {
	tp := Topics{Prefix: "prod."}
	if got, want := tp.For(TypeTrainRequested), "prod.train.requests"; got != want {
		t.Fatalf("For = %q, want %q", got, want)
	}
	if got := tp.For("x"); got != "" {
		t.Fatalf("For(unknown) = %q, want empty", got)
	}
	all := tp.All()
	want := []string{"prod.ingest", "prod.ingest.dlq", "prod.train.requests", "prod.train.requests.dlq", "prod.score.requests", "prod.score.requests.dlq",
		"prod.score.results", "prod.score.results.dlq", "prod.feedback", "prod.feedback.dlq", "prod.model.events", "prod.model.events.dlq"}
	if !slices.Equal(all, want) {
		t.Fatalf("All = %v, want %v", all, want)
	}
}

func TestAsyncAPI(t *testing.T) {
	b := AsyncAPI(Topics{Prefix: "pulse."}, "localhost:9092")
	var doc struct {
		AsyncAPI string `json:"asyncapi"`
		Channels map[string]struct {
			Address  string                     `json:"address"`
			Messages map[string]json.RawMessage `json:"messages"`
		} `json:"channels"`
		Operations map[string]struct {
			Action string `json:"action"`
		} `json:"operations"`
		Components struct {
			Messages map[string]struct {
				Name string `json:"name"`
			} `json:"messages"`
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Fatalf("asyncapi %q, want 3.0.0", doc.AsyncAPI)
	}
	addresses := map[string]bool{}
	for _, ch := range doc.Channels {
		addresses[ch.Address] = true
	}
	for _, name := range (Topics{Prefix: "pulse."}).All() {
		if !addresses[name] {
			t.Errorf("no channel for topic %s", name)
		}
	}
	if len(doc.Operations) != 18 {
		t.Errorf("got %d operations, want 18 (send+receive per topic, receive per dead-letter topic)", len(doc.Operations))
	}
	names := map[string]bool{}
	for _, m := range doc.Components.Messages {
		names[m.Name] = true
	}
	for _, typ := range Types() {
		if !names[typ] {
			t.Errorf("no message for %s", typ)
		}
	}
	// Every $ref resolves inside the document.
	var whole any
	if err := json.Unmarshal(b, &whole); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if resolve(whole, ref) == nil {
					t.Errorf("$ref %s does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(whole)
	// The message payloads are usable schemas: a sample event validates against its payload.
	c := jsonschema.NewCompiler()
	if err := c.AddResource("asyncapi.json", whole); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("asyncapi.json#/components/messages/feedback/payload")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New("/x", TypeFeedback, "", json.RawMessage(sampleData[TypeFeedback]))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := e.Marshal()
	v, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err := sch.Validate(v); err != nil {
		t.Fatalf("sample feedback event does not validate against its AsyncAPI payload: %v", err)
	}
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(strings.Replace(string(raw), `"label":1`, `"label":[1]`, 1)))
	if err := sch.Validate(bad); err == nil {
		t.Fatal("an invalid feedback event validates against its AsyncAPI payload")
	}
}

func resolve(doc any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	cur := doc
	for _, p := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func TestMemorySeen(t *testing.T) {
	ctx := context.Background()
	s := NewMemorySeen(3)
	for i := range 4 {
		if err := s.Mark(ctx, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{"0": false, "1": true, "2": true, "3": true}
	for id, w := range want {
		got, err := s.Seen(ctx, id)
		if err != nil || got != w {
			t.Fatalf("Seen(%s) = %v, %v; want %v", id, got, err, w)
		}
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	// "1" was used most recently... by the loop above in map order; touch it and add two.
	_, _ = s.Seen(ctx, "1")
	_ = s.Mark(ctx, "4")
	_ = s.Mark(ctx, "5")
	if ok, _ := s.Seen(ctx, "1"); !ok {
		t.Fatal("recently used id 1 was evicted")
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts survives a
// Marshal/Parse round trip.
func FuzzParse(f *testing.F) {
	for _, typ := range Types() {
		e, err := New("/f", typ, "s", json.RawMessage(sampleData[typ]))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := e.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"specversion":"1.0","id":"\"","source":"/x","type":"t","a\\"b":1}`))
	f.Add([]byte(`{"x":{"y":"}"},"specversion":"1.0"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			if pulse.ErrorCode(err) == pulse.EINTERNAL {
				t.Fatalf("Parse returned a non-domain error: %v", err)
			}
			return
		}
		again, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("accepted %q but not its re-marshalled form %q: %v", b, again, err)
		}
	})
}
