package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

var brokersRE = regexp.MustCompile(`msg="events ready" brokers=(\S+)`)

// kcat runs Debian's kcat, an independent Kafka client, against the server's broker.
func kcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func cloudEvent(t *testing.T, typ, subject string, data any) string {
	t.Helper()
	d, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`{"specversion":"1.0","id":"%s-%d","source":"/bracelet/gateway-1","type":"%s","subject":"%s","time":"%s","datacontenttype":"application/json","data":%s}`,
		subject, time.Now().UnixNano(), typ, subject, time.Now().UTC().Format(time.RFC3339Nano), d)
}

// TestEventsThroughTheEmbeddedBroker: with nothing installed, pulse serve runs a Kafka-compatible
// broker that an independent client (kcat) talks to: a train.requested event becomes a job and
// a version, announced on model.events; ingest records land in the lake; a malformed event goes
// to the dead-letter topic and the consumer keeps going.
func TestEventsThroughTheEmbeddedBroker(t *testing.T) {
	testEvents(t, "pulse.")
}

// TestEventsThroughApacheKafka runs the same scenario against a real Apache Kafka broker
// (started by the test command; PULSE_TEST_KAFKA_BROKERS).
func TestEventsThroughApacheKafka(t *testing.T) {
	brokers := realKafka(t)
	prefix := fmt.Sprintf("e2e-%d.", time.Now().UnixNano()) // topics of its own on the shared broker
	testEvents(t, prefix, "--kafka-brokers", brokers, "--kafka-topic-prefix", prefix)
}

