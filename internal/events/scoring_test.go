package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/kafka"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// The score consumer's suite runs against kfake and a real Apache Kafka, as brokerSuite.

func TestScoreConsumerEmbeddedBroker(t *testing.T) { scoreSuite(t, embeddedBrokers) }

func TestScoreConsumerRealKafka(t *testing.T) {
	scoreSuite(t, func(t testing.TB) string { return realBrokers(t) })
}

func scoreSuite(t *testing.T, brokers func(testing.TB) string) {
	b := brokers(t)
	t.Run("AnswersRefusesAndDeadLetters", func(t *testing.T) { testScoreAnswers(t, newEnv(t, b)) })
	t.Run("RetriesTransientErrors", func(t *testing.T) { testScoreRetries(t, newEnv(t, b)) })
	t.Run("CrashAfterResultsRedelivers", func(t *testing.T) { testScoreCrash(t, newEnv(t, b)) })
	t.Run("TwoConsumersShareTheRequests", func(t *testing.T) { testScoreTwoConsumers(t, newEnv(t, b)) })
	t.Run("ManyBatchesReuseTheirMemory", func(t *testing.T) { testScoreManyBatches(t, newEnv(t, b)) })
}

// testScoreManyBatches answers requests in many small batches of varying contents, so that
// the memory of answered batches is reused over and over (and outgrown), and checks every
// result: its request, correlation id (header and data) and echoed inputs.
func testScoreManyBatches(t *testing.T, e *env) {
	var rs []request
	var ids []string
	for i := range 300 {
		corr := ""
		switch i % 3 {
		case 1:
			corr = fmt.Sprintf("c-%03d", i)
		case 2:
			corr = fmt.Sprintf("bed \"%d\"\t<%s>", i, strings.Repeat("x", i%97)) // escaped in JSON
		}
		inputs := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("y", (i*37)%500))
		if i%11 == 0 {
			inputs = `{"age":"old"}`
		}
		data, err := json.Marshal(map[string]any{"model": "m", "correlation_id": corr, "inputs": json.RawMessage(inputs)})
		if err != nil {
			t.Fatal(err)
		}
		r := scoreRequest(fmt.Sprintf("dev-%d", i%5), fmt.Sprintf("r-%03d", i), string(data))
		rs = append(rs, r)
		ids = append(ids, r.id)
	}
	e.produceRequests(rs...)
	c := e.scoreConsumer(ScoreConsumerConfig{MaxBatch: 7})
	got := e.results(ids)
	stop(t, c)
	byID := map[string]result{}
	for _, r := range got {
		if _, dup := byID[r.requestID]; dup {
			t.Errorf("result %s: answered twice", r.requestID)
		}
		byID[r.requestID] = r
	}
	for i, req := range rs {
		r := byID[req.id]
		var want struct {
			Data struct {
				CorrelationID string          `json:"correlation_id"`
				Inputs        json.RawMessage `json:"inputs"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(req.value), &want); err != nil {
			t.Fatal(err)
		}
		corr := want.Data.CorrelationID
		var dataCorr string
		if raw, ok := r.data["correlation_id"]; ok {
			if err := json.Unmarshal(raw, &dataCorr); err != nil {
				t.Fatal(err)
			}
		}
		if r.key != req.key || r.correlation != corr || dataCorr != corr {
			t.Errorf("result %s: key %q correlation header %q data %q, want %q and %q", req.id, r.key, r.correlation, dataCorr, req.key, corr)
		}
		if i%11 == 0 {
			if len(r.data["error"]) == 0 {
				t.Errorf("result %s: data %s, want an error", req.id, r.event.Data)
			}
			continue
		}
		var in map[string]json.RawMessage
		if err := json.Unmarshal(want.Data.Inputs, &in); err != nil {
			t.Fatal(err)
		}
		if string(r.data["i"]) != string(in["i"]) || string(r.data["pad"]) != string(in["pad"]) || len(r.data["prediction"]) == 0 {
			t.Errorf("result %s: data %s, want the inputs %s echoed with a prediction", req.id, r.event.Data, want.Data.Inputs)
		}
	}
}

// fakeScore answers as the scorer does, without a model: the inputs with a prediction
// appended. Model "nope" is not found; a string "age" is refused.
func fakeScore(_ context.Context, reqs []ScoreRequest) ([]ScoreResult, error) {
	out := make([]ScoreResult, len(reqs))
	for i, r := range reqs {
		switch {
		case r.Model == "nope":
			out[i].Err = pulse.Errorf(pulse.ENOTFOUND, "model %q not found", r.Model)
		case bytes.Contains(r.Inputs, []byte(`"age":"`)):
			out[i].Err = pulse.FieldErrorf(pulse.EUNPROCESSABLE, "age", `field "age": got a string, want a number`)
		default:
			body := bytes.TrimSpace(r.Inputs[:len(r.Inputs)-1])
			if len(body) > 1 {
				body = append(body, ',')
			}
			out[i].Body = fmt.Appendf(body, `"prediction":{"label":1,"probability":0.75,"threshold":0.5},"model":{"name":%q,"version":1},"prediction_id":"%s","scored_at":"2026-11-25T18:00:00Z"}`,
				r.Model, uuid.NewString())
		}
	}
	return out, nil
}

