package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/registry/registrytest"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// cleveland is the shared UCI Heart Disease file.
var cleveland = filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

var heartOptions = tabular.Options{
	Header: "true",
	Kinds: map[string]pulse.Kind{
		"sex": pulse.Binary, "fbs": pulse.Binary, "exang": pulse.Binary,
		"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
	},
}

const model = "heart-disease"

// fixture is an evaluator on a real registry (SQLite, file buckets) with versions trained on
// Cleveland, a fake job queue and a fake clock.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	st   registrytest.Stores
	reg  *registry.Service
	jobs *fakeJobs
	now  time.Time
	ev   *Evaluator
	reg2 *prometheus.Registry
	// per version: each Cleveland row's model inputs, probability and predicted label
	rows   map[int][]row
	labels []int // each row's true label
	rng    *rand.Rand
	seq    int
}

type row struct {
	values    []ml.Value
	p         float64
	predicted int
}

func newFixture(t *testing.T, versions int, cfg func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), st: registrytest.New(t), jobs: &fakeJobs{},
		now: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), rows: map[int][]row{}, rng: rand.New(rand.NewPCG(1, 2))}
	var err error
	f.reg, err = registry.New(f.ctx, registry.Config{Store: f.st.DB, Blobs: f.st.Blobs, Lake: f.st.Lake})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cleveland)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := f.reg.RegisterDataset(f.ctx, registry.RegisterDatasetRequest{Name: "heart", Body: bytes.NewReader(data), Options: heartOptions})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := f.reg.LoadTable(f.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= versions; v++ {
		mv, err := f.reg.Train(f.ctx, model, registry.TrainRequest{Dataset: "heart", Target: "num > 0", Seed: uint64(v), CVFolds: 3})
		if err != nil {
			t.Fatal(err)
		}
		l, err := f.reg.Load(f.ctx, model, mv.Version)
		if err != nil {
			t.Fatal(err)
		}
		f.rows[mv.Version] = scoreRows(t, l.Model, tbl)
	}
	num := tbl.Schema.Index("num")
	for r := range tbl.Rows {
		f.labels = append(f.labels, b2i(tbl.Num[num][r] > 0))
	}
	f.reg2 = prometheus.NewRegistry()
	c := Config{
		Models: f.reg, Store: f.st.DB, Jobs: f.jobs, Registerer: f.reg2,
		Now:     func() time.Time { return f.now },
		Webhook: WebhookConfig{Backoff: time.Millisecond, Attempts: 2, Timeout: 2 * time.Second},
	}
	if cfg != nil {
		cfg(&c)
	}
	if f.ev, err = New(c); err != nil {
		t.Fatal(err)
	}
	return f
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scoreRows reads every row's model inputs from the table, as ml.Model.PredictTable does, and
// scores it.
func scoreRows(t *testing.T, m *ml.Model, tbl *tabular.Table) []row {
	t.Helper()
	rows := make([]row, tbl.Rows)
	for r := range rows {
		vals := make([]ml.Value, len(m.Inputs()))
		for i, in := range m.Inputs() {
			j := tbl.Schema.Index(in.Name)
			if tbl.Schema.Columns[j].Kind == pulse.Numeric {
				if x := tbl.Num[j][r]; !math.IsNaN(x) {
					vals[i] = ml.Value{Num: x, Present: true}
				}
			} else if s := tbl.Cat[j][r]; s != "" {
				vals[i] = ml.Value{Str: s, Present: true}
			}
		}
		p, _ := m.Predict(vals, make([]float64, m.Width()))
		rows[r] = row{values: vals, p: p, predicted: b2i(p >= m.Threshold())}
	}
	return rows
}

// outcome is the labelled outcome of Cleveland row r scored by version v, at the clock's
// time (scored a minute before); flip turns the true label over (a broken label relation).
func (f *fixture) outcome(v, r int, id, alias string, flip bool) Outcome {
	x := f.rows[v][r]
	label := f.labels[r]
	if flip {
		label = 1 - label
	}
	return Outcome{PredictionID: id, Model: model, Version: v, Alias: alias, Shadow: alias == pulse.AliasChallenger,
		Probability: x.p, Predicted: x.predicted, Label: label, ScoredAt: f.now.Add(-time.Minute), ObservedAt: f.now}
}

// feed adds n outcomes of random rows for version v through the champion alias.
func (f *fixture) feed(v, n int, flip bool) {
	for range n {
		f.now = f.now.Add(time.Second)
		f.seq++
		f.ev.Outcomes(f.ctx, []Outcome{f.outcome(v, f.rng.IntN(len(f.labels)), fmt.Sprintf("p-%d", f.seq), pulse.AliasChampion, flip)})
	}
}

// observe counts n random rows scored by version v in its drift window, with thalach
// shifted by shift.
func (f *fixture) observe(v, n int, shift float64) {
	thalach := -1
	for i, in := range f.ev.mustVersion(f.t, v).Features {
		if in.Name == "thalach" {
			thalach = i
		}
	}
	batch := make([]observation, 0, n)
	for range n {
		f.now = f.now.Add(100 * time.Millisecond)
		x := f.rows[v][f.rng.IntN(len(f.labels))]
		vals := slices.Clone(x.values)
		if vals[thalach].Present {
			vals[thalach].Num += shift
		}
		batch = append(batch, observation{model: model, version: v, values: &vals, p: x.p, at: f.now})
	}
	f.ev.addRecords(f.ctx, batch)
}

func (e *Evaluator) mustVersion(t *testing.T, v int) *pulse.ModelVersion {
	t.Helper()
	mv, err := e.cfg.Models.Version(context.Background(), model, v)
	if err != nil {
		t.Fatal(err)
	}
	return mv
}

func (f *fixture) setPolicy(doc string) {
	f.t.Helper()
	if _, err := f.ev.PutPolicy(f.ctx, model, []byte(doc), false, "test"); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) alias(name string, v int) {
	f.t.Helper()
	if _, err := f.reg.SetAlias(f.ctx, model, name, v); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) champion() int {
	m, err := f.reg.Model(f.ctx, model)
	if err != nil {
		f.t.Fatal(err)
	}
	return m.Aliases[pulse.AliasChampion]
}

// trail returns the audit trail, oldest first.
func (f *fixture) trail() []*pulse.Decision {
	f.t.Helper()
	ds, err := f.st.DB.ListDecisions(f.ctx, model, pulse.DecisionQuery{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.Reverse(ds)
	return ds
}

func actions(ds []*pulse.Decision) []*pulse.Decision {
	var out []*pulse.Decision
	for _, d := range ds {
		if d.Action != "none" {
			out = append(out, d)
		}
	}
	return out
}

func describe(ds []*pulse.Decision) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "\n  %s/%s v%d champion %d guard %q reason %q result %q error %q", d.Rule, d.Action, d.Version, d.Champion, d.Guard, d.Reason, d.Result, d.Error)
	}
	return b.String()
}