func testEvents(t *testing.T, prefix string, flags ...string) {
	dataDir := t.TempDir()
	cwd, _ := os.Getwd()
	args := append([]string{"--example", "heart-disease", "--example-data", filepath.Join(sharedData, "processed.cleveland.data")}, flags...)
	s := startServer(t, dataDir, cwd, args...)
	m := brokersRE.FindStringSubmatch(s.Logs())
	if m == nil {
		t.Fatalf("no broker address in the log")
	}
	broker := m[1]

	// A malformed event first, then a good one: the consumer dead-letters the first and goes on.
	kcat(t, "this is not a cloud event\n", "-b", broker, "-t", prefix+"train.requests", "-P")
	kcat(t, cloudEvent(t, "com.cloudmedical.pulse.train.requested", "heart-disease",
		map[string]any{"model": "heart-disease", "dataset": "heart-disease", "target": "num > 0", "algorithm": "gbdt", "seed": 3})+"\n",
		"-b", broker, "-t", prefix+"train.requests", "-P")
	waitFor(func() bool {
		r := s.get("/v1/models/heart-disease/versions")
		return len(r.json(t)["versions"].([]any)) == 2
	})
	v2 := s.get("/v1/models/heart-disease/versions/2").json(t)
	if v2["algorithm"] != "gbdt" || v2["lineage"].(map[string]any)["trigger"] != "event" {
		t.Errorf("version from the event: got algorithm %v trigger %v", v2["algorithm"], v2["lineage"].(map[string]any)["trigger"])
	}
	jobs := s.get("/v1/jobs?model=heart-disease").json(t)["jobs"].([]any)
	if len(jobs) != 1 || jobs[0].(map[string]any)["trigger"] != "event" {
		t.Errorf("jobs: got %v, want the one from the event", jobs)
	}
	var dlq string
	eventually(t, "the malformed train request is dead-lettered", func() bool {
		dlq = kcat(t, "", "-b", broker, "-t", prefix+"train.requests.dlq", "-C", "-o", "beginning", "-e", "-q")
		return strings.Contains(dlq, "this is not a cloud event")
	}, func() string { return dlq })
	wants := []string{`"type":"com.cloudmedical.pulse.model.version_registered"`, `"version":2`, `"type":"com.cloudmedical.pulse.model.alias_moved"`,
		`"type":"com.cloudmedical.pulse.job.started"`, `"type":"com.cloudmedical.pulse.job.succeeded"`}
	var announced string
	eventually(t, "model.events announces the version, the alias and the job", func() bool {
		announced = kcat(t, "", "-b", broker, "-t", prefix+"model.events", "-C", "-o", "beginning", "-e", "-q")
		for _, want := range wants {
			if !strings.Contains(announced, want) {
				return false
			}
		}
		return true
	}, func() string { return announced })

	// Ingest records from a bracelet, one for a dataset that does not exist.
	var batch bytes.Buffer
	var first string
	for i := range 5 {
		e := cloudEvent(t, "com.cloudmedical.pulse.ingest.record", "heart-disease", map[string]any{
			"dataset": "heart-disease", "record": map[string]any{"age": 50 + i, "thalach": 150, "ca": nil}, "label": i % 2,
		})
		if i == 0 {
			first = e
		}
		batch.WriteString(e + "\n")
	}
	batch.WriteString(cloudEvent(t, "com.cloudmedical.pulse.ingest.record", "nope", map[string]any{"dataset": "nope", "record": map[string]any{"age": 1}}) + "\n")
	kcat(t, batch.String(), "-b", broker, "-t", prefix+"ingest", "-P")
	var dlqIngest string
	eventually(t, "the ingest record for an unknown dataset is dead-lettered", func() bool {
		out, _ := exec.Command("kcat", "-b", broker, "-t", prefix+"ingest.dlq", "-C", "-o", "beginning", "-e", "-q").Output()
		dlqIngest = string(out)
		return strings.Contains(dlqIngest, `is not registered`) && strings.Contains(dlqIngest, `"reason":"rejected"`)
	}, func() string { return dlqIngest })
	s.stop()

	// After a restart, the same event delivered again (same id) has no second effect: the ids
	// applied are remembered in the metadata store, not only in memory.
	s = startServer(t, dataDir, cwd, args...)
	broker = brokersRE.FindStringSubmatch(s.Logs())[1] // the embedded broker listens on a new port
	kcat(t, first+"\n", "-b", broker, "-t", prefix+"ingest", "-P")
	var metrics string
	eventually(t, "the repeated event is recognised as a duplicate", func() bool {
		metrics = string(s.get("/metrics").body)
		return regexp.MustCompile(`pulse_events_duplicates_total\{[^}]*topic="` + regexp.QuoteMeta(prefix) + `ingest"[^}]*\} 1`).MatchString(metrics)
	}, func() string { return metrics })
	s.stop()
	files, _ := filepath.Glob(filepath.Join(dataDir, "lake", "ingest", "dataset=heart-disease", "*", "*.parquet"))
	type row struct {
		Record string `parquet:"record"`
		Label  string `parquet:"label"`
		Source string `parquet:"source"`
	}
	var rows []row
	for _, f := range files {
		rs, err := parquet.ReadFile[row](f)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rs...)
	}
	if len(rows) != 5 {
		t.Fatalf("ingested rows in the lake: got %d, want 5", len(rows))
	}
	for _, r := range rows {
		if !strings.Contains(r.Record, `"thalach":150`) || (r.Label != "0" && r.Label != "1") || r.Source != "/bracelet/gateway-1" {
			t.Errorf("ingested row: got %+v", r)
		}
	}
}

// TestScheduledRetrainGates: two schedules fire on start (run_on_start) and retrain the
// example's model; the gate promotes one new version (any loss tolerated) and refuses the
// other (a floor it cannot reach); both decisions, with their numbers, are announced on
// model.events — on the embedded broker and on a real Apache Kafka.
func TestScheduledRetrainGates(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testScheduledGates(t, "pulse.") })
	t.Run("apache-kafka", func(t *testing.T) {
		brokers := realKafka(t)
		prefix := fmt.Sprintf("e2e-sched-%d.", time.Now().UnixNano())
		testScheduledGates(t, prefix, "--kafka-brokers", brokers, "--kafka-topic-prefix", prefix)
	})
}

