package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scoreJob is what the tests read of a score job.
type scoreJob struct {
	ID          int64    `json:"id"`
	Kind        string   `json:"kind"`
	State       string   `json:"state"`
	Attempt     int      `json:"attempt"`
	AttemptedBy []string `json:"attempted_by"`
	Version     int      `json:"version"`
	Parent      int64    `json:"parent"`
	Progress    string   `json:"progress"`
	Problem     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
		Row     int    `json:"row"`
	} `json:"problem"`
	Batch *struct {
		Output     string `json:"output"`
		Shards     int    `json:"shards"`
		ShardsDone int    `json:"shards_done"`
		Rows       int64  `json:"rows"`
		Scored     int64  `json:"scored"`
		Bad        int64  `json:"bad"`
		Summary    string `json:"summary"`
	} `json:"batch"`
}

func pollScoreJob(t *testing.T, s *server, api *apiDoc, id int64, limit time.Duration) scoreJob {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := s.get(fmt.Sprintf("/v1/jobs/%d", id))
		if api != nil {
			api.check(t, "GET", "/v1/jobs/{id}", r)
		}
		var j scoreJob
		if r.status != 200 || json.Unmarshal(r.body, &j) != nil {
			t.Fatalf("GET job %d: got %d %s", id, r.status, r.body)
		}
		if finished(j.State) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("score job %d still %s after %s: %s", id, j.State, limit, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clevelandCopies is the Cleveland file (header first) with its rows repeated until the
// file has at least size bytes.
func clevelandCopies(t *testing.T, size int) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	header, rows, _ := bytes.Cut(raw, []byte("\n"))
	var b bytes.Buffer
	b.Grow(size + len(raw))
	b.Write(header)
	b.WriteByte('\n')
	for b.Len() < size {
		b.Write(rows)
		if rows[len(rows)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// readParts puts the CSV parts of a finished score job together (each has the header line).
func readParts(t *testing.T, lakeDir, prefix string, shards int) []byte {
	t.Helper()
	var out bytes.Buffer
	for i := 0; i < shards; i++ {
		data, err := os.ReadFile(filepath.Join(lakeDir, filepath.FromSlash(prefix), fmt.Sprintf("part-%05d.csv", i)))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			_, data, _ = bytes.Cut(data, []byte("\n"))
		}
		out.Write(data)
	}
	return out.Bytes()
}

// checkScoreJobRoutes scores a file of the lake with a server's own workers and checks the
// route against the OpenAPI document. TestServeExample calls it.
func checkScoreJobRoutes(t *testing.T, s *server, api *apiDoc) {
	t.Helper()
	input := clevelandCopies(t, 200_000)
	inbox := filepath.Join(s.dataDir, "lake", "inbox")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inbox, "patients.csv"), input, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.postJSON("/v1/models/heart-disease/score-jobs", `{"input":"inbox/patients.csv","shard_bytes":40000}`)
	api.check(t, "POST", "/v1/models/{model}/score-jobs", r)
	if r.status != 202 {
		t.Fatalf("score job: got %d %s, want 202", r.status, r.body)
	}
	var j scoreJob
	if err := json.Unmarshal(r.body, &j); err != nil {
		t.Fatal(err)
	}
	done := pollScoreJob(t, s, api, j.ID, 2*time.Minute)
	rows := int64(bytes.Count(input, []byte("\n")) - 1)
	if done.State != "completed" || done.Kind != "score" || done.Batch == nil || done.Batch.Rows != rows || done.Batch.Shards < 4 || done.Batch.ShardsDone != done.Batch.Shards {
		t.Fatalf("score job: got %+v, want completed with %d rows in 4 or more shards", done, rows)
	}
	out := readParts(t, filepath.Join(s.dataDir, "lake"), done.Batch.Output, done.Batch.Shards)
	if got := int64(bytes.Count(out, []byte("\n")) - 1); got != rows {
		t.Errorf("scored rows in the parts: got %d, want %d", got, rows)
	}
	header, _, _ := bytes.Cut(out, []byte("\n"))
	if !bytes.HasSuffix(header, []byte(",probability,label,model_version")) {
		t.Errorf("output header: got %q", header)
	}
	for _, tc := range []struct {
		body  string
		code  int
		field string
	}{
		{`{"input":"inbox/none.csv"}`, 404, "input"},
		{`{"input":"inbox/patients.csv","format":"xlsx"}`, 400, "format"},
		{`{"input":"inbox/patients.csv","alias":"nope"}`, 404, "alias"},
		{`{}`, 400, "input"},
	} {
		r := s.postJSON("/v1/models/heart-disease/score-jobs", tc.body)
		api.check(t, "POST", "/v1/models/{model}/score-jobs", r)
		if r.status != tc.code || !strings.Contains(string(r.body), `"field":"`+tc.field+`"`) {
			t.Errorf("score job %s: got %d %s, want %d naming %s", tc.body, r.status, r.body, tc.code, tc.field)
		}
	}
	r = s.postJSON("/v1/models/nosuch/score-jobs", `{"input":"inbox/patients.csv"}`)
	api.check(t, "POST", "/v1/models/{model}/score-jobs", r)
	if r.status != 404 {
		t.Errorf("score job for an unknown model: got %d %s", r.status, r.body)
	}
}

// TestScoreJobWorkerKilled: two `pulse worker` processes on one PostgreSQL score a file shard
// by shard; one is killed (SIGKILL) while it scores a shard. River rescues that shard and the
// other worker scores it again: the job completes, and its parts put together are exactly
// what `pulse score` gives for the whole file: every row once, in input order.
func TestScoreJobWorkerKilled(t *testing.T) {
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
	lakeDir := filepath.Join(dataDir, "lake")
	blobs := "--blob-url=file://" + filepath.Join(dataDir, "blobs")
	lakeURL := "--lake-url=file://" + lakeDir
	// Short timeouts so that River presumes the killed worker dead within a minute (its
	// rescuer runs every 30 s).
	timeouts := []string{"--job-timeout", "15s", "--shard-timeout", "15s", "--rescue-after", "20s"}
	victim := startWorkerLogged(t, t.TempDir(), append([]string{"--database-url", dbURL, blobs, lakeURL, "--concurrency", "1"}, timeouts...)...)
	if r := s.postJSON("/v1/models/heart/train?wait=true", `{"dataset":"cleveland","target":"num > 0","seed":7}`); r.status != 201 {
		t.Fatalf("train: got %d %s", r.status, r.body)
	}

	input := clevelandCopies(t, 64<<20)
	inputPath := filepath.Join(lakeDir, "inbox", "big.csv")
	if err := os.MkdirAll(filepath.Dir(inputPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inputPath, input, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.postJSON("/v1/models/heart/score-jobs", `{"input":"inbox/big.csv","shard_mb":8}`)
	if r.status != 202 {
		t.Fatalf("score job: got %d %s", r.status, r.body)
	}
	var j scoreJob
	if err := json.Unmarshal(r.body, &j); err != nil {
		t.Fatal(err)
	}
	// Kill the worker as it starts its second shard: one shard done, one in flight.
	select {
	case <-victim.shardStarted(2):
	case <-time.After(2 * time.Minute):
		t.Fatalf("the worker did not start a second shard\n%s", victim.Logs())
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	startWorker(t, t.TempDir(), append([]string{"--database-url", dbURL, blobs, lakeURL, "--concurrency", "2"}, timeouts...)...)

	done := pollScoreJob(t, s, nil, j.ID, 4*time.Minute)
	if done.State != "completed" || done.Batch == nil {
		t.Fatalf("score job: got %+v", done)
	}
	rows := int64(bytes.Count(input, []byte("\n")) - 1)
	if done.Batch.Rows != rows || done.Batch.Scored != rows || done.Batch.Bad != 0 {
		t.Errorf("score job counts: got %+v, want %d rows scored", done.Batch, rows)
	}

	// The shard that was in flight ran twice: first on the killed worker, then on the other.
	r = s.get("/v1/jobs?kind=score_shard&limit=1000")
	var list struct{ Jobs []scoreJob }
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	rescued := 0
	for _, sh := range list.Jobs {
		if sh.Parent != j.ID || sh.State != "completed" {
			t.Errorf("shard job %d: got parent %d, state %s", sh.ID, sh.Parent, sh.State)
		}
		if sh.Attempt > 1 && len(sh.AttemptedBy) > 1 {
			rescued++
		}
	}
	if len(list.Jobs) != done.Batch.Shards || rescued == 0 {
		t.Errorf("shards: got %d jobs, %d of them rescued from the killed worker; want %d and at least 1", len(list.Jobs), rescued, done.Batch.Shards)
	}

	// Exactly once, in order: the parts put together are what `pulse score` gives.
	got := readParts(t, lakeDir, done.Batch.Output, done.Batch.Shards)
	wantPath := filepath.Join(t.TempDir(), "want.csv")
	cmd := exec.Command(pulseBin, "score", "--server", s.base, "--model", "heart", "--version", "1", "--input", inputPath, "--output", wantPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pulse score: %v\n%s", err, out)
	}
	want, err := os.ReadFile(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the job's parts (%d bytes, %d lines) differ from pulse score's output (%d bytes, %d lines)",
			len(got), bytes.Count(got, []byte("\n")), len(want), bytes.Count(want, []byte("\n")))
	}
}

// loggedWorker is a `pulse worker` whose log lines the test watches.
type loggedWorker struct {
	*worker
	lines chan string
}

// startWorkerLogged runs `pulse worker` on dataDir, waits until it works jobs and hands its
// log lines over (a line is dropped when nobody reads them).
func startWorkerLogged(t *testing.T, dataDir string, args ...string) *loggedWorker {
	t.Helper()
	cmd := exec.Command(pulseBin, append([]string{"worker", "--data-dir", dataDir}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &loggedWorker{worker: &worker{cmd: cmd, done: make(chan error, 1)}, lines: make(chan string, 1024)}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		first := true
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			w.logs.WriteString(line + "\n")
			w.mu.Unlock()
			if first && strings.Contains(line, `msg="worker started"`) {
				first = false
				close(started)
			}
			select {
			case w.lines <- line:
			default:
			}
		}
		close(w.lines)
	}()
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-w.done
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", w.Logs())
		}
	})
	select {
	case <-started:
	case err := <-w.done:
		t.Fatalf("pulse worker exited: %v\n%s", err, w.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("pulse worker did not start within 60s\n%s", w.Logs())
	}
	return w
}

// shardStarted is closed when the worker has logged the start of its n-th shard.
func (w *loggedWorker) shardStarted(n int) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		seen := 0
		for line := range w.lines {
			if strings.Contains(line, `msg="scoring shard"`) {
				seen++
				if seen == n {
					close(c)
					return
				}
			}
		}
	}()
	return c
}
