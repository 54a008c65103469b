package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/kafka"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// The same suite runs against the in-process kfake broker and a real Apache Kafka. The real
// broker is PULSE_TEST_KAFKA_BROKERS when set; otherwise the first test that needs it starts
// one with scripts/kafka (Java and Maven Central needed) and TestMain stops it.

var real struct {
	once    sync.Once
	brokers string
	dir     string
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if real.dir != "" {
		stop := exec.Command(filepath.Join("..", "..", "scripts", "kafka"), "stop", real.dir)
		stop.Stderr = os.Stderr
		if err := stop.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the test Kafka broker: %v\n", err)
		}
		os.RemoveAll(real.dir)
	}
	os.Exit(code)
}

func realBrokers(t testing.TB) string {
	t.Helper()
	real.once.Do(func() {
		if b := os.Getenv("PULSE_TEST_KAFKA_BROKERS"); b != "" {
			real.brokers = b
			return
		}
		dir, err := os.MkdirTemp("", "pulse-kafka-")
		if err != nil {
			real.err = err
			return
		}
		real.dir = dir
		var out, stderr bytes.Buffer
		cmd := exec.Command(filepath.Join("..", "..", "scripts", "kafka"), "start", dir)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			real.err = fmt.Errorf("scripts/kafka start: %v: %s", err, stderr.String())
			return
		}
		_, b, ok := strings.Cut(strings.TrimSpace(out.String()), "PULSE_TEST_KAFKA_BROKERS=")
		if !ok {
			real.err = fmt.Errorf("scripts/kafka start printed %q, want PULSE_TEST_KAFKA_BROKERS=host:port", out.String())
			return
		}
		real.brokers = b
	})
	if real.err != nil {
		t.Fatalf("real Kafka broker unavailable (set PULSE_TEST_KAFKA_BROKERS or make scripts/kafka work): %v", real.err)
	}
	return real.brokers
}

// embeddedBrokers starts kfake for one test; without fsync (tests need no crash safety).
func embeddedBrokers(t testing.TB) string {
	t.Helper()
	return startEmbedded(t, true)
}

func startEmbedded(t testing.TB, noSync bool) string {
	t.Helper()
	e, err := kafka.StartEmbedded(context.Background(), kafka.EmbeddedConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), NoSync: noSync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Addr()
}

// env is one test's view of a broker: client options, a unique topic prefix and a client.
type env struct {
	t       testing.TB
	opts    []kgo.Opt
	topics  Topics
	client  *kgo.Client
	brokers string
}

