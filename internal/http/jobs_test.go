package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/jobs"
)

// newJobsServer is a test server whose training runs as jobs on a River SQLite queue.
func newJobsServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServer(t, func(cfg *Config) {
		js, err := jobs.Open(context.Background(), jobs.Config{
			SQLitePath: filepath.Join(t.TempDir(), "jobs.db"),
			Registry:   cfg.Registry,
			Workers:    1,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := js.Close(context.Background()); err != nil {
				t.Error(err)
			}
		})
		cfg.Jobs = js
	})
}

func decodeJob(t *testing.T, what string, body []byte) jobs.Job {
	t.Helper()
	var j jobs.Job
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	return j
}

func TestTrainAsJob(t *testing.T) {
	ts := newJobsServer(t)
	body := []byte(`{"dataset":"small","target":"y","cv_folds":-1,"seed":3}`)
	rec := ts.do("POST", "/v1/models/m/train", "application/json", body)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("train: got %d %s, want 202", rec.Code, rec.Body)
	}
	j := decodeJob(t, "train", rec.Body.Bytes())
	if loc := rec.Header().Get("Location"); loc != fmt.Sprintf("/v1/jobs/%d", j.ID) || j.Kind != "train" || j.Model != "m" || j.Trigger != "api" {
		t.Errorf("train: got Location %q job %+v", loc, j)
	}
	deadline := time.Now().Add(time.Minute)
	for !j.Finished() {
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s", j.ID, j.State)
		}
		time.Sleep(20 * time.Millisecond)
		rec = ts.do("GET", fmt.Sprintf("/v1/jobs/%d", j.ID), "", nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("get job: got %d %s", rec.Code, rec.Body)
		}
		j = decodeJob(t, "get job", rec.Body.Bytes())
	}
	if j.State != "completed" || j.Version != 2 || j.VersionURL != "/v1/models/m/versions/2" {
		t.Fatalf("job: got state %s version %d url %q", j.State, j.Version, j.VersionURL)
	}
	if rec := ts.do("GET", j.VersionURL, "", nil); rec.Code != http.StatusOK {
		t.Errorf("version link: got %d", rec.Code)
	}

	// ?wait=true answers like synchronous training did.
	rec = ts.do("POST", "/v1/models/m/train?wait=true", "application/json", body)
	if rec.Code != http.StatusCreated || rec.Header().Get("Location") != "/v1/models/m/versions/3" {
		t.Fatalf("train?wait=true: got %d Location %q %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	var v struct {
		Model   string `json:"model"`
		Version int    `json:"version"`
		Lineage struct {
			Trigger string `json:"trigger"`
		} `json:"lineage"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Model != "m" || v.Version != 3 || v.Lineage.Trigger != "api" {
		t.Errorf("train?wait=true: got %+v (%v)", v, err)
	}

	rec = ts.do("GET", "/v1/jobs?model=m&state=completed", "", nil)
	var list struct {
		Jobs []jobs.Job `json:"jobs"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || rec.Code != 200 {
		t.Fatalf("list: got %d %s", rec.Code, rec.Body)
	}
	if len(list.Jobs) != 2 || list.Jobs[0].Version != 3 || list.Jobs[1].Version != 2 {
		t.Errorf("list: got %+v, want the two jobs newest first", list.Jobs)
	}
}

// TestTrainJobProblemsMatchSynchronous: a job's refusal answers ?wait=true with the status and
// message that synchronous training gives.
func TestTrainJobProblemsMatchSynchronous(t *testing.T) {
	async := newJobsServer(t)
	sync := newTestServer(t, nil)
	for _, body := range []string{
		`{"dataset":"small","target":"nosuch"}`,
		`{"dataset":"nope","target":"y"}`,
		`{"dataset":"small","target":"y","params":{"C":-1}}`,
		`{"dataset":"small"}`,
	} {
		want := problem(t, "sync "+body, sync.do("POST", "/v1/models/m/train", "application/json", []byte(body)), http.StatusUnprocessableEntity)
		got := problem(t, "job "+body, async.do("POST", "/v1/models/m/train?wait=true", "application/json", []byte(body)), http.StatusUnprocessableEntity)
		if got.Code != want.Code || got.Detail != want.Detail || got.Field != want.Field {
			t.Errorf("%s: got %s %q field %q, want %s %q field %q", body, got.Code, got.Detail, got.Field, want.Code, want.Detail, want.Field)
		}
	}
}

func TestJobRouteProblems(t *testing.T) {
	ts := newJobsServer(t)
	cases := []struct {
		method, target string
		status         int
		field          string
	}{
		{"GET", "/v1/jobs/abc", 400, "id"},
		{"GET", "/v1/jobs/0", 400, "id"},
		{"GET", "/v1/jobs/424242", 404, ""},
		{"POST", "/v1/jobs/424242/cancel", 404, ""},
		{"GET", "/v1/jobs?state=finished", 400, "state"},
		{"GET", "/v1/jobs?limit=many", 400, "limit"},
		{"GET", "/v1/jobs?limit=0", 200, ""},
		{"POST", "/v1/models/m/train?wait=maybe", 400, "wait"},
		{"POST", "/v1/models/Bad%20Name/train", 400, "model"},
	}
	for _, tc := range cases {
		rec := ts.do(tc.method, tc.target, "application/json", []byte(`{"dataset":"small","target":"y"}`))
		if tc.status == 200 {
			if rec.Code != 200 {
				t.Errorf("%s %s: got %d %s", tc.method, tc.target, rec.Code, rec.Body)
			}
			continue
		}
		p := problem(t, tc.method+" "+tc.target, rec, tc.status)
		if p.Field != tc.field {
			t.Errorf("%s %s: got field %q, want %q", tc.method, tc.target, p.Field, tc.field)
		}
	}
	// Cancelling a finished job changes nothing.
	rec := ts.do("POST", "/v1/models/m/train?wait=true", "application/json", []byte(`{"dataset":"small","target":"y","cv_folds":-1}`))
	if rec.Code != 201 {
		t.Fatalf("train: got %d %s", rec.Code, rec.Body)
	}
	list := ts.do("GET", "/v1/jobs?limit=1", "", nil)
	var out struct {
		Jobs []jobs.Job `json:"jobs"`
	}
	if err := json.Unmarshal(list.Body.Bytes(), &out); err != nil || len(out.Jobs) != 1 {
		t.Fatalf("list: %s", list.Body)
	}
	rec = ts.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", out.Jobs[0].ID), "", nil)
	if j := decodeJob(t, "cancel", rec.Body.Bytes()); rec.Code != 200 || j.State != "completed" {
		t.Errorf("cancel a completed job: got %d state %s, want 200 completed", rec.Code, j.State)
	}
}

func TestJobRoutesWithoutQueue(t *testing.T) {
	ts := newTestServer(t, nil)
	problem(t, "list", ts.do("GET", "/v1/jobs", "", nil), http.StatusServiceUnavailable)
	// Training stays synchronous.
	if rec := ts.do("POST", "/v1/models/m/train", "application/json", []byte(`{"dataset":"small","target":"y","cv_folds":-1}`)); rec.Code != 201 {
		t.Errorf("train without a queue: got %d %s, want 201", rec.Code, rec.Body)
	}
}

// TestTrainWaitCancelled: a job cancelled while a request waits for it answers 409.
func TestTrainWaitCancelled(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) {
		js, err := jobs.Open(context.Background(), jobs.Config{SQLitePath: filepath.Join(t.TempDir(), "jobs.db"), Workers: 0})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { js.Close(context.Background()) })
		cfg.Jobs = js
	})
	answer := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		answer <- ts.do("POST", "/v1/models/m/train?wait=true", "application/json", []byte(`{"dataset":"small","target":"y"}`))
	}()
	var list struct {
		Jobs []jobs.Job `json:"jobs"`
	}
	for len(list.Jobs) == 0 {
		time.Sleep(10 * time.Millisecond)
		if err := json.Unmarshal(ts.do("GET", "/v1/jobs", "", nil).Body.Bytes(), &list); err != nil {
			t.Fatal(err)
		}
	}
	rec := ts.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", list.Jobs[0].ID), "", nil)
	if j := decodeJob(t, "cancel", rec.Body.Bytes()); rec.Code != 200 || j.State != "cancelled" {
		t.Fatalf("cancel: got %d %s", rec.Code, rec.Body)
	}
	p := problem(t, "waiting train", <-answer, http.StatusConflict)
	if want := fmt.Sprintf("job %d was cancelled before it produced a version", list.Jobs[0].ID); p.Detail != want {
		t.Errorf("detail: got %q, want %q", p.Detail, want)
	}
}