func (e *env) scoreConsumer(cfg ScoreConsumerConfig) *ScoreConsumer {
	e.t.Helper()
	if cfg.ClientOpts == nil {
		cfg.ClientOpts = e.opts
	}
	if cfg.Group == "" {
		cfg.Group = e.topics.Prefix + "score"
	}
	cfg.Requests, cfg.Results = e.topics.Name(TopicScoreRequests), e.topics.Name(TopicScoreResults)
	if cfg.Score == nil {
		cfg.Score = fakeScore
	}
	c, err := NewScoreConsumer(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// request is a score request as sent: its record key and event.
type request struct {
	key, id, value string
}

func scoreRequest(key, id, data string) request {
	return request{key: key, id: id, value: scoreEvent(id, data)}
}

func (e *env) produceRequests(rs ...request) {
	e.t.Helper()
	var recs []*kgo.Record
	for _, r := range rs {
		recs = append(recs, &kgo.Record{Topic: e.topics.Name(TopicScoreRequests), Key: []byte(r.key), Value: []byte(r.value)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// result is a score result as received.
type result struct {
	key, correlation string
	event            Event
	data             map[string]json.RawMessage
	requestID        string
}

// results reads the score results until every one of ids has one, and returns them all.
func (e *env) results(ids []string) []result {
	e.t.Helper()
	cl, err := kgo.NewClient(append(slices.Clone(e.opts), kgo.ConsumeTopics(e.topics.Name(TopicScoreResults)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []result
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("%d requests without a result after a minute, e.g. %v", len(want), want)
		}
		for _, r := range fs.Records() {
			ev, err := Parse(r.Value)
			if err != nil {
				e.t.Fatalf("result %s is not a valid score.completed event: %v", r.Value, err)
			}
			res := result{key: string(r.Key), event: ev}
			if err := json.Unmarshal(ev.Data, &res.data); err != nil {
				e.t.Fatal(err)
			}
			_ = json.Unmarshal(res.data["request_id"], &res.requestID)
			for _, h := range r.Headers {
				if h.Key == HeaderCorrelationID {
					res.correlation = string(h.Value)
				}
			}
			delete(want, res.requestID)
			out = append(out, res)
		}
	}
	return out
}

func testScoreAnswers(t *testing.T, e *env) {
	var good, all []request
	for i := range 20 {
		r := scoreRequest(fmt.Sprintf("dev-%d", i%4), fmt.Sprintf("ok-%02d", i),
			fmt.Sprintf(`{"model":"m","correlation_id":"c-%02d","inputs":{"i":%d,"age":%d}}`, i, i, 40+i))
		good = append(good, r)
	}
	unknown := scoreRequest("dev-9", "unknown", `{"model":"nope","inputs":{}}`)
	badAge := scoreRequest("dev-9", "bad-age", `{"model":"m","correlation_id":"c-bad","inputs":{"age":"old"}}`)
	all = append(append(all, good[:10]...), unknown, badAge)
	malformed := []request{
		{key: "dev-9", id: "", value: "not a cloud event"},
		scoreRequest("dev-9", "no-inputs", `{"model":"m"}`),
		{key: "dev-9", value: strings.Replace(scoreEvent("other", sampleData[TypeFeedback]), "score.requested", "feedback", 1)},
	}
	all = append(append(all, malformed...), good[10:]...)
	e.produceRequests(all...)

	reg := prometheus.NewRegistry()
	c := e.scoreConsumer(ScoreConsumerConfig{Registerer: reg})
	var ids []string
	for _, r := range append(good, unknown, badAge) {
		ids = append(ids, r.id)
	}
	got := e.results(ids)
	eventually(t, "the batch's offsets committed", func() bool {
		return e.committed(c.cfg.Group, c.cfg.Requests) == int64(len(all))
	})
	stop(t, c)
	if len(got) != len(ids) {
		t.Fatalf("got %d results, want %d (one per request)", len(got), len(ids))
	}
	byID := map[string]result{}
	lastOfKey := map[string]string{}
	for _, r := range got {
		byID[r.requestID] = r
		if r.event.Type != TypeScoreCompleted || r.event.Subject != "patient-17" || r.event.Source != "/pulse/serve" {
			t.Errorf("result %s: envelope %+v", r.requestID, r.event)
		}
		if strings.HasPrefix(r.requestID, "ok-") {
			// Results of one key come in the order of its requests.
			if prev := lastOfKey[r.key]; prev > r.requestID {
				t.Errorf("key %s: result %s after %s", r.key, r.requestID, prev)
			}
			lastOfKey[r.key] = r.requestID
		}
	}
	for i, req := range good {
		r := byID[req.id]
		wantCorr := fmt.Sprintf("c-%02d", i)
		if r.key != req.key || r.correlation != wantCorr || string(r.data["correlation_id"]) != `"`+wantCorr+`"` {
			t.Errorf("result %s: key %q correlation header %q data %s, want %q and %q", req.id, r.key, r.correlation, r.data["correlation_id"], req.key, wantCorr)
		}
		if string(r.data["i"]) != fmt.Sprint(i) || string(r.data["age"]) != fmt.Sprint(40+i) || len(r.data["prediction"]) == 0 {
			t.Errorf("result %s: data %s, want the inputs echoed with a prediction", req.id, r.event.Data)
		}
	}
	type problem struct {
		Type, Title, Detail, Code, Field string
		Status                           int
	}
	for id, want := range map[string]problem{
		"unknown": {Type: "urn:pulse:problem:not_found", Title: "Not Found", Status: 404, Detail: `model "nope" not found`, Code: "not_found"},
		"bad-age": {Type: "urn:pulse:problem:unprocessable", Title: "Unprocessable Entity", Status: 422, Detail: `field "age": got a string, want a number`, Code: "unprocessable", Field: "age"},
	} {
		var p problem
		if err := json.Unmarshal(byID[id].data["error"], &p); err != nil || p != want {
			t.Errorf("result %s: error %s, want %+v", id, byID[id].data["error"], want)
		}
	}
	if r := byID["bad-age"]; r.correlation != "c-bad" || r.key != "dev-9" {
		t.Errorf("refused result: key %q correlation %q", r.key, r.correlation)
	}
	dls := e.readAll(DLQTopic(c.cfg.Requests), len(malformed))
	wantFields := []string{"", "data", "type"}
	for i, r := range dls {
		var dl DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Reason != ReasonMalformed || dl.Field != wantFields[i] || dl.Value != malformed[i].value || dl.Group != c.cfg.Group {
			t.Errorf("dead letter %d: got %+v, want reason %s field %q", i, dl, ReasonMalformed, wantFields[i])
		}
	}
	for _, tc := range []struct {
		model, status string
		want          float64
	}{{"m", "ok", 20}, {"m", "unprocessable", 1}, {"", "not_found", 1}} {
		if got := testutil.ToFloat64(c.sm.results.WithLabelValues(tc.model, tc.status)); got != tc.want {
			t.Errorf("score_results_total{model=%q,status=%q}: got %v, want %v", tc.model, tc.status, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(c.m.deadLettered.WithLabelValues(c.cfg.Requests, c.cfg.Group, ReasonMalformed)); got != 3 {
		t.Errorf("dead_lettered_total: got %v, want 3", got)
	}
}

func testScoreRetries(t *testing.T, e *env) {
	var calls atomic.Int64
	var flakyScored atomic.Int64
	score := func(ctx context.Context, reqs []ScoreRequest) ([]ScoreResult, error) {
		if calls.Add(1) == 1 {
			return nil, pulse.Errorf(pulse.EUNAVAILABLE, "the scored records could not be stored durably")
		}
		out, _ := fakeScore(ctx, reqs)
		for i, r := range reqs {
			if r.Model == "flaky" {
				flakyScored.Add(1)
				out[i] = ScoreResult{Err: pulse.Errorf(pulse.EINTERNAL, "model flaky version 1 produced a non-finite probability")}
			}
		}
		return out, nil
	}
	var reqs []request
	var ids []string
	for i := range 5 {
		model := "m"
		if i == 2 {
			model = "flaky"
		}
		r := scoreRequest("k", fmt.Sprintf("r-%d", i), `{"model":"`+model+`","inputs":{"age":50}}`)
		reqs, ids = append(reqs, r), append(ids, r.id)
	}
	e.produceRequests(reqs...)
	c := e.scoreConsumer(ScoreConsumerConfig{Score: score, MaxAttempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	got := e.results(ids)
	stop(t, c)
	if len(got) != 5 {
		t.Fatalf("got %d results, want 5", len(got))
	}
	for _, r := range got {
		_, refused := r.data["error"]
		if refused != (r.requestID == "r-2") {
			t.Errorf("result %s: %s", r.requestID, r.event.Data)
		}
	}
	for _, r := range got {
		if r.requestID == "r-2" && !bytes.Contains(r.data["error"], []byte(`"code":"internal","field"`)) && !bytes.Contains(r.data["error"], []byte(`"status":500`)) {
			t.Errorf("flaky result: %s, want an internal error", r.data["error"])
		}
	}
	// Call 1 fails as a whole; calls 2 and 3 retry the flaky request, then its error is final.
	if calls.Load() != 3 || flakyScored.Load() != 2 {
		t.Errorf("score calls %d, flaky request scored %d times; want 3 and 2", calls.Load(), flakyScored.Load())
	}
}

func testScoreCrash(t *testing.T, e *env) {
	const n = 10
	var reqs []request
	var ids []string
	for i := range n {
		r := scoreRequest("one-key", fmt.Sprintf("r-%d", i), fmt.Sprintf(`{"model":"m","inputs":{"i":%d}}`, i))
		reqs, ids = append(reqs, r), append(ids, r.id)
	}
	e.produceRequests(reqs...)
	group := e.topics.Prefix + "crash"
	var firstBatch atomic.Int64
	var once sync.Once
	started := make(chan *ScoreConsumer, 1)
	first := e.scoreConsumer(ScoreConsumerConfig{Group: group, MaxBatch: 4, Score: func(ctx context.Context, reqs []ScoreRequest) ([]ScoreResult, error) {
		firstBatch.CompareAndSwap(0, int64(len(reqs)))
		return fakeScore(ctx, reqs)
	}, afterProduce: func() {
		// The process dies after the results were acknowledged, before the commit.
		once.Do(func() { (<-started).crash() })
	}})
	started <- first
	<-first.done
	if got := e.committed(group, first.cfg.Requests); got > 0 {
		t.Fatalf("committed offset %d after the crash, want none", got)
	}
	k := int(firstBatch.Load())
	if k < 1 || k > 4 {
		t.Fatalf("first batch: %d requests, want 1 to 4", k)
	}
	second := e.scoreConsumer(ScoreConsumerConfig{Group: group})
	e.results(ids)
	eventually(t, "all offsets committed", func() bool { return e.committed(group, second.cfg.Requests) == n })
	stop(t, second)
	// Every result produced, read once everything is committed.
	count := map[string]int{}
	predictions := map[string]bool{}
	for _, r := range e.results(ids) {
		count[r.requestID]++
		predictions[string(r.data["prediction_id"])] = true
	}
	total := 0
	for i, id := range ids {
		total += count[id]
		// The first batch was answered before the crash and again after the redelivery; the
		// next one may have been too (its results were on their way when the process died).
		if count[id] < 1 || count[id] > 2 || i < k && count[id] != 2 {
			t.Errorf("request %s: %d results (first batch of %d)", id, count[id], k)
		}
	}
	if len(predictions) != total {
		t.Errorf("got %d distinct prediction ids for %d results, want one per scoring", len(predictions), total)
	}
}

func testScoreTwoConsumers(t *testing.T, e *env) {
	group := e.topics.Prefix + "pair"
	var mu sync.Mutex
	assigned := map[int]int{} // consumer -> partitions of the requests topic
	requests := e.topics.Name(TopicScoreRequests)
	opts := func(i int) []kgo.Opt {
		track := func(delta int) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				assigned[i] += delta * len(m[requests])
				mu.Unlock()
			}
		}
		return append(slices.Clone(e.opts), kgo.OnPartitionsAssigned(track(1)), kgo.OnPartitionsRevoked(track(-1)), kgo.OnPartitionsLost(track(-1)))
	}
	var scored [2]atomic.Int64
	var cs []*ScoreConsumer
	for i := range 2 {
		cs = append(cs, e.scoreConsumer(ScoreConsumerConfig{Group: group, ClientOpts: opts(i), Score: func(ctx context.Context, reqs []ScoreRequest) ([]ScoreResult, error) {
			scored[i].Add(int64(len(reqs)))
			return fakeScore(ctx, reqs)
		}}))
	}
	eventually(t, "both consumers own partitions", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return assigned[0] > 0 && assigned[1] > 0 && assigned[0]+assigned[1] == 3
	})
	var reqs []request
	var ids []string
	for i := range 90 {
		r := scoreRequest(fmt.Sprintf("device-%d", i), fmt.Sprintf("r-%d", i), `{"model":"m","inputs":{}}`)
		reqs, ids = append(reqs, r), append(ids, r.id)
	}
	e.produceRequests(reqs...)
	got := e.results(ids)
	for _, c := range cs {
		stop(t, c)
	}
	if len(got) < len(ids) {
		t.Fatalf("got %d results for %d requests", len(got), len(ids))
	}
	if scored[0].Load() == 0 || scored[1].Load() == 0 || scored[0].Load()+scored[1].Load() < int64(len(ids)) {
		t.Errorf("scored by each consumer: %d and %d, want both some and %d in all", scored[0].Load(), scored[1].Load(), len(ids))
	}
}

func TestScoreConsumerConfig(t *testing.T) {
	opts, err := kafka.Config{Brokers: []string{"127.0.0.1:1"}}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	base := ScoreConsumerConfig{ClientOpts: opts, Group: "g", Requests: "r", Results: "s", Score: fakeScore}
	for _, tc := range []struct {
		name  string
		edit  func(*ScoreConsumerConfig)
		field string
	}{
		{"no group", func(c *ScoreConsumerConfig) { c.Group = "" }, "group"},
		{"no results topic", func(c *ScoreConsumerConfig) { c.Results = "" }, "topic"},
		{"no score function", func(c *ScoreConsumerConfig) { c.Score = nil }, "score"},
		{"negative batch", func(c *ScoreConsumerConfig) { c.MaxBatch = -1 }, "max_batch"},
		{"backoff above max", func(c *ScoreConsumerConfig) { c.Backoff, c.MaxBackoff = time.Second, time.Millisecond }, "backoff"},
	} {
		cfg := base
		tc.edit(&cfg)
		_, err := NewScoreConsumer(cfg)
		assertField(t, err, tc.field, "score consumer")
	}
	c, err := NewScoreConsumer(base)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.MaxBatch != 2000 || c.cfg.MaxAttempts != 5 || c.cfg.Source != "/pulse/serve" {
		t.Errorf("defaults: got %+v", c.cfg)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("stop before start: %v", err)
	}
}
