package http

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/evaluator"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/registry/registrytest"
	"github.com/cloudmedical/pulse/internal/serving"
)

// TestEvaluationRoutes: without an evaluator every route is 503; with one, a policy goes in as
// YAML, reads back with its defaults, and query parameters are checked.
func TestEvaluationRoutes(t *testing.T) {
	off := newTestServer(t, nil)
	for _, r := range []struct{ method, target string }{
		{"GET", "/v1/models/m/versions/1/live"}, {"GET", "/v1/models/m/policy"}, {"PUT", "/v1/models/m/policy"},
		{"GET", "/v1/models/m/policy/versions"}, {"GET", "/v1/models/m/events"},
	} {
		problem(t, r.method+" "+r.target+" without evaluation", off.do(r.method, r.target, "application/json", []byte(`{}`)), 503)
	}

	ts := newEvaluationServer(t)
	rec := ts.do("PUT", "/v1/models/m/policy", "application/yaml; charset=utf-8", []byte("rollback:\n  below: 0.8\nshadow: false\n"))
	if rec.Code != 200 || rec.Header().Get("Location") != "/v1/models/m/policy?version=1" {
		t.Fatalf("put YAML: got %d %s", rec.Code, rec.Body)
	}
	var p evaluator.PolicyView
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Version != 1 || p.Policy.Rollback.MinLabels != 200 || p.Policy.ShadowOn() {
		t.Errorf("put YAML: got %s (%v)", rec.Body, err)
	}
	if got := problem(t, "bad content type", ts.do("PUT", "/v1/models/m/policy", "text/plain", []byte(`{}`)), 400); got.Detail == "" {
		t.Error("no detail")
	}
	if got := problem(t, "bad rule", ts.do("PUT", "/v1/models/m/policy", "application/json", []byte(`{"rollback":{"below":0}}`)), 400); got.Field != "rollback.below" {
		t.Errorf("bad rule: field %q, want rollback.below", got.Field)
	}
	problem(t, "unknown model", ts.do("PUT", "/v1/models/nope/policy", "", []byte(`{}`)), 404)
	problem(t, "policy version 0", ts.do("GET", "/v1/models/m/policy?version=0", "", nil), 400)
	for _, q := range []string{"limit=0", "limit=x", "before=-1", "action=jump"} {
		problem(t, "events?"+q, ts.do("GET", "/v1/models/m/events?"+q, "", nil), 400)
	}
	if rec := ts.do("GET", "/v1/models/m/events?limit=5&action=none", "", nil); rec.Code != 200 || rec.Body.String() != "{\"events\":[]}\n" {
		t.Errorf("events: got %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("GET", "/v1/models/m/versions/1/live", "", nil)
	var live evaluator.LiveReport
	if err := json.Unmarshal(rec.Body.Bytes(), &live); rec.Code != 200 || err != nil || live.Version != 1 || live.Live.N != 0 || live.Drift == nil || live.Policy == nil {
		t.Errorf("live: got %d %s", rec.Code, rec.Body)
	}
	problem(t, "live of a missing version", ts.do("GET", "/v1/models/m/versions/7/live", "", nil), 404)
}

// newEvaluationServer is newTestServer's model "m" with an evaluator on the same store.
func newEvaluationServer(t *testing.T) *testServer {
	t.Helper()
	ctx := context.Background()
	st := registrytest.New(t)
	reg, err := registry.New(ctx, registry.Config{Store: st.DB, Blobs: st.Blobs, Lake: st.Lake})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: "small", Body: strings.NewReader(smallCSV())}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Train(ctx, "m", registry.TrainRequest{Dataset: "small", Target: "y", CVFolds: -1}); err != nil {
		t.Fatal(err)
	}
	ev, err := evaluator.New(evaluator.Config{Models: reg, Store: st.DB})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	scorer, err := serving.New(serving.Config{Models: reg, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Addr: "127.0.0.1:0", Registry: reg, Scorer: scorer, Metrics: prometheus.NewRegistry(), Evaluation: ev})
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{srv: s, h: s.Handler(), reg: reg, sink: sink, lake: st.Lake}
}
