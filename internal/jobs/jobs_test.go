package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/sqlite"
	"github.com/cloudmedical/pulse/internal/tabular"
)

var cleveland = filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

// flakyStore fails CreateVersion while failures > 0, like a metadata store that is briefly
// unreachable.
type flakyStore struct {
	*sqlite.DB
	failures atomic.Int32
	calls    atomic.Int32
}

func (f *flakyStore) CreateVersion(ctx context.Context, v *pulse.ModelVersion) error {
	f.calls.Add(1)
	if f.failures.Add(-1) >= 0 {
		return errors.New("sqlite: create version: disk I/O error")
	}
	return f.DB.CreateVersion(ctx, v)
}

type env struct {
	lake  *blobstore.Store
	dir   string
	db    *sqlite.DB
	store *flakyStore
	reg   *registry.Service
}

// newEnv opens a metadata store, blob stores and a registry in a temporary directory and
// registers the Cleveland data as dataset "cleveland".
func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "pulse.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newEnvOn(t, dir, db)
}

func newEnvOn(t testing.TB, dir string, db *sqlite.DB) *env {
	t.Helper()
	ctx := context.Background()
	blobs, err := blobstore.Open(ctx, blobstore.FileURL(filepath.Join(dir, "blobs")))
	if err != nil {
		t.Fatal(err)
	}
	lakeSt, err := blobstore.Open(ctx, blobstore.FileURL(filepath.Join(dir, "lake")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close(); lakeSt.Close() })
	st := &flakyStore{DB: db}
	reg, err := registry.New(ctx, registry.Config{Store: st, Blobs: blobs, Lake: lakeSt})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cleveland)
	if err != nil {
		t.Fatalf("the shared dataset must be present: %v", err)
	}
	defer f.Close()
	if _, _, err := reg.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: "cleveland", Body: f, Options: tabular.Options{Header: "auto", Delimiter: ','}}); err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, db: db, store: st, reg: reg, lake: lakeSt}
}

func (e *env) open(t testing.TB, cfg Config) *Service {
	t.Helper()
	if cfg.SQLitePath == "" && cfg.Pool == nil {
		cfg.SQLitePath = filepath.Join(e.dir, "jobs.db")
	}
	if cfg.Registry == nil {
		cfg.Registry = e.reg
	}
	if cfg.RetryDelay == nil {
		cfg.RetryDelay = func(int) time.Duration { return 50 * time.Millisecond }
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func wait(t testing.TB, s *Service, id int64) *Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j, err := s.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for job %d: %v", id, err)
	}
	return j
}

func goodRequest() registry.TrainRequest {
	return registry.TrainRequest{Dataset: "cleveland", Target: "num > 0", Seed: 7}
}