// fakeJobs is a job queue that records enqueues; a job runs until finish is called.
type fakeJobs struct {
	mu       sync.Mutex
	enqueued []enqueued
	running  bool
}

type enqueued struct {
	model string
	req   registry.TrainRequest
	opts  jobs.EnqueueOptions
}

func (j *fakeJobs) Enqueue(ctx context.Context, model string, req registry.TrainRequest, opts jobs.EnqueueOptions) (*jobs.Job, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enqueued = append(j.enqueued, enqueued{model, req, opts})
	j.running = true
	return &jobs.Job{ID: int64(40 + len(j.enqueued)), Kind: jobs.KindTrain, State: "available", Model: model}, true, nil
}

func (j *fakeJobs) List(ctx context.Context, f jobs.Filter) ([]*jobs.Job, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if f.Model != model || f.Kind != jobs.KindTrain {
		return nil, fmt.Errorf("unexpected filter %+v", f)
	}
	if j.running {
		return []*jobs.Job{{ID: int64(40 + len(j.enqueued)), Kind: jobs.KindTrain, State: "running", Model: model}}, nil
	}
	return []*jobs.Job{{ID: 1, Kind: jobs.KindTrain, State: "completed", Model: model}}, nil
}

func (j *fakeJobs) finish() {
	j.mu.Lock()
	j.running = false
	j.mu.Unlock()
}

