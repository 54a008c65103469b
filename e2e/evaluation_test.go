package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// checkEvaluationRoutes checks continuous evaluation on a running server (pulse serve
// --example heart-disease, after TestServeExample's predictions and checkJobRoutes' model
// heart-jobs) against the OpenAPI document: policies (JSON and YAML, versioned), the live
// report (drift from the predictions made so far), the audit trail, the gauges, and shadow
// scoring of a challenger (on heart-jobs, so that heart-disease's lake holds only the
// predictions answered). TestServeExample calls it.
func checkEvaluationRoutes(t *testing.T, s *server, api *apiDoc) {
	t.Helper()
	const m = "/v1/models/heart-disease"
	r := s.get(m)
	champion := r.json(t)["aliases"].(map[string]any)["champion"].(float64)
	live := fmt.Sprintf("%s/versions/%d/live", m, int(champion))

	// No policy yet.
	r = s.get(m + "/policy")
	api.check(t, "GET", "/v1/models/{model}/policy", r)
	if r.status != 404 {
		t.Errorf("policy before any: got %d %s, want 404", r.status, r.body)
	}
	r = s.get(m + "/policy/versions")
	api.check(t, "GET", "/v1/models/{model}/policy/versions", r)
	if r.status != 200 || len(r.json(t)["policies"].([]any)) != 0 {
		t.Errorf("policy history before any: got %d %s, want 200 and none", r.status, r.body)
	}

	// Version 1 in JSON, version 2 in YAML; the defaults are filled in.
	r = s.do("PUT", m+"/policy", "application/json", []byte(`{"rollback": {"below": 0.6, "min_labels": 500}, "live_metric_min_labels": 20}`))
	api.check(t, "PUT", "/v1/models/{model}/policy", r)
	if r.status != 200 {
		t.Fatalf("put policy: got %d %s", r.status, r.body)
	}
	p1 := r.json(t)
	if p1["version"] != 1.0 || p1["policy"].(map[string]any)["rollback"].(map[string]any)["cooldown"] != "1h" {
		t.Errorf("put policy: got %s, want version 1 with the default cooldown", r.body)
	}
	yaml := "# the heart-disease alert's policy\nrollback:\n  below: 0.65\n  min_labels: 500\nretrain:\n  drift_psi_above: 0.3\n  min_records: 100000\nlive_metric_min_labels: 20\n"
	r = s.do("PUT", m+"/policy", "application/yaml", []byte(yaml))
	api.check(t, "PUT", "/v1/models/{model}/policy", r)
	if r.status != 200 || r.json(t)["version"] != 2.0 || r.header.Get("Location") != m+"/policy?version=2" {
		t.Fatalf("put YAML policy: got %d %s (Location %q)", r.status, r.body, r.header.Get("Location"))
	}
	for _, bad := range []struct {
		path, ct, body string
		status         int
		field          string
	}{
		{m + "/policy", "application/json", `{"rollback": {"below": 1.5}}`, 400, "rollback.below"},
		{m + "/policy", "application/json", `{"rollbak": {}}`, 400, "rollbak"},
		{m + "/policy", "application/yaml", "rollback:\n  - 0.7\n", 400, ""},
		{m + "/policy", "text/csv", `{}`, 400, ""},
		{"/v1/models/no-such-model/policy", "application/json", `{}`, 404, ""},
	} {
		r = s.do("PUT", bad.path, bad.ct, []byte(bad.body))
		api.check(t, "PUT", "/v1/models/{model}/policy", r)
		if r.status != bad.status || (bad.field != "" && r.json(t)["field"] != bad.field) {
			t.Errorf("put %s %q: got %d %s, want %d about %q", bad.ct, bad.body, r.status, r.body, bad.status, bad.field)
		}
	}
	r = s.get(m + "/policy")
	api.check(t, "GET", "/v1/models/{model}/policy", r)
	if pol := r.json(t); pol["version"] != 2.0 || pol["policy"].(map[string]any)["rollback"].(map[string]any)["below"] != 0.65 {
		t.Errorf("current policy: got %s, want version 2", r.body)
	}
	r = s.get(m + "/policy?version=1")
	api.check(t, "GET", "/v1/models/{model}/policy", r)
	if r.json(t)["version"] != 1.0 {
		t.Errorf("policy version 1: got %s", r.body)
	}
	for q, status := range map[string]int{"?version=x": 400, "?version=9": 404} {
		r = s.get(m + "/policy" + q)
		api.check(t, "GET", "/v1/models/{model}/policy", r)
		if r.status != status {
			t.Errorf("policy%s: got %d, want %d", q, r.status, status)
		}
	}
	r = s.get(m + "/policy/versions")
	api.check(t, "GET", "/v1/models/{model}/policy/versions", r)
	if ps := r.json(t)["policies"].([]any); len(ps) != 2 || ps[0].(map[string]any)["version"] != 2.0 {
		t.Errorf("policy history: got %s, want versions 2 and 1", r.body)
	}
	r = s.get("/v1/models/no-such-model/policy/versions")
	api.check(t, "GET", "/v1/models/{model}/policy/versions", r)
	if r.status != 404 {
		t.Errorf("policy history of an unknown model: got %d", r.status)
	}

	// The champion's live report: drift counts the predictions answered so far (the same
	// patient again and again: a huge PSI), the labels are checkFeedbackRoutes'.
	var rep map[string]any
	eventually(t, "drift counts the predictions", func() bool {
		r = s.get(live)
		if r.status != 200 {
			return false
		}
		rep = r.json(t)
		d, _ := rep["drift"].(map[string]any)
		return d != nil && d["n"].(float64) > 0
	}, func() string { return string(r.body) })
	api.check(t, "GET", "/v1/models/{model}/versions/{version}/live", r)
	if rep["version"] != champion || rep["threshold"].(float64) <= 0 || rep["live_min_labels"] != 20.0 || rep["policy"].(map[string]any)["version"] != 2.0 ||
		len(rep["drift"].(map[string]any)["features"].([]any)) != 13 || rep["drift"].(map[string]any)["max_psi"].(float64) < 0.25 ||
		!strings.Contains(fmt.Sprint(rep["aliases"]), "champion") || rep["holdout"] == nil {
		t.Errorf("live report: got %s", r.body)
	}
	for path, status := range map[string]int{m + "/versions/99/live": 404, m + "/versions/x/live": 400, "/v1/models/no-such-model/versions/1/live": 404} {
		r = s.get(path)
		api.check(t, "GET", "/v1/models/{model}/versions/{version}/live", r)
		if r.status != status {
			t.Errorf("GET %s: got %d, want %d", path, r.status, status)
		}
	}

	// The loop evaluated the policy: each rule's guard under policy version 2 is in the
	// trail, once.
	var events []any
	v2 := func() map[string]int {
		rules := map[string]int{}
		for _, e := range events {
			if e := e.(map[string]any); e["policy_version"] == 2.0 {
				rules[e["rule"].(string)]++
			}
		}
		return rules
	}
	eventually(t, "the policy's decisions", func() bool {
		r = s.get(m + "/events")
		events, _ = r.json(t)["events"].([]any)
		return v2()["rollback"] == 1 && v2()["retrain"] == 1
	}, func() string { return string(r.body) })
	api.check(t, "GET", "/v1/models/{model}/events", r)
	for _, e := range events {
		e := e.(map[string]any)
		if e["action"] != "none" || e["champion"] != champion || !strings.HasPrefix(e["guard"].(string), "too few") {
			t.Errorf("decision: got %v, want no action, guarded by too few labels or records", e)
		}
	}
	r = s.get(m + "/events?limit=1&action=none")
	api.check(t, "GET", "/v1/models/{model}/events", r)
	if es := r.json(t)["events"].([]any); len(es) != 1 {
		t.Errorf("events?limit=1: got %s", r.body)
	}
	for path, status := range map[string]int{m + "/events?limit=0": 400, m + "/events?action=panic": 400, m + "/events?before=x": 400, "/v1/models/no-such-model/events": 404} {
		r = s.get(path)
		api.check(t, "GET", "/v1/models/{model}/events", r)
		if r.status != status {
			t.Errorf("GET %s: got %d %s, want %d", path, r.status, r.body, status)
		}
	}

	// Gauges per model and version.
	v := strconv.Itoa(int(champion))
	eventually(t, "the live gauges", func() bool {
		r = s.get("/metrics")
		return strings.Contains(string(r.body), `pulse_live_labels{model="heart-disease",version="`+v+`"} `) &&
			regexp.MustCompile(`pulse_drift_records\{model="heart-disease",version="`+v+`"\} [1-9]`).Match(r.body) &&
			regexp.MustCompile(`pulse_drift_max_psi\{model="heart-disease",version="`+v+`"\} [0-9]`).Match(r.body)
	}, func() string { return grep(string(r.body), "pulse_live_", "pulse_drift_") })

	// Shadow: heart-jobs (trained by checkJobRoutes) gets a second version as challenger;
	// each request answered by its champion is scored by the challenger too, after the
	// answer, with the same prediction_id. (Not through s.do: TestServeExample counts the
	// predictions it sees in heart-disease's lake.)
	r = s.postJSON("/v1/models/heart-jobs/train?wait=true", `{"dataset":"cleveland","target":"num > 0","seed":6,"params":{"C":0.05}}`)
	if r.status != 201 {
		t.Fatalf("train heart-jobs version 2: got %d %s", r.status, r.body)
	}
	jobsV2 := int(r.json(t)["version"].(float64))
	if r = s.do("PUT", "/v1/models/heart-jobs/aliases/challenger", "application/json", []byte(fmt.Sprintf(`{"version":%d}`, jobsV2))); r.status != 200 {
		t.Fatalf("challenger alias: got %d %s", r.status, r.body)
	}
	for range 5 {
		resp, err := http.Post(s.base+"/v1/models/heart-jobs/predict", "application/json", strings.NewReader(patientJSON))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Model struct {
				Version int `json:"version"`
			} `json:"model"`
		}
		if err := json.Unmarshal(body, &out); resp.StatusCode != 200 || err != nil || out.Model.Version != 1 {
			t.Fatalf("predict heart-jobs: got %d %s", resp.StatusCode, body)
		}
	}
	shadowed := regexp.MustCompile(`pulse_shadow_predictions_total\{model="heart-jobs",version="` + strconv.Itoa(jobsV2) + `"\} (\d+)`)
	eventually(t, "the challenger scores in shadow", func() bool {
		r = s.get("/metrics")
		m := shadowed.FindSubmatch(r.body)
		return m != nil && string(m[1]) == "5"
	}, func() string { return grep(string(r.body), "pulse_shadow_") })
	if r = s.do("DELETE", "/v1/models/heart-jobs/aliases/challenger", "", nil); r.status != 204 && r.status != 200 {
		t.Errorf("delete the challenger alias: got %d %s", r.status, r.body)
	}

	// A policy that only monitors leaves the example model as it was.
	r = s.do("PUT", m+"/policy", "application/json", []byte(`{}`))
	api.check(t, "PUT", "/v1/models/{model}/policy", r)
	var pol struct {
		Version int             `json:"version"`
		Policy  json.RawMessage `json:"policy"`
	}
	if err := json.Unmarshal(r.body, &pol); err != nil || pol.Version != 3 {
		t.Errorf("monitor-only policy: got %s (%v)", r.body, err)
	}
}

// grep returns the lines of s that contain one of the words.
func grep(s string, words ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) && !strings.HasPrefix(line, "#") {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
