package postgres

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/storetest"
)

// The tests use the PostgreSQL server at $PULSE_TEST_DATABASE_URL, or else start a private
// throw-away cluster with scripts/postgres (once for the package; stopped in TestMain). Each
// test gets a database of its own, dropped when it ends.
var server struct {
	once  sync.Once
	url   string        // the server's URL (its database is only for administration)
	admin *pgxpool.Pool // to create and drop the tests' databases
	dir   string        // the cluster's directory if the tests started it
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.admin != nil {
		server.admin.Close()
	}
	if server.dir != "" {
		if out, err := exec.Command(script(), "stop", server.dir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "scripts/postgres stop %s: %v\n%s", server.dir, err, out)
			code = 1
		}
		os.RemoveAll(server.dir)
	}
	os.Exit(code)
}

func script() string {
	return filepath.Join("..", "..", "scripts", "postgres")
}

// startServer finds or starts the test server.
func startServer() (string, error) {
	if u := os.Getenv("PULSE_TEST_DATABASE_URL"); u != "" {
		return u, nil
	}
	dir, err := os.MkdirTemp("", "pulse-pg-")
	if err != nil {
		return "", err
	}
	server.dir = dir
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script(), "start", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("PULSE_TEST_DATABASE_URL is not set and %s start %s failed: %v\n%s\n"+
			"Set PULSE_TEST_DATABASE_URL to a PostgreSQL server URL whose user may create databases, e.g.\n"+
			"  eval \"$(scripts/postgres start \"$(mktemp -d)\")\"; export PULSE_TEST_DATABASE_URL",
			script(), dir, err, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "PULSE_TEST_DATABASE_URL="); ok {
			return u, nil
		}
	}
	return "", fmt.Errorf("%s start printed no PULSE_TEST_DATABASE_URL line: %q", script(), stdout.String())
}

// testServer returns the server's URL and a pool on it for administration, or fails the test.
func testServer(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	server.once.Do(func() {
		server.url, server.err = startServer()
		if server.err != nil {
			return
		}
		server.admin, server.err = pgxpool.New(context.Background(), server.url)
		if server.err == nil {
			server.err = server.admin.Ping(context.Background())
		}
		if server.err != nil {
			server.err = fmt.Errorf("test server %s: %w", server.url, server.err)
		}
	})
	if server.err != nil {
		t.Fatal(server.err)
	}
	return server.url, server.admin
}

// newDatabase creates an empty database, dropped when the test ends, and returns its URL.
func newDatabase(t testing.TB) string {
	t.Helper()
	serverURL, admin := testServer(t)
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("PULSE_TEST_DATABASE_URL %q: want a postgres:// URL", serverURL)
	}
	// rand.Text is base32: letters and digits 2-7, safe in an unquoted identifier.
	name := "pulse_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(context.Background(), `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// openTemp opens a store on a new database; it is closed when the test ends.
func openTemp(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), newDatabase(t), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTemp(t) })
}

type appliedMigration struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

