package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestExampleDownloadsOnce runs the example where no local copy of the data exists: it
// downloads the original, headerless UCI file once (from a local server standing in for UCI)
// and trains on it; a restart neither downloads nor trains again.
func TestExampleDownloadsOnce(t *testing.T) {
	shared, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	original := shared[bytes.IndexByte(shared, '\n')+1:] // the UCI file has no header line
	var hits atomic.Int32
	uci := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/heart-disease/processed.cleveland.data" {
			http.NotFound(w, r)
			return
		}
		w.Write(original)
	}))
	defer uci.Close()

	dataDir := t.TempDir()
	elsewhere := t.TempDir() // no ../shared from here
	args := []string{"--example", "heart-disease", "--example-url", uci.URL + "/heart-disease/processed.cleveland.data"}
	s := startServer(t, dataDir, elsewhere, args...)
	if got := hits.Load(); got != 1 {
		t.Errorf("downloads: got %d, want 1", got)
	}
	downloaded, err := os.ReadFile(filepath.Join(dataDir, "downloads", "processed.cleveland.data"))
	if err != nil || !bytes.Equal(downloaded, original) {
		t.Fatalf("downloaded file: err %v, equal %v", err, bytes.Equal(downloaded, original))
	}
	r := s.get("/v1/datasets/heart-disease")
	ds := r.json(t)
	if ds["rows"] != 303.0 || ds["format"].(map[string]any)["header"] != false {
		t.Errorf("dataset from the headerless download: got %s", r.body)
	}
	cols := ds["schema"].(map[string]any)["columns"].([]any)
	if len(cols) != 14 || cols[2].(map[string]any)["name"] != "cp" || cols[2].(map[string]any)["kind"] != "categorical" {
		t.Errorf("declared columns: got %v", cols)
	}
	if r := s.postJSON("/v1/models/heart-disease/predict", patientJSON); r.status != 200 {
		t.Errorf("predict: got %d %s", r.status, r.body)
	}
	s.stop()

	s = startServer(t, dataDir, elsewhere, args...)
	if got := hits.Load(); got != 1 {
		t.Errorf("downloads after restart: got %d, want still 1", got)
	}
	if got := len(s.get("/v1/models/heart-disease/versions").json(t)["versions"].([]any)); got != 1 {
		t.Errorf("versions after restart: got %d, want 1", got)
	}
	s.stop()

	// A failing download is a clear error, and the server does not start half-way.
	failing := httptest.NewServer(http.NotFoundHandler())
	defer failing.Close()
	out, err := runPulse(t, elsewhere, "serve", "--addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--example", "heart-disease", "--example-url", failing.URL+"/x")
	if err == nil {
		t.Fatalf("serve with an unreachable example download: got success, want an error\n%s", out)
	}
	mustContain(t, out, "want 200 OK")
}
