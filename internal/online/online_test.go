package online

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/events"
	"github.com/cloudmedical/pulse/internal/features"
	"github.com/cloudmedical/pulse/internal/kafka"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/registry/registrytest"
	"github.com/cloudmedical/pulse/internal/serving"
	"github.com/cloudmedical/pulse/internal/tabular"
)

const (
	topic   = "pulse.ingest" // the in-process broker's; a real broker gets a topic of its own per test
	dataset = "heart-disease"
)

var cleveland = filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

var heartOptions = tabular.Options{
	Header: "true",
	Kinds: map[string]pulse.Kind{
		"sex": pulse.Binary, "fbs": pulse.Binary, "exang": pulse.Binary,
		"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
	},
}

// testEnv is a registry on real stores and an in-process broker with the ingest topic.
type testEnv struct {
	stores registrytest.Stores
	reg    *registry.Service
	opts   []kgo.Opt
	client *kgo.Client
	topic  string
}

func newEnv(tb testing.TB, models ...string) *testEnv {
	return newEnvOn(tb, "", models...)
}

// newEnvOn is newEnv on the brokers given, or on an in-process broker when brokers is "".
func newEnvOn(tb testing.TB, brokers string, models ...string) *testEnv {
	tb.Helper()
	ctx := context.Background()
	e := &testEnv{stores: registrytest.New(tb), topic: topic}
	e.reg = e.registry(tb)
	data, err := os.ReadFile(cleveland)
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := e.reg.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: dataset, Body: bytes.NewReader(data), Options: heartOptions}); err != nil {
		tb.Fatal(err)
	}
	for _, m := range models {
		if _, err := e.reg.Train(ctx, m, registry.TrainRequest{Dataset: dataset, Target: "num > 0", Algorithm: "ftrl", Seed: 1}); err != nil {
			tb.Fatal(err)
		}
	}
	if brokers == "" {
		emb, err := kafka.StartEmbedded(ctx, kafka.EmbeddedConfig{Addr: "127.0.0.1:0", DataDir: tb.TempDir(), NoSync: true})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(emb.Close)
		brokers = emb.Addr()
	} else {
		e.topic = fmt.Sprintf("online-test-%d.ingest", time.Now().UnixNano())
	}
	e.opts = []kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...)}
	if e.client, err = kgo.NewClient(append(e.opts, kgo.ProducerLinger(0))...); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.client.Close)
	if err := kafka.EnsureTopics(ctx, e.client, []string{e.topic}, 3); err != nil {
		tb.Fatal(err)
	}
	return e
}

// registry returns a new registry service on the env's stores (as a restarted process has).
func (e *testEnv) registry(tb testing.TB) *registry.Service {
	tb.Helper()
	reg, err := registry.New(context.Background(), registry.Config{Store: e.stores.DB, Blobs: e.stores.Blobs, Lake: e.stores.Lake})
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

// produce sends event values keyed by dataset (so that they share a partition, in order).
func (e *testEnv) produce(tb testing.TB, values [][]byte) {
	tb.Helper()
	const batch = 5000
	for i := 0; i < len(values); i += batch {
		recs := make([]*kgo.Record, 0, batch)
		for _, v := range values[i:min(i+batch, len(values))] {
			recs = append(recs, &kgo.Record{Topic: e.topic, Key: []byte(dataset), Value: v})
		}
		if err := e.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			tb.Fatal(err)
		}
	}
}

// clevelandRows returns the Cleveland rows as ingest data: record (numbers, null for "?")
// and label (num).
func clevelandRows(tb testing.TB) []map[string]any {
	tb.Helper()
	f, err := os.Open(cleveland)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var header []string
	var rows []map[string]any
	for sc.Scan() {
		cells := strings.Split(strings.TrimSpace(sc.Text()), ",")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		rec := map[string]any{}
		var label any
		for i, c := range cells {
			var v any
			if c != "?" {
				n, err := strconv.ParseFloat(c, 64)
				if err != nil {
					tb.Fatalf("cell %q: %v", c, err)
				}
				v = n
			}
			if header[i] == "num" {
				label = v
				continue
			}
			rec[header[i]] = v
		}
		rows = append(rows, map[string]any{"dataset": dataset, "record": rec, "label": label})
	}
	if len(rows) != 303 {
		tb.Fatalf("got %d Cleveland rows, want 303", len(rows))
	}
	return rows
}

