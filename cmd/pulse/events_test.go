package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/events"
	"github.com/cloudmedical/pulse/internal/example"
	"github.com/cloudmedical/pulse/internal/feedback"
	"github.com/cloudmedical/pulse/internal/kafka"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/registry/registrytest"
	"github.com/cloudmedical/pulse/internal/serving"
)

var clevelandPath = filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

// clevelandInputs returns every Cleveland row as a predict body: the columns before num, with
// the numbers as written in the file and "?" as null.
func clevelandInputs(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(clevelandPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var names []string
	var rows []string
	for sc.Scan() {
		cells := strings.Split(sc.Text(), ",")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if names == nil {
			names = cells // the header line
			continue
		}
		if len(cells) != len(names) {
			continue
		}
		var b strings.Builder
		b.WriteByte('{')
		for i, name := range names[:len(names)-1] { // without num, the target
			if i > 0 {
				b.WriteByte(',')
			}
			v := cells[i]
			if v == "?" {
				v = "null"
			}
			fmt.Fprintf(&b, "%q:%s", name, v)
		}
		b.WriteByte('}')
		rows = append(rows, b.String())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 303 || names[0] != "age" {
		t.Fatalf("read %d rows with columns %q, want 303 starting with age", len(rows), names)
	}
	return rows
}

// asyncEnv is pulse serve's asynchronous scoring in one process: the example's model (logreg,
// version 1) and a gbdt version 2, a real lake, the embedded broker and the score consumer.
type asyncEnv struct {
	db      pulse.EventStore // the metadata store
	reg     *registry.Service
	lake    *lake.Lake
	lakeDir string
	scorer  *serving.Scorer
	bus     *eventBus
	client  *kgo.Client
	sink    *recordedSink
}

// recordedSink passes records to the lake and remembers their request ids.
type recordedSink struct {
	next serving.Sink
	mu   sync.Mutex
	ids  []string
}

func (s *recordedSink) AppendPredictions(ctx context.Context, recs ...lake.Prediction) error {
	if err := s.next.AppendPredictions(ctx, recs...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.ids = append(s.ids, r.RequestID)
	}
	return nil
}

func newAsyncEnv(t testing.TB, noSync bool, cfg EventsConfig) *asyncEnv {
	t.Helper()
	ctx := context.Background()
	st := registrytest.New(t)
	reg, err := registry.New(ctx, registry.Config{Store: st.DB, Blobs: st.Blobs, Lake: st.Lake})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := example.Ensure(ctx, reg, example.Options{DataPath: clevelandPath}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Train(ctx, example.HeartDisease, registry.TrainRequest{Dataset: example.HeartDisease, Target: example.Target, Algorithm: "gbdt", Seed: 3, CVFolds: -1}); err != nil {
		t.Fatal(err)
	}
	e := &asyncEnv{db: st.DB, reg: reg, lakeDir: filepath.Join(st.Dir, "lake")}
	if e.lake, err = lake.Open(ctx, lake.Config{WALDir: filepath.Join(t.TempDir(), "wal"), Store: st.Lake}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.lake.Close(context.Background()) })
	e.sink = &recordedSink{next: e.lake}
	if e.scorer, err = serving.New(serving.Config{Models: reg, Sink: e.sink}); err != nil {
		t.Fatal(err)
	}
	topics := events.Topics{Prefix: kafka.DefaultTopicPrefix}
	conn, err := kafka.Open(ctx, kafka.Config{}, kafka.EmbeddedConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), NoSync: noSync}, topics.All(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	log := slog.New(slog.DiscardHandler)
	e.bus = &eventBus{conn: conn, topics: topics, log: log, metrics: prometheus.NewRegistry()}
	if cfg.ScoreGroup == "" {
		cfg.ScoreGroup = "pulse-score"
	}
	if err := e.bus.startScoring(ctx, cfg, e.scorer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.bus.stopConsumers(context.Background()) })
	e.client = conn.Client
	return e
}

// scoreRequest is the score.requested event a client sends for inputs.
func scoreRequest(id, model string, version int, corr, inputs string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"/bedside/7","type":"com.cloudmedical.pulse.score.requested","data":{"model":%q,"version":%d,"correlation_id":%q,"inputs":%s}}`,
		id, model, version, corr, inputs)
}

// TestAsyncScoringMatchesPredict sends every Cleveland row as a score request for the logreg
// and the gbdt version, and checks that each result is what Predict (REST) answers for the
// same row, that errors come back as results, and that every scored record reached the lake.
func TestAsyncScoringMatchesPredict(t *testing.T) {
	e := newAsyncEnv(t, true, EventsConfig{ScoreConsumers: 1, ScoreBatch: 100})
	ctx := context.Background()
	rows := clevelandInputs(t)
	requests := e.bus.topics.Name(events.TopicScoreRequests)
	var recs []*kgo.Record
	want := map[string]serving.Request{} // request id -> the REST request
	for version := 1; version <= 2; version++ {
		for i, row := range rows {
			id := fmt.Sprintf("v%d-row%03d", version, i)
			want[id] = serving.Request{Model: example.HeartDisease, Version: version, Body: []byte(row)}
			recs = append(recs, &kgo.Record{Topic: requests, Key: fmt.Appendf(nil, "patient-%d", i), Value: scoreRequest(id, example.HeartDisease, version, "c-"+id, row)})
		}
	}
	// Many records in one request: {"instances": [...]}, answered as REST answers it.
	batch := serving.Request{Model: example.HeartDisease, Version: 2, Body: []byte(`{"instances":[` + rows[0] + `,` + rows[1] + `]}`)}
	want["instances"] = batch
	recs = append(recs, &kgo.Record{Topic: requests, Value: scoreRequest("instances", example.HeartDisease, 2, "c-instances", string(batch.Body))})
	bad := map[string]string{ // request id -> the problem's code
		"unknown-model": "not_found", "unknown-version": "not_found", "bad-age": "unprocessable", "reserved": "unprocessable",
	}
	recs = append(recs,
		&kgo.Record{Topic: requests, Value: scoreRequest("unknown-model", "nope", 1, "", `{}`)},
		&kgo.Record{Topic: requests, Value: scoreRequest("unknown-version", example.HeartDisease, 9, "", `{}`)},
		&kgo.Record{Topic: requests, Value: scoreRequest("bad-age", example.HeartDisease, 1, "", `{"age":"sixty"}`)},
		&kgo.Record{Topic: requests, Value: scoreRequest("reserved", example.HeartDisease, 1, "", `{"age":60,"request_id":"mine"}`)},
	)
	if err := e.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := readResults(t, e.client, e.bus.topics.Name(events.TopicScoreResults), len(want)+len(bad))
	for id, code := range bad {
		var p struct {
			Code string `json:"code"`
		}
		if err := json.Unmarshal(got[id]["error"], &p); err != nil || p.Code != code {
			t.Errorf("%s: got error %s, want code %s", id, got[id]["error"], code)
		}
	}
	for id, req := range want {
		data := got[id]
		rest, err := e.scorer.Predict(ctx, req)
		if err != nil {
			t.Fatalf("%s: Predict: %v", id, err)
		}
		var restData map[string]json.RawMessage
		if err := json.Unmarshal(rest, &restData); err != nil {
			t.Fatal(err)
		}
		if string(data["request_id"]) != `"`+id+`"` || string(data["correlation_id"]) != `"c-`+id+`"` {
			t.Errorf("%s: request_id %s correlation_id %s", id, data["request_id"], data["correlation_id"])
		}
		for _, k := range []string{"request_id", "correlation_id", "prediction_id", "scored_at"} {
			delete(data, k)
		}
		delete(restData, "prediction_id")
		delete(restData, "scored_at")
		if p, ok := data["predictions"]; ok {
			data["predictions"] = json.RawMessage(idsRE.ReplaceAll(p, nil))
			restData["predictions"] = json.RawMessage(idsRE.ReplaceAll(restData["predictions"], nil))
		}
		if len(data) != len(restData) {
			t.Errorf("%s: got fields %v, REST answers %v", id, keys(data), keys(restData))
		}
		for k, v := range restData {
			if !bytes.Equal(data[k], v) {
				t.Errorf("%s: field %s: got %s, REST answers %s", id, k, data[k], v)
			}
		}
	}
	// Every scored request's record is in the lake, with the request id.
	e.sink.mu.Lock()
	stored := map[string]int{}
	for _, id := range e.sink.ids {
		stored[id]++
	}
	e.sink.mu.Unlock()
	for id := range want {
		n := 1
		if id == "instances" {
			n = 2
		}
		if stored[id] != n { // Predict above stores its records under request id ""
			t.Errorf("%s: %d records appended to the lake, want %d", id, stored[id], n)
		}
	}
	if err := e.bus.stopConsumers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.lake.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(e.lakeDir, "predictions", "model=heart-disease", "date=*", "*.parquet"))
	type row struct {
		RequestID   string  `parquet:"request_id"`
		Version     int64   `parquet:"model_version"`
		Probability float64 `parquet:"probability"`
	}
	inLake := map[string]int{}
	for _, f := range files {
		rs, err := parquet.ReadFile[row](f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			inLake[r.RequestID]++
		}
	}
	for id := range want {
		if n := stored[id]; inLake[id] != n {
			t.Errorf("%s: %d rows in the lake's Parquet files, want %d", id, inLake[id], n)
		}
	}
	for id := range bad {
		if inLake[id] != 0 {
			t.Errorf("refused request %s has %d rows in the lake", id, inLake[id])
		}
	}
}

// idsRE matches the members that differ between two scorings of the same record.
var idsRE = regexp.MustCompile(`"(prediction_id|scored_at)":"[^"]*",?`)

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// readResults reads score results until n distinct request ids have one; it returns each
// one's data.
func readResults(t testing.TB, client *kgo.Client, topic string, n int) map[string]map[string]json.RawMessage {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(client.OptValue(kgo.SeedBrokers).([]string)...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := map[string]map[string]json.RawMessage{}
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d results", len(out), n)
		}
		for _, r := range fs.Records() {
			ev, err := events.Parse(r.Value)
			if err != nil {
				t.Fatalf("result %s: %v", r.Value, err)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				t.Fatal(err)
			}
			var id string
			_ = json.Unmarshal(data["request_id"], &id)
			out[id] = data
		}
	}
	return out
}

