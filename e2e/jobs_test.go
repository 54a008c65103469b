package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// job is what the tests read of a job.
type job struct {
	ID          int64    `json:"id"`
	State       string   `json:"state"`
	Model       string   `json:"model"`
	Attempt     int      `json:"attempt"`
	AttemptedBy []string `json:"attempted_by"`
	Version     int      `json:"version"`
	VersionURL  string   `json:"version_url"`
	Progress    string   `json:"progress"`
	Problem     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"problem"`
	Logs []struct {
		Log string `json:"log"`
	} `json:"logs"`
}

func decodeJob(t *testing.T, r response) job {
	t.Helper()
	var j job
	if err := json.Unmarshal(r.body, &j); err != nil {
		t.Fatalf("job: %v: %s", err, r.body)
	}
	return j
}

func finished(state string) bool {
	return state == "completed" || state == "cancelled" || state == "discarded"
}

// pollJob reads the job until it is finished, checking every answer against the document
// when api is set.
func pollJob(t *testing.T, s *server, api *apiDoc, id int64) job {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := s.get(fmt.Sprintf("/v1/jobs/%d", id))
		if api != nil {
			api.check(t, "GET", "/v1/jobs/{id}", r)
		}
		if r.status != 200 {
			t.Fatalf("GET job %d: got %d %s", id, r.status, r.body)
		}
		j := decodeJob(t, r)
		if finished(j.State) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s after 2 minutes", id, j.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkJobRoutes trains through the queue on a running server (with dataset "cleveland") and
// checks the job routes against the OpenAPI document. TestServe calls it.
func checkJobRoutes(t *testing.T, s *server, api *apiDoc) {
	t.Helper()
	r := s.postJSON("/v1/models/heart-jobs/train", `{"dataset":"cleveland","target":"num > 0","seed":5}`)
	api.check(t, "POST", "/v1/models/{model}/train", r)
	if r.status != 202 {
		t.Fatalf("train: got %d %s, want 202", r.status, r.body)
	}
	j := decodeJob(t, r)
	if loc := r.header.Get("Location"); loc != fmt.Sprintf("/v1/jobs/%d", j.ID) {
		t.Errorf("train: Location %q, want /v1/jobs/%d", loc, j.ID)
	}
	done := pollJob(t, s, api, j.ID)
	if done.State != "completed" || done.Version != 1 || done.VersionURL != "/v1/models/heart-jobs/versions/1" || len(done.Logs) != 1 {
		t.Fatalf("job: got %+v, want completed with version 1 and one attempt's log", done)
	}
	if v := s.get(done.VersionURL); v.status != 200 || v.json(t)["lineage"].(map[string]any)["trigger"] != "api" {
		t.Errorf("the job's version: got %d %s", v.status, v.body)
	}

	r = s.get("/v1/jobs?model=heart-jobs")
	api.check(t, "GET", "/v1/jobs", r)
	var list struct{ Jobs []job }
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != j.ID {
		t.Errorf("list: got %s", r.body)
	}
	if r = s.get("/v1/jobs?state=finished"); r.status != 400 {
		t.Errorf("list with a bad state: got %d", r.status)
	}
	api.check(t, "GET", "/v1/jobs", r)
	api.check(t, "GET", "/v1/jobs/{id}", s.get("/v1/jobs/987654"))

	r = s.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", j.ID), "", nil)
	api.check(t, "POST", "/v1/jobs/{id}/cancel", r)
	if r.status != 200 || decodeJob(t, r).State != "completed" {
		t.Errorf("cancel a completed job: got %d %s", r.status, r.body)
	}
	r = s.do("POST", "/v1/jobs/987654/cancel", "", nil)
	api.check(t, "POST", "/v1/jobs/{id}/cancel", r)
	if r.status != 404 {
		t.Errorf("cancel an unknown job: got %d", r.status)
	}
}

// worker is a running `pulse worker` process.
type worker struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan error
}

func (w *worker) Logs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

// startWorker runs `pulse worker` on dataDir and waits until it works jobs.
func startWorker(t *testing.T, dataDir string, args ...string) *worker {
	t.Helper()
	return startWorkerLogged(t, dataDir, args...).worker
}

// TestWorkerProcesses: `pulse serve --workers 0` only enqueues; two `pulse worker` processes
// on the same data dir work every job exactly once; a job running in a worker is cancelled
// through the server; the command line follows jobs.
func TestWorkerProcesses(t *testing.T) {
	cwd, _ := os.Getwd()
	dataDir := t.TempDir()
	s := startServer(t, dataDir, cwd, "--workers", "0")
	data, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/v1/datasets?name=cleveland", "text/csv", data); r.status != 201 {
		t.Fatalf("register: got %d %s", r.status, r.body)
	}
	// Nothing works the queue yet.
	r := s.postJSON("/v1/models/many/train", `{"dataset":"cleveland","target":"num > 0","seed":1,"cv_folds":-1}`)
	if r.status != 202 {
		t.Fatalf("train: got %d %s", r.status, r.body)
	}
	first := decodeJob(t, r)
	time.Sleep(300 * time.Millisecond)
	if j := decodeJob(t, s.get(fmt.Sprintf("/v1/jobs/%d", first.ID))); j.State != "available" {
		t.Fatalf("without workers: got state %s, want available", j.State)
	}

	// Every worker gets the same schedules; River's leader among them enqueues each run once.
	schedules := filepath.Join(t.TempDir(), "schedules.json")
	if err := os.WriteFile(schedules, []byte(`[{"model":"scheduled","cron":"@daily","run_on_start":true,
		"request":{"dataset":"cleveland","target":"num > 0","cv_folds":-1},"gate":{"min_gain":0.01}}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	w1 := startWorker(t, dataDir, "--concurrency", "2", "--schedules", schedules)
	w2 := startWorker(t, dataDir, "--concurrency", "2", "--schedules", schedules)
	ids := []int64{first.ID}
	for i := 2; i <= 12; i++ {
		r := s.postJSON("/v1/models/many/train", fmt.Sprintf(`{"dataset":"cleveland","target":"num > 0","seed":%d,"cv_folds":-1}`, i))
		if r.status != 202 {
			t.Fatalf("train: got %d %s", r.status, r.body)
		}
		ids = append(ids, decodeJob(t, r).ID)
	}
	versions := map[int]int64{}
	workers := map[string]int{}
	for _, id := range ids {
		j := pollJob(t, s, nil, id)
		if j.State != "completed" || j.Attempt != 1 || j.Version == 0 {
			t.Fatalf("job %d: got %+v", id, j)
		}
		if other, dup := versions[j.Version]; dup {
			t.Errorf("jobs %d and %d both produced version %d", other, id, j.Version)
		}
		versions[j.Version] = id
		for _, by := range j.AttemptedBy {
			workers[by]++
		}
	}
	t.Logf("jobs per worker: %v", workers)
	var vs struct{ Versions []any }
	if err := json.Unmarshal(s.get("/v1/models/many/versions").body, &vs); err != nil || len(vs.Versions) != len(ids) {
		t.Errorf("versions: got %d, want %d, one per job (%v)", len(vs.Versions), len(ids), err)
	}

	// The schedule ran once, on start, with its trigger and gate.
	var sched struct{ Jobs []job }
	for len(sched.Jobs) == 0 {
		r := s.get("/v1/jobs?model=scheduled")
		if err := json.Unmarshal(r.body, &sched); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sj := pollJob(t, s, nil, sched.Jobs[0].ID); sj.State != "completed" || sj.Version != 1 || !strings.Contains(sj.Logs[0].Log, "msg=gate alias=champion") {
		t.Errorf("scheduled job: got %+v", sj)
	}
	if r := s.get("/v1/jobs?model=scheduled"); strings.Count(string(r.body), `"trigger":"schedule"`) != 1 {
		t.Errorf("scheduled jobs: got %s, want exactly one", r.body)
	}

	// Cancel a long training that a worker runs: it ends cancelled, without a version.
	r = s.postJSON("/v1/models/slow/train", `{"dataset":"cleveland","target":"num > 0","algorithm":"gbdt","params":{"num_trees":2000},
		"search":{"method":"random","trials":200,"folds":10,"space":{"learning_rate":{"log_uniform":[0.001,0.3]}}}}`)
	slow := decodeJob(t, r)
	for {
		j := decodeJob(t, s.get(fmt.Sprintf("/v1/jobs/%d", slow.ID)))
		if j.State == "running" {
			break
		}
		if finished(j.State) {
			t.Fatalf("slow job: got %s before it was cancelled", j.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Setenv("PULSE_SERVER", s.base)
	out, err := runPulse(t, cwd, "jobs", "cancel", fmt.Sprint(slow.ID))
	if err != nil {
		t.Fatalf("pulse jobs cancel: %v %s", err, out)
	}
	mustContain(t, out, fmt.Sprintf("job %d (train of model slow)", slow.ID))
	if j := pollJob(t, s, nil, slow.ID); j.State != "cancelled" || j.Version != 0 || j.Problem != nil {
		t.Errorf("cancelled job: got %+v", j)
	}
	if r := s.get("/v1/models/slow/versions"); r.status == 200 && strings.Contains(string(r.body), `"version"`) {
		t.Errorf("a cancelled job left a version: %s", r.body)
	}

	// The command line: train waits by default, --async prints the job, jobs list/show.
	out, err = runPulse(t, cwd, "train", "--model", "cli", "--dataset", "cleveland", "--target", "num > 0", "--cv-folds", "-1")
	if err != nil {
		t.Fatalf("pulse train: %v %s", err, out)
	}
	mustContain(t, out, "model cli version 1 (logreg), aliases [champion]")
	mustContain(t, out, "by cli")
	out, err = runPulse(t, cwd, "train", "--model", "cli", "--dataset", "cleveland", "--target", "num > 0", "--cv-folds", "-1", "--async")
	if err != nil {
		t.Fatalf("pulse train --async: %v %s", err, out)
	}
	var async int64
	if _, err := fmt.Sscanf(out, "job %d enqueued", &async); err != nil {
		t.Fatalf("train --async: got %q", out)
	}
	pollJob(t, s, nil, async)
	out, err = runPulse(t, cwd, "jobs", "show", fmt.Sprint(async))
	if err != nil {
		t.Fatalf("pulse jobs show: %v %s", err, out)
	}
	mustContain(t, out, fmt.Sprintf("job %d (train of model cli): completed, attempt 1 of 5", async))
	mustContain(t, out, "produced: model cli version 2 (/v1/models/cli/versions/2)")
	mustContain(t, out, "msg=trained")
	out, err = runPulse(t, cwd, "jobs", "list", "--model", "many", "--state", "completed")
	if err != nil {
		t.Fatalf("pulse jobs list: %v %s", err, out)
	}
	if n := strings.Count(out, " many "); n != len(ids) {
		t.Errorf("jobs list --model many: got %d rows, want %d:\n%s", n, len(ids), out)
	}
	out, err = runPulse(t, cwd, "train", "--model", "cli", "--dataset", "nope", "--target", "num > 0")
	if err == nil {
		t.Fatalf("train on a missing dataset: got success")
	}
	mustContain(t, out, `422 Unprocessable Entity: dataset "nope" not found`)

	// Workers stop cleanly on SIGTERM.
	for _, w := range []*worker{w1, w2} {
		if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("worker exited with %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("worker did not stop within 60s")
		}
		mustContain(t, w.Logs(), "stopped cleanly")
	}
}

// postgresURL returns a PostgreSQL server URL: PULSE_TEST_DATABASE_URL when the test script
// set it, else a private cluster started with scripts/postgres for this test. A fresh
// database is created on it for the caller.
func postgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PULSE_TEST_DATABASE_URL")
	if base == "" {
		dir, err := os.MkdirTemp("", "pulse-e2e-pg-")
		if err != nil {
			t.Fatal(err)
		}
		script := filepath.Join("..", "scripts", "postgres")
		out, err := exec.Command(script, "start", dir).Output()
		if err != nil {
			t.Fatalf("PULSE_TEST_DATABASE_URL is unset and %s start failed: %v", script, err)
		}
		t.Cleanup(func() {
			_ = exec.Command(script, "stop", dir).Run()
			os.RemoveAll(dir)
		})
		line := strings.TrimSpace(string(out))
		_, base, _ = strings.Cut(line, "PULSE_TEST_DATABASE_URL=")
		if !strings.HasPrefix(base, "postgres") {
			t.Fatalf("%s start printed %q, want PULSE_TEST_DATABASE_URL=postgres://...", script, line)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL at PULSE_TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("pulse_e2e_jobs_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("PULSE_TEST_DATABASE_URL %q: want a postgres:// URL", base)
	}
	u.Path = "/" + name
	return u.String()
}

// TestWorkerProcessesPostgres: scaled out, `pulse serve --workers 0` and two `pulse worker`
// processes share one PostgreSQL database (metadata and queue) and a blob store: every job
// runs exactly once.
func TestWorkerProcessesPostgres(t *testing.T) {
	cwd, _ := os.Getwd()
	dbURL := postgresURL(t)
	dataDir := t.TempDir()
	s := startServer(t, dataDir, cwd, "--workers", "0", "--database-url", dbURL)
	data, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/v1/datasets?name=cleveland", "text/csv", data); r.status != 201 {
		t.Fatalf("register: got %d %s", r.status, r.body)
	}
	// The workers have their own data dirs: they share only the database and the buckets.
	blobs := "--blob-url=file://" + filepath.Join(dataDir, "blobs")
	lakeURL := "--lake-url=file://" + filepath.Join(dataDir, "lake")
	startWorker(t, t.TempDir(), "--database-url", dbURL, blobs, lakeURL, "--concurrency", "2")
	startWorker(t, t.TempDir(), "--database-url", dbURL, blobs, lakeURL, "--concurrency", "2")
	var ids []int64
	for i := 1; i <= 16; i++ {
		r := s.postJSON("/v1/models/many/train", fmt.Sprintf(`{"dataset":"cleveland","target":"num > 0","seed":%d,"cv_folds":-1}`, i))
		if r.status != 202 {
			t.Fatalf("train: got %d %s", r.status, r.body)
		}
		ids = append(ids, decodeJob(t, r).ID)
	}
	versions := map[int]int64{}
	workers := map[string]int{}
	for _, id := range ids {
		j := pollJob(t, s, nil, id)
		if j.State != "completed" || j.Attempt != 1 || j.Version == 0 {
			t.Fatalf("job %d: got %+v", id, j)
		}
		if other, dup := versions[j.Version]; dup {
			t.Errorf("jobs %d and %d both produced version %d", other, id, j.Version)
		}
		versions[j.Version] = id
		for _, by := range j.AttemptedBy {
			workers[by]++
		}
	}
	t.Logf("jobs per worker: %v", workers)
	var vs struct{ Versions []any }
	if err := json.Unmarshal(s.get("/v1/models/many/versions").body, &vs); err != nil || len(vs.Versions) != len(ids) {
		t.Errorf("versions: got %d, want %d, one per job (%v)", len(vs.Versions), len(ids), err)
	}
	// ?wait=true works across processes too.
	r := s.postJSON("/v1/models/many/train?wait=true", `{"dataset":"cleveland","target":"num > 0","seed":99,"cv_folds":-1}`)
	if r.status != 201 || r.json(t)["version"] != float64(len(ids)+1) {
		t.Errorf("train?wait=true: got %d %s", r.status, r.body)
	}
}