func appliedMigrations(t *testing.T, db *DB) []appliedMigration {
	t.Helper()
	rows, err := db.pool.Query(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("query schema_migrations: %v", err)
	}
	defer rows.Close()
	var ms []appliedMigration
	for rows.Next() {
		var m appliedMigration
		if err := rows.Scan(&m.Version, &m.Name, &m.AppliedAt); err != nil {
			t.Fatalf("scan schema_migrations: %v", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("schema_migrations: %v", err)
	}
	return ms
}

// syncBuffer is a bytes.Buffer that several goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	embedded, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}

	var log1 bytes.Buffer
	db, err := Open(ctx, dbURL, slog.New(slog.NewTextHandler(&log1, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	migrations := appliedMigrations(t, db)
	if len(migrations) != len(embedded) {
		t.Fatalf("schema_migrations: got %+v, want %d migrations", migrations, len(embedded))
	}
	for i, m := range migrations {
		if m.Version != embedded[i].version || m.Name != embedded[i].name {
			t.Errorf("migration %d: got %d %q, want %d %q", i, m.Version, m.Name, embedded[i].version, embedded[i].name)
		}
		if !strings.Contains(log1.String(), "name="+m.Name) {
			t.Errorf("log does not mention migration %s:\n%s", m.Name, log1.String())
		}
	}

	d := &pulse.Dataset{ID: "d1", Name: "heart", SHA256: "abc", Rows: 303, Bytes: 18461,
		Format: pulse.CSVFormat{Header: true, Delimiter: ","}}
	if err := db.CreateDataset(ctx, d); err != nil {
		t.Fatalf("CreateDataset: %v", err)
	}
	v := &pulse.ModelVersion{Model: "heart", Algorithm: "logistic_regression", Threshold: 0.5,
		Lineage: pulse.Lineage{DatasetID: "d1", Params: map[string]any{"l2": 0.01}}}
	if err := db.CreateVersion(ctx, v); err != nil {
		t.Fatalf("CreateVersion: %v", err)
	}
	if _, err := db.SetAlias(ctx, "heart", pulse.AliasChampion, 1); err != nil {
		t.Fatalf("SetAlias: %v", err)
	}
	wantModel, err := db.GetModel(ctx, "heart")
	if err != nil {
		t.Fatalf("GetModel: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	var log2 bytes.Buffer
	db, err = Open(ctx, dbURL, slog.New(slog.NewTextHandler(&log2, nil)))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if strings.Contains(log2.String(), "applied migration") {
		t.Errorf("reopen applied migrations again; log:\n%s", log2.String())
	}
	if got := appliedMigrations(t, db); !reflect.DeepEqual(got, migrations) {
		t.Errorf("schema_migrations after reopen: got %+v, want %+v", got, migrations)
	}

	gotD, err := db.FindDataset(ctx, "heart")
	if err != nil {
		t.Fatalf("FindDataset after reopen: %v", err)
	}
	if !reflect.DeepEqual(gotD, d) {
		t.Errorf("dataset after reopen: got %+v, want %+v", gotD, d)
	}
	gotV, err := db.GetVersion(ctx, "heart", 1)
	if err != nil {
		t.Fatalf("GetVersion after reopen: %v", err)
	}
	v.Aliases = []string{pulse.AliasChampion}
	if !reflect.DeepEqual(gotV, v) {
		t.Errorf("version after reopen: got %+v, want %+v", gotV, v)
	}
	gotM, err := db.GetModel(ctx, "heart")
	if err != nil {
		t.Fatalf("GetModel after reopen: %v", err)
	}
	if !reflect.DeepEqual(gotM, wantModel) {
		t.Errorf("model after reopen: got %+v, want %+v", gotM, wantModel)
	}
	v2 := &pulse.ModelVersion{Model: "heart", Threshold: 0.5}
	if err := db.CreateVersion(ctx, v2); err != nil {
		t.Fatalf("CreateVersion after reopen: %v", err)
	}
	if v2.Version != 2 {
		t.Errorf("version after reopen: got %d, want 2", v2.Version)
	}
}

// TestConcurrentOpen opens one new database from several handles at once, as processes that
// start together: each migration is applied exactly once and every Open succeeds.
func TestConcurrentOpen(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	embedded, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	var (
		logs syncBuffer
		dbs  [n]*DB
		wg   sync.WaitGroup
	)
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	for i := range dbs {
		wg.Go(func() {
			db, err := Open(ctx, dbURL, logger)
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			dbs[i] = db
		})
	}
	wg.Wait()
	for _, db := range dbs {
		if db != nil {
			defer db.Close()
		}
	}
	if t.Failed() {
		return
	}
	if got := strings.Count(logs.String(), "applied migration"); got != len(embedded) {
		t.Errorf("migrations applied: got %d, want %d (each once); log:\n%s", got, len(embedded), logs.String())
	}
	var versions []int
	for _, m := range appliedMigrations(t, dbs[0]) {
		versions = append(versions, m.Version)
	}
	var want []int
	for _, m := range embedded {
		want = append(want, m.version)
	}
	if !slices.Equal(versions, want) {
		t.Errorf("schema_migrations: got versions %v, want %v", versions, want)
	}
}

// TestTwoHandles checks that two stores on one database, as two processes, still assign
// consecutive versions and chain aliases: the locks are in the database, not the process.
func TestTwoHandles(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(ctx, dbURL, nil)
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer db.Close()
		dbs[i] = db
	}
	const n = 24
	var (
		mu                        sync.Mutex
		modelVersions, dsVersions []int
		wg                        sync.WaitGroup
	)
	for i := range n {
		db := dbs[i%2]
		wg.Go(func() {
			v := &pulse.ModelVersion{Model: "heart", Threshold: 0.5, ArtifactKey: fmt.Sprint(i)}
			if err := db.CreateVersion(ctx, v); err != nil {
				t.Errorf("CreateVersion on handle %d: %v", i%2, err)
				return
			}
			mu.Lock()
			modelVersions = append(modelVersions, v.Version)
			mu.Unlock()
		})
		wg.Go(func() {
			d := &pulse.Dataset{ID: fmt.Sprintf("d%d", i), Name: "heart"}
			if err := db.CreateDataset(ctx, d); err != nil {
				t.Errorf("CreateDataset on handle %d: %v", i%2, err)
				return
			}
			mu.Lock()
			dsVersions = append(dsVersions, d.Version)
			mu.Unlock()
		})
	}
	wg.Wait()
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	for what, got := range map[string][]int{"model versions": modelVersions, "dataset versions": dsVersions} {
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want 1..%d", what, got, n)
		}
	}

	// Move one alias from both handles at once: each call sees the one before it.
	previous := make([]int, n)
	for i := range n {
		wg.Go(func() {
			p, err := dbs[i%2].SetAlias(ctx, "heart", pulse.AliasChampion, i+1)
			if err != nil {
				t.Errorf("SetAlias(%d) on handle %d: %v", i+1, i%2, err)
			}
			previous[i] = p
		})
	}
	wg.Wait()
	m, err := dbs[0].GetModel(ctx, "heart")
	if err != nil {
		t.Fatalf("GetModel: %v", err)
	}
	last := m.Aliases[pulse.AliasChampion]
	wantPrevious := []int{0}
	for v := 1; v <= n; v++ {
		if v != last {
			wantPrevious = append(wantPrevious, v)
		}
	}
	slices.Sort(previous)
	if !slices.Equal(previous, wantPrevious) {
		t.Errorf("previous versions: got %v, want %v (0 once, then every version but the last, %d, once)", previous, wantPrevious, last)
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	db, err := Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', now())`); err != nil {
		t.Fatalf("insert future migration: %v", err)
	}
	db.Close()

	db, err = Open(ctx, dbURL, nil)
	if err == nil {
		db.Close()
		t.Fatal("Open of a database from a newer binary: got no error")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a database from a newer binary: got %q, want it to say the schema is newer", err)
	}
}

func TestOpenErrors(t *testing.T) {
	serverURL, _ := testServer(t)
	missing, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	missing.Path = "/pulse_no_such_database"
	for _, c := range []struct {
		name, url, mention string
	}{
		{"empty url", "", "empty"},
		{"malformed url", "postgres://[::1", "postgres: open"},
		{"nothing listening", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", "127.0.0.1"},
		{"missing database", missing.String(), "pulse_no_such_database"},
		{"password is not shown", "postgres://postgres:s3cret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", "postgres: open"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := Open(t.Context(), c.url, nil)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q): got no error", c.url)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("Open(%q): got %q, want it to mention %q", c.url, err, c.mention)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open(%q): got %q, which shows the password", c.url, err)
			}
		})
	}
}

// TestSessionTimeZone checks that times do not depend on the session's time zone.
func TestSessionTimeZone(t *testing.T) {
	ctx := t.Context()
	u, err := url.Parse(newDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	in := time.Date(2025, 6, 30, 23, 59, 59, 123456789, time.FixedZone("X", 5*3600+1800))
	want := in.UTC().Truncate(time.Microsecond)
	for _, tz := range []string{"Asia/Kolkata", "America/St_Johns", "UTC"} {
		q := u.Query()
		q.Set("timezone", tz)
		u.RawQuery = q.Encode()
		db, err := Open(ctx, u.String(), nil)
		if err != nil {
			t.Fatalf("Open with timezone %s: %v", tz, err)
		}
		v := &pulse.ModelVersion{Model: "heart", Threshold: 0.5, CreatedAt: in}
		if err := db.CreateVersion(ctx, v); err != nil {
			t.Fatalf("CreateVersion with timezone %s: %v", tz, err)
		}
		// Read every version back through this session.
		vs, err := db.ListVersions(ctx, "heart")
		if err != nil {
			t.Fatalf("ListVersions with timezone %s: %v", tz, err)
		}
		for _, got := range vs {
			if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
				t.Errorf("timezone %s, version %d: got created_at %v, want %v", tz, got.Version, got.CreatedAt, want)
			}
		}
		db.Close()
	}
}

// TestUnstorableText checks that text PostgreSQL cannot hold (a NUL byte, invalid UTF-8)
// gives EUNPROCESSABLE, not an internal error, and stores nothing.
func TestUnstorableText(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"NUL in a dataset name", db.CreateDataset(ctx, &pulse.Dataset{ID: "d1", Name: "a\x00b"})},
		{"invalid UTF-8 in a dataset id", db.CreateDataset(ctx, &pulse.Dataset{ID: "\xff", Name: "heart"})},
		{"NUL in a feature name (JSON)", db.CreateVersion(ctx, &pulse.ModelVersion{Model: "heart", Threshold: 0.5,
			Features: []pulse.Column{{Name: "a\x00b", Kind: pulse.Numeric}}})},
		{"NUL in a model name", db.CreateVersion(ctx, &pulse.ModelVersion{Model: "a\x00b", Threshold: 0.5})},
	} {
		if got := pulse.ErrorCode(c.err); got != pulse.EUNPROCESSABLE {
			t.Errorf("%s: got error %v (code %q), want code %q", c.name, c.err, got, pulse.EUNPROCESSABLE)
		}
	}
	ds, err := db.ListDatasets(ctx)
	if err != nil {
		t.Fatalf("ListDatasets: %v", err)
	}
	ms, err := db.ListModels(ctx)
	if err != nil {
		t.Fatalf("ListModels: %v", err)
	}
	if len(ds) != 0 || len(ms) != 0 {
		t.Errorf("after failed creates: got %d datasets and %d models, want none", len(ds), len(ms))
	}
}