// TestRollbackAfterAccuracyDrops: version 2, promoted over version 1, serves well, then the
// label relation breaks; the rollback fires with its numbers once the accuracy's upper bound
// is below the threshold, and the guard before it is recorded once, not at every label.
func TestRollbackAfterAccuracyDrops(t *testing.T) {
	f := newFixture(t, 2, nil)
	f.alias(pulse.AliasChampion, 2)
	f.setPolicy(`{"rollback": {"metric": "accuracy", "below": 0.7, "min_labels": 200, "cooldown": "1h"}}`)

	for range 19 { // 10 to 190 labels: too few, however many ticks
		f.feed(2, 10, false)
		f.ev.tick(f.ctx)
	}
	tr := f.trail()
	if len(tr) != 1 || tr[0].Guard == "" || !strings.HasPrefix(tr[0].Guard, "too few labels:") || tr[0].PolicyVersion != 1 {
		t.Fatalf("trail while labels arrive: got %s\nwant one entry, guarded by too few labels", describe(tr))
	}
	f.feed(2, 810, false) // the window is full: 1000 labels
	f.ev.tick(f.ctx)
	tr = f.trail()
	if len(tr) != 2 || tr[1].Guard != "" || tr[1].Action != "none" || !strings.Contains(tr[1].Reason, "not below 0.7") {
		t.Fatalf("after 1000 good labels: got %s\nwant a second entry: not below 0.7", describe(tr))
	}

	broken := 0
	for f.champion() == 2 && broken < 2000 {
		f.feed(2, 10, true)
		broken += 10
		f.ev.tick(f.ctx)
	}
	if f.champion() != 1 {
		t.Fatalf("champion after %d labels of a broken relation: got %d, want 1; trail %s", broken, f.champion(), describe(f.trail()))
	}
	// A 1000-label window at about 0.85 falls under 0.7 with 95% confidence after roughly
	// 1000·(0.85-0.672)/(0.85-0.15) ≈ 250 broken labels.
	t.Logf("rolled back after %d labels of a broken relation", broken)
	if broken < 150 || broken > 500 {
		t.Errorf("rollback after %d broken labels, want 150 to 500", broken)
	}
	acts := actions(f.trail())
	if len(acts) != 1 {
		t.Fatalf("actions: got %s, want one rollback", describe(acts))
	}
	rb := acts[0]
	if rb.Rule != "rollback" || rb.Version != 1 || rb.Champion != 2 || rb.Error != "" ||
		!strings.Contains(rb.Result, "champion moved from version 2 back to version 1") ||
		rb.Numbers["accuracy_upper"] >= 0.7 || rb.Numbers["labels"] < 200 || rb.Numbers["previous_good"] != 1 || rb.Numbers["below"] != 0.7 {
		t.Errorf("rollback decision: got %+v", rb)
	}
	// Version 1 now serves; it has no labels yet: too few, recorded once.
	before := len(f.trail())
	for range 5 {
		f.ev.tick(f.ctx)
	}
	tr = f.trail()
	if len(tr) != before+1 || !strings.HasPrefix(tr[len(tr)-1].Guard, "too few labels: 0 < 200") || tr[len(tr)-1].Champion != 1 {
		t.Errorf("after the rollback: got %s\nwant one more entry, too few labels for version 1", describe(tr[before-1:]))
	}
	// Version 1 breaks too: version 2 was rolled back from, so there is nothing to go back to.
	f.feed(1, 400, true)
	f.now = f.now.Add(2 * time.Hour)
	f.ev.tick(f.ctx)
	last := f.trail()[len(f.trail())-1]
	if last.Guard != "no previous good version" || last.Action != "none" || f.champion() != 1 {
		t.Errorf("version 1 broken: got %s, want the guard \"no previous good version\" and champion 1", describe([]*pulse.Decision{last}))
	}
}

