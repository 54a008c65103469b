package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// outcomeRow is what the tests read back of the outcomes table.
type outcomeRow struct {
	PredictionID   string    `parquet:"prediction_id"`
	ModelVersion   int64     `parquet:"model_version"`
	Alias          string    `parquet:"alias"`
	Shadow         bool      `parquet:"shadow"`
	Probability    float64   `parquet:"probability"`
	PredictedLabel int32     `parquet:"predicted_label"`
	Threshold      float64   `parquet:"threshold"`
	Label          int32     `parquet:"label"`
	ScoredAt       time.Time `parquet:"scored_at"`
	ObservedAt     time.Time `parquet:"observed_at"`
	ReceivedAt     time.Time `parquet:"received_at"`
	Source         string    `parquet:"source"`
	FeedbackID     string    `parquet:"feedback_id"`
}

func readOutcomes(t *testing.T, dataDir, model string) []outcomeRow {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "lake", "outcomes", "model="+model, "date=*", "*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []outcomeRow
	for _, f := range files {
		rs, err := parquet.ReadFile[outcomeRow](f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		rows = append(rows, rs...)
	}
	return rows
}

// scoredRow is a Cleveland row as the server scored it.
type scoredRow struct {
	id          string
	probability float64
	label       int
	version     int
	truth       int
}

// feedbackAnswer is the answer of POST /v1/feedback.
type feedbackAnswer struct {
	Received, Joined, Duplicate, Unknown, Invalid, Outcomes int
	Results                                                 []struct {
		Index        int    `json:"index"`
		PredictionID string `json:"prediction_id"`
		Status       string `json:"status"`
		Field        string `json:"field"`
		Reason       string `json:"reason"`
	} `json:"results"`
}

func postFeedback(t *testing.T, s *server, items []string) feedbackAnswer {
	t.Helper()
	r := s.postJSON("/v1/feedback", `{"feedback":[`+strings.Join(items, ",")+`]}`)
	if r.status != 200 {
		t.Fatalf("POST /v1/feedback: got %d %s", r.status, r.body)
	}
	var a feedbackAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func feedbackItem(id string, label any, observed time.Time) string {
	b, _ := json.Marshal(map[string]any{"prediction_id": id, "label": label, "observed_at": observed.UTC().Format(time.RFC3339Nano)})
	return string(b)
}

// metricValue reads one sample of the server's /metrics.
func metricValue(t *testing.T, s *server, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(string(s.get("/metrics").body))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestFeedback labels the Cleveland rows the real server scored: by REST and on the feedback
// topic. Every label reaches the lake's outcomes table once, with the prediction's probability,
// label and version and the truth; repeats are ignored, after a restart too; unknown ids and
// bad labels are reported (in the answer, or on the dead-letter topic with the reason).
func TestFeedback(t *testing.T) {
	dataDir := t.TempDir()
	cwd, _ := os.Getwd()
	args := []string{"--example", "heart-disease", "--example-data", filepath.Join(sharedData, "processed.cleveland.data")}
	s := startServer(t, dataDir, cwd, args...)
	m := brokersRE.FindStringSubmatch(s.Logs())
	if m == nil {
		t.Fatal("no broker address in the log")
	}
	broker := m[1]

	names, rows := clevelandRows(t)
	var instances []string
	for _, row := range rows {
		instances = append(instances, string(rowJSON(names, row)))
	}
	r := s.postJSON("/v1/models/heart-disease/predict", `{"instances":[`+strings.Join(instances, ",")+`]}`)
	if r.status != 200 {
		t.Fatalf("predict: got %d %s", r.status, r.body)
	}
	var scored struct {
		Predictions []struct {
			PredictionID string `json:"prediction_id"`
			Prediction   struct {
				Label       int     `json:"label"`
				Probability float64 `json:"probability"`
			} `json:"prediction"`
			Model struct {
				Version int `json:"version"`
			} `json:"model"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(r.body, &scored); err != nil || len(scored.Predictions) != len(rows) {
		t.Fatalf("predict: got %d predictions (%v), want %d", len(scored.Predictions), err, len(rows))
	}
	sr := make([]scoredRow, len(rows))
	byID := map[string]int{}
	for i, p := range scored.Predictions {
		truth := 0
		if strings.TrimSpace(rows[i][len(rows[i])-1]) != "0" {
			truth = 1
		}
		sr[i] = scoredRow{id: p.PredictionID, probability: p.Prediction.Probability, label: p.Prediction.Label, version: p.Model.Version, truth: truth}
		byID[p.PredictionID] = i
	}
	observed := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	unknownID := uuid.Must(uuid.NewV7()).String()

	// REST: rows 0-149 in one batch, with a repeat, an unknown id and a bad label.
	var items []string
	for i := range 150 {
		items = append(items, feedbackItem(sr[i].id, sr[i].truth, observed))
	}
	items = append(items, feedbackItem(sr[0].id, 1-sr[0].truth, observed), feedbackItem(unknownID, 1, observed), feedbackItem(sr[150].id, 7, observed))
	a := postFeedback(t, s, items)
	if a.Received != 153 || a.Joined != 150 || a.Duplicate != 1 || a.Unknown != 1 || a.Invalid != 1 || a.Outcomes != 150 || len(a.Results) != 3 {
		t.Errorf("REST batch: got %+v, want 150 joined, 1 duplicate, 1 unknown, 1 invalid", a)
	}
	for _, res := range a.Results {
		want := map[int]string{150: "duplicate", 151: "unknown", 152: "invalid"}[res.Index]
		if res.Status != want || res.Reason == "" {
			t.Errorf("REST result %+v: want status %s with a reason", res, want)
		}
	}
	// One item alone: row 151.
	r = s.postJSON("/v1/feedback", feedbackItem(sr[151].id, sr[151].truth, observed))
	if r.status != 200 || !strings.Contains(string(r.body), `"joined":1`) {
		t.Errorf("one item: got %d %s, want it joined", r.status, r.body)
	}

	// Kafka: rows 152-299 on the feedback topic, with a repeat, an unknown id and a bad label.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	event := func(id string, label any) (string, []byte) {
		eid := fmt.Sprintf("fb-%s-%d", id[len(id)-6:], time.Now().UnixNano())
		data, _ := json.Marshal(map[string]any{"prediction_id": id, "label": label, "observed_at": observed.Format(time.RFC3339Nano)})
		return eid, fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"/ward-7/emr","type":"com.cloudmedical.pulse.feedback","datacontenttype":"application/json","data":%s}`, eid, data)
	}
	eventIDs := map[string]string{} // prediction id -> event id
	for i := 152; i < 300; i++ {
		eid, v := event(sr[i].id, sr[i].truth == 1) // booleans on this path
		eventIDs[sr[i].id] = eid
		cl.Produce(ctx, &kgo.Record{Topic: "pulse.feedback", Key: []byte(sr[i].id), Value: v}, nil)
	}
	for _, e := range []struct {
		id    string
		label any
	}{{sr[1].id, sr[1].truth}, {unknownID, 1}, {sr[300].id, "maybe"}} {
		_, v := event(e.id, e.label)
		cl.Produce(ctx, &kgo.Record{Topic: "pulse.feedback", Key: []byte(e.id), Value: v}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the feedback consumer joins the 148 labels and counts the repeat", func() bool {
		return metricValue(t, s, `pulse_feedback_labels_total{source="kafka",status="joined"}`) == 148 &&
			metricValue(t, s, `pulse_feedback_labels_total{source="kafka",status="duplicate"}`) == 1
	}, func() string { return string(s.get("/metrics").body) })
	var dlq string
	eventually(t, "the unknown id and the bad label are dead-lettered with their reasons", func() bool {
		dlq = kcat(t, "", "-b", broker, "-t", "pulse.feedback.dlq", "-C", "-o", "beginning", "-e", "-q")
		return strings.Count(dlq, `"reason":"rejected"`) == 2
	}, func() string { return dlq })
	mustContain(t, dlq, "no stored prediction has this id")
	mustContain(t, dlq, `"field":"label"`)
	mustContain(t, dlq, unknownID)

	// After a restart, the labelled predictions are still labelled, the others still known.
	s.stop()
	s = startServer(t, dataDir, cwd, args...)
	items = nil
	for i := range 5 {
		items = append(items, feedbackItem(sr[i].id, sr[i].truth, observed))
	}
	items = append(items, feedbackItem(sr[301].id, sr[301].truth, observed))
	a = postFeedback(t, s, items)
	if a.Duplicate != 5 || a.Joined != 1 {
		t.Errorf("after a restart: got %+v, want 5 duplicates and row 301 joined", a)
	}
	s.stop()

	// The outcomes table: the rows labelled, once each, as scored and labelled.
	outs := readOutcomes(t, dataDir, "heart-disease")
	seen := map[string]bool{}
	for _, o := range outs {
		i, ok := byID[o.PredictionID]
		if !ok || seen[o.PredictionID] {
			t.Errorf("outcome %s: unknown or stored twice", o.PredictionID)
			continue
		}
		seen[o.PredictionID] = true
		p := sr[i]
		wantSource, wantFeedback := "api", ""
		if i >= 152 && i < 300 {
			wantSource, wantFeedback = "kafka", eventIDs[o.PredictionID]
		}
		if o.Label != int32(p.truth) || o.Probability != p.probability || o.PredictedLabel != int32(p.label) || o.ModelVersion != int64(p.version) ||
			o.Alias != "champion" || o.Shadow || o.Threshold != 0.5 || !o.ObservedAt.Equal(observed) || o.Source != wantSource ||
			(wantFeedback != "" && o.FeedbackID != wantFeedback) || o.FeedbackID == "" || o.ReceivedAt.Before(o.ScoredAt) {
			t.Errorf("outcome of row %d: got %+v, want truth %d, probability %v, label %d, version %d, source %s", i, o, p.truth, p.probability, p.label, p.version, wantSource)
		}
	}
	// Row 150 had a bad label, row 300 a bad label on Kafka, row 302 none.
	if len(outs) != 300 || len(seen) != 300 || seen[sr[150].id] || seen[sr[300].id] || seen[sr[302].id] {
		t.Errorf("outcomes: got %d rows for %d ids, want 300 (rows 0-149, 151-299 and 301)", len(outs), len(seen))
	}
}

// checkFeedbackRoutes checks POST /v1/feedback against the OpenAPI document: a label joined,
// repeated, a batch with an unknown id and a bad label, and the problems.
func checkFeedbackRoutes(t *testing.T, s *server, api *apiDoc) {
	t.Helper()
	r := s.postJSON("/v1/models/heart-disease/predict", patientJSON)
	if r.status != 200 {
		t.Fatalf("predict: got %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["prediction_id"].(string)
	now := time.Now()
	for i, want := range []string{`"joined":1`, `"duplicate":1`} {
		r = s.postJSON("/v1/feedback", feedbackItem(id, 1, now))
		api.check(t, "POST", "/v1/feedback", r)
		if r.status != 200 || !strings.Contains(string(r.body), want) {
			t.Errorf("feedback %d for %s: got %d %s, want %s", i, id, r.status, r.body, want)
		}
	}
	r = s.postJSON("/v1/feedback", `{"feedback":[`+feedbackItem(uuid.Must(uuid.NewV7()).String(), 0, now)+`,`+feedbackItem(id, "no", now)+`]}`)
	api.check(t, "POST", "/v1/feedback", r)
	if r.status != 200 || !strings.Contains(string(r.body), `"unknown":1`) || !strings.Contains(string(r.body), `"invalid":1`) {
		t.Errorf("feedback batch: got %d %s, want one unknown and one invalid", r.status, r.body)
	}
	many := `{"feedback":[` + strings.Repeat(`{},`, 10000) + `{}]}`
	for _, c := range []struct {
		body   string
		status int
	}{
		{feedbackItem(id, 1, now.Add(24*time.Hour)), 422},
		{`{"prediction_id":`, 400},
		{many, 413},
	} {
		r = s.postJSON("/v1/feedback", c.body)
		api.check(t, "POST", "/v1/feedback", r)
		if r.status != c.status {
			t.Errorf("feedback %.40s: got %d %s, want %d", c.body, r.status, r.body, c.status)
		}
	}
}
