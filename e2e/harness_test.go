// Package e2e tests Pulse end to end: each test starts the real `pulse` binary on a free port
// with its own data directory and talks to it over HTTP, as a user would.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

var pulseBin string

// sharedData is the read-only dataset folder beside the checkout.
var sharedData = filepath.Join("..", "..", "shared", "datasets", "heart-disease")

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pulse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pulseBin = os.Getenv("PULSE_BIN")
	if pulseBin == "" {
		pulseBin = filepath.Join(dir, "pulse")
		build := exec.Command("go", "build", "-o", pulseBin, "../cmd/pulse")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build pulse:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `pulse serve` process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	base    string
	dataDir string
	stdout  *lockedBuffer
	mu      sync.Mutex
	logs    bytes.Buffer
	done    chan error
	// onPredict, when set, sees the body of every 200 answer to a predict request made
	// through do.
	onPredict func(body []byte)
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs `pulse serve` with the given data dir and extra flags and waits until it
// listens. The process is killed when the test ends if it still runs.
func startServer(t *testing.T, dataDir string, dir string, args ...string) *server {
	t.Helper()
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "debug",
		"--kafka-addr", "127.0.0.1:0"}, args...) // the embedded broker on a free port
	cmd := exec.Command(pulseBin, all...)
	cmd.Dir = dir
	s := &server{t: t, cmd: cmd, dataDir: dataDir, stdout: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout = s.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Logs())
		}
	})
	select {
	case a := <-addr:
		s.base = "http://" + a
	case err := <-s.done:
		s.done <- err
		t.Fatalf("pulse serve exited before listening: %v\n%s", err, s.Logs())
	case <-time.After(120 * time.Second):
		t.Fatalf("pulse serve did not listen within 120s\n%s", s.Logs())
	}
	return s
}

// lockedBuffer is a bytes.Buffer safe for the process's writer and the test's reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logs returns what the server has logged so far.
func (s *server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("pulse serve exited with %v after SIGTERM\n%s", err, s.Logs())
		}
	case <-time.After(90 * time.Second):
		s.t.Fatalf("pulse serve did not stop within 90s of SIGTERM")
	}
}

// kill sends SIGKILL: a crash.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

var httpClient = &http.Client{Timeout: 2 * time.Minute}

func (s *server) do(method, path, contentType string, body []byte) response {
	s.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.base+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.onPredict != nil && resp.StatusCode == 200 && strings.HasSuffix(req.URL.Path, "/predict") {
		s.onPredict(b)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// ackIDs records the prediction ids of a 200 answer from /predict.
func ackIDs(t *testing.T, acked *sync.Map, body []byte) {
	var out struct {
		PredictionID string `json:"prediction_id"`
		Predictions  []struct {
			PredictionID string `json:"prediction_id"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Errorf("predict answer is not JSON: %v", err)
		return
	}
	if out.PredictionID != "" {
		acked.Store(out.PredictionID, true)
	}
	for _, p := range out.Predictions {
		acked.Store(p.PredictionID, true)
	}
}

func countAcked(acked *sync.Map) int {
	n := 0
	acked.Range(func(_, _ any) bool { n++; return true })
	return n
}

// eventually polls cond until it holds, and fails the test naming what did not happen (with
// what was last seen) if it does not within a minute: a bound on liveness, not a speed check.
func eventually(t *testing.T, what string, cond func() bool, seen func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not happen within a minute; last seen:\n%s", what, seen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond until it holds (the test's own timeout bounds it).
func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) get(path string) response { return s.do(http.MethodGet, path, "", nil) }

func (s *server) postJSON(path string, body string) response {
	return s.do(http.MethodPost, path, "application/json", []byte(body))
}

// patientJSON is the first Cleveland record without its label.
const patientJSON = `{"age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0,"thal":6}`

// lakeRow is what the tests read back of the predictions table.
type lakeRow struct {
	PredictionID string  `parquet:"prediction_id"`
	ModelVersion int64   `parquet:"model_version"`
	Label        int32   `parquet:"label"`
	Probability  float64 `parquet:"probability"`
	Features     string  `parquet:"features"`
	Response     string  `parquet:"response"`
}

// readLake returns every row of the predictions table of model under dataDir's lake, and the
// files they came from.
func readLake(t *testing.T, dataDir, model string) ([]lakeRow, []string) {
	t.Helper()
	pattern := filepath.Join(dataDir, "lake", "predictions", "model="+model, "date=*", "*.parquet")
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var rows []lakeRow
	for _, f := range files {
		rs, err := parquet.ReadFile[lakeRow](f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		rows = append(rows, rs...)
	}
	return rows, files
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("got %q, want it to contain %q", s, sub)
	}
}