func TestIntegrityConstraints(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	if err := db.CreateVersion(ctx, &pulse.ModelVersion{Model: "heart", Threshold: 0.5}); err != nil {
		t.Fatalf("CreateVersion: %v", err)
	}
	for _, c := range []struct {
		name, stmt string
	}{
		{"alias to a missing version", `INSERT INTO aliases (model, alias, version, updated_at) VALUES ('heart', 'x', 2, now())`},
		{"version of a missing model", `INSERT INTO model_versions (model, version, algorithm, features, target, threshold,
			artifact_key, artifact_sha256, artifact_bytes, metrics, lineage, created_at)
			VALUES ('ghost', 1, '', 'null', '', 0.5, '', '', 0, '{}', '{}', now())`},
		{"duplicate version", `INSERT INTO model_versions (model, version, algorithm, features, target, threshold,
			artifact_key, artifact_sha256, artifact_bytes, metrics, lineage, created_at)
			VALUES ('heart', 1, '', 'null', '', 0.5, '', '', 0, '{}', '{}', now())`},
		{"version zero", `INSERT INTO model_versions (model, version, algorithm, features, target, threshold,
			artifact_key, artifact_sha256, artifact_bytes, metrics, lineage, created_at)
			VALUES ('heart', 0, '', 'null', '', 0.5, '', '', 0, '{}', '{}', now())`},
		{"text in an integer column", `INSERT INTO datasets (id, name, version, sha256, rows, bytes, format, schema, location, created_at)
			VALUES ('d', 'n', 1, '', 'many', 0, '{}', '{}', '', now())`},
		{"invalid JSON", `INSERT INTO datasets (id, name, version, sha256, rows, bytes, format, schema, location, created_at)
			VALUES ('d', 'n', 1, '', 0, 0, '{', '{}', '', now())`},
		{"empty model name", `INSERT INTO models (name, created_at) VALUES ('', now())`},
	} {
		if _, err := db.pool.Exec(ctx, c.stmt); err == nil {
			t.Errorf("%s: got no error", c.name)
		}
	}
}