func newEnv(t testing.TB, brokers string) *env {
	t.Helper()
	opts, err := kafka.Config{Brokers: []string{brokers}}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, kgo.AllowAutoTopicCreation(), kgo.FetchMaxWait(500*time.Millisecond))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e := &env{t: t, opts: opts, client: cl, brokers: brokers, topics: Topics{Prefix: "t" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + "."}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cl, e.topics.All(), 3); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) consumer(cfg ConsumerConfig) *Consumer {
	e.t.Helper()
	cfg.ClientOpts = e.opts
	if cfg.Group == "" {
		cfg.Group = e.topics.Prefix + "group"
	}
	c, err := NewConsumer(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// stop stops a consumer (Consumer or ScoreConsumer) gracefully, failing t on error.
func stop(t testing.TB, c interface{ Stop(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func (e *env) produceRaw(topic string, values ...string) {
	e.t.Helper()
	var rs []*kgo.Record
	for _, v := range values {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.client.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// readAll reads n records of topic from the start with a fresh, group-less client.
func (e *env) readAll(topic string, n int) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(append(slices.Clone(e.opts), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read %d of %d records from %s before the timeout", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// committed returns the sum of the group's committed offsets over topic's partitions (-1
// when none is committed); with one partition (or one key) it is that partition's offset.
func (e *env) committed(group, topic string) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(e.client).FetchOffsets(ctx, group)
	if err != nil {
		e.t.Fatal(err)
	}
	sum := int64(-1)
	for _, o := range offs[topic] {
		if o.Err == nil && o.At >= 0 {
			sum = max(sum, 0) + o.At
		}
	}
	return sum
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustEvent(t testing.TB, typ, subject, data string) Event {
	t.Helper()
	e, err := New("/pulse/test", typ, subject, json.RawMessage(data))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func feedback(t testing.TB, i int) Event {
	return mustEvent(t, TypeFeedback, "", fmt.Sprintf(`{"prediction_id":"p-%d","label":1,"observed_at":"2026-11-30T09:00:00Z"}`, i))
}

// collector is a Handler recording events in order.
type collector struct {
	mu     sync.Mutex
	events []Event
}

func (c *collector) handle(_ context.Context, e Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	return nil
}

func (c *collector) snapshot() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func ids(es []Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestEmbeddedBroker(t *testing.T) { brokerSuite(t, embeddedBrokers) }

func TestRealKafka(t *testing.T) { brokerSuite(t, func(t testing.TB) string { return realBrokers(t) }) }

func brokerSuite(t *testing.T, brokers func(testing.TB) string) {
	b := brokers(t)
	t.Run("RoundTripEveryType", func(t *testing.T) { testRoundTrip(t, newEnv(t, b)) })
	t.Run("DeadLetters", func(t *testing.T) { testDeadLetters(t, newEnv(t, b)) })
	t.Run("RetryThenSucceed", func(t *testing.T) { testRetry(t, newEnv(t, b)) })
	t.Run("CrashRedeliversIdempotently", func(t *testing.T) { testCrash(t, newEnv(t, b)) })
	t.Run("GracefulStopCommits", func(t *testing.T) { testGracefulStop(t, newEnv(t, b)) })
	t.Run("KcatProducesConsumerSees", func(t *testing.T) { testKcat(t, newEnv(t, b)) })
	t.Run("BatchHandler", func(t *testing.T) { testBatch(t, newEnv(t, b), false) })
	t.Run("BatchHandlerSeenMany", func(t *testing.T) { testBatch(t, newEnv(t, b), true) })
	t.Run("BatchStopMarksApplied", func(t *testing.T) { testBatchStop(t, newEnv(t, b)) })
}

// testBatchStop: when the consumer stops while an earlier event of a batch waits to be
// retried, the later events the batch applied are marked seen (so that their redelivery is
// not applied again) and nothing past the waiting one is committed.
func testBatchStop(t *testing.T, e *env) {
	ctx := context.Background()
	topic := e.topics.Name(TopicFeedback)
	first, second := feedback(t, 1), feedback(t, 2)
	marshal := func(ev Event) string { b, _ := ev.Marshal(); return string(b) }
	e.produceRaw(topic, marshal(first), marshal(second))
	called := make(chan struct{}, 1)
	batch := func(_ context.Context, es []Event) []error {
		errs := make([]error, len(es))
		for i, ev := range es {
			if ev.ID == first.ID {
				errs[i] = errors.New("store briefly unavailable")
			}
		}
		called <- struct{}{}
		return errs
	}
	seen := NewMemorySeen(10)
	c := e.consumer(ConsumerConfig{Topic: topic, Types: []string{TypeFeedback}, Batch: batch, Seen: seen,
		Handler: func(context.Context, Event) error { return nil }, Backoff: time.Hour, MaxBackoff: time.Hour})
	select {
	case <-called:
	case <-time.After(60 * time.Second):
		t.Fatal("the batch handler was not called")
	}
	time.Sleep(50 * time.Millisecond) // the consumer now waits to retry the first event
	stop(t, c)
	if ok, _ := seen.Seen(ctx, second.ID); !ok {
		t.Errorf("the second event was applied by the batch but is not marked seen")
	}
	if ok, _ := seen.Seen(ctx, first.ID); ok {
		t.Errorf("the first event, never applied, is marked seen")
	}
	if got := e.committed(c.cfg.Group, topic); got > 0 {
		t.Errorf("committed offset %d, want nothing committed (the first event is unfinished)", got)
	}
}

// testBatch: with a batch handler the valid events of a poll arrive in one call, in order
// (malformed ones dead-lettered around them, those Seen knows skipped, a repeat within the
// poll handled alone after the first, as a duplicate); an event it refuses is dead-lettered,
// one it failed is handled again alone through Handler; the events handled are marked seen;
// every record is committed.
//
// With many, the filter offers SeenMany, which the consumer then uses for the batch.
func testBatch(t *testing.T, e *env, many bool) {
	ctx := context.Background()
	topic := e.topics.Name(TopicFeedback)
	var evs []Event
	var values []string
	for i := range 40 {
		evs = append(evs, feedback(t, i))
		b, _ := evs[i].Marshal()
		values = append(values, string(b))
		switch i {
		case 5:
			values = append(values, `{"specversion":"1.0", not json`)
		case 20:
			values = append(values, string(b)) // the producer sent it twice
		}
	}
	mem := NewMemorySeen(1000)
	if err := mem.Mark(ctx, evs[3].ID); err != nil {
		t.Fatal(err)
	}
	var seen Seen = mem
	ms := &manySeen{MemorySeen: mem}
	if many {
		seen = ms
	}
	e.produceRaw(topic, values...) // one key: one partition, in order
	refused, failed := evs[7].ID, evs[11].ID
	var mu sync.Mutex
	var calls [][]string
	var alone []string
	batch := func(_ context.Context, es []Event) []error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, ids(es))
		errs := make([]error, len(es))
		for i, ev := range es {
			switch ev.ID {
			case refused:
				errs[i] = pulse.Errorf(pulse.EUNPROCESSABLE, "unknown prediction")
			case failed:
				errs[i] = errors.New("store briefly unavailable")
			}
		}
		return errs
	}
	handler := func(_ context.Context, ev Event) error {
		mu.Lock()
		defer mu.Unlock()
		alone = append(alone, ev.ID)
		return nil
	}
	reg := prometheus.NewRegistry()
	c := e.consumer(ConsumerConfig{Topic: topic, Types: []string{TypeFeedback}, Handler: handler, Batch: batch, Seen: seen, Registerer: reg, Backoff: time.Millisecond})
	eventually(t, "every event handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, call := range calls {
			n += len(call)
		}
		return n == len(evs)-1 && len(alone) == 1
	})
	stop(t, c)
	if got := e.committed(c.cfg.Group, topic); got != int64(len(values)) {
		t.Errorf("committed offset: got %d, want %d (every record)", got, len(values))
	}
	mu.Lock()
	defer mu.Unlock()
	var all []string
	for _, call := range calls {
		all = append(all, call...)
	}
	want := ids(slices.Delete(slices.Clone(evs), 3, 4))
	if !slices.Equal(all, want) {
		t.Errorf("the batch handler got %v, want %v: every valid event not seen before, once, in order", all, want)
	}
	if len(calls) >= len(evs) {
		t.Errorf("the batch handler was called %d times for %d events: not in batches", len(calls), len(evs))
	}
	if !slices.Equal(alone, []string{failed}) {
		t.Errorf("handled alone: got %v, want only the failed event %s", alone, failed)
	}
	dls := e.readAll(DLQTopic(topic), 2)
	var reasons []string
	for _, r := range dls {
		var dl DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, dl.Reason+":"+dl.EventID)
	}
	if want := []string{ReasonMalformed + ":", ReasonRejected + ":" + refused}; !slices.Equal(reasons, want) {
		t.Errorf("dead letters: got %v, want %v", reasons, want)
	}
	if got := testutil.ToFloat64(c.m.handled.WithLabelValues(topic, c.cfg.Group)); got != 38 {
		t.Errorf("handled_total: got %v, want 38", got)
	}
	if got := testutil.ToFloat64(c.m.duplicates.WithLabelValues(topic, c.cfg.Group)); got != 2 {
		t.Errorf("duplicates_total: got %v, want 2 (the event seen before, the repeat)", got)
	}
	for _, ev := range []Event{evs[0], evs[20], evs[39], evs[11]} {
		if ok, _ := seen.Seen(ctx, ev.ID); !ok {
			t.Errorf("event %s was handled but is not marked seen", ev.ID)
		}
	}
	if ok, _ := seen.Seen(ctx, refused); ok {
		t.Errorf("the refused event is marked seen")
	}
	if many && (ms.seenCalls.Load() == 0 || ms.markCalls.Load() == 0) {
		t.Errorf("SeenMany called %d times, MarkMany %d: want the batch to use them", ms.seenCalls.Load(), ms.markCalls.Load())
	}
}

// manySeen is a MemorySeen that offers SeenMany and counts its calls.
type manySeen struct {
	*MemorySeen
	seenCalls, markCalls atomic.Int64
}

func (m *manySeen) SeenMany(ctx context.Context, ids []string) (map[string]bool, error) {
	m.seenCalls.Add(1)
	out := map[string]bool{}
	for _, id := range ids {
		if ok, _ := m.Seen(ctx, id); ok {
			out[id] = true
		}
	}
	return out, nil
}

func (m *manySeen) MarkMany(ctx context.Context, ids []string) error {
	m.markCalls.Add(1)
	for _, id := range ids {
		if err := m.Mark(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func testRoundTrip(t *testing.T, e *env) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	pub := NewPublisher(e.client, PublisherConfig{Registerer: reg})
	want := map[string]Event{}
	for _, typ := range Types() {
		ev := mustEvent(t, typ, "heart-alert", sampleData[typ])
		want[ev.ID] = ev
		if typ == TypeModelAliasMoved {
			pub.PublishAsync(ctx, e.topics.For(typ), ev) // the fire-and-forget path
			continue
		}
		if err := pub.Publish(ctx, e.topics.For(typ), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(pub.m.published.WithLabelValues(e.topics.Name(TopicModelEvents))); got != 6 {
		t.Fatalf("published to model.events: got %v, want 6", got)
	}
	var col collector
	var cs []*Consumer
	for _, base := range BaseTopics() {
		cs = append(cs, e.consumer(ConsumerConfig{Topic: e.topics.Name(base), Group: e.topics.Name(base) + ".g", Handler: col.handle, Registerer: reg}))
	}
	eventually(t, "every type consumed", func() bool { return len(col.snapshot()) >= len(want) })
	for _, c := range cs {
		stop(t, c)
	}
	got := col.snapshot()
	if len(got) != len(want) {
		t.Fatalf("consumed %d events, want %d", len(got), len(want))
	}
	for _, g := range got {
		w, ok := want[g.ID]
		if !ok {
			t.Fatalf("consumed unexpected event %s", g.ID)
		}
		if g.Type != w.Type || g.Subject != w.Subject || g.Source != w.Source || !g.Time.Equal(w.Time) || string(g.Data) != string(w.Data) {
			t.Fatalf("consumed %+v, want %+v", g, w)
		}
	}
}

func testDeadLetters(t *testing.T, e *env) {
	topic := e.topics.Name(TopicFeedback)
	good := []Event{feedback(t, 1), feedback(t, 2), feedback(t, 3)}
	marshal := func(ev Event) string { b, _ := ev.Marshal(); return string(b) }
	wrongType := mustEvent(t, TypeModelAliasMoved, "", sampleData[TypeModelAliasMoved])
	schemaBad := strings.Replace(marshal(feedback(t, 9)), `"observed_at":"2026-11-30T09:00:00Z"`, `"observed_at":"soon"`, 1)
	// One partition key: all in order on one partition.
	e.produceRaw(topic,
		marshal(good[0]),
		`{"specversion":"1.0", not json`,
		marshal(good[1]),
		schemaBad,
		`{"specversion":"1.0","id":"x","source":"/x","type":"com.cloudmedical.pulse.feedback"}`,
		marshal(wrongType),
		marshal(good[2]),
	)
	reg := prometheus.NewRegistry()
	var col collector
	c := e.consumer(ConsumerConfig{Topic: topic, Types: []string{TypeFeedback}, Handler: col.handle, Registerer: reg})
	eventually(t, "the good events", func() bool { return len(col.snapshot()) >= 3 })
	stop(t, c)
	if got, want := ids(col.snapshot()), ids(good); !slices.Equal(got, want) {
		t.Fatalf("handled %v, want %v in order", got, want)
	}
	dls := e.readAll(DLQTopic(topic), 4)
	wantFields := []string{"", "data/observed_at", "data", "type"}
	wantMention := []string{"not a JSON object", "date-time", "required", "com.cloudmedical.pulse.model.alias_moved"}
	for i, r := range dls {
		var dl DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Reason != ReasonMalformed || dl.Field != wantFields[i] || !strings.Contains(dl.Error, wantMention[i]) {
			t.Fatalf("dead letter %d: got reason %q field %q error %q, want %q %q mentioning %q", i, dl.Reason, dl.Field, dl.Error, ReasonMalformed, wantFields[i], wantMention[i])
		}
		if dl.Topic != topic || dl.Value == "" || dl.Group != c.cfg.Group {
			t.Fatalf("dead letter %d: incomplete %+v", i, dl)
		}
		var reason string
		for _, h := range r.Headers {
			if h.Key == HeaderDLQReason {
				reason = string(h.Value)
			}
		}
		if reason != ReasonMalformed {
			t.Fatalf("dead letter %d: header %s = %q, want %q", i, HeaderDLQReason, reason, ReasonMalformed)
		}
	}
	if got := testutil.ToFloat64(c.m.deadLettered.WithLabelValues(topic, c.cfg.Group, ReasonMalformed)); got != 4 {
		t.Fatalf("dead_lettered_total: got %v, want 4", got)
	}
	if got := testutil.ToFloat64(c.m.handled.WithLabelValues(topic, c.cfg.Group)); got != 3 {
		t.Fatalf("handled_total: got %v, want 3", got)
	}
}

func testRetry(t *testing.T, e *env) {
	topic := e.topics.Name(TopicFeedback)
	flaky, always, refused, after := feedback(t, 1), feedback(t, 2), feedback(t, 3), feedback(t, 4)
	marshal := func(ev Event) string { b, _ := ev.Marshal(); return string(b) }
	e.produceRaw(topic, marshal(flaky), marshal(always), marshal(refused), marshal(after))
	var mu sync.Mutex
	attempts := map[string]int{}
	var col collector
	handler := func(ctx context.Context, ev Event) error {
		mu.Lock()
		attempts[ev.ID]++
		n := attempts[ev.ID]
		mu.Unlock()
		switch ev.ID {
		case flaky.ID:
			if n == 1 {
				panic("handler bug on first attempt")
			}
			if n < 3 {
				return errors.New("store briefly unavailable")
			}
		case always.ID:
			return errors.New("store down")
		case refused.ID:
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "prediction_id", "prediction %q not found", "p-3")
		}
		return col.handle(ctx, ev)
	}
	c := e.consumer(ConsumerConfig{Topic: topic, Handler: handler, MaxAttempts: 4, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
	eventually(t, "the last event", func() bool { return len(col.snapshot()) >= 2 })
	stop(t, c)
	if got, want := ids(col.snapshot()), []string{flaky.ID, after.ID}; !slices.Equal(got, want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts[flaky.ID] != 3 || attempts[always.ID] != 4 || attempts[refused.ID] != 1 {
		t.Fatalf("attempts flaky %d always %d refused %d, want 3, 4, 1", attempts[flaky.ID], attempts[always.ID], attempts[refused.ID])
	}
	dls := e.readAll(DLQTopic(topic), 2)
	var got []DeadLetter
	for _, r := range dls {
		var dl DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		got = append(got, dl)
	}
	if got[0].EventID != always.ID || got[0].Reason != ReasonHandler || got[0].Attempts != 4 || got[0].Error != "store down" {
		t.Fatalf("dead letter 0: %+v, want the always-failing event after 4 attempts", got[0])
	}
	if got[1].EventID != refused.ID || got[1].Reason != ReasonRejected || got[1].Attempts != 1 || got[1].Field != "prediction_id" {
		t.Fatalf("dead letter 1: %+v, want the refused event after 1 attempt", got[1])
	}
	if n := e.committed(c.cfg.Group, topic); n != 4 {
		t.Fatalf("committed offset %d, want 4", n)
	}
}

// countingSeen wraps MemorySeen and counts the duplicates it reports.
type countingSeen struct {
	*MemorySeen
	dups atomic.Int64
}

func (s *countingSeen) Seen(ctx context.Context, id string) (bool, error) {
	ok, err := s.MemorySeen.Seen(ctx, id)
	if ok {
		s.dups.Add(1)
	}
	return ok, err
}

func testCrash(t *testing.T, e *env) {
	ctx := context.Background()
	topic := e.topics.Prefix + "crash"
	if err := kafka.EnsureTopics(ctx, e.client, []string{topic, DLQTopic(topic)}, 1); err != nil {
		t.Fatal(err)
	}
	const n = 10
	var all []Event
	pub := NewPublisher(e.client, PublisherConfig{})
	for i := range n {
		ev := feedback(t, i)
		all = append(all, ev)
		if err := pub.Publish(ctx, topic, ev); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	effects := map[string]int{}
	blocked := make(chan struct{})
	seen := &countingSeen{MemorySeen: NewMemorySeen(0)}
	group := e.topics.Prefix + "crash-group"
	crashAt := all[5].ID
	first := e.consumer(ConsumerConfig{Topic: topic, Group: group, Seen: seen, MaxBatch: n, Handler: func(ctx context.Context, ev Event) error {
		if ev.ID == crashAt {
			close(blocked)
			<-ctx.Done() // the process dies while applying this event
			return ctx.Err()
		}
		mu.Lock()
		effects[ev.ID]++
		mu.Unlock()
		return nil
	}})
	<-blocked
	first.abort()
	committed := e.committed(group, topic)
	if committed > 5 {
		t.Fatalf("after the crash the committed offset is %d, want at most 5 (event 5 was never handled)", committed)
	}
	var col collector
	second := e.consumer(ConsumerConfig{Topic: topic, Group: group, Seen: seen, Handler: func(ctx context.Context, ev Event) error {
		mu.Lock()
		effects[ev.ID]++
		mu.Unlock()
		return col.handle(ctx, ev)
	}})
	eventually(t, "the rest after restart", func() bool { return len(col.snapshot()) >= n-5 })
	stop(t, second)
	mu.Lock()
	defer mu.Unlock()
	for i, ev := range all {
		if effects[ev.ID] != 1 {
			t.Fatalf("event %d applied %d times, want exactly once", i, effects[ev.ID])
		}
	}
	if got, want := seen.dups.Load(), 5-max(committed, 0); got != want {
		t.Fatalf("redelivered duplicates filtered: got %d, want %d (committed offset %d)", got, want, committed)
	}
	if got := e.committed(group, topic); got != n {
		t.Fatalf("final committed offset %d, want %d", got, n)
	}
}

func testGracefulStop(t *testing.T, e *env) {
	ctx := context.Background()
	topic := e.topics.Prefix + "stop"
	if err := kafka.EnsureTopics(ctx, e.client, []string{topic}, 1); err != nil {
		t.Fatal(err)
	}
	pub := NewPublisher(e.client, PublisherConfig{})
	for i := range 3 {
		if err := pub.Publish(ctx, topic, feedback(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	var col collector
	group := e.topics.Prefix + "stop-group"
	c := e.consumer(ConsumerConfig{Topic: topic, Group: group, Handler: func(ctx context.Context, ev Event) error {
		started <- struct{}{}
		<-release // in flight when Stop is called
		return col.handle(ctx, ev)
	}})
	<-started
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- c.Stop(sctx)
	}()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	handled := len(col.snapshot())
	if handled == 0 {
		t.Fatal("the in-flight event was not finished")
	}
	if got := e.committed(group, topic); got != int64(handled) {
		t.Fatalf("committed offset %d after a graceful stop, want %d (every handled event)", got, handled)
	}
}

func testKcat(t *testing.T, e *env) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is required for this test: apt-get install -y kcat")
	}
	topic := e.topics.Name(TopicIngest)
	ev := mustEvent(t, TypeIngestRecord, "heart-cleveland", sampleData[TypeIngestRecord])
	b, _ := ev.Marshal()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-b", e.brokers, "-P", "-t", topic)
	cmd.Stdin = bytes.NewReader(append(b, '\n'))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
	var col collector
	c := e.consumer(ConsumerConfig{Topic: topic, Handler: col.handle})
	eventually(t, "the kcat event", func() bool { return len(col.snapshot()) >= 1 })
	stop(t, c)
	got := col.snapshot()[0]
	if got.ID != ev.ID || string(got.Data) != sampleData[TypeIngestRecord] {
		t.Fatalf("consumed %+v, want %+v", got, ev)
	}
}