// BenchmarkAsyncScoring measures asynchronous scoring end to end in one process, on the two
// cores shared by everything: a producer sends b.N score requests (Cleveland rows, logreg
// champion) as fast as the client takes them, the score consumer answers them (decode, score,
// one durable lake append and one commit per batch, results acknowledged before the commit,
// the embedded broker fsyncing as in pulse serve), and a reader waits for every result. It
// reports events/s from the first request sent to the last result read, and the latency of
// the results (request sent to result read) at that load. Example:
//
//	go test -run '^$' -bench 'AsyncScoring$' -benchtime 200000x ./cmd/pulse
func BenchmarkAsyncScoring(b *testing.B) {
	for _, rate := range []int{0, 10_000} {
		name := "max"
		if rate > 0 {
			name = fmt.Sprintf("rate-%d", rate)
		}
		b.Run(name, func(b *testing.B) { benchAsyncScoring(b, rate) })
	}
}

// benchAsyncScoring sends b.N requests at rate per second (0: as fast as possible).
func benchAsyncScoring(b *testing.B, rate int) {
	e := newAsyncEnv(b, false, EventsConfig{ScoreConsumers: benchConsumers(), ScoreBatch: benchBatch()})
	rows := clevelandInputs(b)
	requests, results := e.bus.topics.Name(events.TopicScoreRequests), e.bus.topics.Name(events.TopicScoreResults)
	seeds := e.client.OptValue(kgo.SeedBrokers).([]string)
	reader, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(results), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		b.Fatal(err)
	}
	defer reader.Close()
	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()
	ctx := context.Background()
	// The reader is at the end of the results before anything is sent.
	_ = reader.Ping(ctx)
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	reader.PollFetches(pctx)
	pcancel()

	n := b.N
	latencies := make([]time.Duration, 0, n)
	done := make(chan error, 1)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	go func() {
		seen := make(map[string]bool, n)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		for len(seen) < n {
			fs := reader.PollFetches(rctx)
			if rctx.Err() != nil {
				done <- fmt.Errorf("read %d of %d results", len(seen), n)
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == events.HeaderCorrelationID && !seen[string(h.Value)] {
						seen[string(h.Value)] = true
						sent, _ := strconv.ParseInt(string(h.Value), 10, 64)
						latencies = append(latencies, now.Sub(time.Unix(0, sent)))
					}
				}
			})
		}
		done <- nil
	}()
	for i := range n {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); d > time.Millisecond {
				time.Sleep(d)
			}
		}
		id := fmt.Sprintf("bench-%d", i)
		corr := fmt.Sprint(time.Now().UnixNano())
		v := scoreRequest(id, example.HeartDisease, 1, corr, rows[i%len(rows)])
		producer.Produce(ctx, &kgo.Record{Topic: requests, Key: []byte(fmt.Sprintf("patient-%d", i%1000)), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkAsyncScoringLatency measures one request at a time: the time from producing a
// score request (acknowledged) to reading its result, with nothing else in flight.
//
//	go test -run '^$' -bench AsyncScoringLatency -benchtime 2000x ./cmd/pulse
func BenchmarkAsyncScoringLatency(b *testing.B) {
	e := newAsyncEnv(b, false, EventsConfig{ScoreConsumers: 1, ScoreBatch: 2000})
	rows := clevelandInputs(b)
	requests, results := e.bus.topics.Name(events.TopicScoreRequests), e.bus.topics.Name(events.TopicScoreResults)
	seeds := e.client.OptValue(kgo.SeedBrokers).([]string)
	reader, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(results), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		b.Fatal(err)
	}
	defer reader.Close()
	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close()
	ctx := context.Background()
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	reader.PollFetches(pctx)
	pcancel()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		v := scoreRequest(fmt.Sprintf("lat-%d", i), example.HeartDisease, 1, fmt.Sprint(i), rows[i%len(rows)])
		if err := producer.ProduceSync(ctx, &kgo.Record{Topic: requests, Key: []byte("k"), Value: v}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		for answered := false; !answered; {
			fs := reader.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == events.HeaderCorrelationID && string(h.Value) == fmt.Sprint(i) {
						answered = true
					}
				}
			})
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// benchConsumers is the number of score consumers of BenchmarkAsyncScoring:
// PULSE_BENCH_SCORE_CONSUMERS, 1 by default.
func benchConsumers() int {
	if n, err := strconv.Atoi(os.Getenv("PULSE_BENCH_SCORE_CONSUMERS")); err == nil && n > 0 {
		return n
	}
	return 1
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBatch is the score batch of BenchmarkAsyncScoring: PULSE_BENCH_SCORE_BATCH, 2000 by
// default.
func benchBatch() int {
	if n, err := strconv.Atoi(os.Getenv("PULSE_BENCH_SCORE_BATCH")); err == nil && n > 0 {
		return n
	}
	return 2000
}

func TestStartScoringRefusesNegativeCounts(t *testing.T) {
	b := &eventBus{log: slog.New(slog.DiscardHandler)}
	for _, c := range []EventsConfig{{ScoreConsumers: -1}, {ScoreConsumers: 1, ScoreBatch: -5}} {
		if err := b.startScoring(context.Background(), c, nil); err == nil || !strings.Contains(err.Error(), "want 0 or more") {
			t.Errorf("%+v: got %v, want an error", c, err)
		}
	}
	// None asked for: nothing starts, and nothing is needed.
	if err := b.startScoring(context.Background(), EventsConfig{}, nil); err != nil || len(b.scorers) != 0 {
		t.Errorf("zero consumers: got %v and %d consumers", err, len(b.scorers))
	}
}

// BenchmarkFeedbackConsumer measures ground truth over Kafka: b.N labels, each for a
// different stored prediction, produced on the feedback topic; the feedback consumer joins
// them to their predictions and stores the outcomes durably (the embedded broker and the lake
// fsyncing as in pulse serve). It reports labels/s from the first label sent to the last one
// committed. Example:
//
//	go test -run '^$' -bench FeedbackConsumer -benchtime 100000x ./cmd/pulse
func BenchmarkFeedbackConsumer(b *testing.B) {
	e := newAsyncEnv(b, false, EventsConfig{ScoreConsumers: 1})
	ctx := context.Background()
	n := b.N
	now := time.Now().UTC()
	ids := make([]string, n)
	for start := 0; start < n; start += 1000 {
		var recs []lake.Prediction
		for i := start; i < min(n, start+1000); i++ {
			id, err := uuid.NewV7()
			if err != nil {
				b.Fatal(err)
			}
			ids[i] = id.String()
			recs = append(recs, lake.Prediction{PredictionID: ids[i], ScoredAt: now, Model: example.HeartDisease, Version: 1,
				Probability: 0.7, Threshold: 0.5, Label: 1, Features: []byte(`{"age":63}`), Response: []byte(`{}`)})
		}
		if err := e.lake.AppendPredictions(ctx, recs...); err != nil {
			b.Fatal(err)
		}
	}
	svc, err := feedback.New(feedback.Config{Lake: e.lake})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.bus.startFeedback(ctx, svc); err != nil {
		b.Fatal(err)
	}
	topic := e.bus.topics.Name(events.TopicFeedback)
	handled := func() float64 { return counterValue(b, e.bus, "pulse_events_handled_total", topic) }
	b.ResetTimer()
	start := time.Now()
	for i, id := range ids {
		v := fmt.Appendf(nil, `{"specversion":"1.0","id":"fb-%d","source":"/lab/1","type":"com.cloudmedical.pulse.feedback","data":{"prediction_id":%q,"label":1,"observed_at":%q}}`,
			i, id, now.Format(time.RFC3339))
		e.client.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(id[:8]), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Minute)
	for handled() < float64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("handled %v of %d labels", handled(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "labels/s")
}

// BenchmarkIngestConsumer measures device records over Kafka: b.N ingest events for the
// example's dataset, each appended durably to the lake's ingest table and marked seen in the
// metadata store (SQLite) by the ingest consumer, from the first produced to the last handled.
//
//	go test -run '^$' -bench IngestConsumer -benchtime 20000x ./cmd/pulse
func BenchmarkIngestConsumer(b *testing.B) {
	e := newAsyncEnv(b, false, EventsConfig{ScoreConsumers: 1})
	ctx := context.Background()
	if err := e.bus.startConsumers(ctx, e.reg, e.lake, nil, e.db); err != nil {
		b.Fatal(err)
	}
	topic := e.bus.topics.Name(events.TopicIngest)
	rows := clevelandInputs(b)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		v := fmt.Appendf(nil, `{"specversion":"1.0","id":"in-%d","source":"/bracelet/%d","type":"com.cloudmedical.pulse.ingest.record","data":{"dataset":%q,"record":%s}}`,
			i, i%1000, example.HeartDisease, rows[i%len(rows)])
		e.client.Produce(ctx, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "bracelet-%d", i%1000), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Minute)
	for counterValue(b, e.bus, "pulse_events_handled_total", topic) < float64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("handled %v of %d records", counterValue(b, e.bus, "pulse_events_handled_total", topic), b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// counterValue returns the value of a counter of the bus's metrics for topic.
func counterValue(t testing.TB, bus *eventBus, name, topic string) float64 {
	t.Helper()
	mfs, err := bus.metrics.(*prometheus.Registry).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" && l.GetValue() == topic {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestFeedbackErrors: the feedback consumer refuses unknown predictions and invalid values,
// including a label that repeats, in the same poll, one for an unknown prediction (as it would
// be refused alone), and takes the others.
func TestFeedbackErrors(t *testing.T) {
	a, b := "0193a0c2-7d1e-7000-8000-00000000000a", "0193a0c2-7d1e-7000-8000-00000000000b"
	items := []feedback.Feedback{{PredictionID: a}, {PredictionID: b}, {PredictionID: strings.ToUpper(a)}, {PredictionID: b}, {PredictionID: "x"}, {PredictionID: "x"}}
	rs := []feedback.Result{
		{Status: feedback.Unknown, Reason: "no stored prediction has this id"},
		{Status: feedback.Joined},
		{Status: feedback.Duplicate, Reason: "the same as item 0 of this batch"},
		{Status: feedback.Duplicate, Reason: "the same as item 1 of this batch"},
		{Status: feedback.Invalid, Field: "prediction_id", Reason: "not a UUID"},
		{Status: feedback.Invalid, Field: "prediction_id", Reason: "not a UUID"},
	}
	errs := feedbackErrors(items, rs)
	want := []string{"unknown prediction: no stored prediction has this id", "", "unknown prediction: no stored prediction has this id", "", "not a UUID", "not a UUID"}
	for i, err := range errs {
		got := ""
		if err != nil {
			got = err.Error()
			if pulse.ErrorCode(err) != pulse.EUNPROCESSABLE {
				t.Errorf("item %d: code %q, want %q (dead-lettered)", i, pulse.ErrorCode(err), pulse.EUNPROCESSABLE)
			}
		}
		if !strings.Contains(got, want[i]) || (want[i] == "") != (got == "") {
			t.Errorf("item %d: got %q, want %q", i, got, want[i])
		}
	}
}
