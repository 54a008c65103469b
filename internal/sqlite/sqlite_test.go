package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/storetest"
)

func openTemp(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "pulse.db"), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTemp(t) })
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, err := Open(t.Context(), ":memory:", nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

type appliedMigration struct {
	Version   int
	Name      string
	AppliedAt int64
}

func appliedMigrations(t *testing.T, db *DB) []appliedMigration {
	t.Helper()
	rows, err := db.sql.QueryContext(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
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

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pulse.db")
	embedded, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}

	var log1 bytes.Buffer
	db, err := Open(ctx, path, slog.New(slog.NewTextHandler(&log1, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := strings.Count(log1.String(), "applied migration"); got != len(embedded) {
		t.Errorf("first open: got %d migrations applied, want %d; log:\n%s", got, len(embedded), log1.String())
	}
	migrations := appliedMigrations(t, db)
	if len(migrations) != len(embedded) {
		t.Fatalf("first open: got %d rows in schema_migrations, want %d", len(migrations), len(embedded))
	}
	for i, m := range migrations {
		if m.Version != embedded[i].version || m.Name != embedded[i].name {
			t.Errorf("schema_migrations row %d: got %d %q, want %d %q", i, m.Version, m.Name, embedded[i].version, embedded[i].name)
		}
	}

	d := &pulse.Dataset{ID: "d1", Name: "heart", SHA256: "abc", Rows: 303, Format: pulse.CSVFormat{Header: true, Delimiter: ","}}
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
	db, err = Open(ctx, path, slog.New(slog.NewTextHandler(&log2, nil)))
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
	// Versions continue after a reopen.
	v2 := &pulse.ModelVersion{Model: "heart", Threshold: 0.5}
	if err := db.CreateVersion(ctx, v2); err != nil {
		t.Fatalf("CreateVersion after reopen: %v", err)
	}
	if v2.Version != 2 {
		t.Errorf("version after reopen: got %d, want 2", v2.Version)
	}
}

// TestTwoHandlesOneFile checks that two stores on one file, as a CLI beside a running server,
// still assign consecutive versions: write transactions take the write lock before they read.
func TestTwoHandlesOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pulse.db")
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(ctx, path, nil)
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer db.Close()
		dbs[i] = db
	}
	const n = 20
	var (
		mu                        sync.Mutex
		modelVersions, dsVersions []int
		wg                        sync.WaitGroup
	)
	for i := range n {
		db := dbs[i%2]
		wg.Go(func() {
			v := &pulse.ModelVersion{Model: "heart", Threshold: 0.5}
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
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pulse.db")
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatalf("insert future migration: %v", err)
	}
	db.Close()

	db, err = Open(ctx, path, nil)
	if err == nil {
		db.Close()
		t.Fatal("Open of a database from a newer binary: got no error")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a database from a newer binary: got %q, want it to say the schema is newer", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		name, path string
	}{
		{"empty path", ""},
		{"missing directory", filepath.Join(t.TempDir(), "no", "such", "dir", "pulse.db")},
		{"directory", t.TempDir()},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := Open(t.Context(), c.path, nil)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q): got no error", c.path)
			}
		})
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	name := "a?b#c%20d e.db"
	db, err := Open(t.Context(), filepath.Join(dir, name), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("database file %q: %v; directory holds %q", name, err, names)
	}
}

func TestPragmas(t *testing.T) {
	db := openTemp(t)
	for _, c := range []struct {
		pragma, want string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "1"}, // NORMAL
	} {
		var got string
		if err := db.sql.QueryRowContext(t.Context(), "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s: got %q, want %q", c.pragma, got, c.want)
		}
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
		{"alias to a missing version", `INSERT INTO aliases (model, alias, version, updated_at) VALUES ('heart', 'x', 2, 0)`},
		{"version of a missing model", `INSERT INTO model_versions (model, version, algorithm, features, target, threshold,
			artifact_key, artifact_sha256, artifact_bytes, metrics, lineage, created_at)
			VALUES ('ghost', 1, '', 'null', '', 0.5, '', '', 0, '{}', '{}', 0)`},
		{"duplicate version", `INSERT INTO model_versions (model, version, algorithm, features, target, threshold,
			artifact_key, artifact_sha256, artifact_bytes, metrics, lineage, created_at)
			VALUES ('heart', 1, '', 'null', '', 0.5, '', '', 0, '{}', '{}', 0)`},
		{"text in an integer column", `INSERT INTO models (name, created_at) VALUES ('m', 'yesterday')`},
	} {
		if _, err := db.sql.ExecContext(ctx, c.stmt); err == nil {
			t.Errorf("%s: got no error", c.name)
		}
	}
}

func TestPing(t *testing.T) {
	db := openTemp(t)
	if err := db.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	db.Close()
	if err := db.Ping(t.Context()); err == nil {
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
