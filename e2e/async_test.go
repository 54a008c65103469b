package e2e

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// asyncRows returns the Cleveland rows as predict bodies: the columns before num, numbers as
// written in the file, "?" as null.
func asyncRows(t *testing.T) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, rec := range recs[1:] {
		var b bytes.Buffer
		b.WriteByte('{')
		for j, cell := range rec[:len(rec)-1] {
			if j > 0 {
				b.WriteByte(',')
			}
			if cell = strings.TrimSpace(cell); cell == "?" {
				cell = "null"
			}
			fmt.Fprintf(&b, "%q:%s", strings.TrimSpace(recs[0][j]), cell)
		}
		b.WriteByte('}')
		out = append(out, b.Bytes())
	}
	if len(out) != 303 {
		t.Fatalf("got %d Cleveland rows, want 303", len(out))
	}
	return out
}

// asyncResult is one line of `kcat -C -f '%k|%h|%s\n'` on score.results.
type asyncResult struct {
	key, headers string
	event        struct {
		Type string                     `json:"type"`
		Data map[string]json.RawMessage `json:"data"`
	}
}

// TestAsyncScoring: kcat, an independent Kafka client, sends a score request for every
// Cleveland row, to the champion (logreg) and to a gbdt version, to the embedded broker of a
// real `pulse serve`, and reads score.results: each result is exactly REST's answer for the
// same row and version (the prediction's id and time apart) plus request_id and
// correlation_id, keyed like its request. A request that cannot be scored gets an error
// result; a malformed one is dead-lettered. Every scored request is in the lake.
func TestAsyncScoring(t *testing.T) {
	testAsyncScoring(t, "pulse.")
}

// TestAsyncScoringThroughApacheKafka runs the same scenario against a real Apache Kafka broker
// (PULSE_TEST_KAFKA_BROKERS, or one started by scripts/kafka).
func TestAsyncScoringThroughApacheKafka(t *testing.T) {
	brokers := realKafka(t)
	prefix := fmt.Sprintf("e2e-async-%d.", time.Now().UnixNano()) // topics of its own on the shared broker
	testAsyncScoring(t, prefix, "--kafka-brokers", brokers, "--kafka-topic-prefix", prefix)
}

