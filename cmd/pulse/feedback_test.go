package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadFeedbackFiles(t *testing.T) {
	csvIn := "\ufeffobserved_at, label ,prediction_id,note\n" +
		"2026-11-30T09:00:00Z,1,0193a5c2-1f7e-7b8a-9c3d-2e1f0a9b8c7d,x\n" +
		"2026-11-30T09:00:00Z,true,id-2,\n" +
		"2026-11-30T09:00:00Z,yes,id-3,\n"
	items, err := readFeedbackCSV(strings.NewReader(csvIn))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line int
		json string
	}{
		{2, `{"prediction_id":"0193a5c2-1f7e-7b8a-9c3d-2e1f0a9b8c7d","label":1,"observed_at":"2026-11-30T09:00:00Z"}`},
		{3, `{"prediction_id":"id-2","label":true,"observed_at":"2026-11-30T09:00:00Z"}`},
		{4, `{"prediction_id":"id-3","label":"yes","observed_at":"2026-11-30T09:00:00Z"}`},
	}
	if len(items) != len(want) {
		t.Fatalf("csv: got %d items, want %d", len(items), len(want))
	}
	for i, w := range want {
		if items[i].line != w.line || string(items[i].json) != w.json {
			t.Errorf("csv item %d: got line %d %s, want line %d %s", i, items[i].line, items[i].json, w.line, w.json)
		}
	}
	if _, err := readFeedbackCSV(strings.NewReader("prediction_id,label\nx,1\n")); err == nil || !strings.Contains(err.Error(), `"observed_at"`) {
		t.Errorf("csv without observed_at: got %v, want an error naming the column", err)
	}

	jsonl := `{"prediction_id":"a","label":1,"observed_at":"2026-11-30T09:00:00Z"}` + "\n\n" + `{"prediction_id":"b","label":0,"observed_at":"2026-11-30T09:00:00Z"}` + "\n"
	items, err = readFeedbackJSONL(strings.NewReader(jsonl))
	if err != nil || len(items) != 2 || items[0].line != 1 || items[1].line != 3 {
		t.Errorf("jsonl: got %+v, %v; want lines 1 and 3", items, err)
	}
	if _, err := readFeedbackJSONL(strings.NewReader("{\"a\":1}\n[1]\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("jsonl with an array: got %v, want an error naming line 2", err)
	}
}

// TestRunFeedback sends a file in batches to a server that reports the second item of every
// batch unknown: the command prints it with its line and fails.
func TestRunFeedback(t *testing.T) {
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/feedback" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Feedback []json.RawMessage `json:"feedback"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		sizes = append(sizes, len(req.Feedback))
		ans := map[string]any{"received": len(req.Feedback), "joined": len(req.Feedback) - 1, "duplicate": 0, "unknown": 1, "invalid": 0,
			"outcomes": len(req.Feedback) - 1, "results": []map[string]any{{"index": 1, "status": "unknown", "reason": "prediction_id: no stored prediction has this id"}}}
		json.NewEncoder(w).Encode(ans)
	}))
	defer srv.Close()
	var in bytes.Buffer
	for range 5 {
		in.WriteString(`{"prediction_id":"a","label":1,"observed_at":"2026-11-30T09:00:00Z"}` + "\n")
	}
	var out, errOut bytes.Buffer
	err := runFeedback(context.Background(), []string{"--server", srv.URL, "--input", "-", "--batch", "2"}, &in, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "3 of 5 items were not joined") {
		t.Errorf("run: got %v, want it to fail naming 3 of 5 items", err)
	}
	if got := sizes; len(got) != 3 || got[0] != 2 || got[2] != 1 {
		t.Errorf("batches: got %v, want [2 2 1]", got)
	}
	for _, want := range []string{"line 2: unknown: prediction_id: no stored prediction", "line 4: unknown", "received 5, joined 2, duplicate 0, unknown 3, invalid 0; 2 outcomes stored"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output: got %q, want it to contain %q", out.String(), want)
		}
	}
}
