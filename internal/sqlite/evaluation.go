package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Compile-time checks that *DB implements the continuous-evaluation contracts.
var (
	_ pulse.PolicyStore       = (*DB)(nil)
	_ pulse.DecisionStore     = (*DB)(nil)
	_ pulse.AliasHistoryStore = (*DB)(nil)
)

// recordAliasMove appends a move to the alias history, in the transaction that made it.
func recordAliasMove(ctx context.Context, tx *sql.Tx, model, alias string, version, previous int, at int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO alias_history (model, alias, version, previous, at) VALUES ($1, $2, $3, $4, $5)`,
		model, alias, version, previous, at)
	return err
}

// AliasHistory implements pulse.AliasHistoryStore.
func (db *DB) AliasHistory(ctx context.Context, model, alias string, limit int) ([]pulse.AliasMove, error) {
	if limit < 1 || limit > 1000 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "limit", "limit: got %d, want 1 to 1000", limit)
	}
	moves := []pulse.AliasMove{}
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, model); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT version, previous, at FROM alias_history
			WHERE model = $1 AND alias = $2 ORDER BY id DESC LIMIT $3`, model, alias, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m := pulse.AliasMove{Model: model, Alias: alias}
			var at int64
			if err := rows.Scan(&m.Version, &m.Previous, &at); err != nil {
				return err
			}
			m.At = fromMicros(at)
			moves = append(moves, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("alias history", err)
	}
	return moves, nil
}

// PutPolicy implements pulse.PolicyStore.
func (db *DB) PutPolicy(ctx context.Context, p *pulse.PolicyDocument) error {
	if err := p.CheckStorable(); err != nil {
		return err
	}
	createdAt := normalTime(p.CreatedAt)
	var version int
	err := db.inTx(ctx, false, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, p.Model); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM policies WHERE model = $1`,
			p.Model).Scan(&version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO policies (model, version, policy, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5)`, p.Model, version, string(p.Policy), toMicros(createdAt), p.CreatedBy)
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

func scanPolicy(row interface{ Scan(...any) error }) (*pulse.PolicyDocument, error) {
	var p pulse.PolicyDocument
	var doc string
	var at int64
	if err := row.Scan(&p.Model, &p.Version, &doc, &at, &p.CreatedBy); err != nil {
		return nil, err
	}
	p.Policy = []byte(doc)
	p.CreatedAt = fromMicros(at)
	return &p, nil
}

// GetPolicy implements pulse.PolicyStore.
func (db *DB) GetPolicy(ctx context.Context, model string, version int) (*pulse.PolicyDocument, error) {
	if version < 0 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "version", "policy version: got %d, want a positive integer or 0 for the latest", version)
	}
	var p *pulse.PolicyDocument
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		var row *sql.Row
		if version == 0 {
			row = tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM policies WHERE model = $1 ORDER BY version DESC LIMIT 1`, model)
		} else {
			row = tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM policies WHERE model = $1 AND version = $2`, model, version)
		}
		var err error
		p, err = scanPolicy(row)
		if errors.Is(err, sql.ErrNoRows) {
			if err := modelExists(ctx, tx, model); err != nil {
				return err
			}
			if version == 0 {
				return pulse.Errorf(pulse.ENOTFOUND, "model %q has no policy", model)
			}
			return pulse.Errorf(pulse.ENOTFOUND, "policy version %d of model %q not found", version, model)
		}
		return err
	})
	if err != nil {
		return nil, wrap("get policy", err)
	}
	return p, nil
}

// ListPolicies implements pulse.PolicyStore.
func (db *DB) ListPolicies(ctx context.Context, model string) ([]*pulse.PolicyDocument, error) {
	out := []*pulse.PolicyDocument{}
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, model); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+policyColumns+` FROM policies WHERE model = $1 ORDER BY version DESC`, model)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPolicy(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("list policies", err)
	}
	return out, nil
}

// CurrentPolicies implements pulse.PolicyStore.
func (db *DB) CurrentPolicies(ctx context.Context) ([]*pulse.PolicyDocument, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+policyColumns+` FROM policies p
		WHERE version = (SELECT MAX(version) FROM policies WHERE model = p.model) ORDER BY model`)
	if err != nil {
		return nil, wrap("current policies", err)
	}
	defer rows.Close()
	out := []*pulse.PolicyDocument{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, wrap("current policies", err)
		}
		out = append(out, p)
	}
	return out, wrap("current policies", rows.Err())
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
	err = db.inTx(ctx, false, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, d.Model); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO decisions (model, rule, action, version, champion, policy_version,
			guard, reason, numbers, result, error, job_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			RETURNING id`, d.Model, d.Rule, d.Action, d.Version, d.Champion, d.PolicyVersion, d.Guard, d.Reason, numbers,
			d.Result, d.Error, d.JobID, toMicros(at)).Scan(&id)
	})
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
		where = append(where, "id < $2")
	}
	if q.Action != "" {
		args = append(args, q.Action)
		where = append(where, "action = $"+strconv.Itoa(len(args)))
	}
	args = append(args, q.Limit)
	query := `SELECT id, model, rule, action, version, champion, policy_version, guard, reason, numbers, result, error,
		job_id, at FROM decisions WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	out := []*pulse.Decision{}
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, model); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d pulse.Decision
			var numbers string
			var at int64
			if err := rows.Scan(&d.ID, &d.Model, &d.Rule, &d.Action, &d.Version, &d.Champion, &d.PolicyVersion,
				&d.Guard, &d.Reason, &numbers, &d.Result, &d.Error, &d.JobID, &at); err != nil {
				return err
			}
			if err := unmarshalJSON("numbers", []byte(numbers), &d.Numbers); err != nil {
				return err
			}
			d.At = fromMicros(at)
			out = append(out, &d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("list decisions", err)
	}
	return out, nil
}
