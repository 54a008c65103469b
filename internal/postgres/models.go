package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudmedical/pulse/internal/pulse"
)

const versionColumns = `model, version, algorithm, features, target, threshold,
	artifact_key, artifact_sha256, artifact_bytes, metrics, lineage, created_at, description`

// versionWithAliases selects versionColumns of model_versions v and then the version's
// aliases, sorted, as one array.
const versionWithAliases = `SELECT ` + versionColumns + `,
	ARRAY(SELECT a.alias FROM aliases a WHERE a.model = v.model AND a.version = v.version ORDER BY a.alias)
	FROM model_versions v`

// CreateVersion stores v, creating the model if needed and assigning v.Version (1 + the
// model's latest version) in one transaction, and v.CreatedAt if zero. Afterwards
// v.CreatedAt is the stored value (UTC, whole microseconds) and v.Aliases is empty, so v
// equals what GetVersion returns.
//
// The transaction locks the model's row before it reads the latest version, so concurrent
// creates from any number of processes get consecutive versions.
func (db *DB) CreateVersion(ctx context.Context, v *pulse.ModelVersion) error {
	if err := v.CheckStorable(); err != nil {
		return err
	}
	features, err := marshalJSON("features", v.Features)
	if err != nil {
		return wrap("create version", err)
	}
	metrics, err := marshalJSON("metrics", v.Metrics)
	if err != nil {
		return wrap("create version", err)
	}
	lineage, err := marshalJSON("lineage", v.Lineage)
	if err != nil {
		return wrap("create version", err)
	}
	description, err := marshalJSON("description", v.Description)
	if err != nil {
		return wrap("create version", err)
	}
	createdAt := normalTime(v.CreatedAt)

	var version int
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO models (name, created_at) VALUES ($1, $2)
			ON CONFLICT (name) DO NOTHING`, v.Model, createdAt); err != nil {
			return err
		}
		if err := lockModel(ctx, tx, v.Model); err != nil {
			return err
		}
		// A new statement, so a new snapshot: it sees every version committed before the lock.
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = $1`,
			v.Model).Scan(&version); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO model_versions (`+versionColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			v.Model, version, v.Algorithm, features, v.Target, v.Threshold,
			v.ArtifactKey, v.ArtifactSHA256, v.ArtifactBytes, metrics, lineage, createdAt, description)
		if uniqueViolation(err) != "" {
			return pulse.Errorf(pulse.ECONFLICT, "version %d of model %q already exists", version, v.Model)
		}
		return err
	})
	if err != nil {
		return wrap("create version", err)
	}
	v.Version = version
	v.CreatedAt = createdAt
	v.Aliases = []string{}
	return nil
}

// GetVersion returns one version with its current aliases (sorted), or ENOTFOUND.
func (db *DB) GetVersion(ctx context.Context, model string, version int) (*pulse.ModelVersion, error) {
	mv, err := scanVersion(db.pool.QueryRow(ctx, versionWithAliases+` WHERE v.model = $1 AND v.version = $2`,
		model, version))
	if errors.Is(err, pgx.ErrNoRows) {
		if err := modelExists(ctx, db.pool, model); err != nil {
			return nil, wrap("get version", err)
		}
		return nil, pulse.Errorf(pulse.ENOTFOUND, "version %d of model %q not found", version, model)
	}
	if err != nil {
		return nil, wrap("get version", err)
	}
	return mv, nil
}

// ListVersions returns every version of a model with its aliases, oldest first, or
// ENOTFOUND for an unknown model.
func (db *DB) ListVersions(ctx context.Context, model string) ([]*pulse.ModelVersion, error) {
	rows, err := db.pool.Query(ctx, versionWithAliases+` WHERE v.model = $1 ORDER BY v.version`, model)
	if err != nil {
		return nil, wrap("list versions", err)
	}
	defer rows.Close()
	vs := []*pulse.ModelVersion{}
	for rows.Next() {
		mv, err := scanVersion(rows)
		if err != nil {
			return nil, wrap("list versions", err)
		}
		vs = append(vs, mv)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list versions", err)
	}
	if len(vs) == 0 {
		// A model is created with its first version, so no versions almost surely means no
		// model; ask, to tell the two apart exactly.
		if err := modelExists(ctx, db.pool, model); err != nil {
			return nil, wrap("list versions", err)
		}
	}
	return vs, nil
}

// modelQuery selects a model's name, creation time, latest version and aliases with the
// versions they point at (two arrays in the same order).
const modelQuery = `SELECT m.name, m.created_at,
	COALESCE((SELECT MAX(v.version) FROM model_versions v WHERE v.model = m.name), 0),
	ARRAY(SELECT a.alias FROM aliases a WHERE a.model = m.name ORDER BY a.alias),
	ARRAY(SELECT a.version FROM aliases a WHERE a.model = m.name ORDER BY a.alias)
	FROM models m`

// GetModel returns a model with its aliases and latest version, or ENOTFOUND.
func (db *DB) GetModel(ctx context.Context, name string) (*pulse.Model, error) {
	m, err := scanModel(db.pool.QueryRow(ctx, modelQuery+` WHERE m.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pulse.Errorf(pulse.ENOTFOUND, "model %q not found", name)
	}
	if err != nil {
		return nil, wrap("get model", err)
	}
	return m, nil
}