func TestTrainJobProducesVersion(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 2})
	ctx := context.Background()
	j, created, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{Trigger: "cli", RequestedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !created || j.Kind != KindTrain || j.Model != "heart" || j.Trigger != "cli" || j.RequestedBy != "test" {
		t.Errorf("enqueued: got created=%v %+v", created, j)
	}
	if j.Request == nil || j.Request.Dataset != "cleveland" || j.Request.Seed != 7 {
		t.Errorf("enqueued request: got %+v", j.Request)
	}
	done := wait(t, s, j.ID)
	if done.State != "completed" || done.Version != 1 || done.VersionURL != "/v1/models/heart/versions/1" {
		t.Fatalf("job: got state %s version %d url %q problem %+v errors %+v", done.State, done.Version, done.VersionURL, done.Problem, done.Errors)
	}
	if done.Attempt != 1 || len(done.Errors) != 0 || done.Problem != nil || done.FinalizedAt == nil {
		t.Errorf("job: got attempt %d errors %v problem %v finalized %v", done.Attempt, done.Errors, done.Problem, done.FinalizedAt)
	}
	if done.Progress != "done: version 1" {
		t.Errorf("progress: got %q", done.Progress)
	}
	if len(done.Logs) != 1 || !strings.Contains(done.Logs[0].Log, "msg=trained") || !strings.Contains(done.Logs[0].Log, "version=1") {
		t.Errorf("logs: got %+v, want one attempt's log saying it trained version 1", done.Logs)
	}
	v, err := e.reg.Version(ctx, "heart", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Lineage.Trigger != "cli" || v.Lineage.Seed != 7 || v.Lineage.DatasetName != "cleveland" {
		t.Errorf("version lineage: got trigger %q seed %d dataset %q", v.Lineage.Trigger, v.Lineage.Seed, v.Lineage.DatasetName)
	}
	if len(v.Aliases) != 1 || v.Aliases[0] != pulse.AliasChampion {
		t.Errorf("first version: got aliases %v, want champion", v.Aliases)
	}
}

func TestBadRequestFailsWithoutRetry(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 1})
	ctx := context.Background()
	cases := []struct {
		name  string
		req   registry.TrainRequest
		field string
	}{
		{"unknown dataset", registry.TrainRequest{Dataset: "nope", Target: "num > 0"}, "dataset"},
		{"bad target", registry.TrainRequest{Dataset: "cleveland", Target: "nosuch > 0"}, "target"},
		{"bad param", registry.TrainRequest{Dataset: "cleveland", Target: "num > 0", Params: map[string]any{"C": -1}}, "params.C"},
		{"no target", registry.TrainRequest{Dataset: "cleveland"}, "target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The synchronous call's error is what the job must show.
			_, want := e.reg.Train(ctx, "heart", tc.req)
			var we *pulse.Error
			if !errors.As(want, &we) {
				t.Fatalf("direct train: got %v, want a *pulse.Error", want)
			}
			j, _, err := s.Enqueue(ctx, "heart", tc.req, EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			done := wait(t, s, j.ID)
			if done.State != "cancelled" || done.Attempt != 1 {
				t.Errorf("state: got %s after %d attempts, want cancelled after 1", done.State, done.Attempt)
			}
			if done.Problem == nil || done.Problem.Code != we.Code || done.Problem.Message != we.Message || done.Problem.Field != tc.field {
				t.Errorf("problem: got %+v, want code %s field %s message %q", done.Problem, we.Code, tc.field, we.Message)
			}
			if done.Version != 0 || done.Progress != "failed: "+we.Message {
				t.Errorf("got version %d progress %q", done.Version, done.Progress)
			}
			if len(done.Errors) != 1 || !strings.Contains(done.Errors[0].Error, we.Message) {
				t.Errorf("errors: got %+v", done.Errors)
			}
		})
	}
	if vs, _ := e.reg.Versions(ctx, "heart"); len(vs) != 0 {
		t.Errorf("versions: got %d, want none", len(vs))
	}
}

func TestInvalidModelNameRefusedAtEnqueue(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 0})
	_, _, err := s.Enqueue(context.Background(), "Bad Name", goodRequest(), EnqueueOptions{})
	if pulse.ErrorCode(err) != pulse.EINVALID {
		t.Fatalf("got %v, want %s", err, pulse.EINVALID)
	}
}