func TestPingAndPool(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	if err := db.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// The pool reaches the store's database, as a job queue sharing it would.
	var n int
	if err := db.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatalf("query through Pool: %v", err)
	}
	if n == 0 {
		t.Errorf("schema_migrations through Pool: got %d rows, want some", n)
	}
	db.Close()
	if err := db.Ping(ctx); err == nil {
		t.Error("Ping after Close: got no error")
	}
}

func benchVersion() *pulse.ModelVersion {
	return &pulse.ModelVersion{
		Model: "heart", Algorithm: "logistic_regression", Target: "num", Threshold: 0.5,
		Features: []pulse.Column{{Name: "age", Kind: pulse.Numeric}, {Name: "cp", Kind: pulse.Categorical, Categories: []string{"1", "2", "3", "4"}}},
		Metrics:  pulse.Metrics{Holdout: &pulse.EvalMetrics{N: 76, Accuracy: 0.86, ROCAUC: 0.91}},
		Lineage:  pulse.Lineage{DatasetID: "d1", Params: map[string]any{"l2": 0.01, "max_iter": 200.0}},
	}
}

func BenchmarkCreateVersion(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := db.CreateVersion(ctx, benchVersion()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateVersionParallel creates versions of one model from many goroutines: they
// queue on the model's row lock.
func BenchmarkCreateVersionParallel(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.CreateVersion(ctx, benchVersion()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCreateDataset(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		d := &pulse.Dataset{ID: fmt.Sprintf("d%d", i), Name: "heart", SHA256: fmt.Sprint(i)}
		if err := db.CreateDataset(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetVersion(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b)
	for range 100 {
		if err := db.CreateVersion(ctx, benchVersion()); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.SetAlias(ctx, "heart", pulse.AliasChampion, 50); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.GetVersion(ctx, "heart", 50); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFindDatasetByName(b *testing.B) {
	ctx := context.Background()
	db := openTemp(b)
	for i := range 100 {
		d := &pulse.Dataset{ID: fmt.Sprintf("d%d", i), Name: "heart", SHA256: fmt.Sprint(i)}
		if err := db.CreateDataset(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.FindDataset(ctx, "heart"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestScript checks scripts/postgres on a cluster of its own: start prints a URL that
// answers, a second start prints the same URL, stop is idempotent, and a stopped cluster
// starts again with its data.
func TestScript(t *testing.T) {
	ctx := t.Context()
	dir, err := os.MkdirTemp("", "pulse-pg-script-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command(script(), "stop", dir).Run()
		os.RemoveAll(dir)
	})
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(script(), args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("scripts/postgres %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	urlOf := func(out string) string {
		t.Helper()
		u, ok := strings.CutPrefix(strings.TrimSpace(out), "PULSE_TEST_DATABASE_URL=")
		if !ok || strings.Contains(u, "\n") {
			t.Fatalf("start: got stdout %q, want one PULSE_TEST_DATABASE_URL=... line", out)
		}
		return u
	}
	answers := func(u string) {
		t.Helper()
		db, err := Open(ctx, u, nil)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		defer db.Close()
		if err := db.CreateVersion(ctx, &pulse.ModelVersion{Model: "heart", Threshold: 0.5}); err != nil {
			t.Fatalf("CreateVersion on %s: %v", u, err)
		}
	}

	first := urlOf(run("start", dir))
	answers(first)
	if again := urlOf(run("start", dir)); again != first {
		t.Errorf("second start: got %s, want the running cluster's %s", again, first)
	}
	if out := run("stop", dir); out != "" {
		t.Errorf("stop: got stdout %q, want none", out)
	}
	run("stop", dir)
	restarted := urlOf(run("start", dir))
	answers(restarted)
	db, err := Open(ctx, restarted, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	vs, err := db.ListVersions(ctx, "heart")
	if err != nil {
		t.Fatalf("ListVersions: %v", err)
	}
	if len(vs) != 2 {
		t.Errorf("after a restart: got %d versions, want 2 (one from before the stop)", len(vs))
	}
	db.Close()
	run("stop", dir)
	if _, err := Open(ctx, restarted+"&connect_timeout=5", nil); err == nil {
		t.Errorf("Open after stop: got no error")
	}
}
