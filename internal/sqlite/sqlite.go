// Package sqlite keeps Pulse's metadata (datasets, models, model versions and aliases) in an
// embedded SQLite database through the pure-Go modernc.org/sqlite driver. *DB implements
// pulse.DatasetStore and pulse.ModelStore.
//
// The adapter stores and enforces integrity (unique ids, consecutive versions, aliases that
// point at existing versions); business rules such as which version becomes champion belong
// to the services that use it.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Compile-time checks that *DB implements the store contracts.
var (
	_ pulse.DatasetStore = (*DB)(nil)
	_ pulse.ModelStore   = (*DB)(nil)
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is a metadata store in one SQLite database. It is safe for concurrent use; all access
// goes through a single connection, so writes are serialised.
type DB struct {
	sql    *sql.DB
	logger *slog.Logger
}

// Open opens (creating if needed) the SQLite database at path and applies the embedded
// migrations that it does not have yet. path is a file name, or ":memory:" for a private
// in-memory database. A nil logger discards log output.
func Open(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sdb, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// modernc's SQLite allows one writer at a time; one connection serialises everything in
	// this process and, for ":memory:", keeps every query on the same database.
	sdb.SetMaxOpenConns(1)
	sdb.SetMaxIdleConns(1)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)

	db := &DB{sql: sdb, logger: logger}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	logger.Debug("opened metadata store", "path", path)
	return db, nil
}

// dsn returns the driver's data source name for path. Write transactions begin IMMEDIATE, so
// that another process holding the file waits (busy_timeout) instead of failing on upgrade.
func dsn(path string) string {
	// The path is the path part of a SQLite URI: escape what would end it or be decoded.
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + p + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// Close closes the database.
func (db *DB) Close() error {
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// migration is one embedded SQL file, migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the embedded migrations in version order.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("migration %q: name must start with a positive number", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %q and %q have the same version", ms[i-1].name, ms[i].name)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return ms, nil
}

// migrate applies, in order and each in its own transaction, the migrations that are not
// recorded in schema_migrations yet.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
	if _, err := db.sql.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("database schema version %d is newer than this binary's %d", current, latest)
	}
	for _, m := range ms {
		var applied bool
		err := db.inTx(ctx, false, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, toMicros(time.Now())); err != nil {
				return err
			}
			applied = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if applied {
			db.logger.Info("applied migration", "version", m.version, "name", m.name)
		}
	}
	return nil
}

// inTx runs fn in a transaction and commits it if fn returns nil. Write transactions begin
// IMMEDIATE (see dsn). fn must use tx, never db.sql: there is only one connection.
func (db *DB) inTx(ctx context.Context, readOnly bool, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// wrap returns domain errors as they are and prefixes any other error with the operation.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *pulse.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// isUniqueViolation reports whether err is a primary key or unique constraint failure.
func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// marshalJSON encodes a JSON column; a value JSON cannot hold (NaN, ±Inf, a func) is the
// caller's mistake and gives EUNPROCESSABLE naming the field.
func marshalJSON(field string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		var uv *json.UnsupportedValueError
		var ut *json.UnsupportedTypeError
		if errors.As(err, &uv) || errors.As(err, &ut) {
			return "", pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "%s cannot be stored: %v", field, err)
		}
		return "", fmt.Errorf("encode %s: %w", field, err)
	}
	return string(b), nil
}

// unmarshalJSON decodes a JSON column.
func unmarshalJSON(field string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", field, err)
	}
	return nil
}

// Timestamps are stored as integer microseconds since the Unix epoch.

// normalTime returns t as it will read back from the store: UTC, whole microseconds, and
// now if t is zero.
func normalTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

func toMicros(t time.Time) int64 {
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	return time.UnixMicro(us).UTC()
}