// TestRetrainOnDrift: traffic shifts (thalach 40 beats per minute lower); the retrain rule
// enqueues the champion's training request on the newest dataset, trigger policy, gated to
// challenger; while the job runs, and then in the cooldown, each guard is recorded once.
func TestRetrainOnDrift(t *testing.T) {
	f := newFixture(t, 1, nil)
	f.setPolicy(`{"retrain": {"drift_psi_above": 0.25, "min_records": 500, "cooldown": "1h", "ingest_window": "30d"}}`)
	f.observe(1, 1000, 0)
	f.ev.tick(f.ctx)
	tr := f.trail()
	if len(tr) != 1 || tr[0].Action != "none" || tr[0].Guard != "" || tr[0].Numbers["max_psi"] >= 0.25 || tr[0].Numbers["records"] != 1000 {
		t.Fatalf("stable traffic: got %s %v, want no trigger", describe(tr), tr[0].Numbers)
	}
	shifted := 0
	for len(f.jobs.enqueued) == 0 && shifted < 2000 {
		f.observe(1, 50, -40)
		shifted += 50
		f.ev.tick(f.ctx)
	}
	if len(f.jobs.enqueued) != 1 {
		t.Fatalf("no retraining after %d shifted records; trail %s", shifted, describe(f.trail()))
	}
	t.Logf("retraining started after %d shifted records", shifted)
	if shifted > 800 {
		t.Errorf("retraining after %d shifted records, want at most 800 (a 2000-record window)", shifted)
	}
	v1 := f.ev.mustVersion(t, 1)
	got := f.jobs.enqueued[0]
	var names []string
	for _, c := range v1.Features {
		names = append(names, c.Name)
	}
	if got.model != model || got.req.Dataset != "heart" || got.req.Target != "num > 0" || got.req.Algorithm != "logreg" ||
		got.req.Seed != 1 || got.req.CVFolds != 3 || got.req.Holdout == nil || *got.req.Holdout != v1.Lineage.Holdout ||
		got.req.IngestWindow != "30d" || !slices.Equal(got.req.Features, names) || fmt.Sprint(got.req.Params) != fmt.Sprint(v1.Lineage.Params) {
		t.Errorf("retraining request: got %+v", got.req)
	}
	if got.opts.Trigger != "policy" || got.opts.Gate == nil || !got.opts.Gate.Challenger || !strings.Contains(got.opts.RequestedBy, "policy version 1") {
		t.Errorf("retraining options: got %+v, gate %+v", got.opts, got.opts.Gate)
	}
	acts := actions(f.trail())
	if len(acts) != 1 || acts[0].Rule != "retrain" || acts[0].JobID != 41 || acts[0].Version != 1 ||
		!strings.Contains(acts[0].Result, "job 41 enqueued") || acts[0].Numbers["max_psi"] <= 0.25 {
		t.Fatalf("retrain decision: got %s", describe(acts))
	}
	before := len(f.trail())
	for range 4 {
		f.observe(1, 20, -40)
		f.ev.tick(f.ctx)
	}
	tr = f.trail()[before:]
	if len(tr) != 1 || tr[0].Guard != "a retraining job is already running" {
		t.Errorf("while the job runs: got %s, want one entry", describe(tr))
	}
	f.jobs.finish()
	for range 3 {
		f.now = f.now.Add(time.Minute)
		f.ev.tick(f.ctx)
	}
	tr = f.trail()[before+1:]
	if len(tr) != 1 || !strings.HasPrefix(tr[0].Guard, "cooldown:") {
		t.Errorf("after the job, within the cooldown: got %s, want one entry", describe(tr))
	}
	f.now = f.now.Add(time.Hour)
	f.ev.tick(f.ctx)
	if len(f.jobs.enqueued) != 2 {
		t.Errorf("after the cooldown, drift still there: got %d jobs, want 2", len(f.jobs.enqueued))
	}
}

