package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

const versionColumns = `model, version, algorithm, features, target, threshold,
	artifact_key, artifact_sha256, artifact_bytes, metrics, lineage, created_at, description`

// CreateVersion stores v, creating the model if needed and assigning v.Version (1 + the
// model's latest version) in one transaction, and v.CreatedAt if zero. Afterwards
// v.CreatedAt is the stored value (UTC, whole microseconds) and v.Aliases is empty, so v
// equals what GetVersion returns.
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
	err = db.inTx(ctx, false, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO models (name, created_at) VALUES ($1, $2)
			ON CONFLICT (name) DO NOTHING`, v.Model, toMicros(createdAt)); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = $1`,
			v.Model).Scan(&version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO model_versions (`+versionColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			v.Model, version, v.Algorithm, features, v.Target, v.Threshold,
			v.ArtifactKey, v.ArtifactSHA256, v.ArtifactBytes, metrics, lineage, toMicros(createdAt), description)
		if isUniqueViolation(err) {
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
	var mv *pulse.ModelVersion
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		var err error
		mv, err = scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM model_versions
			WHERE model = $1 AND version = $2`, model, version))
		if errors.Is(err, sql.ErrNoRows) {
			if err := modelExists(ctx, tx, model); err != nil {
				return err
			}
			return pulse.Errorf(pulse.ENOTFOUND, "version %d of model %q not found", version, model)
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT alias FROM aliases WHERE model = $1 AND version = $2 ORDER BY alias`,
			model, version)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var alias string
			if err := rows.Scan(&alias); err != nil {
				return err
			}
			mv.Aliases = append(mv.Aliases, alias)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("get version", err)
	}
	return mv, nil
}

// ListVersions returns every version of a model with its aliases, oldest first, or
// ENOTFOUND for an unknown model.
func (db *DB) ListVersions(ctx context.Context, model string) ([]*pulse.ModelVersion, error) {
	vs := []*pulse.ModelVersion{}
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, model); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+versionColumns+` FROM model_versions
			WHERE model = $1 ORDER BY version`, model)
		if err != nil {
			return err
		}
		defer rows.Close()
		byVersion := make(map[int]*pulse.ModelVersion)
		for rows.Next() {
			mv, err := scanVersion(rows)
			if err != nil {
				return err
			}
			vs = append(vs, mv)
			byVersion[mv.Version] = mv
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()

		arows, err := tx.QueryContext(ctx, `SELECT alias, version FROM aliases WHERE model = $1 ORDER BY alias`, model)
		if err != nil {
			return err
		}
		defer arows.Close()
		for arows.Next() {
			var (
				alias   string
				version int
			)
			if err := arows.Scan(&alias, &version); err != nil {
				return err
			}
			if mv := byVersion[version]; mv != nil {
				mv.Aliases = append(mv.Aliases, alias)
			}
		}
		return arows.Err()
	})
	if err != nil {
		return nil, wrap("list versions", err)
	}
	return vs, nil
}

// GetModel returns a model with its aliases and latest version, or ENOTFOUND.
func (db *DB) GetModel(ctx context.Context, name string) (*pulse.Model, error) {
	m := &pulse.Model{Name: name, Aliases: map[string]int{}}
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		var createdAt int64
		err := tx.QueryRowContext(ctx, `SELECT m.created_at,
				COALESCE((SELECT MAX(v.version) FROM model_versions v WHERE v.model = m.name), 0)
			FROM models m WHERE m.name = $1`, name).Scan(&createdAt, &m.LatestVersion)
		if errors.Is(err, sql.ErrNoRows) {
			return pulse.Errorf(pulse.ENOTFOUND, "model %q not found", name)
		}
		if err != nil {
			return err
		}
		m.CreatedAt = fromMicros(createdAt)

		rows, err := tx.QueryContext(ctx, `SELECT alias, version FROM aliases WHERE model = $1`, name)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				alias   string
				version int
			)
			if err := rows.Scan(&alias, &version); err != nil {
				return err
			}
			m.Aliases[alias] = version
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("get model", err)
	}
	return m, nil
}

// ListModels returns every model with its aliases and latest version, by name.
func (db *DB) ListModels(ctx context.Context) ([]*pulse.Model, error) {
	ms := []*pulse.Model{}
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT m.name, m.created_at, COALESCE(MAX(v.version), 0)
			FROM models m LEFT JOIN model_versions v ON v.model = m.name
			GROUP BY m.name, m.created_at ORDER BY m.name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		byName := make(map[string]*pulse.Model)
		for rows.Next() {
			m := &pulse.Model{Aliases: map[string]int{}}
			var createdAt int64
			if err := rows.Scan(&m.Name, &createdAt, &m.LatestVersion); err != nil {
				return err
			}
			m.CreatedAt = fromMicros(createdAt)
			ms = append(ms, m)
			byName[m.Name] = m
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()

		arows, err := tx.QueryContext(ctx, `SELECT model, alias, version FROM aliases`)
		if err != nil {
			return err
		}
		defer arows.Close()
		for arows.Next() {
			var (
				model, alias string
				version      int
			)
			if err := arows.Scan(&model, &alias, &version); err != nil {
				return err
			}
			if m := byName[model]; m != nil {
				m.Aliases[alias] = version
			}
		}
		return arows.Err()
	})
	if err != nil {
		return nil, wrap("list models", err)
	}
	return ms, nil
}

// SetAlias points alias at an existing version (ENOTFOUND if it does not exist) and returns
// the version it pointed at before (0 if none).
func (db *DB) SetAlias(ctx context.Context, model, alias string, version int) (int, error) {
	if alias == "" {
		return 0, pulse.FieldErrorf(pulse.EINVALID, "alias", "alias is empty")
	}
	var previous int
	err := db.inTx(ctx, false, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM model_versions WHERE model = $1 AND version = $2`,
			model, version).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if err := modelExists(ctx, tx, model); err != nil {
				return err
			}
			return pulse.Errorf(pulse.ENOTFOUND, "version %d of model %q not found", version, model)
		}
		err := tx.QueryRowContext(ctx, `SELECT version FROM aliases WHERE model = $1 AND alias = $2`,
			model, alias).Scan(&previous)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		now := toMicros(time.Now())
		if _, err = tx.ExecContext(ctx, `INSERT INTO aliases (model, alias, version, updated_at) VALUES ($1, $2, $3, $4)
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
	err := db.inTx(ctx, false, func(tx *sql.Tx) error {
		var previous int
		err := tx.QueryRowContext(ctx, `DELETE FROM aliases WHERE model = $1 AND alias = $2 RETURNING version`,
			model, alias).Scan(&previous)
		if errors.Is(err, sql.ErrNoRows) {
			if err := modelExists(ctx, tx, model); err != nil {
				return err
			}
			return pulse.Errorf(pulse.ENOTFOUND, "alias %q of model %q not found", alias, model)
		}
		if err != nil {
			return err
		}
		return recordAliasMove(ctx, tx, model, alias, 0, previous, toMicros(time.Now()))
	})
	return wrap("delete alias", err)
}

// modelExists returns nil if the model exists and ENOTFOUND if it does not.
func modelExists(ctx context.Context, tx *sql.Tx, model string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM models WHERE name = $1`, model).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return pulse.Errorf(pulse.ENOTFOUND, "model %q not found", model)
	}
	return nil
}

// scanVersion reads one row of versionColumns; Aliases is empty, not nil.
func scanVersion(s scanner) (*pulse.ModelVersion, error) {
	var (
		mv                                      pulse.ModelVersion
		features, metrics, lineage, description []byte
		createdAt                               int64
	)
	if err := s.Scan(&mv.Model, &mv.Version, &mv.Algorithm, &features, &mv.Target, &mv.Threshold,
		&mv.ArtifactKey, &mv.ArtifactSHA256, &mv.ArtifactBytes, &metrics, &lineage, &createdAt, &description); err != nil {
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
	mv.CreatedAt = fromMicros(createdAt)
	mv.Aliases = []string{}
	return &mv, nil
}
