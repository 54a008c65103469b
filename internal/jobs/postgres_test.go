package jobs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/sqlite"
)

var (
	pgOnce sync.Once
	pgURL  string
	pgErr  error
	pgStop func()
)

// TestMain stops the PostgreSQL cluster the tests started, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if pgStop != nil {
		pgStop()
	}
	os.Exit(code)
}

// postgresURL returns the URL of a PostgreSQL server for tests: PULSE_TEST_DATABASE_URL when
// set (the test script starts one), else a private cluster started with scripts/postgres. It
// fails the test when neither works: PostgreSQL tests are never skipped.
func postgresURL(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if u := os.Getenv("PULSE_TEST_DATABASE_URL"); u != "" {
			pgURL = u
			return
		}
		pgURL, pgStop, pgErr = startPostgres()
	})
	if pgErr != nil {
		t.Fatalf("PostgreSQL: PULSE_TEST_DATABASE_URL is unset and no private cluster could be started: %v", pgErr)
	}
	return pgURL
}

var urlRE = regexp.MustCompile(`postgres(ql)?://\S+`)

func startPostgres() (string, func(), error) {
	dir, err := os.MkdirTemp("", "pulse-jobs-pg-")
	if err != nil {
		return "", nil, err
	}
	script := filepath.Join("..", "..", "scripts", "postgres")
	out, err := exec.Command(script, "start", dir).Output()
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("%s start: %v", script, err)
	}
	u := urlRE.Find(out)
	if u == nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("%s start printed no URL: %s", script, out)
	}
	stop := func() {
		_ = exec.Command(script, "stop", dir).Run()
		os.RemoveAll(dir)
	}
	return string(u), stop, nil
}

var dbSeq int

func newPool(t testing.TB, db string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = db
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func freshDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, postgresURL(t))
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	dbSeq++
	name := fmt.Sprintf("pulse_jobs_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, dbSeq)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestPostgresTrainBadRequestAndCancel(t *testing.T) {
	e := newEnv(t)
	db := freshDatabase(t)
	s := e.open(t, Config{Pool: newPool(t, db), Workers: 2, PollInterval: 100 * time.Millisecond})
	ctx := context.Background()
	j, _, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{EventID: "ev-pg"})
	if err != nil {
		t.Fatal(err)
	}
	if done := wait(t, s, j.ID); done.State != "completed" || done.Version != 1 || len(done.Logs) != 1 {
		t.Fatalf("train: got state %s version %d logs %d errors %+v", done.State, done.Version, len(done.Logs), done.Errors)
	}
	if again, created, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{EventID: "ev-pg"}); err != nil || created || again.ID != j.ID {
		t.Errorf("redelivery: got created=%v err %v", created, err)
	}
	bad, _, err := s.Enqueue(ctx, "heart", slowBad(), EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if done := wait(t, s, bad.ID); done.State != "cancelled" || done.Attempt != 1 || done.Problem == nil || done.Problem.Field != "target" {
		t.Errorf("bad request: got state %s attempt %d problem %+v", done.State, done.Attempt, done.Problem)
	}
	slow, _, err := s.Enqueue(ctx, "heart", slowRequest(), EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		got, err := s.Get(ctx, slow.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == "running" {
			break
		}
		if got.Finished() {
			t.Fatalf("slow job finished before it was cancelled: %s", got.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Cancel(ctx, slow.ID); err != nil {
		t.Fatal(err)
	}
	if done := wait(t, s, slow.ID); done.State != "cancelled" || done.Version != 0 || done.Problem != nil {
		t.Errorf("cancelled: got state %s version %d problem %+v", done.State, done.Version, done.Problem)
	}
	if got, err := s.List(ctx, Filter{Model: "heart", State: "completed"}); err != nil || len(got) != 1 || got[0].ID != j.ID {
		t.Errorf("list completed heart jobs: got %d jobs, err %v", len(got), err)
	}
}

func slowBad() registry.TrainRequest {
	r := goodRequest()
	r.Target = "nosuch > 0"
	return r
}

// TestManyJobsTwoWorkersPostgres runs two worker services with their own pools (two
// processes, as far as River can tell) on one database: every job runs exactly once.
func TestManyJobsTwoWorkersPostgres(t *testing.T) {
	e := newEnv(t)
	db2, err := sqlite.Open(context.Background(), filepath.Join(e.dir, "pulse.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	e2 := newEnvOn(t, e.dir, db2)
	db := freshDatabase(t)
	producer := e.open(t, Config{Pool: newPool(t, db), Workers: 0})
	e.open(t, Config{Pool: newPool(t, db), Workers: 2, PollInterval: 50 * time.Millisecond})
	e2.open(t, Config{Pool: newPool(t, db), Workers: 2, PollInterval: 50 * time.Millisecond})
	manyJobs(t, producer, e.reg, 30)
}