// TestPromoteShadowChallenger: the challenger scores the champion's requests in shadow; on
// the same outcomes it ranks far better, and it is promoted.
func TestPromoteShadowChallenger(t *testing.T) {
	f := newFixture(t, 2, nil)
	f.alias(pulse.AliasChallenger, 2)
	f.setPolicy(`{"promote": {"metric": "roc_auc", "min_gain": 0.02, "min_labels": 200}}`)
	f.ev.tick(f.ctx) // learns that the model shadows version 2
	if !f.ev.ShadowOn(model) {
		t.Fatal("ShadowOn: got false, want true")
	}
	pairs := 0
	for f.champion() == 1 && pairs < 2000 {
		for range 20 {
			f.now = f.now.Add(time.Second)
			f.seq++
			id := fmt.Sprintf("p-%d", f.seq)
			r := f.rng.IntN(len(f.labels))
			champ := f.outcome(1, r, id, pulse.AliasChampion, false)
			champ.Probability = f.rng.Float64() // the champion has lost its way
			champ.Predicted = b2i(champ.Probability >= 0.5)
			shadow := f.outcome(2, r, id, pulse.AliasChallenger, false)
			if f.seq%2 == 0 {
				f.ev.Outcomes(f.ctx, []Outcome{champ, shadow})
			} else { // the halves may come in either order, in separate calls
				f.ev.Outcomes(f.ctx, []Outcome{shadow})
				f.ev.Outcomes(f.ctx, []Outcome{champ})
			}
			pairs++
		}
		f.ev.tick(f.ctx)
	}
	if f.champion() != 2 {
		t.Fatalf("champion after %d shadow pairs: got %d, want 2; trail %s", pairs, f.champion(), describe(f.trail()))
	}
	t.Logf("promoted after %d shadow pairs", pairs)
	if pairs > 400 {
		t.Errorf("promotion after %d pairs, want at most 400", pairs)
	}
	acts := actions(f.trail())
	if len(acts) != 1 || acts[0].Rule != "promote" || acts[0].Version != 2 || acts[0].Champion != 1 ||
		acts[0].Numbers["gain_lower"] <= 0.02 || acts[0].Numbers["labels"] < 200 || !strings.Contains(acts[0].Result, "challenger alias removed") {
		t.Fatalf("promotion: got %s %v", describe(acts), acts)
	}
	m, _ := f.reg.Model(f.ctx, model)
	if _, ok := m.Aliases[pulse.AliasChallenger]; ok {
		t.Errorf("challenger alias after the promotion: got %v, want none", m.Aliases)
	}
	r, err := f.ev.Live(f.ctx, model, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Shadow == nil || r.Shadow.Challenger != 2 || r.Shadow.Labels != pairs || r.Shadow.Metrics.Challenger.ROCAUC == nil ||
		r.Shadow.Metrics.Challenger.ROCAUC.Value <= r.Shadow.Metrics.Champion.ROCAUC.Value {
		t.Errorf("live report's shadow comparison: got %+v", r.Shadow)
	}
}

// TestStableStreamNoAction: with every rule on and a challenger of equal quality in shadow, a
// stable stream (Cleveland resampled, correct labels, unshifted traffic) takes no action,
// and the trail holds only the few changes of each rule's guard.
func TestStableStreamNoAction(t *testing.T) {
	f := newFixture(t, 3, nil)
	f.alias(pulse.AliasChampion, 2)
	f.alias(pulse.AliasChallenger, 3)
	f.setPolicy(`{"rollback": {"below": 0.7, "min_labels": 200, "cooldown": "0s"},
		"retrain": {"drift_psi_above": 0.25, "live_roc_auc_below": 0.75, "min_labels": 200, "min_records": 500, "cooldown": "0s"},
		"promote": {"min_gain": 0.02, "min_labels": 200, "cooldown": "0s"}}`)
	f.ev.tick(f.ctx)
	for i := range 5000 {
		f.now = f.now.Add(time.Second)
		id := fmt.Sprintf("s-%d", i)
		r := f.rng.IntN(len(f.labels))
		f.ev.Outcomes(f.ctx, []Outcome{f.outcome(2, r, id, pulse.AliasChampion, false), f.outcome(3, r, id, pulse.AliasChallenger, false)})
		x := f.rows[2][f.rng.IntN(len(f.labels))]
		vals := slices.Clone(x.values)
		f.ev.addRecords(f.ctx, []observation{{model: model, version: 2, values: &vals, p: x.p, at: f.now}})
		if i%25 == 0 {
			f.ev.tick(f.ctx)
		}
	}
	tr := f.trail()
	t.Logf("stable stream: %d trail entries: %s", len(tr), describe(tr))
	if acts := actions(tr); len(acts) != 0 || len(f.jobs.enqueued) != 0 || f.champion() != 2 {
		t.Fatalf("stable stream: got actions %s and %d jobs, champion %d; want none, none, 2", describe(acts), len(f.jobs.enqueued), f.champion())
	}
	if len(tr) > 9 {
		t.Errorf("stable stream: got %d trail entries, want at most 9 (each rule's guard changes a few times): %s", len(tr), describe(tr))
	}
	r, err := f.ev.Live(f.ctx, model, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Live.N != 1000 || r.Live.Accuracy == nil || r.Live.Accuracy.Value < 0.75 || r.Drift == nil || r.Drift.N != 2000 || *r.Drift.MaxPSI > 0.1 {
		t.Errorf("live report: got n %d accuracy %+v drift %+v", r.Live.N, r.Live.Accuracy, r.Drift)
	}
}

// TestWebhook: each recorded decision is POSTed to the policy's webhook; one that keeps
// failing is recorded in the trail after its attempts.
func TestWebhook(t *testing.T) {
	var mu sync.Mutex
	var bodies []WebhookBody
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var b WebhookBody
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &b); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook body %s: %v", data, err)
		}
		bodies = append(bodies, b)
	}))
	defer srv.Close()
	f := newFixture(t, 1, nil)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	f.ev.hooks.start(ctx)
	f.setPolicy(`{"webhook": "` + srv.URL + `/pulse", "rollback": {"below": 0.7}}`)
	f.ev.tick(f.ctx)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 1 })
	mu.Lock()
	b := bodies[0]
	fail = true
	mu.Unlock()
	if b.Type != "com.cloudmedical.pulse.model.decision" || b.Decision == nil || b.Decision.Rule != "rollback" || b.Decision.ID == 0 ||
		!strings.HasPrefix(b.Decision.Guard, "too few labels") {
		t.Errorf("webhook body: got %+v", b)
	}
	f.feed(1, 300, false) // the rule's outcome changes: recorded, POSTed, refused twice
	f.ev.tick(f.ctx)
	waitFor(t, func() bool { tr := f.trail(); return tr[len(tr)-1].Rule == "webhook" })
	tr := f.trail()
	w := tr[len(tr)-1]
	if w.Action != "none" || !strings.Contains(w.Error, "2 attempts failed") || !strings.Contains(w.Error, "503") ||
		w.Numbers["decision_id"] != float64(tr[len(tr)-2].ID) || w.Numbers["attempts"] != 2 {
		t.Errorf("webhook failure record: got %+v", w)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLiveAccuracySummary: serving's view of the live accuracy shows once there are enough
// labels (the policy's live_metric_min_labels), and its generation changes only with it.
func TestLiveAccuracySummary(t *testing.T) {
	f := newFixture(t, 1, nil)
	f.setPolicy(`{"live_metric_min_labels": 50}`)
	if _, _, ok, gen := f.ev.LiveAccuracy(model, 1); ok || gen != 0 {
		t.Fatalf("before any outcome: got ok %v gen %d, want false 0", ok, gen)
	}
	f.feed(1, 49, false)
	f.ev.tick(f.ctx)
	acc, n, ok, gen1 := f.ev.LiveAccuracy(model, 1)
	if ok || n != 49 || gen1 == 0 {
		t.Errorf("49 labels: got accuracy %v n %d ok %v gen %d, want not shown yet", acc, n, ok, gen1)
	}
	f.feed(1, 1, false)
	f.ev.tick(f.ctx)
	acc, n, ok, gen2 := f.ev.LiveAccuracy(model, 1)
	if !ok || n != 50 || gen2 == gen1 || acc < 0.6 || acc > 1 {
		t.Errorf("50 labels: got accuracy %v n %d ok %v gen %d (before %d)", acc, n, ok, gen2, gen1)
	}
	f.ev.tick(f.ctx)
	if _, _, _, gen3 := f.ev.LiveAccuracy(model, 1); gen3 != gen2 {
		t.Errorf("nothing changed: got generation %d, want %d", gen3, gen2)
	}
	r, err := f.ev.Live(f.ctx, model, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Live.Accuracy == nil || r.Live.Accuracy.Value != acc || r.Live.N != 50 || r.LiveMinLabels != 50 || r.Policy == nil ||
		r.Live.LabelDelay == nil || r.Live.LabelDelay.P50 != 60 || r.Threshold == 0 || r.Holdout == nil {
		t.Errorf("live report: got %+v", r)
	}
	if got := testutil.ToFloat64(f.ev.m.labels.WithLabelValues(model, "1")); got != 50 {
		t.Errorf("pulse_live_labels: got %v, want 50", got)
	}
	if got := testutil.ToFloat64(f.ev.m.accuracy.WithLabelValues(model, "1")); got != acc {
		t.Errorf("pulse_live_accuracy: got %v, want %v", got, acc)
	}
}

// TestObserveDropsWhenFull: Observe never blocks: beyond the queue, records are dropped and
// counted.
func TestObserveDropsWhenFull(t *testing.T) {
	f := newFixture(t, 1, func(c *Config) { c.ObserveQueue = 3 })
	vals := f.rows[1][0].values
	for range 10 {
		f.ev.Observe(model, 1, vals, 0.5, f.now)
	}
	if got := testutil.ToFloat64(f.ev.m.dropped); got != 7 {
		t.Errorf("dropped: got %v, want 7", got)
	}
	vals[0].Num = -1 // the queue holds copies
	o := <-f.ev.obs
	if (*o.values)[0].Num == -1 || len(*o.values) != len(vals) {
		t.Errorf("queued values: got %v, want a copy of the caller's", *o.values)
	}
}

// TestStartRebuildsFromRecent: Start feeds the recent outcomes of the lake to the windows.
func TestStartRebuildsFromRecent(t *testing.T) {
	var since time.Time
	var f *fixture
	f = newFixture(t, 1, func(c *Config) {
		c.Interval = time.Hour
		c.Recent = func(ctx context.Context, s time.Time) ([]Outcome, error) {
			since = s
			var out []Outcome
			for i := range 120 {
				out = append(out, f.outcome(1, i, fmt.Sprintf("r-%d", i), pulse.AliasChampion, false))
			}
			return out, nil
		}
	})
	if err := f.ev.Start(f.ctx); err != nil {
		t.Fatal(err)
	}
	defer f.ev.Stop(f.ctx)
	if want := f.now.Add(-DefaultLivePeriod); !since.Equal(want) {
		t.Errorf("Recent since: got %v, want %v", since, want)
	}
	r, err := f.ev.Live(f.ctx, model, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Live.N != 120 {
		t.Errorf("live window after Start: got %d outcomes, want 120", r.Live.N)
	}
}

// TestPolicyAPI: policies are validated, stored with their defaults, versioned; YAML reads as
// JSON does.
func TestPolicyAPI(t *testing.T) {
	f := newFixture(t, 1, nil)
	if _, err := f.ev.Policy(f.ctx, model, 0); pulse.ErrorCode(err) != pulse.ENOTFOUND {
		t.Errorf("no policy yet: got %v, want ENOTFOUND", err)
	}
	p1, err := f.ev.PutPolicy(f.ctx, model, []byte(`{"rollback": {"below": 0.8}}`), false, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if p1.Version != 1 || p1.Policy.Rollback.MinLabels != 200 || p1.Policy.Rollback.Cooldown != "1h" || p1.CreatedBy != "req-1" {
		t.Errorf("put: got %+v %+v", p1, p1.Policy.Rollback)
	}
	yaml := "---\n# the same, in YAML\nrollback:\n  below: 0.75   # accuracy\n  min_labels: 300\nshadow: false\nwebhook: \"https://hooks.example.com/x\"\nretrain:\n  drift_psi_above: 0.2\n  cooldown: 90m\n"
	p2, err := f.ev.PutPolicy(f.ctx, model, []byte(yaml), true, "")
	if err != nil {
		t.Fatal(err)
	}
	if p2.Version != 2 || p2.Policy.Rollback.Below != 0.75 || p2.Policy.Rollback.MinLabels != 300 || p2.Policy.ShadowOn() ||
		p2.Policy.Webhook != "https://hooks.example.com/x" || p2.Policy.Retrain.Cooldown != "90m" || p2.Policy.Retrain.DriftPSIAbove != 0.2 {
		t.Errorf("YAML put: got %+v", p2.Policy)
	}
	hist, err := f.ev.PolicyHistory(f.ctx, model)
	if err != nil || len(hist) != 2 || hist[0].Version != 2 || hist[1].Version != 1 {
		t.Errorf("history: got %v, %v", hist, err)
	}
	for _, bad := range []struct {
		doc   string
		yaml  bool
		field string
	}{
		{`{"rollback": {"below": 2}}`, false, "rollback.below"},
		{`{"rollback": {"bellow": 0.7}}`, false, "rollback.bellow"},
		{"rollback:\n  - 0.7\n", true, ""},
		{"rollback:\n  below: [0.7]\n", true, ""},
		{"rollback:\n\tbelow: 0.7\n", true, ""},
		{"rollback:\n  below: 0.7\n   min_labels: 3\n", true, ""},
	} {
		_, err := f.ev.PutPolicy(f.ctx, model, []byte(bad.doc), bad.yaml, "")
		var pe *pulse.Error
		if !errorsAs(err, &pe) || pe.Code != pulse.EINVALID || pe.Field != bad.field {
			t.Errorf("%q: got %v, want EINVALID about %q", bad.doc, err, bad.field)
		}
	}
	if _, err := f.ev.PutPolicy(f.ctx, "no-such-model", []byte(`{}`), false, ""); pulse.ErrorCode(err) != pulse.ENOTFOUND {
		t.Errorf("unknown model: got %v, want ENOTFOUND", err)
	}
	f.ev.tick(f.ctx)
	if f.ev.ShadowOn(model) {
		t.Errorf("ShadowOn with \"shadow\": false: got true")
	}
}

func errorsAs(err error, pe **pulse.Error) bool {
	e, ok := err.(*pulse.Error)
	if ok {
		*pe = e
	}
	return ok
}

// TestPolicyFromYAML: the subset reads nested mappings, scalars and comments.
func TestPolicyFromYAML(t *testing.T) {
	got, err := PolicyFromYAML([]byte("a: 1\nb:\n  c: 'it''s'\n  d:\n    e: true\n  f: ~\ng: x # y\nh: \"q#r\"\ni:\nj: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":1,"b":{"c":"it's","d":{"e":true},"f":null},"g":"x","h":"q#r","i":{},"j":{}}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for _, bad := range []string{"a: 1\na: 2\n", "a: [1]\n", "- a\n", "  a: 1\nb: 2\n x: 1\n", "a 1\n", "a: 'x\n"} {
		if _, err := PolicyFromYAML([]byte(bad)); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("%q: got %v, want EINVALID", bad, err)
		}
	}
}

// TestRetrainRequest: a version trained without holdout or cross-validation is retrained the
// same way.
func TestRetrainRequest(t *testing.T) {
	v := &pulse.ModelVersion{Model: model, Algorithm: "gbdt", Target: "num > 0", Features: []pulse.Column{{Name: "age"}, {Name: "cp"}},
		Lineage: pulse.Lineage{DatasetName: "heart", Target: "num > 0", Algorithm: "gbdt", Params: map[string]any{"trees": 50.0}, Seed: 9}}
	req := RetrainRequest(v)
	if req.Dataset != "heart" || req.Holdout == nil || *req.Holdout != 0 || req.CVFolds != -1 || req.Seed != 9 ||
		!slices.Equal(req.Features, []string{"age", "cp"}) || req.Params["trees"] != 50.0 || req.Algorithm != "gbdt" {
		t.Errorf("got %+v", req)
	}
	req.Params["trees"] = 1.0
	if v.Lineage.Params["trees"] != 50.0 {
		t.Errorf("the request shares the lineage's params")
	}
}

// refusingStore refuses to append decisions while refuse is set, like a metadata store that is
// briefly unreachable.
type refusingStore struct {
	Store
	refuse bool
}

func (s *refusingStore) AppendDecision(ctx context.Context, d *pulse.Decision) error {
	if s.refuse {
		return errors.New("sqlite: append decision: disk I/O error")
	}
	return s.Store.AppendDecision(ctx, d)
}

// TestActionRecordedLater: a rollback carried out while the store refuses its record is
// recorded as soon as the store takes it again, before anything else is decided.
func TestActionRecordedLater(t *testing.T) {
	var rs *refusingStore
	f := newFixture(t, 2, func(c *Config) { rs = &refusingStore{Store: c.Store}; c.Store = rs })
	f.alias(pulse.AliasChampion, 2)
	f.setPolicy(`{"rollback": {"metric": "accuracy", "below": 0.7, "min_labels": 200, "cooldown": "1h"}}`)
	f.feed(2, 1000, false)
	f.ev.tick(f.ctx)
	rs.refuse = true
	for broken := 0; f.champion() == 2 && broken < 2000; broken += 10 {
		f.feed(2, 10, true)
		f.ev.tick(f.ctx)
	}
	if f.champion() != 1 {
		t.Fatalf("champion: got %d, want the rollback to 1", f.champion())
	}
	if got := actions(f.trail()); len(got) != 0 {
		t.Fatalf("while the store refuses: got %s in the trail", describe(got))
	}
	f.ev.tick(f.ctx) // still refused: nothing recorded, nothing decided
	rs.refuse = false
	f.ev.tick(f.ctx)
	acts := actions(f.trail())
	if len(acts) != 1 || acts[0].Rule != "rollback" || acts[0].Version != 1 || acts[0].Champion != 2 {
		t.Fatalf("after the store is back: got %s, want the rollback to 1", describe(acts))
	}
}
