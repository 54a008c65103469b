package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestServeExample walks through what a new user does with `pulse serve --example
// heart-disease`, checking every response against the OpenAPI document.
func TestServeExample(t *testing.T) {
	var acked sync.Map // prediction_id -> true, for every 200 from /predict
	dataDir := t.TempDir()
	cwd, _ := os.Getwd()
	s := startServer(t, dataDir, cwd, "--example", "heart-disease", "--example-data", filepath.Join(sharedData, "processed.cleveland.data"))
	s.onPredict = func(body []byte) { ackIDs(t, &acked, body) }
	waitFor(func() bool { return strings.Contains(s.stdout.String(), "Try a prediction") }) // stdout is copied asynchronously
	mustContain(t, s.stdout.String(), "curl -s "+s.base+"/v1/models/heart-disease/predict")

	doc := s.get("/openapi.json")
	if doc.status != 200 {
		t.Fatalf("GET /openapi.json: got %d", doc.status)
	}
	api := loadAPIDoc(t, doc.body)
	api.check(t, "GET", "/openapi.json", doc)
	api.check(t, "GET", "/healthz", s.get("/healthz"))
	api.check(t, "GET", "/readyz", s.get("/readyz"))
	asyncAPI := s.get("/asyncapi.json")
	api.check(t, "GET", "/asyncapi.json", asyncAPI)
	mustContain(t, string(asyncAPI.body), `"pulse.train.requests"`)

	// The example registered the dataset and trained version 1 as champion.
	r := s.get("/v1/models")
	api.check(t, "GET", "/v1/models", r)
	r = s.get("/v1/models/heart-disease")
	api.check(t, "GET", "/v1/models/{model}", r)
	if got := r.json(t)["aliases"].(map[string]any)["champion"]; got != 1.0 {
		t.Fatalf("champion: got %v, want 1", got)
	}
	r = s.get("/v1/models/heart-disease/versions/1")
	api.check(t, "GET", "/v1/models/{model}/versions/{version}", r)
	v1 := r.json(t)
	cv := v1["metrics"].(map[string]any)["cv"].(map[string]any)
	if auc := cv["roc_auc"].(float64); auc < 0.90 {
		t.Errorf("10-fold CV ROC AUC: got %.4f, want >= 0.90", auc)
	}
	if folds := cv["folds"].(float64); folds != 10 {
		t.Errorf("cv folds: got %v, want 10", folds)
	}
	lin := v1["lineage"].(map[string]any)
	if lin["trigger"] != "example" || lin["target"] != "num > 0" || lin["seed"] != 7.0 || len(lin["dataset_sha256"].(string)) != 64 {
		t.Errorf("lineage: got %v", lin)
	}
	api.check(t, "GET", "/v1/models/{model}/versions", s.get("/v1/models/heart-disease/versions"))
	art := s.get("/v1/models/heart-disease/versions/1/artifact")
	api.check(t, "GET", "/v1/models/{model}/versions/{version}/artifact", art)
	if got := art.header.Get("Digest"); got != "sha-256="+v1["artifact_sha256"].(string) {
		t.Errorf("artifact Digest: got %q, want the version's sha256", got)
	}

	// Score one patient: the input is echoed and augmented.
	r = s.postJSON("/v1/models/heart-disease/predict", patientJSON)
	api.check(t, "POST", "/v1/models/{model}/predict", r)
	if r.status != 200 {
		t.Fatalf("predict: got %d %s", r.status, r.body)
	}
	if !bytes.HasPrefix(r.body, []byte(patientJSON[:len(patientJSON)-1]+",")) {
		t.Errorf("predict: the input is not echoed as sent: %s", r.body)
	}
	out := r.json(t)
	pred := out["prediction"].(map[string]any)
	p := pred["probability"].(float64)
	wantLabel := 0.0
	if p >= pred["threshold"].(float64) {
		wantLabel = 1
	}
	if pred["label"] != wantLabel {
		t.Errorf("label %v does not follow probability %v and threshold %v", pred["label"], p, pred["threshold"])
	}
	m := out["model"].(map[string]any)
	if m["name"] != "heart-disease" || m["version"] != 1.0 || m["alias"] != "champion" {
		t.Errorf("model block: got %v", m)
	}
	if acc := m["metrics"].(map[string]any)["accuracy"]; acc != v1["metrics"].(map[string]any)["holdout"].(map[string]any)["accuracy"] {
		t.Errorf("model.metrics.accuracy: got %v, want the holdout accuracy", acc)
	}

	// A batch, with a missing feature and an extra field echoed back.
	r = s.postJSON("/v1/models/heart-disease/predict?version=1", `{"instances":[`+patientJSON+`,{"age":41,"sex":0,"cp":2,"thalach":172,"device":"bracelet-7"}]}`)
	api.check(t, "POST", "/v1/models/{model}/predict", r)
	preds := r.json(t)["predictions"].([]any)
	if len(preds) != 2 || preds[1].(map[string]any)["device"] != "bracelet-7" || preds[0].(map[string]any)["prediction"].(map[string]any)["probability"] != p {
		t.Errorf("batch: got %s", r.body)
	}

	// Bad input: each refused with a problem that names the field.
	for _, tc := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"wrong type", "/v1/models/heart-disease/predict", `{"age":"sixty"}`, 422, "age"},
		{"unknown binary value", "/v1/models/heart-disease/predict", `{"sex":7}`, 422, "sex"},
		{"reserved field", "/v1/models/heart-disease/predict", `{"prediction":1}`, 422, "prediction"},
		{"strict unknown field", "/v1/models/heart-disease/predict?strict=true", `{"age":50,"colour":"red"}`, 422, "colour"},
		{"strict unseen category", "/v1/models/heart-disease/predict?strict=true", `{"cp":9}`, 422, "cp"},
		{"not json", "/v1/models/heart-disease/predict", `{"age":`, 400, ""},
		{"not an object", "/v1/models/heart-disease/predict", `[1,2]`, 400, ""},
		{"unknown model", "/v1/models/no-such-model/predict", patientJSON, 404, ""},
		{"unknown version", "/v1/models/heart-disease/predict?version=99", patientJSON, 404, ""},
		{"bad version", "/v1/models/heart-disease/predict?version=x", patientJSON, 400, "version"},
		{"batch item", "/v1/models/heart-disease/predict", `{"instances":[{"age":50},{"age":true}]}`, 422, "instances[1].age"},
	} {
		r := s.postJSON(tc.path, tc.body)
		if r.status != tc.status {
			t.Errorf("%s: got %d %s, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		api.check(t, "POST", "/v1/models/{model}/predict", r)
		if tc.field != "" {
			if got := r.json(t)["field"]; got != tc.field {
				t.Errorf("%s: problem field: got %v, want %q", tc.name, got, tc.field)
			}
		}
	}
	// An unseen category is encoded as unknown, with a warning, when not strict.
	r = s.postJSON("/v1/models/heart-disease/predict", `{"age":50,"cp":9}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"warnings":["field \"cp\": category \"9\" was not seen in training; encoded as unknown"]`) {
		t.Errorf("unseen category: got %d %s", r.status, r.body)
	}
	big := `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	if r := s.postJSON("/v1/models/heart-disease/predict", big); r.status != 413 {
		t.Errorf("oversized body: got %d, want 413", r.status)
	} else {
		api.check(t, "POST", "/v1/models/{model}/predict", r)
	}

	// Register a dataset (multipart), refuse a malformed one naming row and column.
	cleveland, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "cleveland.csv")
	fw.Write(cleveland)
	mw.Close()
	r = s.do("POST", "/v1/datasets?name=cleveland&kinds=cp:categorical,thal:categorical,slope:categorical,restecg:categorical", mw.FormDataContentType(), mp.Bytes())
	api.check(t, "POST", "/v1/datasets", r)
	if r.status != 201 {
		t.Fatalf("register dataset: got %d %s", r.status, r.body)
	}
	ds := r.json(t)
	if ds["rows"] != 303.0 || len(ds["sha256"].(string)) != 64 || ds["version"] != 1.0 {
		t.Errorf("dataset: got %s", r.body)
	}
	r = s.do("POST", "/v1/datasets?name=cleveland&kinds=cp:categorical,thal:categorical,slope:categorical,restecg:categorical", "text/csv", cleveland)
	api.check(t, "POST", "/v1/datasets", r)
	if r.status != 200 || r.json(t)["id"] != ds["id"] {
		t.Errorf("same content again: got %d %s, want 200 with the same id", r.status, r.body)
	}
	bad := strings.Replace(string(cleveland), "\n67.0,1.0,4.0,160.0", "\n67.0,1.0,4.0,high", 1)
	r = s.do("POST", "/v1/datasets?name=broken&kinds=trestbps:numeric", "text/csv", []byte(bad))
	api.check(t, "POST", "/v1/datasets", r)
	if r.status != 422 || r.json(t)["row"] != 2.0 || r.json(t)["field"] != "trestbps" {
		t.Errorf("malformed dataset: got %d %s, want 422 naming row 2 and column trestbps", r.status, r.body)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "lake", "datasets", "name=broken")); !os.IsNotExist(err) {
		t.Errorf("a refused dataset left files behind: %v", err)
	}
	api.check(t, "GET", "/v1/datasets", s.get("/v1/datasets"))
	r = s.get("/v1/datasets/cleveland")
	api.check(t, "GET", "/v1/datasets/{dataset}", r)
	if r.json(t)["id"] != ds["id"] {
		t.Errorf("dataset by name: got %s", r.body)
	}
	api.check(t, "GET", "/v1/datasets/{dataset}", s.get("/v1/datasets/nope"))

	// Train version 2 with other parameters; bad training requests name the field.
	r = s.postJSON("/v1/models/heart-disease/train?wait=true", `{"dataset":"cleveland","target":"num > 0","params":{"C":0.1},"seed":3}`)
	api.check(t, "POST", "/v1/models/{model}/train", r)
	if r.status != 201 {
		t.Fatalf("train: got %d %s", r.status, r.body)
	}
	v2 := r.json(t)
	if v2["version"] != 2.0 || len(v2["aliases"].([]any)) != 0 {
		t.Errorf("train: got version %v aliases %v, want version 2 with no alias", v2["version"], v2["aliases"])
	}
	for _, tc := range []struct{ body, field string }{
		{`{"dataset":"nope","target":"num > 0"}`, "dataset"},
		{`{"dataset":"cleveland"}`, "target"},
		{`{"dataset":"cleveland","target":"num > 0","algorithm":"magic"}`, "algorithm"},
		{`{"dataset":"cleveland","target":"num > 0","params":{"C":"big"}}`, "params.C"},
		{`{"dataset":"cleveland","target":"num > 0","seed":"x"}`, "seed"},
	} {
		r := s.postJSON("/v1/models/heart-disease/train?wait=true", tc.body)
		api.check(t, "POST", "/v1/models/{model}/train", r)
		if r.status != 422 || r.json(t)["field"] != tc.field {
			t.Errorf("train %s: got %d %s, want 422 naming %q", tc.body, r.status, r.body, tc.field)
		}
	}

	// Move the champion to version 2 while clients score: no request fails; every request
	// answered before the move began got version 1, every request sent after the move was
	// acknowledged got version 2.
	var (
		wg            sync.WaitGroup
		phase         atomic.Int32 // 0 before the PUT is sent, 1 during it, 2 after its answer
		before, after atomic.Int32
		failures      = make(chan string, 100)
		stop          = make(chan struct{})
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sentIn := phase.Load()
				resp, err := http.Post(s.base+"/v1/models/heart-disease/predict", "application/json", strings.NewReader(patientJSON))
				if err != nil {
					failures <- err.Error()
					return
				}
				raw, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				answeredIn := phase.Load()
				var body struct {
					Model struct {
						Version int `json:"version"`
					} `json:"model"`
				}
				if err == nil {
					err = json.Unmarshal(raw, &body)
				}
				if resp.StatusCode != 200 || err != nil {
					failures <- fmt.Sprintf("status %d: %v", resp.StatusCode, err)
					return
				}
				ackIDs(t, &acked, raw)
				switch {
				case answeredIn == 0 && body.Model.Version != 1:
					failures <- fmt.Sprintf("answered before the move with version %d, want 1", body.Model.Version)
					return
				case sentIn == 2 && body.Model.Version != 2:
					failures <- fmt.Sprintf("sent after the move with version %d, want 2", body.Model.Version)
					return
				case answeredIn == 0:
					before.Add(1)
				case sentIn == 2:
					after.Add(1)
				}
			}
		}()
	}
	waitFor(func() bool { return before.Load() >= 50 })
	phase.Store(1)
	r = s.do("PUT", "/v1/models/heart-disease/aliases/champion", "application/json", []byte(`{"version":2}`))
	phase.Store(2)
	api.check(t, "PUT", "/v1/models/{model}/aliases/{alias}", r)
	if r.status != 200 || r.json(t)["previous_version"] != 1.0 {
		t.Errorf("move champion: got %d %s", r.status, r.body)
	}
	waitFor(func() bool { return after.Load() >= 50 || len(failures) > 0 })
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("while the alias moved: %s", f)
	}
	r = s.do("PUT", "/v1/models/heart-disease/aliases/challenger", "application/json", []byte(`{"version":9}`))
	api.check(t, "PUT", "/v1/models/{model}/aliases/{alias}", r)
	if r.status != 404 {
		t.Errorf("alias to a missing version: got %d, want 404", r.status)
	}
	r = s.do("PUT", "/v1/models/heart-disease/aliases/challenger", "application/json", []byte(`{"version":1}`))
	api.check(t, "PUT", "/v1/models/{model}/aliases/{alias}", r)
	r = s.postJSON("/v1/models/heart-disease/predict?alias=challenger", patientJSON)
	if r.status != 200 || r.json(t)["model"].(map[string]any)["version"] != 1.0 {
		t.Errorf("predict by alias challenger: got %d %s", r.status, r.body)
	}
	r = s.do("DELETE", "/v1/models/heart-disease/aliases/challenger", "", nil)
	api.check(t, "DELETE", "/v1/models/{model}/aliases/{alias}", r)
	r = s.postJSON("/v1/models/heart-disease/predict?alias=challenger", patientJSON)
	if r.status != 404 {
		t.Errorf("predict with a deleted alias: got %d %s", r.status, r.body)
	}

	// Metrics count predictions per model, version and label, and latency per status.
	metrics := s.get("/metrics")
	api.check(t, "GET", "/metrics", metrics)
	for _, want := range []string{
		`pulse_predictions_total{label=`,
		`pulse_predict_duration_seconds_count{model="heart-disease",status="ok",version="1"}`,
		`pulse_predict_duration_seconds_count{model="heart-disease",status="unprocessable",version="1"}`,
		`pulse_http_requests_total{code="200",method="POST",route="POST /v1/models/{model}/predict"}`,
	} {
		mustContain(t, string(metrics.body), want)
	}
	checkJobRoutes(t, s, api)      // e2e/jobs_test.go
	checkScoreJobRoutes(t, s, api) // e2e/scorejob_test.go
	checkBundleRoutes(t, s, api)   // e2e/bundle_test.go
	checkFeedbackRoutes(t, s, api) // e2e/feedback_test.go
	checkEvaluationRoutes(t, s, api)
	r = s.get("/v1/models/heart-disease/online")
	api.check(t, "GET", "/v1/models/{model}/online", r)
	if r.status != 404 {
		t.Errorf("online status of a model this server does not follow: got %d, want 404", r.status)
	}
	api.coverage(t)

	// Stop cleanly: every 200 answered is in the lake, once.
	s.stop()
	mustContain(t, s.Logs(), "stopped cleanly")
	rows, files := readLake(t, dataDir, "heart-disease")
	if len(files) == 0 {
		t.Fatal("no Parquet files in the lake after a clean stop")
	}
	ids := map[string]int{}
	for _, row := range rows {
		ids[row.PredictionID]++
		if !strings.HasPrefix(row.Response, row.Features[:len(row.Features)-1]) {
			t.Errorf("lake row %s: response does not echo its features", row.PredictionID)
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("prediction %s is %d times in the lake", id, n)
		}
	}
	acked.Range(func(id, _ any) bool {
		if ids[id.(string)] != 1 {
			t.Errorf("acknowledged prediction %s is in the lake %d times, want 1", id, ids[id.(string)])
		}
		return true
	})
	if n := countAcked(&acked); len(rows) != n {
		t.Errorf("lake rows: got %d, want the %d predictions answered with 200", len(rows), n)
	}
}