func testAsyncScoring(t *testing.T, prefix string, flags ...string) {
	dataDir := t.TempDir()
	cwd, _ := os.Getwd()
	args := append([]string{"--example", "heart-disease", "--example-data", filepath.Join(sharedData, "processed.cleveland.data")}, flags...)
	s := startServer(t, dataDir, cwd, args...)
	mustContain(t, s.Logs(), `msg="asynchronous scoring ready" requests=`+prefix+`score.requests results=`+prefix+`score.results group=pulse-score`)
	broker := brokersRE.FindStringSubmatch(s.Logs())[1]
	if r := s.postJSON("/v1/models/heart-disease/train?wait=true", `{"dataset":"heart-disease","target":"num > 0","algorithm":"gbdt","seed":3}`); r.status != 201 {
		t.Fatalf("train gbdt: got %d %s", r.status, r.body)
	}

	type sent struct {
		key     string
		version int
		inputs  []byte
	}
	rows := asyncRows(t)
	requests := map[string]sent{} // request id -> what was sent
	var in strings.Builder
	event := func(id, data string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/bedside/7","type":"com.cloudmedical.pulse.score.requested","datacontenttype":"application/json","data":` + data + `}`
	}
	for version := 1; version <= 2; version++ {
		for i, row := range rows {
			id := fmt.Sprintf("e2e-v%d-%03d", version, i)
			key := fmt.Sprintf("patient-%03d", i)
			requests[id] = sent{key, version, row}
			fmt.Fprintf(&in, "%s|%s\n", key, event(id, fmt.Sprintf(`{"model":"heart-disease","version":%d,"correlation_id":"c-%s","inputs":%s}`, version, id, row)))
		}
	}
	fmt.Fprintf(&in, "bed-1|%s\n", event("e2e-unknown", `{"model":"no-such-model","inputs":{"age":60}}`))
	fmt.Fprintf(&in, "bed-1|%s\n", event("e2e-bad-age", `{"model":"heart-disease","correlation_id":"c-bad","inputs":{"age":"sixty"}}`))
	fmt.Fprintf(&in, "bed-1|%s\n", "this is not a cloud event")
	kcat(t, in.String(), "-b", broker, "-t", prefix+"score.requests", "-P", "-K", "|")

	results := map[string]asyncResult{}
	var last string
	eventually(t, "every score request answered on score.results", func() bool {
		last = kcat(t, "", "-b", broker, "-t", prefix+"score.results", "-C", "-o", "beginning", "-e", "-q", "-f", `%k|%h|%s\n`)
		for _, line := range strings.Split(strings.TrimSpace(last), "\n") {
			parts := strings.SplitN(line, "|", 3)
			if len(parts) != 3 {
				continue
			}
			r := asyncResult{key: parts[0], headers: parts[1]}
			if err := json.Unmarshal([]byte(parts[2]), &r.event); err != nil {
				t.Fatalf("result is not JSON: %v: %s", err, parts[2])
			}
			var id string
			_ = json.Unmarshal(r.event.Data["request_id"], &id)
			results[id] = r
		}
		return len(results) >= len(requests)+2
	}, func() string { return last })

	for id, req := range requests {
		r := results[id]
		if r.key != req.key || r.event.Type != "com.cloudmedical.pulse.score.completed" || !strings.Contains(r.headers, "pulse-correlation-id=c-"+id) {
			t.Errorf("%s: key %q type %q headers %q, want key %q and the correlation id", id, r.key, r.event.Type, r.headers, req.key)
		}
		rest := s.postJSON(fmt.Sprintf("/v1/models/heart-disease/predict?version=%d", req.version), string(req.inputs))
		if rest.status != 200 {
			t.Fatalf("%s: REST: %d %s", id, rest.status, rest.body)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(rest.body, &want); err != nil {
			t.Fatal(err)
		}
		got := r.event.Data
		if string(got["request_id"]) != `"`+id+`"` || string(got["correlation_id"]) != `"c-`+id+`"` {
			t.Errorf("%s: request_id %s correlation_id %s", id, got["request_id"], got["correlation_id"])
		}
		var pk, pr struct{ Probability float64 }
		_ = json.Unmarshal(got["prediction"], &pk)
		_ = json.Unmarshal(want["prediction"], &pr)
		if d := math.Abs(pk.Probability - pr.Probability); !(d <= 1e-6) || pr.Probability == 0 {
			t.Errorf("%s: probability %v over Kafka, %v over REST", id, pk.Probability, pr.Probability)
		}
		for _, k := range []string{"prediction_id", "scored_at"} {
			delete(want, k)
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Errorf("%s: %s: got %s over Kafka, %s over REST", id, k, got[k], v)
			}
		}
		if len(got) != len(want)+4 { // + prediction_id, scored_at, request_id, correlation_id
			t.Errorf("%s: %d fields over Kafka, %d over REST (+4): %s", id, len(got), len(want), r.event.Data)
		}
	}
	for id, want := range map[string]string{
		"e2e-unknown": `{"type":"urn:pulse:problem:not_found","title":"Not Found","status":404,"detail":"model \"no-such-model\" not found","code":"not_found"}`,
		"e2e-bad-age": `{"type":"urn:pulse:problem:unprocessable","title":"Unprocessable Entity","status":422,"detail":"field \"age\": got a string \"sixty\", want a number","code":"unprocessable","field":"age"}`,
	} {
		if got := string(results[id].event.Data["error"]); got != want {
			t.Errorf("%s: error %s, want %s", id, got, want)
		}
	}
	var dlq string
	eventually(t, "the malformed request is dead-lettered", func() bool {
		dlq = kcat(t, "", "-b", broker, "-t", prefix+"score.requests.dlq", "-C", "-o", "beginning", "-e", "-q")
		return strings.Contains(dlq, `"value":"this is not a cloud event"`) && strings.Contains(dlq, `"reason":"malformed"`)
	}, func() string { return dlq })
	metrics := string(s.get("/metrics").body)
	for _, want := range []string{
		`pulse_events_score_results_total{model="heart-disease",status="ok"} 606`,
		`pulse_events_score_results_total{model="heart-disease",status="unprocessable"} 1`,
		`pulse_events_score_results_total{model="",status="not_found"} 1`,
	} {
		mustContain(t, metrics, want)
	}
	if !regexp.MustCompile(`pulse_events_score_batch_records_count [1-9]`).MatchString(metrics) {
		t.Errorf("no score batches in the metrics")
	}
	s.stop()

	// The lake has every scored request once, with its version and probability.
	type row struct {
		RequestID    string  `parquet:"request_id"`
		ModelVersion int64   `parquet:"model_version"`
		Probability  float64 `parquet:"probability"`
		Features     string  `parquet:"features"`
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, "lake", "predictions", "model=heart-disease", "date=*", "*.parquet"))
	inLake := map[string][]row{}
	for _, f := range files {
		rs, err := parquet.ReadFile[row](f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			inLake[r.RequestID] = append(inLake[r.RequestID], r)
		}
	}
	for id, req := range requests {
		rs := inLake[id]
		var p struct{ Probability float64 }
		_ = json.Unmarshal(results[id].event.Data["prediction"], &p)
		if len(rs) != 1 || rs[0].ModelVersion != int64(req.version) || rs[0].Probability != p.Probability || rs[0].Features != string(req.inputs) {
			t.Errorf("%s: lake rows %+v, want one of version %d with probability %v and the inputs", id, rs, req.version, p.Probability)
		}
	}
}
