package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestTrainAlgorithms trains every algorithm through the API, with a hyperparameter search and
// a high-sensitivity operating point, and scores with each version.
func TestTrainAlgorithms(t *testing.T) {
	cwd, _ := os.Getwd()
	s := startServer(t, t.TempDir(), cwd)
	doc := s.get("/openapi.json")
	api := loadAPIDoc(t, doc.body)
	data, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	r := s.do("POST", "/v1/datasets?name=cleveland&kinds=cp:categorical,restecg:categorical,slope:categorical,thal:categorical", "text/csv", data)
	if r.status != 201 {
		t.Fatalf("register: got %d %s", r.status, r.body)
	}
	for i, tc := range []struct {
		body      string
		algorithm string
	}{
		{`{"dataset":"cleveland","target":"num > 0","algorithm":"logreg","seed":7,
		   "params":{"target_sensitivity":0.9},
		   "search":{"method":"grid","grid":{"C":[0.01,0.1,1]},"folds":5}}`, "logreg"},
		{`{"dataset":"cleveland","target":"num > 0","algorithm":"gbdt","seed":7,"params":{"num_trees":50,"max_leaves":8}}`, "gbdt"},
		{`{"dataset":"cleveland","target":"num > 0","algorithm":"ftrl","seed":7,"params":{"passes":5}}`, "ftrl"},
		{`{"dataset":"cleveland","target":"num > 0","algorithm":"logreg","seed":7,
		   "search":{"method":"random","space":{"C":{"log_uniform":[0.001,10]},"penalty":{"choice":["l1","l2"]}},"trials":4}}`, "logreg"},
	} {
		r := s.postJSON("/v1/models/heart/train?wait=true", tc.body)
		api.check(t, "POST", "/v1/models/{model}/train", r)
		if r.status != 201 {
			t.Fatalf("train %s: got %d %s", tc.algorithm, r.status, r.body)
		}
		v := r.json(t)
		if v["algorithm"] != tc.algorithm || v["version"] != float64(i+1) {
			t.Errorf("train: got algorithm %v version %v, want %s %d", v["algorithm"], v["version"], tc.algorithm, i+1)
		}
		cv := v["metrics"].(map[string]any)["cv"].(map[string]any)
		if auc := cv["roc_auc"].(float64); auc < 0.85 {
			t.Errorf("%s: CV ROC AUC %.3f, want >= 0.85", tc.algorithm, auc)
		}
		if v["description"] == nil {
			t.Errorf("%s: version has no description", tc.algorithm)
		}
		p := s.postJSON(fmt.Sprintf("/v1/models/heart/predict?version=%d", i+1), patientJSON)
		api.check(t, "POST", "/v1/models/{model}/predict", p)
		if p.status != 200 {
			t.Errorf("predict with %s: got %d %s", tc.algorithm, p.status, p.body)
		}
		if i == 0 {
			search := v["lineage"].(map[string]any)["search"].(map[string]any)
			if len(search["candidates"].([]any)) != 3 || search["method"] != "grid" {
				t.Errorf("lineage.search: got %v", search)
			}
			threshold := v["threshold"].(float64)
			if threshold <= 0 || threshold >= 0.5 {
				t.Errorf("target_sensitivity 0.9: got threshold %v, want below the default 0.5", threshold)
			}
			if sens := cv["sensitivity"].(float64); sens < 0.85 {
				t.Errorf("CV sensitivity at the chosen threshold: got %.3f, want about 0.9", sens)
			}
			if got := p.json(t)["prediction"].(map[string]any)["threshold"]; got != threshold {
				t.Errorf("predict threshold: got %v, want the version's %v", got, threshold)
			}
		}
	}
	for _, body := range []string{
		`{"dataset":"cleveland","target":"num > 0","algorithm":"gbdt","params":{"max_leaves":1}}`,
		`{"dataset":"cleveland","target":"num > 0","search":{"method":"grid","grid":{"C":[-1]}}}`,
		`{"dataset":"cleveland","target":"num > 0","search":{"method":"sideways"}}`,
	} {
		r := s.postJSON("/v1/models/heart/train?wait=true", body)
		api.check(t, "POST", "/v1/models/{model}/train", r)
		if r.status != 422 {
			t.Errorf("train %s: got %d %s, want 422", body, r.status, r.body)
		}
	}
}