func testScheduledGates(t *testing.T, prefix string, flags ...string) {
	dataDir := t.TempDir()
	cwd, _ := os.Getwd()
	schedules := filepath.Join(t.TempDir(), "schedules.json")
	if err := os.WriteFile(schedules, []byte(`[
 {"model": "heart-disease", "cron": "0 0 1 1 *", "run_on_start": true,
  "request": {"dataset": "heart-disease", "target": "num > 0", "seed": 11}, "gate": {"metric": "roc_auc", "min_gain": -1}},
 {"model": "heart-disease", "cron": "0 0 1 1 *", "run_on_start": true,
  "request": {"dataset": "heart-disease", "target": "num > 0", "seed": 12}, "gate": {"metric": "roc_auc", "min_gain": -1, "floor": 0.999}}
]`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--example", "heart-disease", "--example-data", filepath.Join(sharedData, "processed.cleveland.data"), "--schedules", schedules}, flags...)
	s := startServer(t, dataDir, cwd, args...)
	broker := brokersRE.FindStringSubmatch(s.Logs())[1]
	var announced string
	eventually(t, "both scheduled retrains announce their gate decisions", func() bool {
		announced = kcat(t, "", "-b", broker, "-t", prefix+"model.events", "-C", "-o", "beginning", "-e", "-q")
		return strings.Count(announced, `"type":"com.cloudmedical.pulse.job.succeeded"`) >= 2
	}, func() string { return announced })
	var promoted, refused int
	for _, line := range strings.Split(announced, "\n") {
		var e struct {
			Type string `json:"type"`
			Data struct {
				Result struct {
					Version int `json:"version"`
					Gate    struct {
						Alias         string  `json:"alias"`
						Source        string  `json:"source"`
						Reason        string  `json:"reason"`
						Value         float64 `json:"value"`
						ChampionValue float64 `json:"champion_value"`
					} `json:"gate"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Type != "com.cloudmedical.pulse.job.succeeded" {
			continue
		}
		g := e.Data.Result.Gate
		if g.Source != "fresh_holdout" || g.Reason == "" {
			t.Errorf("decision of version %d: got %+v, want one made on the fresh holdout, with a reason", e.Data.Result.Version, g)
		}
		switch {
		case g.Alias == "champion":
			promoted++
		case g.Alias == "challenger" && strings.Contains(g.Reason, "floor"):
			refused++
		}
	}
	if promoted != 1 || refused != 1 {
		t.Errorf("gate decisions: got %d promoted and %d refused, want 1 and 1\n%s", promoted, refused, announced)
	}
	jobs := s.get("/v1/jobs?model=heart-disease").json(t)["jobs"].([]any)
	for _, j := range jobs {
		if j.(map[string]any)["trigger"] != "schedule" {
			t.Errorf("job: got trigger %v, want schedule", j.(map[string]any)["trigger"])
		}
	}
	m := s.get("/v1/models/heart-disease").json(t)["aliases"].(map[string]any)
	if m["champion"] == 1.0 || m["challenger"] == nil || m["champion"] == m["challenger"] {
		t.Errorf("aliases after the gates: got %v, want a new champion and the refused version as challenger", m)
	}
	s.stop()
}

// realKafka returns the brokers of the real Apache Kafka the test command starts
// (PULSE_TEST_KAFKA_BROKERS), starting one with scripts/kafka when it is unset: never a skip.
func realKafka(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("PULSE_TEST_KAFKA_BROKERS"); b != "" {
		return b
	}
	dir := t.TempDir()
	script := filepath.Join("..", "scripts", "kafka")
	out, err := exec.Command(script, "start", dir).Output()
	if err != nil {
		t.Fatalf("PULSE_TEST_KAFKA_BROKERS is not set and %s start failed (%v): run ./scripts/test", script, err)
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", dir).Run() })
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "PULSE_TEST_KAFKA_BROKERS=")
}