func event(tb testing.TB, typ string, data any) []byte {
	tb.Helper()
	e, err := events.New("/test", typ, "", data)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := e.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// stream returns the Cleveland rows as ingest events, shuffled with a fixed seed in each of
// passes.
func stream(tb testing.TB, passes int) [][]byte {
	tb.Helper()
	rows := clevelandRows(tb)
	evs := make([][]byte, len(rows))
	for i, r := range rows {
		evs[i] = event(tb, events.TypeIngestRecord, r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for range passes {
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		out = append(out, evs...)
	}
	return out
}

func start(tb testing.TB, ctx context.Context, e *testEnv, reg *registry.Service, spec Spec, batch int) *Manager {
	tb.Helper()
	m, err := Start(ctx, Config{Specs: []Spec{spec}, Registry: reg, ClientOpts: e.opts, Topic: e.topic, BatchRecords: batch})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// waitRecords waits until the follower of model has learnt n records (or fails after a
// generous minute: this is a hang guard, not a timing assertion).
func waitRecords(tb testing.TB, m *Manager, model string, n int64) Status {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, ok := m.Status(model)
		if !ok {
			tb.Fatalf("no follower of %q", model)
		}
		if st.Records >= n {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("follower of %q learnt %d records, want %d; status %+v", model, st.Records, n, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPrequentialAUCRises(t *testing.T) { testPrequentialAUCRises(t, newEnv(t, "heart-online")) }

// TestPrequentialAUCRisesApacheKafka runs the same stream through a real Apache Kafka broker.
func TestPrequentialAUCRisesApacheKafka(t *testing.T) {
	testPrequentialAUCRises(t, newEnvOn(t, realKafka(t), "heart-online"))
}

func testPrequentialAUCRises(t *testing.T, e *testEnv) {
	evs := stream(t, 5)
	e.produce(t, evs)
	metrics := prometheus.NewRegistry()
	m, err := Start(context.Background(), Config{Specs: []Spec{{Model: "heart-online", Dataset: dataset}}, Registry: e.reg,
		ClientOpts: e.opts, Topic: e.topic, Registerer: metrics})
	if err != nil {
		t.Fatal(err)
	}
	st := waitRecords(t, m, "heart-online", int64(len(evs)))
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ = m.Status("heart-online")
	if st.Records != 1515 {
		t.Errorf("records: got %d, want 1515", st.Records)
	}
	p := st.Prequential
	t.Logf("prequential: %+v", p)
	if p.CumulativeROCAUC <= 0.85 || p.ROCAUC <= 0.85 {
		t.Errorf("prequential ROC AUC: got window %.3f, cumulative %.3f, want both > 0.85", p.ROCAUC, p.CumulativeROCAUC)
	}
	if p.Window != 1000 {
		t.Errorf("window: got %d records, want 1000", p.Window)
	}
	if p.Accuracy < 0.75 {
		t.Errorf("window accuracy: got %.3f, want >= 0.75", p.Accuracy)
	}
	if st.Running {
		t.Errorf("running after Stop: got true, want false")
	}
	// The gauges, as /metrics shows them.
	fams, err := metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if g := mt.GetGauge(); g != nil {
				got[key] = g.GetValue()
			}
		}
	}
	if v := got["pulse_online_records,model=heart-online"]; v != 1515 {
		t.Errorf("pulse_online_records: got %v, want 1515 (all: %v)", v, got)
	}
	if v := got["pulse_online_roc_auc,model=heart-online,scope=window"]; v != p.ROCAUC {
		t.Errorf("pulse_online_roc_auc window: got %v, want %v", v, p.ROCAUC)
	}
	if v := got["pulse_online_last_snapshot_version,model=heart-online"]; v != float64(st.LastSnapshotVersion) || v != 2 {
		t.Errorf("pulse_online_last_snapshot_version: got %v, want 2 (the snapshot of Stop)", v)
	}
}

// TestKillAndRestartIsBitExact: a follower killed mid-stream (no final snapshot) and
// restarted from its last snapshot reaches the very learner state of an uninterrupted run.
func TestKillAndRestartIsBitExact(t *testing.T) {
	testKillAndRestartIsBitExact(t, newEnv(t, "heart-a", "heart-b"))
}

// TestKillAndRestartIsBitExactApacheKafka runs the same kill and restart on a real Apache Kafka.
func TestKillAndRestartIsBitExactApacheKafka(t *testing.T) {
	testKillAndRestartIsBitExact(t, newEnvOn(t, realKafka(t), "heart-a", "heart-b"))
}

func testKillAndRestartIsBitExact(t *testing.T, e *testEnv) {
	ctx := context.Background()
	evs := stream(t, 3)
	e.produce(t, evs)
	total := int64(len(evs))

	// Run A, uninterrupted.
	a := start(t, ctx, e, e.reg, Spec{Model: "heart-a", Dataset: dataset}, 50)
	waitRecords(t, a, "heart-a", total)
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want, err := a.followers["heart-a"].learner.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}

	// Run B: snapshots every 200 records, killed after 500 (without a final snapshot).
	spec := Spec{Model: "heart-b", Dataset: dataset, SnapshotEveryRecords: 200, SnapshotEverySeconds: 3600}
	bctx, kill := context.WithCancel(ctx)
	b := start(t, bctx, e, e.reg, spec, 50)
	waitRecords(t, b, "heart-b", 500)
	kill()
	b.abort()
	killed, _ := b.Status("heart-b")
	if killed.LastSnapshotVersion == 0 {
		t.Fatalf("no snapshot before the kill: %+v", killed)
	}

	// Restart on a fresh registry, as a new process.
	reg2 := e.registry(t)
	b2 := start(t, ctx, e, reg2, spec, 50)
	st, _ := b2.Status("heart-b")
	if st.ResumedFrom != killed.LastSnapshotVersion {
		t.Errorf("resumed from: got version %d, want the last snapshot %d", st.ResumedFrom, killed.LastSnapshotVersion)
	}
	snap, err := reg2.Version(ctx, "heart-b", st.ResumedFrom)
	if err != nil {
		t.Fatal(err)
	}
	if lost := killed.Records - snap.Lineage.Stream.Records; lost <= 0 {
		t.Errorf("the kill lost no records (learnt %d, snapshot has %d): the test does not test replay", killed.Records, snap.Lineage.Stream.Records)
	}
	waitRecords(t, b2, "heart-b", total)
	if err := b2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = b2.Status("heart-b")
	if st.Records != total {
		t.Errorf("records after restart: got %d, want %d (none twice, none lost)", st.Records, total)
	}
	got, err := b2.followers["heart-b"].learner.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("learner after kill and restart differs from the uninterrupted run:\n got %s\nwant %s", got, want)
	}

	// The final snapshot holds the same state, and offsets past every record.
	final, err := reg2.Version(ctx, "heart-b", st.LastSnapshotVersion)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, o := range final.Lineage.Stream.Offsets {
		sum += o
	}
	if sum != total {
		t.Errorf("final snapshot offsets: got %v (sum %d), want a sum of %d", final.Lineage.Stream.Offsets, sum, total)
	}
	loaded, err := reg2.Load(ctx, "heart-b", final.Version)
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := loaded.Model.Learner().MarshalJSON(); !bytes.Equal(js, want) {
		t.Errorf("final snapshot's learner differs from the uninterrupted run")
	}
}

type discardSink struct{}

func (discardSink) AppendPredictions(context.Context, ...lake.Prediction) error { return nil }

func TestSnapshotsAndLiveModel(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "heart-online")
	evs := stream(t, 2)
	e.produce(t, evs)
	m := start(t, ctx, e, e.reg, Spec{Model: "heart-online", Dataset: dataset, SnapshotEveryRecords: 250, SnapshotEverySeconds: 3600, PromoteAlias: "champion"}, 100)
	waitRecords(t, m, "heart-online", int64(len(evs)))
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Status("heart-online")

	vs, err := e.reg.Versions(ctx, "heart-online")
	if err != nil {
		t.Fatal(err)
	}
	var prev int64
	snaps := 0
	for _, v := range vs[1:] {
		s := v.Lineage.Stream
		if s == nil || v.Lineage.Trigger != "stream" {
			t.Fatalf("version %d: got trigger %q, stream %v; want a stream snapshot", v.Version, v.Lineage.Trigger, s)
		}
		snaps++
		var sum int64
		for _, o := range s.Offsets {
			sum += o
		}
		if sum != s.Records || s.Records <= prev {
			t.Errorf("version %d: offsets %v (sum %d), records %d after %d: want offsets summing to the records, rising", v.Version, s.Offsets, sum, s.Records, prev)
		}
		prev = s.Records
		if s.Topic != e.topic || s.BaseVersion != 1 || v.Lineage.DatasetName != dataset {
			t.Errorf("version %d: lineage %+v / %+v, want topic %s, base 1, dataset %s", v.Version, v.Lineage, s, e.topic, dataset)
		}
	}
	if snaps < 2 || prev != int64(len(evs)) || st.LastSnapshotVersion != vs[len(vs)-1].Version {
		t.Errorf("got %d snapshots, the last with %d records, status last %d; want several, the last with %d records", snaps, prev, st.LastSnapshotVersion, len(evs))
	}
	if v, _ := e.reg.Resolve("heart-online", "champion"); v != st.LastSnapshotVersion {
		t.Errorf("champion: got version %d, want the last snapshot %d", v, st.LastSnapshotVersion)
	}

	// The live model: the registry has it, and a predict with alias live scores with it.
	live, ok := e.reg.Live("heart-online")
	if !ok {
		t.Fatal("no live model")
	}
	if live.Version.Version != st.LastSnapshotVersion {
		t.Errorf("live model names version %d, want %d", live.Version.Version, st.LastSnapshotVersion)
	}
	if live.Model.Learner().Count() < int64(len(evs)) {
		t.Errorf("live learner learnt %d examples, want at least %d", live.Model.Learner().Count(), len(evs))
	}
	sc, err := serving.New(serving.Config{Models: e.reg, Sink: discardSink{}})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0,"thal":6}`
	probability := func(alias string) (float64, map[string]any) {
		out, err := sc.Predict(ctx, serving.Request{Model: "heart-online", Alias: alias, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Prediction struct{ Probability float64 } `json:"prediction"`
			Model      map[string]any                `json:"model"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r.Prediction.Probability, r.Model
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal([]byte(body), &fields)
	values := make([]ml.Value, len(live.Model.Inputs()))
	if _, err := features.Parse(live.Model.Inputs(), fields, values, "", true); err != nil {
		t.Fatal(err)
	}
	wantP, _ := live.Model.Predict(values, nil)
	gotP, block := probability("live")
	if gotP != wantP {
		t.Errorf("alias live: got probability %v, want the live model's %v", gotP, wantP)
	}
	if block["alias"] != "live" || block["version"] != float64(st.LastSnapshotVersion) {
		t.Errorf("alias live: model block %v, want alias live and version %d", block, st.LastSnapshotVersion)
	}
	v1, err := sc.Predict(ctx, serving.Request{Model: "heart-online", Version: 1, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(v1, []byte(strconv.FormatFloat(gotP, 'g', -1, 64))) {
		t.Errorf("version 1 gives the live probability %v: the stream changed nothing", gotP)
	}
}

func TestSkipsAndMalformed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "heart-online")
	rows := clevelandRows(t)
	good := func(i int) map[string]any { return rows[i] }
	with := func(i int, k string, v any) map[string]any {
		r := map[string]any{"dataset": dataset, "label": rows[i]["label"], "record": rows[i]["record"]}
		r[k] = v
		return r
	}
	badRecord := map[string]any{}
	for k, v := range rows[3]["record"].(map[string]any) {
		badRecord[k] = v
	}
	badRecord["age"] = "abc"
	evs := [][]byte{
		event(t, events.TypeIngestRecord, good(0)),
		event(t, events.TypeIngestRecord, with(1, "label", nil)),                                           // unlabelled
		event(t, events.TypeIngestRecord, map[string]any{"dataset": dataset, "record": rows[2]["record"]}), // unlabelled
		event(t, events.TypeIngestRecord, with(3, "dataset", "other-data")),                                // other dataset
		event(t, events.TypeIngestRecord, with(4, "record", badRecord)),                                    // malformed: age not a number
		event(t, events.TypeIngestRecord, with(5, "label", "yes")),                                         // malformed: label
		[]byte(`{"not json`), // malformed
		[]byte(`{"specversion":"1.0","id":"f1","source":"/t","type":"` + events.TypeFeedback + `","data":{"dataset":"heart-disease"}}`), // other type
		event(t, events.TypeIngestRecord, good(6)),
		event(t, events.TypeIngestRecord, with(7, "label", true)), // a boolean label for num > 0
	}
	e.produce(t, evs)
	m := start(t, ctx, e, e.reg, Spec{Model: "heart-online", Dataset: dataset}, 0)
	// Wait until every record was consumed: the offsets reach the end.
	deadline := time.Now().Add(time.Minute)
	var st Status
	for {
		st, _ = m.Status("heart-online")
		var sum int64
		for _, o := range st.Offsets {
			sum += o
		}
		if sum == int64(len(evs)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: want offsets summing to %d", st, len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = m.Status("heart-online")
	if st.Records != 3 {
		t.Errorf("records: got %d, want 3", st.Records)
	}
	want := Skipped{OtherDataset: 1, OtherType: 1, Unlabelled: 2, Malformed: 3}
	if st.Skipped != want {
		t.Errorf("skipped: got %+v, want %+v", st.Skipped, want)
	}
}

func TestRefusesNonFTRL(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.reg.Train(ctx, "heart-logreg", registry.TrainRequest{Dataset: dataset, Target: "num > 0"}); err != nil {
		t.Fatal(err)
	}
	_, err := Start(ctx, Config{Specs: []Spec{{Model: "heart-logreg", Dataset: dataset}}, Registry: e.reg, ClientOpts: e.opts, Topic: e.topic})
	if pulse.ErrorCode(err) != pulse.EUNPROCESSABLE || !strings.Contains(err.Error(), "ftrl") {
		t.Errorf("got %v, want EUNPROCESSABLE naming ftrl", err)
	}
}

// TestWaitsForTheModel: a follower of a model not trained yet waits for it, then follows.
func TestWaitsForTheModel(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.produce(t, stream(t, 1))
	m := start(t, ctx, e, e.reg, Spec{Model: "later", Dataset: dataset}, 0)
	defer m.abort()
	st, _ := m.Status("later")
	if st.Running || !strings.Contains(st.Error, "later") {
		t.Errorf("before training: got %+v, want not running, with an error naming the model", st)
	}
	if _, err := e.reg.Train(ctx, "later", registry.TrainRequest{Dataset: dataset, Target: "num > 0", Algorithm: "ftrl"}); err != nil {
		t.Fatal(err)
	}
	st = waitRecords(t, m, "later", 303)
	if st.BaseVersion != 1 || st.Error != "" {
		t.Errorf("after training: got %+v, want base version 1 and no error", st)
	}
}

func TestLoadSpecs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, body, err string
	}{
		{"ok", `[{"model":"heart-online","dataset":"heart-disease","base_version":0,"snapshot_every_records":10000,"snapshot_every_seconds":60,"promote_alias":""}]`, ""},
		{"unknown field", `[{"model":"m","dataset":"d","every":1}]`, "unknown field"},
		{"twice", `[{"model":"m","dataset":"d"},{"model":"m","dataset":"e"}]`, "twice"},
		{"bad name", `[{"model":"M M","dataset":"d"}]`, "model"},
		{"live alias", `[{"model":"m","dataset":"d","promote_alias":"live"}]`, "promote_alias"},
		{"negative", `[{"model":"m","dataset":"d","snapshot_every_records":-1}]`, "negative"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".json")
		if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		specs, err := LoadSpecs(p)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: got %v, want no error", c.name, err)
		case c.err == "" && (len(specs) != 1 || specs[0].Model != "heart-online"):
			t.Errorf("%s: got %+v", c.name, specs)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.err)
		}
	}
}

// realKafka returns the brokers of the real Apache Kafka the test command starts
// (PULSE_TEST_KAFKA_BROKERS), starting one with scripts/kafka when it is unset: never a skip.
func realKafka(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("PULSE_TEST_KAFKA_BROKERS"); b != "" {
		return b
	}
	dir := t.TempDir()
	script := filepath.Join("..", "..", "scripts", "kafka")
	out, err := exec.Command(script, "start", dir).Output()
	if err != nil {
		t.Fatalf("PULSE_TEST_KAFKA_BROKERS is not set and %s start failed (%v): run ./scripts/test", script, err)
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", dir).Run() })
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "PULSE_TEST_KAFKA_BROKERS=")
}
