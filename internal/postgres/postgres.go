// Package postgres keeps Pulse's metadata (datasets, models, model versions and aliases) in
// PostgreSQL through pgx. *DB implements pulse.DatasetStore and pulse.ModelStore with the
// same semantics as package sqlite: both pass the one conformance suite, internal/storetest.
//
// Many processes (servers, workers, CLIs) may share one database: migrations run under an
// advisory lock, and version numbers are assigned under a per-name lock at READ COMMITTED,
// so they stay consecutive whoever creates them.
package postgres

import (
	"context"
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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Compile-time checks that *DB implements the store contracts.
var (
	_ pulse.DatasetStore = (*DB)(nil)
	_ pulse.ModelStore   = (*DB)(nil)
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Advisory lock classes: the first key of pg_advisory_xact_lock(int, int). Two-key locks do
// not collide with the one-key locks that other users of the database (River) take.
const (
	lockMigrate     = 0x70756c00 // "pul\0": schema migrations; second key 0
	lockDatasetName = 0x70756c01 // dataset versions; second key hashtext(name)
)

// DB is a metadata store in one PostgreSQL database. It is safe for concurrent use, also by
// several processes on the same database.
type DB struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

// Open connects to the PostgreSQL database at url (a URL or key=value connection string as
// pgx accepts, e.g. "postgres://user:pass@host:5432/pulse?sslmode=disable", with pool
// settings such as pool_max_conns) and applies the embedded migrations that it does not have
// yet. A nil logger discards log output.
func Open(ctx context.Context, url string, logger *slog.Logger) (*DB, error) {
	if url == "" {
		return nil, errors.New("postgres: open: empty database url")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message quotes the URL with its password masked.
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	db := &DB{pool: pool, logger: logger}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	logger.Debug("opened metadata store", "database", where)
	return db, nil
}

// Close closes every connection of the pool, waiting for those in use to be released. It
// always returns nil; it returns an error to be an io.Closer like the other stores.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Pool returns the connection pool, for components that share the database, such as the job
// queue. They must not close it: Close does.
func (db *DB) Pool() *pgxpool.Pool {
	return db.pool
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
// recorded in schema_migrations yet. Every transaction first takes the migration advisory
// lock and then checks what is applied, so processes that start together apply each
// migration once.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	var current int
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockMigrate); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (
				version    bigint      NOT NULL PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL
			)`); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current)
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("database schema version %d is newer than this binary's %d", current, latest)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		var applied bool
		err := db.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockMigrate); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
				m.version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			// Without arguments, pgx sends the file as one simple query: several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now()); err != nil {
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

// inTx runs fn in a READ COMMITTED transaction and commits it if fn returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// wrap returns domain errors as they are, turns PostgreSQL's data exceptions (text with a
// NUL byte or invalid UTF-8, which PostgreSQL cannot store) into EUNPROCESSABLE, and
// prefixes any other error with the operation.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *pulse.Error
	if errors.As(err, &e) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "%s: %s (text with a NUL byte or invalid UTF-8 cannot be stored)", op, pe.Message)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// uniqueViolation returns the name of the constraint that err violates, if err is a unique
// or primary key violation, and "" otherwise.
func uniqueViolation(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName
	}
	return ""
}

// marshalJSON encodes a JSON column; a value JSON cannot hold (NaN, ±Inf, a func) is the
// caller's mistake and gives EUNPROCESSABLE naming the field.
func marshalJSON(field string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		var uv *json.UnsupportedValueError
		var ut *json.UnsupportedTypeError
		if errors.As(err, &uv) || errors.As(err, &ut) {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "%s cannot be stored: %v", field, err)
		}
		return nil, fmt.Errorf("encode %s: %w", field, err)
	}
	return b, nil
}

// unmarshalJSON decodes a JSON column.
func unmarshalJSON(field string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", field, err)
	}
	return nil
}

// normalTime returns t as it will read back from the store: UTC, whole microseconds, and
// now if t is zero.
func normalTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