func TestInfrastructureErrorIsRetried(t *testing.T) {
	e := newEnv(t)
	e.store.failures.Store(2)
	s := e.open(t, Config{Workers: 1})
	j, _, err := s.Enqueue(context.Background(), "heart", goodRequest(), EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var done *Job
	for range 10 {
		done = wait(t, s, j.ID)
		if done.Finished() {
			break
		}
		if done.State != "retryable" || done.Problem != nil {
			t.Fatalf("after a failed attempt: got state %s problem %+v", done.State, done.Problem)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if done.State != "completed" || done.Version != 1 || done.Attempt != 3 {
		t.Fatalf("got state %s version %d after %d attempts, want completed version 1 after 3", done.State, done.Version, done.Attempt)
	}
	if len(done.Errors) != 2 || !strings.Contains(done.Errors[0].Error, "disk I/O error") || done.Errors[0].Attempt != 1 || done.Errors[1].Attempt != 2 {
		t.Errorf("errors: got %+v, want attempts 1 and 2 with the store's error", done.Errors)
	}
	if len(done.Logs) != 3 {
		t.Errorf("logs: got %d attempts, want 3", len(done.Logs))
	}
	if got := e.store.calls.Load(); got != 3 {
		t.Errorf("CreateVersion calls: got %d, want 3", got)
	}
}

func TestInfrastructureErrorDiscardedAfterLastAttempt(t *testing.T) {
	e := newEnv(t)
	e.store.failures.Store(100)
	s := e.open(t, Config{Workers: 1, MaxAttempts: 2})
	j, _, err := s.Enqueue(context.Background(), "heart", goodRequest(), EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var done *Job
	for range 10 {
		if done = wait(t, s, j.ID); done.Finished() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if done.State != "discarded" || done.Attempt != 2 || len(done.Errors) != 2 {
		t.Fatalf("got state %s after %d attempts with %d errors, want discarded after 2", done.State, done.Attempt, len(done.Errors))
	}
	// Internal details stay in the errors; the problem is what a client may see.
	if done.Problem == nil || done.Problem.Code != pulse.EINTERNAL || done.Problem.Message != "internal error" {
		t.Errorf("problem: got %+v", done.Problem)
	}
}

// slowRequest trains for many seconds: a large random search of boosted trees.
func slowRequest() registry.TrainRequest {
	r := goodRequest()
	r.Algorithm = "gbdt"
	r.Params = map[string]any{"num_trees": 2000}
	r.Search = &ml.SearchSpec{Method: "random", Trials: ml.MaxSearchCandidates, Folds: 10,
		Space: map[string]ml.Distribution{"learning_rate": {LogUniform: []float64{0.001, 0.3}}}}
	return r
}

func TestCancelRunningJob(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 1})
	ctx := context.Background()
	j, _, err := s.Enqueue(ctx, "heart", slowRequest(), EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := s.Get(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == "running" {
			if got.Progress != "attempt 1 of 5 running" {
				t.Errorf("progress: got %q", got.Progress)
			}
			break
		}
		if got.Finished() || time.Now().After(deadline) {
			t.Fatalf("job never ran: state %s", got.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	done := wait(t, s, j.ID)
	if done.State != "cancelled" || done.Version != 0 || done.Problem != nil || done.Progress != "cancelled" {
		t.Fatalf("got state %s version %d problem %+v progress %q, want cancelled with no version", done.State, done.Version, done.Problem, done.Progress)
	}
	if vs, _ := e.reg.Versions(ctx, "heart"); len(vs) != 0 {
		t.Errorf("versions: got %d, want none", len(vs))
	}
}

func TestCancelWaitingJobAndUnknownJob(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 0}) // nothing works the queue
	ctx := context.Background()
	j, _, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != "available" || j.Progress != "waiting for a worker" {
		t.Errorf("new job: got state %s progress %q", j.State, j.Progress)
	}
	c, err := s.Cancel(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != "cancelled" || c.FinalizedAt == nil {
		t.Errorf("cancelled: got state %s finalized %v", c.State, c.FinalizedAt)
	}
	for name, f := range map[string]func() error{
		"get":    func() error { _, err := s.Get(ctx, 999999); return err },
		"cancel": func() error { _, err := s.Cancel(ctx, 999999); return err },
	} {
		if err := f(); pulse.ErrorCode(err) != pulse.ENOTFOUND || err.Error() != "job 999999 not found" {
			t.Errorf("%s unknown job: got %v, want not found", name, err)
		}
	}
}

func TestEnqueueIsIdempotentByEventID(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 0})
	ctx := context.Background()
	a, created, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{EventID: "ev-1", Trigger: "stream"})
	if err != nil || !created {
		t.Fatalf("first: got created=%v err %v", created, err)
	}
	// A redelivery is recognised even after the first job was cancelled.
	if _, err := s.Cancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	// The event id alone identifies the request: a redelivery is a duplicate even if its
	// body differs.
	other := goodRequest()
	other.Seed = 99
	b, created, err := s.Enqueue(ctx, "heart", other, EnqueueOptions{EventID: "ev-1", Trigger: "stream"})
	if err != nil || created || b.ID != a.ID || b.EventID != "ev-1" || b.Request.Seed != 7 {
		t.Fatalf("redelivery: got created=%v id %d (first %d) err %v", created, b.ID, a.ID, err)
	}
	c, created, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{EventID: "ev-2"})
	if err != nil || !created || c.ID == a.ID {
		t.Fatalf("other event: got created=%v id %d err %v", created, c.ID, err)
	}
	// Without an event id every enqueue is a new job.
	d1, _, _ := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{})
	d2, created, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{})
	if err != nil || !created || d1.ID == d2.ID {
		t.Fatalf("no event id: got created=%v ids %d %d err %v", created, d1.ID, d2.ID, err)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 0})
	ctx := context.Background()
	var ids []int64
	for i, m := range []string{"heart", "lungs", "heart", "heart.v2"} {
		j, _, err := s.Enqueue(ctx, m, goodRequest(), EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
		if i == 2 {
			if _, err := s.Cancel(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	idsOf := func(js []*Job) string {
		var s []string
		for _, j := range js {
			s = append(s, fmt.Sprint(j.ID))
		}
		return strings.Join(s, ",")
	}
	want := func(idx ...int) string {
		var s []string
		for _, i := range idx {
			s = append(s, fmt.Sprint(ids[i]))
		}
		return strings.Join(s, ",")
	}
	cases := []struct {
		f    Filter
		want string
	}{
		{Filter{}, want(3, 2, 1, 0)},
		{Filter{Model: "heart"}, want(2, 0)},
		{Filter{Model: "heart", State: "available"}, want(0)},
		{Filter{State: "cancelled"}, want(2)},
		{Filter{Kind: KindTrain, Limit: 2}, want(3, 2)},
		{Filter{Kind: "other"}, ""},
		{Filter{Model: "nobody"}, ""},
	}
	for _, tc := range cases {
		got, err := s.List(ctx, tc.f)
		if err != nil {
			t.Fatalf("%+v: %v", tc.f, err)
		}
		if idsOf(got) != tc.want {
			t.Errorf("%+v: got ids %s, want %s", tc.f, idsOf(got), tc.want)
		}
	}
	for _, f := range []Filter{{State: "done"}, {Limit: 5000}, {Limit: -1}} {
		if _, err := s.List(ctx, f); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("%+v: got %v, want %s", f, err, pulse.EINVALID)
		}
	}
}

// TestManyJobsTwoWorkersSQLite runs two worker services (as two `pulse worker` processes
// would) on one jobs.db and one metadata store: every job runs exactly once.
func TestManyJobsTwoWorkersSQLite(t *testing.T) {
	e := newEnv(t)
	// A second process has its own connections to the same files.
	db2, err := sqlite.Open(context.Background(), filepath.Join(e.dir, "pulse.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	e2 := newEnvOn(t, e.dir, db2)
	producer := e.open(t, Config{Workers: 0})
	w1 := e.open(t, Config{Workers: 2})
	w2 := e2.open(t, Config{Workers: 2})
	_ = w1
	_ = w2
	manyJobs(t, producer, e.reg, 20)
}

// manyJobs enqueues n jobs for one model, waits for all, and checks that each produced its
// own version and the model has exactly n versions.
func manyJobs(t *testing.T, s *Service, reg *registry.Service, n int) {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for i := range n {
		req := goodRequest()
		req.Seed = uint64(i + 1)
		req.CVFolds = -1
		j, _, err := s.Enqueue(ctx, "many", req, EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	seen := map[int]int64{}
	byWorker := map[string]int{}
	for _, id := range ids {
		j := wait(t, s, id)
		for _, w := range j.AttemptedBy {
			byWorker[w]++
		}
		if j.State != "completed" || j.Attempt != 1 || j.Version == 0 {
			t.Fatalf("job %d: got state %s attempt %d version %d errors %+v", id, j.State, j.Attempt, j.Version, j.Errors)
		}
		if other, dup := seen[j.Version]; dup {
			t.Errorf("jobs %d and %d both claim version %d", other, id, j.Version)
		}
		seen[j.Version] = id
	}
	t.Logf("jobs per worker: %v", byWorker)
	vs, err := reg.Versions(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != n {
		t.Errorf("versions: got %d, want %d (one per job)", len(vs), n)
	}
}
