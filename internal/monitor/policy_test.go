package monitor

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

const examplePolicy = `{"rollback": {"metric": "accuracy", "below": 0.7, "min_labels": 200},
 "retrain": {"drift_psi_above": 0.25, "live_roc_auc_below": 0.8, "min_labels": 200, "cooldown": "1h"},
 "promote": {"metric": "roc_auc", "min_gain": 0.02, "min_labels": 200},
 "live_metric_min_labels": 100}`

func TestParsePolicyDefaults(t *testing.T) {
	p, err := ParsePolicy([]byte(examplePolicy))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{
		Format:              1,
		LiveMetricMinLabels: 100,
		Rollback:            &RollbackRule{Metric: "accuracy", Below: 0.7, MinLabels: 200, Cooldown: "1h"},
		Retrain:             &RetrainRule{DriftPSIAbove: 0.25, LiveROCAUCBelow: 0.8, MinLabels: 200, MinRecords: 500, Cooldown: "1h"},
		Promote:             &PromoteRule{Metric: "roc_auc", MinGain: 0.02, MinLabels: 200, Cooldown: "1h"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
	// Defaults of a minimal policy; the result reads back the same.
	p, err = ParsePolicy([]byte(`{"rollback": {"below": 0.8}, "promote": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != 1 || p.LiveMetricMinLabels != 100 || p.Rollback.Metric != "accuracy" || p.Rollback.MinLabels != 200 ||
		p.Rollback.Cooldown != "1h" || p.Promote.Metric != "roc_auc" || p.Promote.MinGain != 0.02 || p.Retrain != nil {
		t.Errorf("minimal policy: got %+v %+v %+v", p, p.Rollback, p.Promote)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePolicy(b)
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("round trip: got %+v (%v), want %+v; JSON %s", back, err, p, b)
	}
	// An empty policy only monitors.
	if p, err := ParsePolicy([]byte(`{}`)); err != nil || p.Rollback != nil || p.Retrain != nil || p.Promote != nil {
		t.Errorf("empty policy: got %+v, %v", p, err)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		doc, field, want string
	}{
		{`{"format": 2}`, "format", "format: got 2, want 1"},
		{`{"rollbak": {}}`, "rollbak", `unknown field "rollbak"`},
		{`{"rollback": {"below": 0.7, "extra": 1}}`, "rollback.extra", `unknown field "rollback.extra"`},
		{`{"rollback": {"below": "high"}}`, "rollback.below", "rollback.below: got a JSON string, want a number"},
		{`{"rollback": 3}`, "rollback", "rollback: got a JSON number, want an object"},
		{`{"rollback": {}}`, "rollback.below", "rollback.below: required"},
		{`{"rollback": {"below": 1.5}}`, "rollback.below", "rollback.below: got 1.5, want a number in (0, 1]"},
		{`{"rollback": {"below": 0.7, "metric": "f1"}}`, "rollback.metric", `rollback.metric: got "f1", want one of accuracy, roc_auc, sensitivity, specificity`},
		{`{"rollback": {"below": 0.7, "min_labels": -5}}`, "rollback.min_labels", "rollback.min_labels: got -5"},
		{`{"rollback": {"below": 0.7, "cooldown": "soon"}}`, "rollback.cooldown", `rollback.cooldown: got "soon", want a duration`},
		{`{"rollback": {"below": 0.7, "cooldown": "-1h"}}`, "rollback.cooldown", `rollback.cooldown: got "-1h"`},
		{`{"retrain": {}}`, "retrain", "want at least one of drift_psi_above, score_psi_above and live_roc_auc_below"},
		{`{"retrain": {"drift_psi_above": -0.1}}`, "retrain.drift_psi_above", "retrain.drift_psi_above: got -0.1"},
		{`{"retrain": {"live_roc_auc_below": 2}}`, "retrain.live_roc_auc_below", "retrain.live_roc_auc_below: got 2"},
		{`{"retrain": {"score_psi_above": 0.2, "min_records": -1}}`, "retrain.min_records", "retrain.min_records: got -1"},
		{`{"promote": {"min_gain": -0.1}}`, "promote.min_gain", "promote.min_gain: got -0.1, want a number in (0, 1)"},
		{`{"promote": {"metric": "brier"}}`, "promote.metric", `promote.metric: got "brier"`},
		{`{"live_metric_min_labels": -1}`, "live_metric_min_labels", "live_metric_min_labels: got -1"},
		{`{"webhook": "ftp://example.com/x"}`, "webhook", `webhook: got "ftp://example.com/x", want an http or https URL`},
		{`{"webhook": "https://"}`, "webhook", "want an http or https URL"},
		{`{"shadow": "yes"}`, "shadow", "shadow: got a JSON string"},
		{`{"retrain": {"drift_psi_above": 0.2, "ingest_window": "a month"}}`, "retrain.ingest_window", `retrain.ingest_window: got "a month"`},
		{`{"retrain": {"drift_psi_above": 0.2, "ingest_window": "0d"}}`, "retrain.ingest_window", `got "0d"`},
		{`[]`, "", "got a JSON array, want an object"},
		{``, "", "empty document"},
		{`{"rollback": `, "", "policy:"},
		{`{} {}`, "", "want one JSON object"},
	}
	for _, tt := range tests {
		_, err := ParsePolicy([]byte(tt.doc))
		var pe *pulse.Error
		if !errorAs(err, &pe) || pe.Code != pulse.EINVALID || pe.Field != tt.field || !strings.Contains(pe.Message, tt.want) {
			t.Errorf("%s: got %#v, want EINVALID about %q containing %q", tt.doc, err, tt.field, tt.want)
		}
	}
}

// TestPolicyShadowAndWebhook: shadow defaults to on, false turns it off; the webhook and the
// retraining's ingest window read back as given.
func TestPolicyShadowAndWebhook(t *testing.T) {
	tests := []struct {
		doc  string
		want bool
	}{
		{`{}`, true},
		{`{"shadow": true}`, true},
		{`{"shadow": false}`, false},
	}
	for _, tt := range tests {
		p, err := ParsePolicy([]byte(tt.doc))
		if err != nil {
			t.Fatalf("%s: %v", tt.doc, err)
		}
		if got := p.ShadowOn(); got != tt.want {
			t.Errorf("%s: ShadowOn got %v, want %v", tt.doc, got, tt.want)
		}
	}
	if !(*Policy)(nil).ShadowOn() {
		t.Errorf("nil policy: ShadowOn got false, want true")
	}
	p, err := ParsePolicy([]byte(`{"webhook": "https://hooks.example.com/pulse?x=1", "retrain": {"score_psi_above": 0.3, "ingest_window": "30d"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Webhook != "https://hooks.example.com/pulse?x=1" || p.Retrain.IngestWindow != "30d" {
		t.Errorf("got webhook %q, ingest_window %q", p.Webhook, p.Retrain.IngestWindow)
	}
}

// TestPolicySchema: the embedded JSON Schema parses and lists exactly the fields of the Go
// types, so that the two cannot drift apart.
func TestPolicySchema(t *testing.T) {
	var schema struct {
		Schema     string `json:"$schema"`
		Properties map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(PolicySchema(), &schema); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(schema.Schema, "2020-12") {
		t.Errorf("got $schema %q, want draft 2020-12", schema.Schema)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for s := range m {
			k = append(k, s)
		}
		slices.Sort(k)
		return k
	}
	sorted := func(s []string) []string { slices.Sort(s); return s }
	top := map[string]any{}
	for k := range schema.Properties {
		top[k] = nil
	}
	if got, want := keys(top), sorted(jsonNames(reflect.TypeFor[Policy]())); !slices.Equal(got, want) {
		t.Errorf("schema properties %v, want %v", got, want)
	}
	for name, typ := range map[string]reflect.Type{
		"rollback": reflect.TypeFor[RollbackRule](), "retrain": reflect.TypeFor[RetrainRule](), "promote": reflect.TypeFor[PromoteRule](),
	} {
		if got, want := keys(schema.Properties[name].Properties), sorted(jsonNames(typ)); !slices.Equal(got, want) {
			t.Errorf("schema %s properties %v, want %v", name, got, want)
		}
	}
	// A copy: changing it does not change the next.
	s := PolicySchema()
	s[0] = 'x'
	if PolicySchema()[0] != '{' {
		t.Errorf("PolicySchema returned its own bytes")
	}
}
