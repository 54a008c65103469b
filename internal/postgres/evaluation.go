package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Compile-time checks that *DB implements the continuous-evaluation contracts.
var (
	_ pulse.PolicyStore       = (*DB)(nil)
	_ pulse.DecisionStore     = (*DB)(nil)
	_ pulse.AliasHistoryStore = (*DB)(nil)
)

// recordAliasMove appends a move to the alias history, in the transaction that made it.
func recordAliasMove(ctx context.Context, tx pgx.Tx, model, alias string, version, previous int, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO alias_history (model, alias, version, previous, at) VALUES ($1, $2, $3, $4, $5)`,
		model, alias, version, previous, at)
	return err
}

// AliasHistory implements pulse.AliasHistoryStore.
func (db *DB) AliasHistory(ctx context.Context, model, alias string, limit int) ([]pulse.AliasMove, error) {
	if limit < 1 || limit > 1000 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "limit", "limit: got %d, want 1 to 1000", limit)
	}
	rows, err := db.pool.Query(ctx, `SELECT version, previous, at FROM alias_history
		WHERE model = $1 AND alias = $2 ORDER BY id DESC LIMIT $3`, model, alias, limit)
	if err != nil {
		return nil, wrap("alias history", err)
	}
	defer rows.Close()
	moves := []pulse.AliasMove{}
	for rows.Next() {
		m := pulse.AliasMove{Model: model, Alias: alias}
		if err := rows.Scan(&m.Version, &m.Previous, &m.At); err != nil {
			return nil, wrap("alias history", err)
		}
		m.At = m.At.UTC()
		moves = append(moves, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("alias history", err)
	}
	if len(moves) == 0 {
		if err := modelExists(ctx, db.pool, model); err != nil {
			return nil, wrap("alias history", err)
		}
	}
	return moves, nil
}

// PutPolicy implements pulse.PolicyStore. The model's row is locked, so that concurrent puts
// get consecutive versions.
func (db *DB) PutPolicy(ctx context.Context, p *pulse.PolicyDocument) error {
	if err := p.CheckStorable(); err != nil {
		return err
	}
	createdAt := normalTime(p.CreatedAt)
	var version int
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockModel(ctx, tx, p.Model); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM policies WHERE model = $1`,
			p.Model).Scan(&version); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO policies (model, version, policy, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5)`, p.Model, version, string(p.Policy), createdAt, p.CreatedBy)
		return err
	})
	if err != nil {
		return wrap("put policy", err)
	}
	p.Version = version
	p.CreatedAt = createdAt
	return nil
}

const policyColumns = `model, version, policy, created_at, created_by`

func scanPolicy(row pgx.Row) (*pulse.PolicyDocument, error) {
	var p pulse.PolicyDocument
	var doc string
	if err := row.Scan(&p.Model, &p.Version, &doc, &p.CreatedAt, &p.CreatedBy); err != nil {
		return nil, err
	}
	p.Policy = []byte(doc)
	p.CreatedAt = p.CreatedAt.UTC()
	return &p, nil
}

// GetPolicy implements pulse.PolicyStore.
func (db *DB) GetPolicy(ctx context.Context, model string, version int) (*pulse.PolicyDocument, error) {
	if version < 0 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "version", "policy version: got %d, want a positive integer or 0 for the latest", version)
	}
	var row pgx.Row
	if version == 0 {
		row = db.pool.QueryRow(ctx, `SELECT `+policyColumns+` FROM policies WHERE model = $1 ORDER BY version DESC LIMIT 1`, model)
	} else {
		row = db.pool.QueryRow(ctx, `SELECT `+policyColumns+` FROM policies WHERE model = $1 AND version = $2`, model, version)
	}
	p, err := scanPolicy(row)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := modelExists(ctx, db.pool, model); err != nil {
			return nil, wrap("get policy", err)
		}
		if version == 0 {
			return nil, pulse.Errorf(pulse.ENOTFOUND, "model %q has no policy", model)
		}
		return nil, pulse.Errorf(pulse.ENOTFOUND, "policy version %d of model %q not found", version, model)
	}
	if err != nil {
		return nil, wrap("get policy", err)
	}
	return p, nil
}

// ListPolicies implements pulse.PolicyStore.
func (db *DB) ListPolicies(ctx context.Context, model string) ([]*pulse.PolicyDocument, error) {
	out, err := db.queryPolicies(ctx, `SELECT `+policyColumns+` FROM policies WHERE model = $1 ORDER BY version DESC`, model)
	if err != nil {
		return nil, wrap("list policies", err)
	}
	if len(out) == 0 {
		if err := modelExists(ctx, db.pool, model); err != nil {
			return nil, wrap("list policies", err)
		}
	}
	return out, nil
}

// CurrentPolicies implements pulse.PolicyStore.
func (db *DB) CurrentPolicies(ctx context.Context) ([]*pulse.PolicyDocument, error) {
	out, err := db.queryPolicies(ctx, `SELECT DISTINCT ON (model) `+policyColumns+` FROM policies ORDER BY model, version DESC`)
	return out, wrap("current policies", err)
}

func (db *DB) queryPolicies(ctx context.Context, query string, args ...any) ([]*pulse.PolicyDocument, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*pulse.PolicyDocument{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// AppendDecision implements pulse.DecisionStore.
func (db *DB) AppendDecision(ctx context.Context, d *pulse.Decision) error {
	if err := d.CheckStorable(); err != nil {
		return err
	}
	nums := d.Numbers
	if nums == nil {
		nums = map[string]float64{}
	}
	numbers, err := marshalJSON("numbers", nums)
	if err != nil {
		return wrap("append decision", err)
	}
	at := normalTime(d.At)
	var id int64
	err = db.pool.QueryRow(ctx, `INSERT INTO decisions (model, rule, action, version, champion, policy_version,
		guard, reason, numbers, result, error, job_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		RETURNING id`, d.Model, d.Rule, d.Action, d.Version, d.Champion, d.PolicyVersion, d.Guard, d.Reason, numbers,
		d.Result, d.Error, d.JobID, at).Scan(&id)
	if isForeignKeyViolation(err) {
		return pulse.Errorf(pulse.ENOTFOUND, "model %q not found", d.Model)
	}
	if err != nil {
		return wrap("append decision", err)
	}
	d.ID, d.At, d.Numbers = id, at, nums
	return nil
}

// ListDecisions implements pulse.DecisionStore.
func (db *DB) ListDecisions(ctx context.Context, model string, q pulse.DecisionQuery) ([]*pulse.Decision, error) {
	if err := q.Normalize(); err != nil {
		return nil, err
	}
	where := []string{"model = $1"}
	args := []any{model}
	if q.BeforeID > 0 {
		args = append(args, q.BeforeID)
		where = append(where, "id < $"+strconv.Itoa(len(args)))
	}
	if q.Action != "" {
		args = append(args, q.Action)
		where = append(where, "action = $"+strconv.Itoa(len(args)))
	}
	args = append(args, q.Limit)
	rows, err := db.pool.Query(ctx, `SELECT id, model, rule, action, version, champion, policy_version, guard, reason,
		numbers, result, error, job_id, at FROM decisions WHERE `+strings.Join(where, " AND ")+
		` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, wrap("list decisions", err)
	}
	defer rows.Close()
	out := []*pulse.Decision{}
	for rows.Next() {
		var d pulse.Decision
		var numbers []byte
		if err := rows.Scan(&d.ID, &d.Model, &d.Rule, &d.Action, &d.Version, &d.Champion, &d.PolicyVersion,
			&d.Guard, &d.Reason, &numbers, &d.Result, &d.Error, &d.JobID, &d.At); err != nil {
			return nil, wrap("list decisions", err)
		}
		if err := unmarshalJSON("numbers", numbers, &d.Numbers); err != nil {
			return nil, wrap("list decisions", err)
		}
		d.At = d.At.UTC()
		out = append(out, &d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list decisions", err)
	}
	if len(out) == 0 {
		if err := modelExists(ctx, db.pool, model); err != nil {
			return nil, wrap("list decisions", err)
		}
	}
	return out, nil
}

// isForeignKeyViolation reports whether err is a foreign key violation: a decision for a
// model that does not exist.
func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}