// ListModels returns every model with its aliases and latest version, by name.
func (db *DB) ListModels(ctx context.Context) ([]*pulse.Model, error) {
	rows, err := db.pool.Query(ctx, modelQuery+` ORDER BY m.name`)
	if err != nil {
		return nil, wrap("list models", err)
	}
	defer rows.Close()
	ms := []*pulse.Model{}
	for rows.Next() {
		m, err := scanModel(rows)
		if err != nil {
			return nil, wrap("list models", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list models", err)
	}
	return ms, nil
}

// SetAlias points alias at an existing version (ENOTFOUND if it does not exist) and returns
// the version it pointed at before (0 if none). It locks the model's row, so that concurrent
// changes of the model's aliases each see the one before.
func (db *DB) SetAlias(ctx context.Context, model, alias string, version int) (int, error) {
	if alias == "" {
		return 0, pulse.FieldErrorf(pulse.EINVALID, "alias", "alias is empty")
	}
	var previous int
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockModel(ctx, tx, model); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM model_versions WHERE model = $1 AND version = $2)`,
			model, version).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return pulse.Errorf(pulse.ENOTFOUND, "version %d of model %q not found", version, model)
		}
		err := tx.QueryRow(ctx, `SELECT version FROM aliases WHERE model = $1 AND alias = $2`,
			model, alias).Scan(&previous)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		now := time.Now()
		if _, err = tx.Exec(ctx, `INSERT INTO aliases (model, alias, version, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
			model, alias, version, now); err != nil {
			return err
		}
		return recordAliasMove(ctx, tx, model, alias, version, previous, now)
	})
	if err != nil {
		return 0, wrap("set alias", err)
	}
	return previous, nil
}

// DeleteAlias removes an alias; ENOTFOUND if it was not set.
func (db *DB) DeleteAlias(ctx context.Context, model, alias string) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockModel(ctx, tx, model); err != nil {
			return err
		}
		var previous int
		err := tx.QueryRow(ctx, `DELETE FROM aliases WHERE model = $1 AND alias = $2 RETURNING version`, model, alias).Scan(&previous)
		if errors.Is(err, pgx.ErrNoRows) {
			return pulse.Errorf(pulse.ENOTFOUND, "alias %q of model %q not found", alias, model)
		}
		if err != nil {
			return err
		}
		return recordAliasMove(ctx, tx, model, alias, 0, previous, time.Now())
	})
	return wrap("delete alias", err)
}

// lockModel locks the model's row until the end of the transaction, or returns ENOTFOUND.
func lockModel(ctx context.Context, tx pgx.Tx, model string) error {
	var name string
	err := tx.QueryRow(ctx, `SELECT name FROM models WHERE name = $1 FOR UPDATE`, model).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return pulse.Errorf(pulse.ENOTFOUND, "model %q not found", model)
	}
	return err
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// modelExists returns nil if the model exists and ENOTFOUND if it does not.
func modelExists(ctx context.Context, q querier, model string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM models WHERE name = $1)`, model).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return pulse.Errorf(pulse.ENOTFOUND, "model %q not found", model)
	}
	return nil
}

// scanVersion reads one row of versionWithAliases; Aliases is empty, not nil, when the
// version has none.
func scanVersion(row pgx.Row) (*pulse.ModelVersion, error) {
	var (
		mv                                      pulse.ModelVersion
		features, metrics, lineage, description []byte
		createdAt                               time.Time
	)
	if err := row.Scan(&mv.Model, &mv.Version, &mv.Algorithm, &features, &mv.Target, &mv.Threshold,
		&mv.ArtifactKey, &mv.ArtifactSHA256, &mv.ArtifactBytes, &metrics, &lineage, &createdAt, &description,
		&mv.Aliases); err != nil {
		return nil, err
	}
	if err := unmarshalJSON("features", features, &mv.Features); err != nil {
		return nil, err
	}
	if err := unmarshalJSON("metrics", metrics, &mv.Metrics); err != nil {
		return nil, err
	}
	if err := unmarshalJSON("lineage", lineage, &mv.Lineage); err != nil {
		return nil, err
	}
	if err := unmarshalJSON("description", description, &mv.Description); err != nil {
		return nil, err
	}
	mv.CreatedAt = createdAt.UTC()
	if mv.Aliases == nil {
		mv.Aliases = []string{}
	}
	return &mv, nil
}

// scanModel reads one row of modelQuery; Aliases is empty, not nil, when the model has none.
func scanModel(row pgx.Row) (*pulse.Model, error) {
	var (
		m         pulse.Model
		createdAt time.Time
		aliases   []string
		versions  []int
	)
	if err := row.Scan(&m.Name, &createdAt, &m.LatestVersion, &aliases, &versions); err != nil {
		return nil, err
	}
	if len(versions) != len(aliases) {
		return nil, fmt.Errorf("model %q: got %d aliases and %d versions for them", m.Name, len(aliases), len(versions))
	}
	m.CreatedAt = createdAt.UTC()
	m.Aliases = make(map[string]int, len(aliases))
	for i, a := range aliases {
		m.Aliases[a] = versions[i]
	}
	return &m, nil
}
