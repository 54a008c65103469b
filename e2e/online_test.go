package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlineTraining: pulse serve --online follows an ftrl model on the ingest stream. The
// model is trained after the server started (the follower waits for it), 303 labelled
// Cleveland records produced with kcat are learnt, ?alias=live scores with the new weights,
// and SIGTERM registers a snapshot version whose stream offsets cover the 303 records; a
// restarted server resumes from it.
func TestOnlineTraining(t *testing.T) {
	dataDir := t.TempDir()
	cwd, _ := os.Getwd()
	spec := filepath.Join(t.TempDir(), "online.json")
	if err := os.WriteFile(spec, []byte(`[{"model":"heart-online","dataset":"heart-disease","snapshot_every_records":100000,"snapshot_every_seconds":3600}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--example", "heart-disease", "--example-data", filepath.Join(sharedData, "processed.cleveland.data"), "--online", spec}
	s := startServer(t, dataDir, cwd, args...)
	m := brokersRE.FindStringSubmatch(s.Logs())
	if m == nil {
		t.Fatalf("no broker address in the log")
	}
	broker := m[1]
	api := loadAPIDoc(t, s.get("/openapi.json").body)

	r := s.get("/v1/models/heart-online/online")
	api.check(t, "GET", "/v1/models/{model}/online", r)
	if r.status != 200 || r.json(t)["running"] != false {
		t.Fatalf("status before training: got %d %s, want 200 and not running", r.status, r.body)
	}
	r = s.get("/v1/models/heart-disease/online")
	api.check(t, "GET", "/v1/models/{model}/online", r)
	if r.status != 404 {
		t.Errorf("status of a model not followed: got %d, want 404", r.status)
	}
	r = s.postJSON("/v1/models/heart-online/train?wait=true", `{"dataset":"heart-disease","target":"num > 0","algorithm":"ftrl","seed":1}`)
	if r.status != 200 && r.status != 201 {
		t.Fatalf("train: got %d %s", r.status, r.body)
	}

	// 303 labelled records, keyed by dataset so that they keep their order in one partition.
	f, err := os.Open(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var header []string
	var batch strings.Builder
	n := 0
	for sc.Scan() {
		cells := strings.Split(strings.TrimSpace(sc.Text()), ",")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		rec := map[string]any{}
		var label any
		for i, c := range cells {
			var v any
			if c != "?" {
				x, err := strconv.ParseFloat(c, 64)
				if err != nil {
					t.Fatal(err)
				}
				v = x
			}
			if header[i] == "num" {
				label = v
			} else {
				rec[header[i]] = v
			}
		}
		batch.WriteString("heart-disease|" + cloudEvent(t, "com.cloudmedical.pulse.ingest.record", "heart-disease",
			map[string]any{"dataset": "heart-disease", "record": rec, "label": label}) + "\n")
		n++
	}
	if n != 303 {
		t.Fatalf("got %d rows, want 303", n)
	}
	kcat(t, batch.String(), "-b", broker, "-t", "pulse.ingest", "-P", "-K", "|")

	var status map[string]any
	eventually(t, "the follower learns the 303 records", func() bool {
		status = s.get("/v1/models/heart-online/online").json(t)
		return status["records"] == float64(303)
	}, func() string { return stringify(status) })
	api.check(t, "GET", "/v1/models/{model}/online", s.get("/v1/models/heart-online/online"))
	if status["base_version"] != float64(1) || status["running"] != true {
		t.Errorf("status: got %v, want base version 1, running", status)
	}

	// The live model answers within a second or so, with other weights than version 1.
	body := `{"age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0,"thal":6}`
	v1 := s.postJSON("/v1/models/heart-online/predict?version=1", body).json(t)
	var live map[string]any
	eventually(t, "alias live scores with the updated weights", func() bool {
		live = s.postJSON("/v1/models/heart-online/predict?alias=live", body).json(t)
		p, _ := live["prediction"].(map[string]any)
		return p != nil && p["probability"] != v1["prediction"].(map[string]any)["probability"]
	}, func() string { return stringify(live) })
	api.check(t, "POST", "/v1/models/{model}/predict", s.postJSON("/v1/models/heart-online/predict?alias=live", body))
	if mb := live["model"].(map[string]any); mb["alias"] != "live" || mb["version"] != float64(1) {
		t.Errorf("live answer's model block: got %v, want alias live, version 1 (no snapshot yet)", mb)
	}

	// SIGTERM: a final snapshot.
	s.stop()
	s2 := startServer(t, dataDir, cwd, args...)
	defer s2.stop()
	v2 := s2.get("/v1/models/heart-online/versions/2")
	if v2.status != 200 {
		t.Fatalf("snapshot version 2: got %d %s", v2.status, v2.body)
	}
	api.check(t, "GET", "/v1/models/{model}/versions/{version}", v2)
	lin := v2.json(t)["lineage"].(map[string]any)
	stream, _ := lin["stream"].(map[string]any)
	if lin["trigger"] != "stream" || stream == nil {
		t.Fatalf("version 2 lineage: got %v, want trigger stream with stream lineage", lin)
	}
	var sum float64
	for _, o := range stream["offsets"].(map[string]any) {
		sum += o.(float64)
	}
	if sum != 303 || stream["records"] != float64(303) || stream["topic"] != "pulse.ingest" {
		t.Errorf("stream lineage: got %v (offsets sum %v), want offsets summing to 303 and 303 records", stream, sum)
	}
	st := s2.get("/v1/models/heart-online/online").json(t)
	if st["resumed_from"] != float64(2) || st["records"] != float64(303) {
		t.Errorf("after restart: got %v, want resumed from version 2 with 303 records", st)
	}
}

func stringify(v map[string]any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
