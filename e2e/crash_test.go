package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCrashKeepsAcknowledgedPredictions kills the server (SIGKILL) while clients score, starts
// it again, and checks that every prediction answered with 200 is in the lake exactly once.
func TestCrashKeepsAcknowledgedPredictions(t *testing.T) {
	dataDir := t.TempDir()
	cwd, _ := os.Getwd()
	args := []string{"--example", "heart-disease", "--example-data", filepath.Join(sharedData, "processed.cleveland.data"), "--lake-flush-interval", "200ms"}
	s := startServer(t, dataDir, cwd, args...)

	var acked sync.Map
	var wg sync.WaitGroup
	client := &http.Client{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				body := patientJSON
				if i%5 == 0 {
					body = `{"instances":[` + patientJSON + `,` + patientJSON + `]}`
				}
				resp, err := client.Post(s.base+"/v1/models/heart-disease/predict", "application/json", strings.NewReader(body))
				if err != nil {
					return // the server is gone
				}
				raw, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return // cut off mid-answer: not acknowledged
				}
				if resp.StatusCode == 200 {
					ackIDs(t, &acked, raw)
				}
			}
		}()
	}
	// Let some records reach Parquet and some stay in the write-ahead log, then crash.
	waitFor(func() bool {
		files, _ := filepath.Glob(filepath.Join(dataDir, "lake", "predictions", "*", "*", "*.parquet"))
		return len(files) > 0 && countAcked(&acked) > 3000
	})
	s.kill()
	wg.Wait()
	n := countAcked(&acked)
	t.Logf("acknowledged before the crash: %d predictions", n)

	s2 := startServer(t, dataDir, cwd, args...)
	r := s2.get("/v1/models/heart-disease/versions")
	if got := len(r.json(t)["versions"].([]any)); got != 1 {
		t.Errorf("versions after restart: got %d, want 1 (the example must not train again)", got)
	}
	s2.stop()

	rows, _ := readLake(t, dataDir, "heart-disease")
	count := map[string]int{}
	for _, row := range rows {
		count[row.PredictionID]++
	}
	for id, c := range count {
		if c != 1 {
			t.Errorf("prediction %s is in the lake %d times", id, c)
		}
	}
	missing := 0
	acked.Range(func(id, _ any) bool {
		if count[id.(string)] == 0 {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Errorf("%d of %d acknowledged predictions are missing from the lake", missing, n)
	}
	// Records answered with an error or cut off may be in the lake too, but never more than
	// were sent; all of the acknowledged ones must be there.
	if len(rows) < n {
		t.Errorf("lake rows: got %d, want at least the %d acknowledged", len(rows), n)
	}
}
