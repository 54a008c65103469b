package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudmedical/pulse/internal/pulse"
)

const datasetColumns = `id, name, version, sha256, rows, bytes, format, schema, location, created_at`

// CreateDataset stores d, assigning d.Version (1 + the latest version of d.Name) and
// d.CreatedAt if zero. d.CreatedAt is set to the stored value (UTC, whole microseconds).
// A duplicate d.ID gives ECONFLICT.
//
// Versions of one name are assigned under an advisory lock on the name, taken before the
// latest version is read, so concurrent creates from any number of processes get
// consecutive versions.
func (db *DB) CreateDataset(ctx context.Context, d *pulse.Dataset) error {
	if err := d.CheckStorable(); err != nil {
		return err
	}
	format, err := marshalJSON("format", d.Format)
	if err != nil {
		return wrap("create dataset", err)
	}
	schema, err := marshalJSON("schema", d.Schema)
	if err != nil {
		return wrap("create dataset", err)
	}
	createdAt := normalTime(d.CreatedAt)

	var version int
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockDatasetName, d.Name); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM datasets WHERE name = $1`,
			d.Name).Scan(&version); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO datasets (`+datasetColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			d.ID, d.Name, version, d.SHA256, d.Rows, d.Bytes, format, schema, d.Location, createdAt)
		switch uniqueViolation(err) {
		case "":
			return err
		case "datasets_pkey":
			return pulse.FieldErrorf(pulse.ECONFLICT, "id", "dataset %q already exists", d.ID)
		default:
			return pulse.Errorf(pulse.ECONFLICT, "dataset %q version %d already exists", d.Name, version)
		}
	})
	if err != nil {
		return wrap("create dataset", err)
	}
	d.Version = version
	d.CreatedAt = createdAt
	return nil
}

// FindDataset returns a dataset by id, by "name" (its latest version) or by "name@version".
// An unknown reference gives ENOTFOUND; a version that is not a positive integer, EINVALID.
func (db *DB) FindDataset(ctx context.Context, ref string) (*pulse.Dataset, error) {
	d, err := db.queryDataset(ctx, `SELECT `+datasetColumns+` FROM datasets WHERE id = $1`, ref)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("find dataset", err)
	}

	name, version, hasVersion, err := pulse.ParseDatasetRef(ref)
	if err != nil {
		return nil, err
	}
	if !hasVersion {
		d, err = db.queryDataset(ctx, `SELECT `+datasetColumns+` FROM datasets
			WHERE name = $1 ORDER BY version DESC LIMIT 1`, ref)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, pulse.Errorf(pulse.ENOTFOUND, "dataset %q not found", ref)
		}
		return d, wrap("find dataset", err)
	}
	d, err = db.queryDataset(ctx, `SELECT `+datasetColumns+` FROM datasets WHERE name = $1 AND version = $2`, name, version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pulse.Errorf(pulse.ENOTFOUND, "dataset %q version %d not found", name, version)
	}
	return d, wrap("find dataset", err)
}

// FindDatasetBySHA returns the version of name whose content has the hash, or ENOTFOUND. If
// several versions have the same content, it returns the oldest.
func (db *DB) FindDatasetBySHA(ctx context.Context, name, sha256 string) (*pulse.Dataset, error) {
	d, err := db.queryDataset(ctx, `SELECT `+datasetColumns+` FROM datasets
		WHERE name = $1 AND sha256 = $2 ORDER BY version LIMIT 1`, name, sha256)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, pulse.Errorf(pulse.ENOTFOUND, "dataset %q with sha256 %q not found", name, sha256)
	}
	return d, wrap("find dataset by sha256", err)
}

// ListDatasets returns every dataset version, by name then version.
func (db *DB) ListDatasets(ctx context.Context) ([]*pulse.Dataset, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+datasetColumns+` FROM datasets ORDER BY name, version`)
	if err != nil {
		return nil, wrap("list datasets", err)
	}
	defer rows.Close()
	ds := []*pulse.Dataset{}
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return nil, wrap("list datasets", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list datasets", err)
	}
	return ds, nil
}

// queryDataset returns the one dataset the query selects, or pgx.ErrNoRows.
func (db *DB) queryDataset(ctx context.Context, query string, args ...any) (*pulse.Dataset, error) {
	return scanDataset(db.pool.QueryRow(ctx, query, args...))
}

// scanDataset reads one row of datasetColumns.
func scanDataset(row pgx.Row) (*pulse.Dataset, error) {
	var (
		d              pulse.Dataset
		format, schema []byte
		createdAt      time.Time
	)
	if err := row.Scan(&d.ID, &d.Name, &d.Version, &d.SHA256, &d.Rows, &d.Bytes, &format, &schema, &d.Location, &createdAt); err != nil {
		return nil, err
	}
	if err := unmarshalJSON("format", format, &d.Format); err != nil {
		return nil, err
	}
	if err := unmarshalJSON("schema", schema, &d.Schema); err != nil {
		return nil, err
	}
	d.CreatedAt = createdAt.UTC()
	return &d, nil
}
